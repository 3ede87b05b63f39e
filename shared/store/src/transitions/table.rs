//! The transition table: every statement that writes `tasks.state`, with the
//! states it moves a task from and to.
//!
//! A row is not a description of its statement but the source of its guard:
//! a statement's SQL is a template whose `{from}` is rendered from the row
//! (`= 'queued'`, `IN ('scheduled', 'running')`), and whose `{from_state}`
//! and `{to}` (where it has one of each) are the row's single state. The
//! targets a statement picks among with a `CASE` are spelled in its SQL,
//! and a test holds them to the row; the targets a caller names (an insert's
//! state, a report's outcome) are refused before the statement runs unless
//! the row lists them in [`Statement::chosen`].
//!
//! The guards are rendered into the text rather than bound as parameters so
//! that the planner sees the same literals as before and keeps using the
//! partial indexes on `state` (`tasks_depends_on`, `tasks_retry_due`, ...).
//!
//! Every move a row can make is `from × to`: no statement picks its target
//! by the state it leaves.

use crate::{Result, StoreError, interventions, tasks, timers, workflows};
use std::sync::OnceLock;
use taskyard_wire::TaskState::{self, *};

/// One guarded statement that writes `tasks.state`.
#[derive(Debug)]
pub struct Statement {
    /// The name of its SQL template in the source.
    pub name: &'static str,
    /// The `Store` method that runs it.
    pub run_by: &'static str,
    /// The states its guard lets it leave; empty for the insert, which
    /// creates tasks instead.
    pub from: &'static [TaskState],
    /// The states it may leave a task in.
    pub to: &'static [TaskState],
    /// The part of `to` its caller names, row by row (an insert's state, a
    /// finish report's outcome); any other is refused with
    /// [`StoreError::Disallowed`] before the statement runs.
    pub chosen: &'static [TaskState],
    template: &'static str,
    sql: OnceLock<String>,
}

impl Statement {
    /// Its SQL, with the guard and states of its row (rendered once).
    pub fn sql(&self) -> &str {
        self.sql.get_or_init(|| self.render())
    }

    /// Whether it creates tasks rather than moving them.
    pub fn creates(&self) -> bool {
        self.from.is_empty()
    }

    /// Every `(from, to)` move it can make.
    pub fn moves(&self) -> impl Iterator<Item = (TaskState, TaskState)> + '_ {
        self.from
            .iter()
            .flat_map(|&from| self.to.iter().map(move |&to| (from, to)))
    }

    /// Refuses a target its caller named that the row does not list.
    pub(crate) fn check_chosen(&self, state: TaskState) -> Result<()> {
        if self.chosen.contains(&state) {
            Ok(())
        } else {
            Err(StoreError::Disallowed {
                statement: self.name,
                state,
            })
        }
    }

    /// A placeholder that does not apply to the row (`{to}` on a statement
    /// with several targets) is left as it is: Postgres then refuses the
    /// statement, and `every_template_renders_completely` below fails first.
    fn render(&self) -> String {
        let mut sql = self.template.replace("{from}", &guard(self.from));
        if let [from] = self.from {
            sql = sql.replace("{from_state}", &literal(*from));
        }
        if let [to] = self.to {
            sql = sql.replace("{to}", &literal(*to));
        }
        sql
    }
}

/// `'queued'`.
fn literal(state: TaskState) -> String {
    format!("'{}'", state.as_str())
}

/// The right-hand side of a `state` guard: `= 'queued'` for one state (as
/// the statements were written by hand), `IN ('scheduled', 'running')` for
/// several.
fn guard(states: &[TaskState]) -> String {
    match states {
        [one] => format!("= {}", literal(*one)),
        many => {
            let list: Vec<String> = many.iter().map(|s| literal(*s)).collect();
            format!("IN ({})", list.join(", "))
        }
    }
}

/// Creates tasks (`orchestrator`): valid ones `queued` or `pending`,
/// refused ones `rejected`.
pub static INSERT_TASKS: Statement = Statement {
    name: "INSERT_TASKS",
    run_by: "Store::insert_tasks",
    from: &[],
    to: &TaskState::INITIAL,
    chosen: &TaskState::INITIAL,
    template: tasks::insert::INSERT_TASKS,
    sql: OnceLock::new(),
};

/// Placement (`scheduler`): bumps the attempt, the fencing token.
pub static MARK_SCHEDULED: Statement = Statement {
    name: "MARK_SCHEDULED",
    run_by: "Store::mark_scheduled",
    from: &[Queued],
    to: &[Scheduled],
    chosen: &[],
    template: tasks::attempts::MARK_SCHEDULED,
    sql: OnceLock::new(),
};

/// A worker's start report.
pub static MARK_RUNNING: Statement = Statement {
    name: "MARK_RUNNING",
    run_by: "Store::mark_running",
    from: &[Scheduled],
    to: &[Running],
    chosen: &[],
    template: tasks::attempts::MARK_RUNNING,
    sql: OnceLock::new(),
};

/// A worker's finish report: its outcome, or `retrying` (`queued` when the
/// backoff is zero) while attempts remain. From `scheduled` when the finish
/// came before the start (the history then records `running` too).
pub static FINISH_ATTEMPTS: Statement = Statement {
    name: "FINISH_ATTEMPTS",
    run_by: "Store::finish_attempts",
    from: &[Scheduled, Running],
    to: &[Succeeded, Failed, TimedOut, Queued, Retrying],
    chosen: &[Succeeded, Failed, TimedOut],
    template: tasks::attempts::FINISH_ATTEMPTS,
    sql: OnceLock::new(),
};

/// An attempt's deadline passed without a report (`timeout` timer).
pub static TIME_OUT: Statement = Statement {
    name: "TIME_OUT",
    run_by: "Store::fire_timers(Timeout)",
    from: &[Scheduled, Running],
    to: &[TimedOut, Queued, Retrying],
    chosen: &[],
    template: timers::TIME_OUT,
    sql: OnceLock::new(),
};

/// A retry's backoff is over (`retry` timer).
pub static END_BACKOFF: Statement = Statement {
    name: "END_BACKOFF",
    run_by: "Store::fire_timers(Retry)",
    from: &[Retrying],
    to: &[Queued],
    chosen: &[],
    template: timers::END_BACKOFF,
    sql: OnceLock::new(),
};

/// A delayed task's start time came (`start` timer) and its dependencies,
/// if any, succeeded.
pub static START_DELAYED: Statement = Statement {
    name: "START_DELAYED",
    run_by: "Store::fire_timers(Start)",
    from: &[Pending],
    to: &[Queued],
    chosen: &[],
    template: timers::START_DELAYED,
    sql: OnceLock::new(),
};

/// Still unplaced at its placement deadline (`placement` timer).
pub static MISS_PLACEMENT: Statement = Statement {
    name: "MISS_PLACEMENT",
    run_by: "Store::fire_timers(Placement)",
    from: &[Queued],
    to: &[Rejected],
    chosen: &[],
    template: timers::MISS_PLACEMENT,
    sql: OnceLock::new(),
};

/// Every dependency succeeded and the start time, if any, came.
pub static RELEASE: Statement = Statement {
    name: "RELEASE",
    run_by: "Store::release_dependents",
    from: &[Pending],
    to: &[Queued],
    chosen: &[],
    template: workflows::RELEASE,
    sql: OnceLock::new(),
};

/// A dependency, direct or not, ended without succeeding.
pub static CANCEL_DEPENDENTS: Statement = Statement {
    name: "CANCEL_DEPENDENTS",
    run_by: "Store::cancel_dependents",
    from: &[Pending],
    to: &[Cancelled],
    chosen: &[],
    template: workflows::CANCEL_DEPENDENTS,
    sql: OnceLock::new(),
};

/// The steps of a compensating workflow that had not started.
pub static CANCEL_REMAINING: Statement = Statement {
    name: "CANCEL_REMAINING",
    run_by: "Store::advance_workflows",
    from: &[Pending, Queued, Retrying],
    to: &[Cancelled],
    chosen: &[],
    template: workflows::CANCEL_REMAINING,
    sql: OnceLock::new(),
};

/// A cancel request (NATS, REST, CLI): any live task.
pub static CANCEL: Statement = Statement {
    name: "CANCEL",
    run_by: "Store::cancel_tasks",
    from: &[Pending, Queued, Scheduled, Running, Retrying],
    to: &[Cancelled],
    chosen: &[],
    template: interventions::CANCEL,
    sql: OnceLock::new(),
};

/// The node an attempt was placed on was lost: `queued` again while attempts
/// remain, else `failed`.
pub static NODE_LOST: Statement = Statement {
    name: "NODE_LOST",
    run_by: "Store::requeue_lost_node",
    from: &[Scheduled, Running],
    to: &[Queued, Failed],
    chosen: &[],
    template: interventions::NODE_LOST,
    sql: OnceLock::new(),
};

/// Every statement that writes `tasks.state`, creation first, then in the
/// order of a task's life.
pub static TABLE: [&Statement; 13] = [
    &INSERT_TASKS,
    &MARK_SCHEDULED,
    &MARK_RUNNING,
    &FINISH_ATTEMPTS,
    &TIME_OUT,
    &END_BACKOFF,
    &START_DELAYED,
    &MISS_PLACEMENT,
    &RELEASE,
    &CANCEL_DEPENDENTS,
    &CANCEL_REMAINING,
    &CANCEL,
    &NODE_LOST,
];

/// Every move some statement makes, each once, in the order of
/// [`TaskState::ALL`].
pub fn moves() -> Vec<(TaskState, TaskState)> {
    let mut moves = Vec::new();
    for from in TaskState::ALL {
        for to in TaskState::ALL {
            if TABLE.iter().any(|s| s.moves().any(|m| m == (from, to))) {
                moves.push((from, to));
            }
        }
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn crate_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn made_by(from: TaskState, to: TaskState) -> Vec<&'static str> {
        TABLE
            .iter()
            .filter(|s| s.moves().any(|m| m == (from, to)))
            .map(|s| s.name)
            .collect()
    }

    #[test]
    fn every_move_of_a_statement_is_allowed_by_can_move_to() {
        for statement in TABLE {
            for (from, to) in statement.moves() {
                assert!(
                    from.can_move_to(to),
                    "{} moves {from} -> {to}, which TaskState::can_move_to forbids",
                    statement.name
                );
            }
        }
    }

    #[test]
    fn every_move_can_move_to_allows_is_made_by_a_statement() {
        for from in TaskState::ALL {
            for to in TaskState::ALL {
                if from.can_move_to(to) {
                    assert!(
                        !made_by(from, to).is_empty(),
                        "TaskState::can_move_to allows {from} -> {to}, but no statement makes it"
                    );
                }
            }
        }
    }

    #[test]
    fn the_states_left_and_reached_are_those_of_can_move_to() {
        for state in TaskState::ALL {
            let left = moves().iter().any(|&(from, _)| from == state);
            let reached = moves().iter().any(|&(_, to)| to == state);
            assert_eq!(
                left,
                TaskState::ALL.iter().any(|&to| state.can_move_to(to)),
                "{state} left"
            );
            assert_eq!(
                reached,
                TaskState::ALL.iter().any(|&from| from.can_move_to(state)),
                "{state} reached"
            );
            // Only terminal states are never left, and each is entered.
            assert_eq!(left, !state.is_terminal(), "{state} left");
            let created = TABLE.iter().any(|s| s.creates() && s.to.contains(&state));
            assert!(reached || created, "{state} is neither created nor reached");
        }
    }

    #[test]
    fn tasks_are_created_in_the_initial_states_only() {
        let creators: Vec<&Statement> = TABLE.iter().copied().filter(|s| s.creates()).collect();
        assert_eq!(creators.len(), 1, "one statement creates tasks");
        for creator in creators {
            assert_eq!(creator.to, TaskState::INITIAL);
            assert_eq!(creator.chosen, TaskState::INITIAL);
        }
    }

    #[test]
    fn names_are_unique_and_rows_are_well_formed() {
        for (i, statement) in TABLE.iter().enumerate() {
            assert!(
                TABLE[..i].iter().all(|other| other.name != statement.name),
                "{} twice",
                statement.name
            );
            for states in [statement.from, statement.to, statement.chosen] {
                for (j, state) in states.iter().enumerate() {
                    assert!(
                        !states[..j].contains(state),
                        "{}: {state} twice",
                        statement.name
                    );
                }
            }
            assert!(!statement.to.is_empty(), "{} sets no state", statement.name);
            for chosen in statement.chosen {
                assert!(
                    statement.to.contains(chosen),
                    "{}: chosen {chosen} is not among its targets",
                    statement.name
                );
            }
        }
    }

    #[test]
    fn every_template_renders_completely() {
        for statement in TABLE {
            let sql = statement.sql();
            for placeholder in ["{from}", "{from_state}", "{to}"] {
                assert!(
                    !sql.contains(placeholder),
                    "{}: {placeholder} left in its SQL (does it apply to the row?)",
                    statement.name
                );
            }
            if !statement.creates() {
                // Its guard is the table's, not a copy of it.
                assert!(
                    statement.template.contains("state {from}"),
                    "{}: its guard is not rendered from the table",
                    statement.name
                );
                assert!(
                    sql.contains(&format!("state {}", guard(statement.from))),
                    "{}",
                    statement.name
                );
                assert!(
                    sql.contains("INSERT INTO task_events"),
                    "{}: a move without a history row",
                    statement.name
                );
            }
        }
        assert_eq!(
            MARK_SCHEDULED.sql().matches("t.state = 'queued'").count(),
            1,
            "{}",
            MARK_SCHEDULED.sql()
        );
        assert!(
            CANCEL
                .sql()
                .contains("state IN ('pending', 'queued', 'scheduled', 'running', 'retrying')")
        );
    }

    /// The expression a statement assigns to `state`, or `None` when it has
    /// no `SET state = `: a quoted state, or a parenthesised `CASE`.
    fn assigned_state(sql: &str) -> Option<&str> {
        let start = sql.find("SET state = ")? + "SET state = ".len();
        let rest = &sql[start..];
        if rest.starts_with('(') {
            let mut depth = 0usize;
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(&rest[..=i]);
                        }
                    }
                    _ => {}
                }
            }
            None
        } else {
            rest.split([',', '\n']).next()
        }
    }

    /// The quoted words of `sql`, read as states.
    fn quoted_states(sql: &str) -> Vec<TaskState> {
        sql.split('\'')
            .skip(1)
            .step_by(2)
            .map(|word| {
                word.parse()
                    .unwrap_or_else(|_| panic!("`{word}` in `{sql}` is not a state"))
            })
            .collect()
    }

    #[test]
    fn the_targets_spelled_in_each_statement_are_its_row() {
        for statement in TABLE {
            let spelled = match assigned_state(statement.sql()) {
                Some(expression) => quoted_states(expression),
                None => {
                    assert!(statement.creates(), "{}: no `SET state = `", statement.name);
                    Vec::new()
                }
            };
            for state in &spelled {
                assert!(
                    statement.to.contains(state) && !statement.chosen.contains(state),
                    "{}: sets {state}, which its row does not list as a target it picks",
                    statement.name
                );
            }
            for state in statement.to {
                assert!(
                    spelled.contains(state) || statement.chosen.contains(state),
                    "{}: its row says it sets {state}, but its SQL does not",
                    statement.name
                );
            }
            if !statement.chosen.is_empty() && !statement.creates() {
                // The caller's state is assigned, not a literal.
                let expression = assigned_state(statement.sql()).unwrap_or_default();
                assert!(expression.contains("THEN o.outcome"), "{}", statement.name);
            }
        }
    }

    #[test]
    fn a_state_the_row_does_not_choose_is_refused() {
        assert!(FINISH_ATTEMPTS.check_chosen(TaskState::TimedOut).is_ok());
        for refused in [
            TaskState::Cancelled,
            TaskState::Rejected,
            TaskState::Queued,
            TaskState::Running,
        ] {
            match FINISH_ATTEMPTS.check_chosen(refused) {
                Err(StoreError::Disallowed { statement, state }) => {
                    assert_eq!((statement, state), ("FINISH_ATTEMPTS", refused));
                }
                other => panic!("{refused}: {other:?}"),
            }
        }
        let err = INSERT_TASKS.check_chosen(TaskState::Retrying);
        assert!(err.as_ref().is_err_and(StoreError::is_poison), "{err:?}");
        assert!(MARK_SCHEDULED.check_chosen(TaskState::Scheduled).is_err());
    }

    fn sources(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs")
                // Made-up finished history for benchmarks: rows inserted
                // already ended, no transition of a live task.
                && !path.ends_with("seed.rs")
            {
                let text = std::fs::read_to_string(&path).expect("read source");
                out.push((path, text));
            }
        }
    }

    /// How many statements in `text` write `tasks.state`: `INSERT INTO
    /// tasks (`, and `UPDATE tasks [t] SET` whose assignments (up to the
    /// `FROM`, `WHERE` or `RETURNING`) include `state`.
    fn state_writes(text: &str) -> usize {
        let inserts = text
            .match_indices("INSERT INTO tasks")
            .filter(|(i, m)| {
                text[i + m.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c == '(' || c.is_whitespace())
            })
            .count();
        let updates = text
            .match_indices("UPDATE tasks")
            .filter(|(i, m)| {
                let rest = &text[i + m.len()..];
                let mut words = rest.split_whitespace();
                let mut word = words.next().unwrap_or_default();
                if word == "AS" {
                    words.next();
                    word = words.next().unwrap_or_default();
                } else if word != "SET" {
                    word = words.next().unwrap_or_default();
                }
                if word != "SET" {
                    return false;
                }
                let set = rest.find("SET").map_or("", |at| &rest[at + 3..]);
                let end = ["FROM ", "WHERE ", "RETURNING"]
                    .iter()
                    .filter_map(|stop| set.find(stop))
                    .min()
                    .unwrap_or(set.len());
                set[..end].split(',').any(|assignment| {
                    assignment
                        .split('=')
                        .next()
                        .is_some_and(|column| column.trim() == "state")
                })
            })
            .count();
        inserts + updates
    }

    #[test]
    fn every_statement_that_writes_a_task_state_is_in_the_table() {
        let mut files = Vec::new();
        sources(&crate_dir().join("src"), &mut files);
        let in_sources: usize = files.iter().map(|(_, text)| state_writes(text)).sum();
        let in_table: usize = TABLE.iter().map(|s| state_writes(s.template)).sum();
        let per_file: Vec<String> = files
            .iter()
            .filter(|(_, text)| state_writes(text) > 0)
            .map(|(path, text)| format!("{}: {}", path.display(), state_writes(text)))
            .collect();
        assert_eq!(
            in_sources, in_table,
            "a statement writes tasks.state without a row in the transition table: {per_file:?}"
        );
        assert_eq!(in_table, TABLE.len(), "each row is one statement");
        // The scanner sees what it should.
        // (Built at run time, so that the scan above does not count them.)
        let table = "tasks";
        assert_eq!(
            state_writes(&format!(
                "UPDATE {table} t SET wait_reason = i.reason WHERE"
            )),
            0
        );
        assert_eq!(
            state_writes(&format!(
                "UPDATE {table} SET error = 'x', state = 'failed' WHERE"
            )),
            1
        );
        assert_eq!(state_writes(&format!("INSERT INTO {table} (id, state)")), 1);
    }

    #[test]
    fn each_row_names_its_template_and_its_method() {
        let mut files = Vec::new();
        sources(&crate_dir().join("src"), &mut files);
        let all: String = files.into_iter().map(|(_, text)| text).collect();
        for statement in TABLE {
            assert!(
                all.contains(&format!("pub(crate) const {}: &str", statement.name)),
                "no template named {}",
                statement.name
            );
            let method = statement
                .run_by
                .trim_start_matches("Store::")
                .split('(')
                .next()
                .unwrap_or_default();
            assert!(
                all.contains(&format!("pub async fn {method}(")),
                "{}: no method {}",
                statement.name,
                statement.run_by
            );
            let runs = [
                format!("table::{}.sql()", statement.name),
                format!("&table::{}, ", statement.name),
            ];
            assert!(
                runs.iter().any(|run| all.contains(run)),
                "{}: never run",
                statement.name
            );
        }
    }

    const DOC_BEGIN: &str = "<!-- BEGIN transitions: generated from shared/store/src/transitions/table.rs by its tests; `TASKYARD_BLESS=1 cargo test -p taskyard-store transitions` rewrites it -->";
    const DOC_END: &str = "<!-- END transitions -->";

    fn list(states: &[TaskState]) -> String {
        let names: Vec<String> = states.iter().map(|s| format!("`{s}`")).collect();
        names.join(", ")
    }

    /// The diagram and the table of `docs/state-machine.md`, from [`TABLE`].
    fn render_doc_block() -> String {
        let mut out = format!("{DOC_BEGIN}\n\n```mermaid\nstateDiagram-v2\n");
        for state in TaskState::INITIAL {
            out.push_str(&format!("    [*] --> {state}: INSERT_TASKS\n"));
        }
        for (from, to) in moves() {
            out.push_str(&format!(
                "    {from} --> {to}: {}\n",
                made_by(from, to).join(", ")
            ));
        }
        for state in TaskState::ALL.into_iter().filter(|s| s.is_terminal()) {
            out.push_str(&format!("    {state} --> [*]\n"));
        }
        out.push_str("```\n\n| statement | run by | from | to |\n| --- | --- | --- | --- |\n");
        for statement in TABLE {
            let from = if statement.creates() {
                "(creates the task)".to_owned()
            } else {
                list(statement.from)
            };
            let chosen = if statement.chosen.is_empty() || statement.creates() {
                String::new()
            } else {
                format!(" (its caller names one of {})", list(statement.chosen))
            };
            out.push_str(&format!(
                "| `{}` | `{}` | {from} | {}{chosen} |\n",
                statement.name,
                statement.run_by,
                list(statement.to)
            ));
        }
        out.push_str(&format!("\n{DOC_END}"));
        out
    }

    #[test]
    fn the_diagram_in_the_docs_is_the_table() {
        let path = crate_dir().join("../../docs/state-machine.md");
        let doc = std::fs::read_to_string(&path).expect("read docs/state-machine.md");
        let (Some(begin), Some(end)) = (doc.find(DOC_BEGIN), doc.find(DOC_END)) else {
            panic!("docs/state-machine.md lacks the markers `{DOC_BEGIN}` and `{DOC_END}`");
        };
        let committed = &doc[begin..end + DOC_END.len()];
        let generated = render_doc_block();
        if std::env::var_os("TASKYARD_BLESS").is_some() {
            let rewritten = format!(
                "{}{generated}{}",
                &doc[..begin],
                &doc[end + DOC_END.len()..]
            );
            std::fs::write(&path, rewritten).expect("write docs/state-machine.md");
            return;
        }
        assert!(
            committed == generated,
            "docs/state-machine.md differs from the transition table (run \
             `TASKYARD_BLESS=1 cargo test -p taskyard-store transitions` and review the diff); \
             generated:\n{generated}"
        );
    }
}

//! The transition table against Postgres: the SQL of every statement of
//! `taskyard_store::transitions::TABLE` that moves tasks is run on a task in
//! each of the ten states, with everything else it needs in place (the
//! right attempt and node, a due timer, a finished dependency, a
//! compensating workflow). It must move the task exactly when the state is
//! one its row leaves from, to one of its row's targets, and record the move
//! in the history; and between them the cases must make every move of every
//! row. So the table is held to what the SQL does, not only to what it
//! says.
//!
//! The insert is left out: its states are its caller's, refused in Rust
//! before the statement runs (see the unit tests of `transitions::table`).

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use taskyard_store::transitions::TABLE;
use taskyard_store::transitions::table::{self, Statement};
use taskyard_wire::TaskState;
use uuid::Uuid;

/// What a fixture needs besides its state.
#[derive(Debug, Clone, Copy)]
struct Setup {
    max_attempts: u32,
    /// `None` takes the pool's (there is none: the default, 1 s).
    backoff_ms: Option<u64>,
    /// A dependency in this state.
    dependency: Option<TaskState>,
    /// In a workflow that is compensating.
    compensating: bool,
}

/// The last attempt.
const ONCE: Setup = Setup {
    max_attempts: 1,
    backoff_ms: None,
    dependency: None,
    compensating: false,
};

/// Attempts left, and no wait before the next: straight back to `queued`.
const AGAIN_NOW: Setup = Setup {
    max_attempts: 3,
    backoff_ms: Some(0),
    ..ONCE
};

/// Attempts left, with a backoff: `retrying`.
const AGAIN_LATER: Setup = Setup {
    max_attempts: 3,
    backoff_ms: Some(60_000),
    ..ONCE
};

/// How the statement is called: what it is given.
#[derive(Debug, Clone, Copy)]
enum Call {
    /// A placement of attempt 1 on the task's node.
    Place,
    /// A start report of attempt 1 from the task's node.
    Start,
    /// A finish report of attempt 1 from the task's node with this outcome.
    Finish(TaskState),
    /// A timer of attempt 1 (ids and attempts).
    Timer,
    /// A timer that gives only ids (`start`).
    TimerIds,
    /// The id of the task's dependency.
    Dependency,
    /// The id of the task's workflow.
    Workflow,
    /// A cancel of the task.
    Cancel,
    /// The loss of the task's node.
    LoseNode,
}

struct Case {
    statement: &'static Statement,
    call: Call,
    setup: Setup,
}

fn cases() -> Vec<Case> {
    let case = |statement, call, setup| Case {
        statement,
        call,
        setup,
    };
    let mut cases = vec![
        case(&table::MARK_SCHEDULED, Call::Place, ONCE),
        case(&table::MARK_RUNNING, Call::Start, ONCE),
        case(&table::END_BACKOFF, Call::Timer, ONCE),
        case(&table::START_DELAYED, Call::TimerIds, ONCE),
        case(
            &table::START_DELAYED,
            Call::TimerIds,
            Setup {
                dependency: Some(TaskState::Succeeded),
                ..ONCE
            },
        ),
        case(&table::MISS_PLACEMENT, Call::Timer, ONCE),
        case(
            &table::RELEASE,
            Call::Dependency,
            Setup {
                dependency: Some(TaskState::Succeeded),
                ..ONCE
            },
        ),
        case(
            &table::CANCEL_DEPENDENTS,
            Call::Dependency,
            Setup {
                dependency: Some(TaskState::Failed),
                ..ONCE
            },
        ),
        case(
            &table::CANCEL_REMAINING,
            Call::Workflow,
            Setup {
                compensating: true,
                ..ONCE
            },
        ),
        case(&table::CANCEL, Call::Cancel, ONCE),
    ];
    for setup in [ONCE, AGAIN_NOW, AGAIN_LATER] {
        for outcome in table::FINISH_ATTEMPTS.chosen {
            cases.push(case(&table::FINISH_ATTEMPTS, Call::Finish(*outcome), setup));
        }
        cases.push(case(&table::TIME_OUT, Call::Timer, setup));
    }
    for setup in [ONCE, AGAIN_NOW] {
        cases.push(case(&table::NODE_LOST, Call::LoseNode, setup));
    }
    cases
}

/// A task in `state`, with what the statements ask of it.
struct Fixture {
    id: Uuid,
    node: String,
    dependency: Uuid,
    workflow: Uuid,
}

/// SQL that creates the fixture: a row in `state` with every column the
/// statements look at set so that each would act on it (attempt 1 on its
/// own node, started, queued an hour ago with a placement deadline of 1 ms,
/// its start time and its retry time passed), so that only the state
/// decides.
fn fixture_sql(fixture: &Fixture, state: TaskState, setup: Setup) -> String {
    let row = |id: Uuid, state: TaskState, depends_on: &str, workflow: &str| {
        let finished = if state.is_terminal() { "now()" } else { "NULL" };
        let backoff = setup
            .backoff_ms
            .map_or_else(|| "NULL".to_owned(), |ms| ms.to_string());
        format!(
            "INSERT INTO tasks (id, pool, kind, state, attempt, max_attempts, node_id, error, \
                                timeout_ms, retry_backoff_ms, queued_at, scheduled_at, started_at, \
                                finished_at, run_at, retry_at, schedule_timeout_ms, depends_on, \
                                workflow_id) \
             VALUES ('{id}', 'default', 'noop', '{state}', 1, {max}, '{node}', 'fixture', 1000, \
                     {backoff}, now() - interval '1 hour', now() - interval '1 minute', \
                     now() - interval '1 second', {finished}, now() - interval '1 minute', \
                     now() - interval '1 minute', 1, {depends_on}, {workflow});\n",
            max = setup.max_attempts,
            node = fixture.node,
        )
    };
    let mut sql = String::new();
    let mut depends_on = "'{}'".to_owned();
    let mut workflow = "NULL".to_owned();
    if let Some(dependency_state) = setup.dependency {
        sql.push_str(&row(fixture.dependency, dependency_state, "'{}'", "NULL"));
        depends_on = format!("ARRAY['{}'::uuid]", fixture.dependency);
    }
    if setup.compensating {
        sql.push_str(&format!(
            "INSERT INTO workflows (id, name, tenant, state, error) \
             VALUES ('{}', 'saga', 'default', 'compensating', 'step x failed');\n",
            fixture.workflow
        ));
        workflow = format!("'{}'", fixture.workflow);
    }
    sql.push_str(&row(fixture.id, state, &depends_on, &workflow));
    sql
}

/// The arguments the statement's method would bind for `call`.
fn arguments(fixture: &Fixture, call: Call) -> String {
    let (id, node) = (fixture.id, &fixture.node);
    match call {
        Call::Place => format!("'{{{id}}}', '{{1}}', '{{{node}}}', '{{test}}', NULL, NULL"),
        Call::Start => format!("'{{{id}}}', '{{1}}', '{{{node}}}', ARRAY[now()]"),
        Call::Finish(outcome) => format!(
            "'{{{id}}}', '{{1}}', '{{{node}}}', '{{{outcome}}}', ARRAY['null'::jsonb], \
             '{{test}}', ARRAY[now() - interval '1 second'], ARRAY[now()], \
             ARRAY[NULL::timestamptz]"
        ),
        Call::Timer => format!("'{{{id}}}', '{{1}}'"),
        Call::TimerIds => format!("'{{{id}}}'"),
        Call::Cancel => format!("'{{{id}}}', 'test', 'token:test'"),
        Call::Dependency => format!("'{{{}}}'", fixture.dependency),
        Call::Workflow => format!("'{{{}}}'", fixture.workflow),
        Call::LoseNode => format!("'{node}', 'test'"),
    }
}

/// The task's state after the statement ran on it, and its history.
fn run(
    server: &support::Postgres,
    case: &Case,
    from: TaskState,
) -> (TaskState, Vec<(TaskState, TaskState)>) {
    let fixture = Fixture {
        id: Uuid::now_v7(),
        node: format!("node-{}", Uuid::now_v7().simple()),
        dependency: Uuid::now_v7(),
        workflow: Uuid::now_v7(),
    };
    let script = format!(
        "{fixtures}PREPARE moving AS {sql};\n\\o /dev/null\nEXECUTE moving({arguments});\n\\o\n\
         SELECT 'state ' || state FROM tasks WHERE id = '{id}';\n\
         SELECT 'event ' || coalesce(from_state::text, '-') || ' ' || to_state \
         FROM task_events WHERE task_id = '{id}' ORDER BY id;\n",
        fixtures = fixture_sql(&fixture, from, case.setup),
        sql = case.statement.sql(),
        arguments = arguments(&fixture, case.call),
        id = fixture.id,
    );
    let output = server.psql(&script);
    let parse = |name: &str| -> TaskState {
        name.parse()
            .unwrap_or_else(|_| panic!("`{name}` is not a state, in:\n{output}"))
    };
    let mut state = None;
    let mut history = Vec::new();
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["state", now] => state = Some(parse(now)),
            ["event", before, after] => history.push((parse(before), parse(after))),
            _ => {}
        }
    }
    (
        state.unwrap_or_else(|| panic!("no state for the task, in:\n{output}")),
        history,
    )
}

fn index(state: TaskState) -> usize {
    TaskState::ALL
        .iter()
        .position(|&s| s == state)
        .unwrap_or(usize::MAX)
}

#[test]
fn every_statement_moves_exactly_as_its_row_says() {
    let server = support::Postgres::start();
    server.migrate(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../migrations"));
    let mut made: HashMap<&str, BTreeSet<(usize, usize)>> = HashMap::new();
    for case in cases() {
        let row = case.statement;
        for from in TaskState::ALL {
            let what = format!(
                "{} ({:?}, {:?}) from {from}",
                row.name, case.call, case.setup
            );
            let (to, history) = run(&server, &case, from);
            if !row.from.contains(&from) {
                assert_eq!(to, from, "{what}: moved a task its guard should not match");
                assert!(history.is_empty(), "{what}: recorded {history:?}");
                continue;
            }
            assert_ne!(to, from, "{what}: did not move a task its guard matches");
            assert!(
                row.moves().any(|m| m == (from, to)),
                "{what}: moved it to {to}, not one of its row's targets"
            );
            // A finish that came before the start records `running` too.
            assert!(
                history.first().is_some_and(|step| step.0 == from)
                    && history.last().is_some_and(|step| step.1 == to)
                    && history.windows(2).all(|pair| pair[0].1 == pair[1].0),
                "{what}: recorded {history:?} for a move to {to}"
            );
            made.entry(row.name)
                .or_default()
                .insert((index(from), index(to)));
        }
    }
    // Between them the cases make every move of every row: the table claims
    // no move the SQL does not make.
    for row in TABLE.iter().filter(|row| !row.creates()) {
        let claimed: BTreeSet<(usize, usize)> = row
            .moves()
            .map(|(from, to)| (index(from), index(to)))
            .collect();
        assert_eq!(
            made.get(row.name).cloned().unwrap_or_default(),
            claimed,
            "{}: the moves made (left) differ from its row's (right), as indexes of TaskState::ALL",
            row.name
        );
    }
}

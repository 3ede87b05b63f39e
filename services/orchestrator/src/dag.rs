//! The dependency graph of one submission: names resolved, cycles refused.
//! Pure: tasks that already exist are only named here; the recorder checks
//! them in Postgres.
//!
//! A `depends_on` entry is, in this order: the `name` of a task of the same
//! submission, the id of a task of the same submission (when the client
//! chose its ids), or the id of an existing task. Anything else, a task that
//! names itself, two tasks with one name, or a cycle, refuses the whole
//! submission, and the refusal names the field (and the tasks of the cycle).

use std::collections::HashMap;
use taskyard_wire::{NewTask, Rejection};
use uuid::Uuid;

/// What one `depends_on` entry resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// Task `index` of the same submission.
    InBatch(usize),
    /// A task that should already exist.
    Existing(Uuid),
}

/// A refusal about task `index`, its field relative to the task
/// (`depends_on[1]`): the caller adds `tasks[i].` when the submission is a
/// batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub index: usize,
    pub rejection: Rejection,
}

impl Refusal {
    fn new(index: usize, field: impl Into<String>, message: impl Into<String>) -> Refusal {
        Refusal {
            index,
            rejection: Rejection::new(field, message),
        }
    }
}

/// Resolves every task's `depends_on`, in order and without repeats, or
/// says what is wrong.
pub fn resolve(tasks: &[NewTask]) -> Result<Vec<Vec<Dependency>>, Refusal> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (index, task) in tasks.iter().enumerate() {
        if let Some(name) = task.name.as_deref()
            && let Some(first) = names.insert(name, index)
        {
            return Err(Refusal::new(
                index,
                "name",
                format!(
                    "repeats the name `{name}` of tasks[{first}]; names in one submission are unique"
                ),
            ));
        }
    }
    let ids: HashMap<Uuid, usize> = tasks
        .iter()
        .enumerate()
        .filter_map(|(index, task)| task.id.map(|id| (id, index)))
        .collect();
    let mut resolved = Vec::with_capacity(tasks.len());
    for (index, task) in tasks.iter().enumerate() {
        let mut deps: Vec<Dependency> = Vec::with_capacity(task.depends_on.len());
        for (k, entry) in task.depends_on.iter().enumerate() {
            let field = || format!("depends_on[{k}]");
            let dependency = match names.get(entry.as_str()) {
                Some(&other) => Dependency::InBatch(other),
                None => match Uuid::parse_str(entry) {
                    Ok(id) => match ids.get(&id) {
                        Some(&other) => Dependency::InBatch(other),
                        None => Dependency::Existing(id),
                    },
                    Err(_) => {
                        return Err(Refusal::new(
                            index,
                            field(),
                            format!(
                                "no task is named `{entry}` in this submission (name a task of the same batch or workflow, or give the id of an existing task)"
                            ),
                        ));
                    }
                },
            };
            if dependency == Dependency::InBatch(index) {
                return Err(Refusal::new(
                    index,
                    field(),
                    format!("`{entry}` is the task itself: a task cannot depend on itself"),
                ));
            }
            if !deps.contains(&dependency) {
                deps.push(dependency);
            }
        }
        resolved.push(deps);
    }
    if let Some(cycle) = find_cycle(&resolved) {
        let first = cycle[0];
        let path: Vec<String> = cycle
            .iter()
            .chain(std::iter::once(&first))
            .map(|&i| label(tasks, i))
            .collect();
        return Err(Refusal::new(
            first,
            "depends_on",
            format!(
                "dependency cycle: {} (each depends on the next)",
                path.join(" -> ")
            ),
        ));
    }
    Ok(resolved)
}

/// How a task is named in messages: its name, or its place.
fn label(tasks: &[NewTask], index: usize) -> String {
    match tasks.get(index).and_then(|t| t.name.as_deref()) {
        Some(name) => name.to_owned(),
        None => format!("tasks[{index}]"),
    }
}

/// A cycle among in-batch dependencies, as the tasks on it in dependency
/// order starting from the lowest index, or `None`. Iterative depth-first
/// search (a batch may hold ten thousand tasks in one chain).
pub fn find_cycle(deps: &[Vec<Dependency>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let edges = |task: usize| -> Vec<usize> {
        deps[task]
            .iter()
            .filter_map(|d| match d {
                Dependency::InBatch(other) if *other < deps.len() => Some(*other),
                _ => None,
            })
            .collect()
    };
    let mut marks = vec![Mark::New; deps.len()];
    for start in 0..deps.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // (task, its edges, the next edge to follow)
        let mut stack: Vec<(usize, Vec<usize>, usize)> = vec![(start, edges(start), 0)];
        marks[start] = Mark::OnPath;
        while let Some((task, next, at)) = stack.last_mut() {
            if let Some(&other) = next.get(*at) {
                *at += 1;
                match marks[other] {
                    Mark::New => {
                        marks[other] = Mark::OnPath;
                        let out = edges(other);
                        stack.push((other, out, 0));
                    }
                    Mark::OnPath => {
                        let from = stack.iter().position(|(t, _, _)| *t == other)?;
                        let mut cycle: Vec<usize> =
                            stack[from..].iter().map(|(t, _, _)| *t).collect();
                        let lowest = cycle
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, t)| **t)
                            .map_or(0, |(i, _)| i);
                        cycle.rotate_left(lowest);
                        return Some(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                marks[*task] = Mark::Done;
                stack.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use taskyard_wire::task::{Limits, validate_task};

    fn tasks(values: serde_json::Value) -> Vec<NewTask> {
        values
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|v| validate_task(v, &Limits::default()).expect("a valid task"))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn refusal(values: serde_json::Value) -> Refusal {
        match resolve(&tasks(values)) {
            Err(refusal) => refusal,
            Ok(deps) => panic!("expected a refusal, got {deps:?}"),
        }
    }

    #[test]
    fn names_and_ids_resolve_in_the_batch_and_outside() {
        let existing = Uuid::now_v7();
        let own = Uuid::now_v7();
        let deps = resolve(&tasks(json!([
            {"kind": "noop", "name": "a"},
            {"kind": "noop", "id": own.to_string()},
            {"kind": "noop", "name": "c", "depends_on": ["a", own.to_string(), existing.to_string(), "a"]},
        ])))
        .expect("resolves");
        assert!(deps[0].is_empty());
        assert_eq!(
            deps[2],
            [
                Dependency::InBatch(0),
                Dependency::InBatch(1),
                Dependency::Existing(existing)
            ]
        );
    }

    #[test]
    fn a_name_that_looks_like_an_id_is_a_name_first() {
        let id = Uuid::now_v7().to_string();
        let deps = resolve(&tasks(json!([
            {"kind": "noop", "name": id},
            {"kind": "noop", "depends_on": [id]},
        ])))
        .expect("resolves");
        assert_eq!(deps[1], [Dependency::InBatch(0)]);
    }

    #[test]
    fn an_unknown_name_is_named() {
        let r = refusal(
            json!([{"kind": "noop", "name": "a"}, {"kind": "noop", "depends_on": ["a", "ghost"]}]),
        );
        assert_eq!(r.index, 1);
        assert_eq!(r.rejection.field, "depends_on[1]");
        assert!(
            r.rejection.message.contains("`ghost`"),
            "{}",
            r.rejection.message
        );
    }

    #[test]
    fn duplicate_names_are_refused() {
        let r = refusal(json!([{"kind": "noop", "name": "a"}, {"kind": "noop", "name": "a"}]));
        assert_eq!(r.index, 1);
        assert_eq!(r.rejection.field, "name");
        assert!(
            r.rejection.message.contains("tasks[0]"),
            "{}",
            r.rejection.message
        );
    }

    #[test]
    fn a_task_cannot_depend_on_itself() {
        let r = refusal(json!([{"kind": "noop", "name": "a", "depends_on": ["a"]}]));
        assert_eq!((r.index, r.rejection.field.as_str()), (0, "depends_on[0]"));
        let id = Uuid::now_v7().to_string();
        let r = refusal(json!([{"kind": "noop", "id": id, "depends_on": [id]}]));
        assert!(
            r.rejection.message.contains("itself"),
            "{}",
            r.rejection.message
        );
    }

    #[test]
    fn a_cycle_names_its_tasks_in_order() {
        let r = refusal(json!([
            {"kind": "noop", "name": "start"},
            {"kind": "noop", "name": "b", "depends_on": ["start", "d"]},
            {"kind": "noop", "name": "c", "depends_on": ["b"]},
            {"kind": "noop", "name": "d", "depends_on": ["c"]},
        ]));
        assert_eq!((r.index, r.rejection.field.as_str()), (1, "depends_on"));
        assert_eq!(
            r.rejection.message,
            "dependency cycle: b -> d -> c -> b (each depends on the next)"
        );
    }

    #[test]
    fn an_unnamed_task_in_a_cycle_is_named_by_its_place() {
        let a = Uuid::now_v7().to_string();
        let r = refusal(json!([
            {"kind": "noop", "id": a, "depends_on": ["z"]},
            {"kind": "noop", "name": "z", "depends_on": [a]},
        ]));
        assert!(
            r.rejection
                .message
                .starts_with("dependency cycle: tasks[0] -> z -> tasks[0]"),
            "{}",
            r.rejection.message
        );
    }

    #[test]
    fn a_diamond_and_a_long_chain_have_no_cycle() {
        let diamond = [
            vec![],
            vec![Dependency::InBatch(0)],
            vec![Dependency::InBatch(0)],
            vec![Dependency::InBatch(1), Dependency::InBatch(2)],
        ];
        assert_eq!(find_cycle(&diamond), None);
        let chain: Vec<Vec<Dependency>> = (0..10_000)
            .map(|i| {
                if i == 0 {
                    vec![]
                } else {
                    vec![Dependency::InBatch(i - 1)]
                }
            })
            .collect();
        assert_eq!(find_cycle(&chain), None);
        let mut ring = chain;
        ring[0] = vec![Dependency::InBatch(9_999)];
        let cycle = find_cycle(&ring).expect("a ring is a cycle");
        assert_eq!(cycle.len(), 10_000);
        assert_eq!(cycle[0], 0);
    }
}

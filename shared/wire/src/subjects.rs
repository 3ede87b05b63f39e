//! Subject names. Every subject Taskyard uses is built here, nowhere else.
//!
//! `nats/README.md` lists the same names for people; keep the two in step.

use crate::TaskState;

/// Clients publish a task (object) or an atomic batch (array) here; the SUBMIT
/// stream captures it.
pub const SUBMIT: &str = "taskyard.submit";
/// Wildcard also captured by the SUBMIT stream (`taskyard.submit.<anything>`),
/// so clients may add a suffix of their own for tracing.
pub const SUBMIT_WILDCARD: &str = "taskyard.submit.>";
/// Request/reply submission handled by the orchestrator.
pub const API_SUBMIT: &str = "taskyard.api.submit";

/// Pool requests to the pool manager: `taskyard.api.pools.<op>` with op
/// `create`, `update`, `delete`, `get`, `list`.
pub const API_POOLS_PREFIX: &str = "taskyard.api.pools";
/// Node requests to the resource manager: `taskyard.api.nodes.<op>` with op
/// `drain`, `cordon`, `uncordon`, `remove`.
pub const API_NODES_PREFIX: &str = "taskyard.api.nodes";
/// All pool events.
pub const POOL_EVENTS_ALL: &str = "taskyard.events.pool.>";

/// A pool request subject.
pub fn api_pools(op: &str) -> String {
    format!("{API_POOLS_PREFIX}.{op}")
}

/// A node request subject.
pub fn api_nodes(op: &str) -> String {
    format!("{API_NODES_PREFIX}.{op}")
}

/// A pool event subject: `taskyard.events.pool.changed` or `.deleted`.
pub fn pool_event(deleted: bool) -> &'static str {
    if deleted {
        "taskyard.events.pool.deleted"
    } else {
        "taskyard.events.pool.changed"
    }
}

/// Prefix of every event subject.
pub const EVENTS_PREFIX: &str = "taskyard.events";
/// All task events.
pub const TASK_EVENTS_ALL: &str = "taskyard.events.task.>";
/// All node events.
pub const NODE_EVENTS_ALL: &str = "taskyard.events.node.>";

/// Dispatch subject wildcard (the DISPATCH stream).
pub const DISPATCH_ALL: &str = "taskyard.dispatch.>";
/// Worker status wildcard (the STATUS stream).
pub const STATUS_ALL: &str = "taskyard.status.>";
/// Where timers are scheduled and fire (the TIMERS stream).
pub const TIMERS_ALL: &str = "taskyard.timers.>";
/// Where fired timers arrive: what the pool manager consumes. Its consumer
/// must not match the schedule subjects, or it would ack the schedules away.
pub const TIMERS_FIRED: &str = "taskyard.timers.fire.>";
/// Cancel requests (request/reply, served by the pool manager).
pub const API_CANCEL: &str = "taskyard.api.tasks.cancel";

/// The schedule subject of one task's timer of one kind: publishing there
/// again replaces the timer.
pub fn timer_schedule(kind: &str, task: &uuid::Uuid) -> String {
    format!("taskyard.timers.sched.{kind}.{task}")
}

/// Where that timer is delivered when it fires.
pub fn timer_fire(kind: &str, task: &uuid::Uuid) -> String {
    format!("taskyard.timers.fire.{kind}.{task}")
}

/// Output lines of every node (the LOGS stream).
pub const LOGS_ALL: &str = "taskyard.logs.>";

/// Where a worker publishes its attempts' output lines: `taskyard.logs.<node>`.
pub fn logs(node_id: &str) -> String {
    format!("taskyard.logs.{node_id}")
}

/// Heartbeats of all nodes (core NATS).
pub const HEARTBEAT_ALL: &str = "taskyard.nodes.heartbeat.>";

/// Subject of task events of one state: `taskyard.events.task.<state>`.
pub fn task_event(state: TaskState) -> String {
    format!("taskyard.events.task.{}", state.as_str())
}

/// Subject of node events of one kind: `taskyard.events.node.<kind>`.
pub fn node_event(kind: &str) -> String {
    format!("taskyard.events.node.{kind}")
}

/// Where the scheduler sends work for one node: `taskyard.dispatch.<node>`.
pub fn dispatch(node_id: &str) -> String {
    format!("taskyard.dispatch.{node_id}")
}

/// Where a worker reports on its tasks: `taskyard.status.<node>`.
pub fn status(node_id: &str) -> String {
    format!("taskyard.status.{node_id}")
}

/// A node's heartbeat subject: `taskyard.nodes.heartbeat.<node>`.
pub fn heartbeat(node_id: &str) -> String {
    format!("taskyard.nodes.heartbeat.{node_id}")
}

/// Control messages to one node (cancel, kill, drain): `taskyard.control.<node>`.
pub fn control(node_id: &str) -> String {
    format!("taskyard.control.{node_id}")
}

/// The node a worker's own subject is for: the `<node>` of
/// `taskyard.status.<node>`, `taskyard.logs.<node>` or
/// `taskyard.nodes.heartbeat.<node>`, when `subject` is one of those and the
/// token is a valid node id. Permissions let a worker publish only on its own
/// node's subjects, so this token, not the body's `node_id`, says who sent
/// the message.
pub fn sender_node(subject: &str) -> Option<&str> {
    let node = [
        "taskyard.status.",
        "taskyard.logs.",
        "taskyard.nodes.heartbeat.",
    ]
    .iter()
    .find_map(|prefix| subject.strip_prefix(prefix))?;
    is_token(node).then_some(node)
}

/// Whether a message that came on `subject` speaks for `node_id` only: its
/// subject is that node's own status, logs or heartbeat subject, where
/// permissions let only that node publish. A body naming any other node
/// is one node speaking for another (a report on a task placed elsewhere,
/// a heartbeat keeping a dead node alive) and is dropped.
pub fn speaks_for(subject: &str, node_id: &str) -> bool {
    sender_node(subject) == Some(node_id)
}

/// Whether `token` can be one subject token (node ids, pools, tenants end up
/// in subjects, so they must not contain dots, wildcards or spaces).
pub fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 64
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_built_from_tokens() {
        assert_eq!(task_event(TaskState::Queued), "taskyard.events.task.queued");
        assert_eq!(dispatch("node-1"), "taskyard.dispatch.node-1");
        assert!(is_token("node_1-a"));
        assert!(!is_token("a.b"));
        assert!(!is_token("a*"));
        assert!(!is_token(""));
        assert!(!is_token(&"x".repeat(65)));
    }

    #[test]
    fn the_sender_is_the_node_of_its_own_subject() {
        assert_eq!(sender_node(&status("n1")), Some("n1"));
        assert_eq!(sender_node(&logs("node-2")), Some("node-2"));
        assert_eq!(sender_node(&heartbeat("w_3")), Some("w_3"));
        // Not one node's subject: nobody to hold the body to.
        assert_eq!(sender_node("taskyard.status.n1.extra"), None);
        assert_eq!(sender_node("taskyard.status."), None);
        assert_eq!(sender_node(&dispatch("n1")), None);
        assert_eq!(sender_node("taskyard.statusn1"), None);
    }

    #[test]
    fn a_node_speaks_only_for_itself_on_its_own_subjects() {
        assert!(speaks_for("taskyard.logs.n1", "n1"));
        assert!(!speaks_for("taskyard.logs.n1", "n2"));
        assert!(!speaks_for("taskyard.logs.n1.n2", "n2"));
        assert!(!speaks_for("taskyard.status.n2", "n1"));
        assert!(speaks_for(&heartbeat("n1"), "n1"));
        assert!(!speaks_for(&heartbeat("n1"), "n2"));
        assert!(!speaks_for("taskyard.nodes.heartbeat.n1.n2", "n2"));
    }
}

//! The JSON bodies of the REST API, owned here rather than borrowed from
//! the store.
//!
//! Each is built from a store row by `From<Row>` and is what a route
//! serializes and what the OpenAPI document describes, so renaming a column
//! (or a field of a row) changes the public API only if this module is
//! changed too. The conversions destructure their row without `..`: a field
//! added to a row does not compile here until someone decides whether the
//! API shows it.
//!
//! The shapes are those the rows had when the API serialized them directly
//! (same names, types, optionality, and RFC 3339 times), which
//! `tests/api/openapi.rs` and the route tests hold on to.
//!
//! Types of the wire contract (`TaskState`, `Resources`, `Capacity`, pool
//! specs) are used as they are: they are the services' shared vocabulary,
//! not the store's columns.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use taskyard_store::dead_letters::DeadLetterRow;
use taskyard_store::logs::LogLineRow;
use taskyard_store::nodes::{Health, NodeRow, Reserved};
use taskyard_store::tasks::{EventRow, TaskRow};
use taskyard_store::workflows::{TaskLinks, WorkflowDetail, WorkflowState, WorkflowStep};
use taskyard_wire::heartbeat::Capacity;
use taskyard_wire::{Resources, TaskState, Timestamp};
use uuid::Uuid;

// ---------------------------------------------------------------- tasks

/// A task.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Task {
    pub id: Uuid,
    /// Its place in the order of creation (the list's cursor).
    pub seq: i64,
    pub idempotency_key: Option<String>,
    pub pool: String,
    pub kind: String,
    pub spec: Value,
    pub resources: Resources,
    pub priority: i32,
    pub tenant: String,
    pub timeout_ms: Option<u64>,
    pub max_attempts: u32,
    pub labels: Value,
    pub state: TaskState,
    pub attempt: u32,
    pub node_id: Option<String>,
    pub result: Option<Value>,
    pub error: Option<String>,
    /// Labels a node must carry to run it.
    pub node_selector: Value,
    /// The client's run-time estimate (SJF).
    pub estimated_runtime_ms: Option<u64>,
    /// Why it still waits, while queued (the scheduler's latest word).
    pub wait_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub queued_at: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_at: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
}

impl From<TaskRow> for Task {
    fn from(row: TaskRow) -> Task {
        let TaskRow {
            id,
            seq,
            idempotency_key,
            pool,
            kind,
            spec,
            resources,
            priority,
            tenant,
            timeout_ms,
            max_attempts,
            labels,
            state,
            attempt,
            node_id,
            result,
            error,
            node_selector,
            estimated_runtime_ms,
            wait_reason,
            created_at,
            queued_at,
            scheduled_at,
            started_at,
            finished_at,
        } = row;
        Task {
            id,
            seq,
            idempotency_key,
            pool,
            kind,
            spec,
            resources,
            priority,
            tenant,
            timeout_ms,
            max_attempts,
            labels,
            state,
            attempt,
            node_id,
            result,
            error,
            node_selector,
            estimated_runtime_ms,
            wait_reason,
            created_at,
            queued_at,
            scheduled_at,
            started_at,
            finished_at,
        }
    }
}

/// One transition of a task's history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskEvent {
    pub id: i64,
    pub task_id: Uuid,
    pub attempt: u32,
    pub from_state: Option<TaskState>,
    pub to_state: TaskState,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub node_id: Option<String>,
    pub reason: Option<String>,
    /// Who asked for the transition: `token:<name>` (a REST caller),
    /// `api:open` (the API without auth), `nats:<credential>` (a NATS
    /// client such as the CLI); absent when the system made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

impl From<EventRow> for TaskEvent {
    fn from(row: EventRow) -> TaskEvent {
        let EventRow {
            id,
            task_id,
            attempt,
            from_state,
            to_state,
            at,
            node_id,
            reason,
            actor,
        } = row;
        TaskEvent {
            id,
            task_id,
            attempt,
            from_state,
            to_state,
            at,
            node_id,
            reason,
            actor,
        }
    }
}

/// A task with its history: the task's fields, its place in a DAG
/// (`name`, `workflow_id`, `depends_on`, `compensates`), plus `events`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: Task,
    /// Its name within its workflow.
    pub name: Option<String>,
    pub workflow_id: Option<Uuid>,
    /// Tasks that must succeed before this one is queued.
    pub depends_on: Vec<Uuid>,
    /// On a compensation: the step it undoes.
    pub compensates: Option<Uuid>,
    /// Every transition, oldest first.
    pub events: Vec<TaskEvent>,
}

impl TaskDetail {
    /// The body of a task read with its links and history.
    pub fn new(task: TaskRow, links: TaskLinks, events: Vec<EventRow>) -> TaskDetail {
        let TaskLinks {
            name,
            workflow_id,
            depends_on,
            compensates,
        } = links;
        TaskDetail {
            task: task.into(),
            name,
            workflow_id,
            depends_on,
            compensates,
            events: events.into_iter().map(TaskEvent::from).collect(),
        }
    }
}

/// One line of a task's captured output.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub attempt: u32,
    pub seq: u64,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub line: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: Timestamp,
}

impl From<LogLineRow> for LogLine {
    fn from(row: LogLineRow) -> LogLine {
        let LogLineRow {
            attempt,
            seq,
            stream,
            line,
            at,
        } = row;
        LogLine {
            attempt,
            seq,
            stream,
            line,
            at,
        }
    }
}

// ---------------------------------------------------------------- nodes

/// A node's health as the resource manager judges it from heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeHealthState {
    Alive,
    Suspect,
    Lost,
}

impl NodeHealthState {
    /// Every health, in the order a summary lists them.
    pub const ALL: [NodeHealthState; 3] = [
        NodeHealthState::Alive,
        NodeHealthState::Suspect,
        NodeHealthState::Lost,
    ];

    /// The name in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeHealthState::Alive => "alive",
            NodeHealthState::Suspect => "suspect",
            NodeHealthState::Lost => "lost",
        }
    }
}

impl From<Health> for NodeHealthState {
    fn from(health: Health) -> NodeHealthState {
        match health {
            Health::Alive => NodeHealthState::Alive,
            Health::Suspect => NodeHealthState::Suspect,
            Health::Lost => NodeHealthState::Lost,
        }
    }
}

/// What placed tasks (scheduled or running) hold on a node.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct NodeReserved {
    pub cpu_millis: i64,
    pub memory_mb: i64,
    pub tasks: i64,
}

impl From<Reserved> for NodeReserved {
    fn from(reserved: Reserved) -> NodeReserved {
        let Reserved {
            cpu_millis,
            memory_mb,
            tasks,
        } = reserved;
        NodeReserved {
            cpu_millis,
            memory_mb,
            tasks,
        }
    }
}

/// A worker node.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Node {
    pub id: String,
    pub hostname: String,
    pub version: String,
    pub health: NodeHealthState,
    pub capacity: Capacity,
    pub cpu_percent: f32,
    pub memory_used_mb: i64,
    pub running: u32,
    pub labels: BTreeMap<String, String>,
    /// The worker said it is draining (SIGTERM or a drain request).
    pub draining: bool,
    /// An operator cordoned it: no new work.
    pub cordoned: bool,
    pub disk_total_mb: i64,
    pub disk_free_mb: i64,
    pub net_rx_bytes_per_s: i64,
    pub net_tx_bytes_per_s: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub registered_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_heartbeat_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub health_changed_at: Timestamp,
    /// CPU and memory held by tasks placed there (scheduled or running).
    pub reserved: NodeReserved,
}

impl From<NodeRow> for Node {
    fn from(row: NodeRow) -> Node {
        let NodeRow {
            id,
            hostname,
            version,
            health,
            capacity,
            cpu_percent,
            memory_used_mb,
            running,
            labels,
            draining,
            cordoned,
            disk_total_mb,
            disk_free_mb,
            net_rx_bytes_per_s,
            net_tx_bytes_per_s,
            started_at,
            registered_at,
            last_heartbeat_at,
            health_changed_at,
            reserved,
        } = row;
        Node {
            id,
            hostname,
            version,
            health: health.into(),
            capacity,
            cpu_percent,
            memory_used_mb,
            running,
            labels,
            draining,
            cordoned,
            disk_total_mb,
            disk_free_mb,
            net_rx_bytes_per_s,
            net_tx_bytes_per_s,
            started_at,
            registered_at,
            last_heartbeat_at,
            health_changed_at,
            reserved: reserved.into(),
        }
    }
}

// --------------------------------------------------------- dead letters

/// A message a consumer gave up on (the payload as text when it is UTF-8,
/// which every Taskyard message is).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub id: i64,
    pub stream: String,
    pub consumer: String,
    pub stream_seq: i64,
    pub subject: String,
    pub payload: String,
    pub deliveries: i32,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
}

impl From<DeadLetterRow> for DeadLetter {
    fn from(row: DeadLetterRow) -> DeadLetter {
        let DeadLetterRow {
            id,
            stream,
            consumer,
            stream_seq,
            subject,
            payload,
            deliveries,
            reason,
            at,
        } = row;
        DeadLetter {
            id,
            stream,
            consumer,
            stream_seq,
            subject,
            payload,
            deliveries,
            reason,
            at,
        }
    }
}

// ------------------------------------------------------------ workflows

/// Where a workflow is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatus {
    /// Its steps run as their dependencies allow.
    Running,
    /// Every step succeeded. Terminal.
    Succeeded,
    /// A step failed for good: the steps not started were cancelled, and the
    /// compensations of the completed ones run, last completed first.
    Compensating,
    /// Compensation is over; `error` says which step failed first. Terminal.
    Failed,
    /// Reserved for a cancel of the whole workflow. Terminal.
    Cancelled,
    /// Refused at submission (nothing of it ran). Terminal.
    Rejected,
}

impl From<WorkflowState> for WorkflowStatus {
    fn from(state: WorkflowState) -> WorkflowStatus {
        match state {
            WorkflowState::Running => WorkflowStatus::Running,
            WorkflowState::Succeeded => WorkflowStatus::Succeeded,
            WorkflowState::Compensating => WorkflowStatus::Compensating,
            WorkflowState::Failed => WorkflowStatus::Failed,
            WorkflowState::Cancelled => WorkflowStatus::Cancelled,
            WorkflowState::Rejected => WorkflowStatus::Rejected,
        }
    }
}

/// A workflow in the list, with its step count.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkflowListItem {
    pub id: Uuid,
    pub name: String,
    pub tenant: String,
    pub state: String,
    pub error: Option<String>,
    pub steps: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
}

impl From<taskyard_store::console::WorkflowSummary> for WorkflowListItem {
    fn from(row: taskyard_store::console::WorkflowSummary) -> WorkflowListItem {
        let taskyard_store::console::WorkflowSummary {
            id,
            name,
            tenant,
            state,
            error,
            steps,
            created_at,
            finished_at,
        } = row;
        WorkflowListItem {
            id,
            name,
            tenant,
            state,
            error,
            steps,
            created_at,
            finished_at,
        }
    }
}

/// One step of a workflow (a compensation task is a step too, with
/// `compensates` set).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Step {
    pub id: Uuid,
    pub name: Option<String>,
    pub kind: String,
    pub pool: String,
    pub state: TaskState,
    pub attempt: u32,
    /// Tasks that must succeed before this one is queued.
    pub depends_on: Vec<Uuid>,
    /// On a compensation: the step it undoes.
    pub compensates: Option<Uuid>,
    /// Whether the step has a compensation to run if the workflow fails.
    pub has_compensation: bool,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub queued_at: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
}

impl From<WorkflowStep> for Step {
    fn from(row: WorkflowStep) -> Step {
        let WorkflowStep {
            id,
            name,
            kind,
            pool,
            state,
            attempt,
            depends_on,
            compensates,
            has_compensation,
            error,
            created_at,
            queued_at,
            started_at,
            finished_at,
        } = row;
        Step {
            id,
            name,
            kind,
            pool,
            state,
            attempt,
            depends_on,
            compensates,
            has_compensation,
            error,
            created_at,
            queued_at,
            started_at,
            finished_at,
        }
    }
}

/// A workflow with its steps, in creation order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Workflow {
    pub id: Uuid,
    pub name: String,
    pub tenant: String,
    pub state: WorkflowStatus,
    /// Why it was rejected, or which step failed first.
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    pub steps: Vec<Step>,
}

impl From<WorkflowDetail> for Workflow {
    fn from(detail: WorkflowDetail) -> Workflow {
        let WorkflowDetail { workflow, steps } = detail;
        let taskyard_store::workflows::WorkflowRow {
            id,
            name,
            tenant,
            state,
            error,
            created_at,
            finished_at,
        } = workflow;
        Workflow {
            id,
            name,
            tenant,
            state: state.into(),
            error,
            created_at,
            finished_at,
            steps: steps.into_iter().map(Step::from).collect(),
        }
    }
}

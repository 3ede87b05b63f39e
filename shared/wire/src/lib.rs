//! Taskyard's wire contract: everything that crosses NATS, in one place.
//!
//! Any program in any language can take part by speaking these messages, so the
//! types here are the public protocol. Their JSON Schemas are generated from the
//! same types and committed under `shared/wire/schemas/`; a test keeps the two in
//! step.
//!
//! # Layout
//! - [`subjects`]: every subject name and how it is built.
//! - [`state`]: the task state machine (mirrored by the Postgres ENUM and
//!   `docs/state-machine.md`).
//! - [`task`]: what a client submits, the per-kind specs, and validation
//!   (with every limit a submission is held to), in three files under
//!   `task/`, all re-exported as `task::X`: `kind` (the kinds, the driver
//!   specs and their checks), `submission` (the submission, its limits,
//!   reading a message and workflows) and `validation` (the checks of one
//!   task, and naming the field an error is about).
//! - [`storable`]: text Postgres can store: finding (and, in a refused
//!   submission, replacing) NUL characters.
//! - [`event`]: task and node events published on `taskyard.events.>`.
//! - [`dispatch`]: scheduler → worker messages.
//! - [`status`]: worker → pool-manager reports (started, finished).
//! - [`heartbeat`]: worker → resource-manager heartbeats.
//! - [`pool`]: pool definitions, their requests and events.
//! - [`rejection`]: why something was refused: a stable code, the field,
//!   a message.
//! - [`reply`]: replies to request/reply submissions.
//! - [`schema`]: the JSON Schema registry.
//! - [`control`]: messages to one node (drain), and node requests.
//! - [`timer`]: durable timers (deadlines, backoffs, delayed starts).
//! - [`codec`]: the one place that turns messages into bytes and back.
//! - [`logs`]: worker → pool-manager output lines of `exec` attempts.
//! - [`origin`]: where a stream message came from, for dead letters.
//! - [`actor`]: who asked for a change, and whose word on it is believed.

pub mod actor;
pub mod codec;
pub mod control;
pub mod dispatch;
pub mod event;
pub mod heartbeat;
pub mod logs;
pub mod origin;
pub mod pool;
pub mod rejection;
pub mod reply;
pub mod schema;
pub mod state;
pub mod status;
pub mod storable;
pub mod subjects;
pub mod task;
pub mod timer;

pub use rejection::{Rejection, RejectionCode};
pub use state::TaskState;
pub use task::{NewTask, Resources, TaskKind, TaskSubmission};

/// Time stamps on the wire are RFC 3339 strings.
pub type Timestamp = time::OffsetDateTime;

/// Serde helper for RFC 3339 time stamps.
pub use time::serde::rfc3339;

/// Current UTC time, the one clock every message uses.
pub fn now() -> Timestamp {
    time::OffsetDateTime::now_utc()
}

//! What a client submits, and the checks that turn it into a [`NewTask`].
//!
//! A submission is one JSON object (a task), a JSON array of them (an atomic
//! batch: all are created or none), or a workflow object
//! `{"workflow": "<name>", "tasks": [...]}` (an atomic batch that is also
//! tracked as one workflow, with compensation). Unknown fields are errors, and every error
//! names the field it is about (`tasks[2].resources.cpu_millis`), so a client in
//! any language can fix its message without reading our code.
//!
//! # Layout
//! - `kind`: the kinds of task ([`TaskKind`]), the input of each driver
//!   ([`ExecSpec`], [`HttpSpec`], [`NatsSpec`], [`SleepSpec`], [`FailSpec`]),
//!   [`Job`] and the checks of each spec, with their bounds and patterns.
//! - `submission`: what a client sends ([`TaskSubmission`],
//!   [`WorkflowSubmission`]), what a valid one becomes ([`NewTask`]), the
//!   [`Limits`] and bounds it is held to, and reading a message whole
//!   ([`read_submission`], [`parse_submission`]), workflows included.
//! - `validation`: checking one task object ([`validate_task`]), and naming
//!   the field an error is about.
//!
//! Every item is re-exported here: callers name `taskyard_wire::task::X`,
//! never a submodule.

mod kind;
mod submission;
mod validation;

pub use crate::rejection::{Rejection, RejectionCode};
pub use kind::{
    DEFAULT_HTTP_METHOD, DEFAULT_NATS_TIMEOUT_MS, ENV_NAME_PATTERN, ExecSpec, FailSpec,
    HEADER_NAME_PATTERN, HTTP_HEADER_VALUE_PATTERN, HTTP_METHODS, HTTP_URL_PATTERN, HttpSpec, Job,
    MAX_EXEC_ARGS, MAX_EXEC_ENV, MAX_HEADERS, MAX_NATS_SUBJECT_LEN, MAX_SLEEP_MS,
    NATS_HEADER_VALUE_PATTERN, NATS_SUBJECT_PATTERN, NatsSpec, SleepSpec, TaskKind,
};
pub use submission::{
    DEFAULT_CPU_MILLIS, DEFAULT_MAX_SPEC_BYTES, DEFAULT_MAX_SUBMISSION_BYTES, DEFAULT_MEMORY_MB,
    DEFAULT_POOL, DEFAULT_TENANT, DEPENDENCY_PATTERN, Limits, MAX_ATTEMPTS, MAX_BATCH_TASKS,
    MAX_CPU_MILLIS, MAX_DELAY_MS, MAX_DEPENDENCIES, MAX_IDEMPOTENCY_KEY_LEN, MAX_LABELS,
    MAX_MEMORY_MB, MAX_SCHEDULE_HORIZON, MAX_SCHEDULE_HORIZON_DAYS, MAX_TIMEOUT_MS, NAME_PATTERN,
    NewTask, Parsed, Resources, Submission, TaskSubmission, WorkflowSubmission, parse_submission,
    read_submission,
};
pub use validation::validate_task;

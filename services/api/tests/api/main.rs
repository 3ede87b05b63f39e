//! The API and console against a real Postgres and NATS, driven through
//! `app(state).oneshot(...)` without binding a port.

mod console;
mod health;
mod helpers;
mod nodes;
mod pools;
mod process;
mod services;
mod submit;
mod tasks;
mod workflows;

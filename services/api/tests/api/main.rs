//! The API and console against a real Postgres and NATS, driven through
//! `app(state).oneshot(...)` without binding a port.

mod auth;
mod console;
mod health;
mod helpers;
mod nodes;
mod openapi;
mod pools;
mod process;
mod services;
mod submit;
mod tasks;
mod tasks_more;
mod workflows;

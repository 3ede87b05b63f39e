//! What the CLI's integration tests share: a real NATS and Postgres, the
//! api service's binary, and the `taskyard` binary run against them. The
//! CLI stands beside the services, so its tests run the API as a user
//! would: as a process (`cargo build --workspace --bins` builds it).
// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::process::Output;
use std::time::Duration;
use taskyard_store::Store;
use taskyard_testkit::{TestStack, wait_until};

/// Whether the API asks for a token (its `TASKYARD_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Open: these tests run it on loopback only.
    Off,
    /// Every request needs a bearer token.
    Required,
}

impl AuthMode {
    fn as_env(self) -> &'static str {
        match self {
            AuthMode::Off => "off",
            AuthMode::Required => "required",
        }
    }
}

pub struct Env {
    pub store: Store,
    pub nats: async_nats::Client,
    pub api_url: String,
    pub stack: TestStack,
}

impl Env {
    /// A fresh stack with the API on a free port, under `auth`.
    pub async fn start(auth: AuthMode) -> Env {
        let mut stack = TestStack::start().await.expect("start the test stack");
        let store = Store::connect_and_migrate(&stack.database_url, 4)
            .await
            .expect("connect and migrate");
        let nats = stack.nats_client().await.expect("connect to NATS");
        let (http, metrics) = (free_addr(), free_addr());
        stack
            .spawn(
                "taskyard-api",
                "api",
                &[
                    ("TASKYARD_HTTP_ADDR", &http),
                    ("TASKYARD_METRICS_ADDR", &metrics),
                    ("TASKYARD_AUTH", auth.as_env()),
                ],
            )
            .await
            .expect("start the api");
        let api_url = format!("http://{http}");
        let client = reqwest::Client::new();
        wait_until(
            "the api to answer /healthz",
            Duration::from_secs(30),
            || async {
                let answered = client
                    .get(format!("{api_url}/healthz"))
                    .timeout(Duration::from_millis(500))
                    .send()
                    .await
                    .is_ok();
                Ok(answered.then_some(()))
            },
        )
        .await
        .expect("the api answers");
        Env {
            store,
            nats,
            api_url,
            stack,
        }
    }

    /// Runs `taskyard ARGS` against this stack.
    pub async fn taskyard(&self, args: &[&str]) -> Output {
        self.taskyard_env(args, &[]).await
    }

    /// The operator credential the CLI runs with, as a person would.
    pub fn operator_nkey(&self) -> std::path::PathBuf {
        self.stack
            .credential("cli", taskyard_runtime::access::Kind::Operator)
            .expect("the operator's credential")
    }

    /// Runs `taskyard ARGS` against this stack with `env` set; no token
    /// comes from the caller's environment.
    pub async fn taskyard_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskyard"));
        command
            .args([
                "--nats-url",
                &self.stack.nats_url,
                "--api-url",
                &self.api_url,
            ])
            .args(args)
            .env("TASKYARD_DATABASE_URL", &self.stack.database_url)
            .env("TASKYARD_NATS_NKEY_FILE", self.operator_nkey())
            .env_remove("TASKYARD_TOKEN")
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().await.expect("run taskyard")
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A loopback address with a port free now (the api binds it right after).
fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").to_string()
}

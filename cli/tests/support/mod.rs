//! What the CLI's integration tests share: a real NATS and Postgres, the
//! API served in-process, and the `taskyard` binary run against them.
// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::process::Output;
use taskyard_api::{AppState, AuthMode, app};
use taskyard_store::Store;
use taskyard_testkit::TestStack;

pub struct Env {
    pub store: Store,
    pub nats: async_nats::Client,
    pub api_url: String,
    pub stack: TestStack,
}

impl Env {
    /// A fresh stack with the API on a free port, under `auth`.
    pub async fn start(auth: AuthMode) -> Env {
        let stack = TestStack::start().await.expect("start the test stack");
        let store = Store::connect_and_migrate(&stack.database_url, 4)
            .await
            .expect("connect and migrate");
        let nats = async_nats::connect(&stack.nats_url)
            .await
            .expect("connect to NATS");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let api_url = format!("http://{}", listener.local_addr().expect("an address"));
        let router = app(AppState::new(store.clone(), nats.clone(), auth));
        tokio::spawn(async move { axum::serve(listener, router).await });
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

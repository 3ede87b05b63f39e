//! `taskyard token create | list | revoke` against a real Postgres, and
//! `--token` / `TASKYARD_TOKEN` against an API that requires it.

use std::process::Output;
use taskyard_api::{AppState, AuthMode, app};
use taskyard_store::Store;
use taskyard_testkit::TestStack;

struct Env {
    api_url: String,
    stack: TestStack,
}

impl Env {
    async fn start() -> Env {
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
        let router = app(AppState::new(store, nats, AuthMode::Required));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Env { api_url, stack }
    }

    async fn taskyard(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
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

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn tokens_are_created_used_listed_and_revoked() {
    let env = Env::start().await;

    let created = env
        .taskyard(
            &["token", "create", "--name", "ci", "--role", "viewer"],
            &[],
        )
        .await;
    assert!(created.status.success(), "{}", stderr(&created));
    let token = stdout(&created).trim().to_owned();
    assert!(token.starts_with("ty_"), "{token}");
    assert!(stderr(&created).contains("only this once"));

    let again = env
        .taskyard(&["token", "create", "--name", "ci", "--role", "admin"], &[])
        .await;
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    // Without a token the API refuses, and says how to pass one.
    let refused = env.taskyard(&["tasks"], &[]).await;
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--token"), "{}", stderr(&refused));

    let with_flag = env.taskyard(&["tasks", "--token", &token], &[]).await;
    assert!(with_flag.status.success(), "{}", stderr(&with_flag));
    let with_env = env
        .taskyard(&["nodes"], &[("TASKYARD_TOKEN", token.as_str())])
        .await;
    assert!(with_env.status.success(), "{}", stderr(&with_env));

    let listed = env.taskyard(&["token", "list"], &[]).await;
    assert!(listed.status.success(), "{}", stderr(&listed));
    let text = stdout(&listed);
    assert!(text.contains("ci") && text.contains("viewer"), "{text}");
    assert!(!text.contains(&token), "the list never shows a token");

    let revoked = env.taskyard(&["token", "revoke", "ci"], &[]).await;
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let after = env.taskyard(&["tasks", "--token", &token], &[]).await;
    assert!(!after.status.success());
    assert!(
        stderr(&after).contains("unknown or revoked"),
        "{}",
        stderr(&after)
    );
    let twice = env.taskyard(&["token", "revoke", "ci"], &[]).await;
    assert!(!twice.status.success());

    let bad_role = env
        .taskyard(&["token", "create", "--name", "x", "--role", "root"], &[])
        .await;
    assert!(!bad_role.status.success());
    assert!(
        stderr(&bad_role).contains("not a role"),
        "{}",
        stderr(&bad_role)
    );
}

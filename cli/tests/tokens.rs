//! `taskyard token create | list | revoke` against a real Postgres, and
//! `--token` / `TASKYARD_TOKEN` against an API that requires it.

mod support;

use support::{AuthMode, Env, stderr, stdout};

#[tokio::test]
async fn tokens_are_created_used_listed_and_revoked() {
    let env = Env::start(AuthMode::Required).await;

    let created = env
        .taskyard(&["token", "create", "--name", "ci", "--role", "viewer"])
        .await;
    assert!(created.status.success(), "{}", stderr(&created));
    let token = stdout(&created).trim().to_owned();
    assert!(token.starts_with("ty_"), "{token}");
    assert!(stderr(&created).contains("only this once"));

    let again = env
        .taskyard(&["token", "create", "--name", "ci", "--role", "admin"])
        .await;
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    // Without a token the API refuses, and says how to pass one.
    let refused = env.taskyard(&["tasks"]).await;
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--token"), "{}", stderr(&refused));

    let with_flag = env.taskyard(&["tasks", "--token", &token]).await;
    assert!(with_flag.status.success(), "{}", stderr(&with_flag));
    let with_env = env
        .taskyard_env(&["nodes"], &[("TASKYARD_TOKEN", token.as_str())])
        .await;
    assert!(with_env.status.success(), "{}", stderr(&with_env));

    let listed = env.taskyard(&["token", "list"]).await;
    assert!(listed.status.success(), "{}", stderr(&listed));
    let text = stdout(&listed);
    assert!(text.contains("ci") && text.contains("viewer"), "{text}");
    assert!(!text.contains(&token), "the list never shows a token");

    let revoked = env.taskyard(&["token", "revoke", "ci"]).await;
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let after = env.taskyard(&["tasks", "--token", &token]).await;
    assert!(!after.status.success());
    assert!(
        stderr(&after).contains("unknown or revoked"),
        "{}",
        stderr(&after)
    );
    let twice = env.taskyard(&["token", "revoke", "ci"]).await;
    assert!(!twice.status.success());

    let bad_role = env
        .taskyard(&["token", "create", "--name", "x", "--role", "root"])
        .await;
    assert!(!bad_role.status.success());
    assert!(
        stderr(&bad_role).contains("not a role"),
        "{}",
        stderr(&bad_role)
    );
}

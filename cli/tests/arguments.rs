//! The argument grammar, and the submissions that flags build.

use clap::Parser;
use serde_json::json;
use taskyard_cli::commands::submit::{Submit, build_submission};
use taskyard_cli::{Cli, Command};

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("taskyard").chain(args.iter().copied()))
}

fn submit(args: &[&str]) -> Submit {
    match parse(args).expect("valid arguments").command {
        Command::Submit(submit) => submit,
        other => panic!("expected submit, got {other:?}"),
    }
}

#[test]
fn flags_build_one_task_with_only_what_was_given() {
    let cmd = submit(&[
        "submit",
        "--kind",
        "sleep",
        "--spec",
        r#"{"ms": 250}"#,
        "--pool",
        "batch",
        "--tenant",
        "team-a",
        "--cpu",
        "500",
        "--memory",
        "128",
        "--priority",
        "-3",
        "--timeout-ms",
        "5000",
        "--max-attempts",
        "3",
        "--idempotency-key",
        "nightly",
    ]);
    let task = build_submission(&cmd.task).expect("a task");
    assert_eq!(
        task,
        json!({
            "kind": "sleep", "spec": {"ms": 250}, "pool": "batch", "tenant": "team-a",
            "resources": {"cpu_millis": 500, "memory_mb": 128}, "priority": -3,
            "timeout_ms": 5000, "max_attempts": 3, "idempotency_key": "nightly"
        })
    );

    let minimal = submit(&["submit", "--kind", "noop"]);
    assert_eq!(
        build_submission(&minimal.task).expect("a task"),
        json!({"kind": "noop"})
    );
    let cpu_only = submit(&["submit", "--kind", "noop", "--cpu", "250"]);
    assert_eq!(
        build_submission(&cpu_only.task).expect("a task"),
        json!({"kind": "noop", "resources": {"cpu_millis": 250}})
    );
}

#[test]
fn count_builds_a_batch_of_copies() {
    let cmd = submit(&["submit", "--kind", "echo", "--spec", "[1]", "--count", "3"]);
    let batch = build_submission(&cmd.task).expect("a batch");
    assert_eq!(
        batch,
        json!([
            {"kind": "echo", "spec": [1]},
            {"kind": "echo", "spec": [1]},
            {"kind": "echo", "spec": [1]},
        ])
    );

    let keyed = submit(&[
        "submit",
        "--kind",
        "noop",
        "--count",
        "2",
        "--idempotency-key",
        "k",
    ]);
    let batch = build_submission(&keyed.task).expect("a batch");
    assert_eq!(batch[0]["idempotency_key"], "k-0");
    assert_eq!(batch[1]["idempotency_key"], "k-1");
}

#[test]
fn payload_of_flags_is_the_built_json() {
    let cmd = submit(&["submit", "--kind", "noop", "--count", "2"]);
    let payload = cmd.payload().expect("a payload");
    let value: serde_json::Value = serde_json::from_slice(&payload).expect("JSON");
    assert_eq!(value.as_array().map(Vec::len), Some(2));
}

#[test]
fn a_file_is_sent_verbatim_and_excludes_task_flags() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("batch.json");
    let text = r#"[ {"kind": "noop"}, {"kind": "echo", "spec": "hi"} ]"#;
    std::fs::write(&path, text).expect("write the file");
    let path = path.to_str().expect("a UTF-8 path");

    let cmd = submit(&["submit", path, "--wait", "--wait-timeout", "30"]);
    assert!(cmd.wait);
    assert_eq!(cmd.wait_timeout, Some(30));
    assert_eq!(cmd.payload().expect("the file").as_ref(), text.as_bytes());

    assert!(
        parse(&["submit", path, "--kind", "noop"]).is_err(),
        "FILE and --kind conflict"
    );
    assert!(
        parse(&["submit", path, "--count", "2"]).is_err(),
        "FILE and --count conflict"
    );

    std::fs::write(dir.path().join("bad.json"), "{nope").expect("write the file");
    let bad = dir.path().join("bad.json");
    let cmd = submit(&["submit", bad.to_str().expect("a UTF-8 path")]);
    let err = format!("{:#}", cmd.payload().expect_err("not JSON"));
    assert!(err.contains("is not valid JSON"), "{err}");
}

#[test]
fn bad_arguments_are_refused() {
    assert!(parse(&["submit"]).is_err(), "needs FILE or --kind");
    assert!(parse(&["submit", "--kind", "noop", "--count", "0"]).is_err());
    assert!(parse(&["submit", "--kind", "noop", "--spec", "{nope"]).is_err());
    assert!(
        parse(&["submit", "--kind", "noop", "--wait-timeout", "5"]).is_err(),
        "needs --wait"
    );
}

#[test]
fn global_options_go_anywhere() {
    let cli = parse(&["tasks", "--state", "failed", "--api-url", "http://api:9000"])
        .expect("valid arguments");
    assert_eq!(cli.global.api_url, "http://api:9000");
    let Command::Tasks(tasks) = cli.command else {
        panic!("expected tasks");
    };
    assert_eq!(
        tasks.query(),
        vec![("limit", "50".to_owned()), ("state", "failed".to_owned())]
    );
    let cli = parse(&["--nats-url", "nats://elsewhere:4222", "nodes"]).expect("valid arguments");
    assert_eq!(cli.global.nats_url, "nats://elsewhere:4222");
}

fn pool(args: &[&str]) -> taskyard_cli::commands::pool::PoolAction {
    let mut full = vec!["pool"];
    full.extend_from_slice(args);
    match parse(&full).expect("valid arguments").command {
        Command::Pool(pool) => pool.action,
        other => panic!("expected pool, got {other:?}"),
    }
}

#[test]
fn pool_create_flags_build_the_definition() {
    use taskyard_cli::commands::pool::PoolAction;
    use taskyard_wire::pool::{PlacementStrategy, PoolSpec};
    let PoolAction::Create(create) = pool(&[
        "create",
        "gpu",
        "--policy",
        "fcfs",
        "--placement",
        "spread",
        "--selector",
        "gpu=a100",
        "--selector",
        "zone=eu",
        "--max-running",
        "8",
        "--max-cpu",
        "16000",
        "--max-memory",
        "65536",
        "--tenant-max-running",
        "2",
        "--default-timeout-ms",
        "60000",
        "--overcommit",
        "1.5",
        "--retry-backoff-ms",
        "250",
        "--retry-backoff-max-ms",
        "4000",
    ]) else {
        panic!("expected create");
    };
    let spec = create.spec().expect("a definition");
    assert_eq!(
        spec,
        PoolSpec {
            name: "gpu".to_owned(),
            policy: "fcfs".to_owned(),
            placement: PlacementStrategy::Spread,
            node_selector: [("gpu", "a100"), ("zone", "eu")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            max_running: Some(8),
            max_cpu_millis: Some(16000),
            max_memory_mb: Some(65536),
            tenant_max_running: Some(2),
            default_timeout_ms: Some(60000),
            overcommit: 1.5,
            tenant_weights: Default::default(),
            retry_backoff_ms: 250,
            retry_backoff_max_ms: 4000,
        }
    );

    let PoolAction::Create(bare) = pool(&["create", "batch"]) else {
        panic!("expected create");
    };
    assert_eq!(
        bare.spec().expect("a definition"),
        PoolSpec {
            name: "batch".to_owned(),
            ..PoolSpec::default_pool()
        },
        "no flags: the defaults"
    );
    assert!(parse(&["pool", "create"]).is_err(), "needs NAME or --file");
    assert!(parse(&["pool", "create", "x", "--placement", "random"]).is_err());
}

#[test]
fn pool_create_from_a_file_takes_flags_on_top() {
    use taskyard_cli::commands::pool::PoolAction;
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("pool.json");
    std::fs::write(
        &path,
        r#"{"name": "gpu", "max_running": 4, "placement": "spread"}"#,
    )
    .expect("write the file");
    let path = path.to_str().expect("a UTF-8 path");

    let PoolAction::Create(create) = pool(&["create", "--file", path, "--max-running", "6"]) else {
        panic!("expected create");
    };
    let spec = create.spec().expect("a definition");
    assert_eq!(spec.name, "gpu");
    assert_eq!(spec.max_running, Some(6));
    assert_eq!(spec.placement.as_str(), "spread");

    let PoolAction::Create(other) = pool(&["create", "cpu", "--file", path]) else {
        panic!("expected create");
    };
    let err = format!("{:#}", other.spec().expect_err("names differ"));
    assert!(err.contains("names the pool \"gpu\", not `cpu`"), "{err}");

    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"name": "x", "colour": "red"}"#,
    )
    .expect("write the file");
    let bad = dir.path().join("bad.json");
    let PoolAction::Create(bad) = pool(&["create", "--file", bad.to_str().expect("UTF-8")]) else {
        panic!("expected create");
    };
    let err = format!("{:#}", bad.spec().expect_err("an unknown field"));
    assert!(
        err.contains("is not a pool definition") && err.contains("colour"),
        "{err}"
    );
}

#[test]
fn pool_update_changes_only_what_the_flags_name() {
    use taskyard_cli::commands::pool::PoolAction;
    use taskyard_wire::pool::{PlacementStrategy, PoolSpec};
    let current = PoolSpec {
        name: "gpu".to_owned(),
        placement: PlacementStrategy::Spread,
        node_selector: [("gpu".to_owned(), "a100".to_owned())].into(),
        max_running: Some(4),
        tenant_max_running: Some(2),
        ..PoolSpec::default_pool()
    };
    let PoolAction::Update(update) = pool(&[
        "update",
        "gpu",
        "--max-running",
        "10",
        "--unset",
        "tenant_max_running",
    ]) else {
        panic!("expected update");
    };
    let spec = update.spec(current.clone()).expect("a definition");
    assert_eq!(
        spec,
        PoolSpec {
            max_running: Some(10),
            tenant_max_running: None,
            ..current.clone()
        }
    );

    let PoolAction::Update(reselect) = pool(&["update", "gpu", "--selector", "gpu=h100"]) else {
        panic!("expected update");
    };
    let spec = reselect.spec(current.clone()).expect("a definition");
    assert_eq!(
        spec.node_selector,
        [("gpu".to_owned(), "h100".to_owned())].into(),
        "given labels replace the selector"
    );
    assert_eq!(spec.max_running, Some(4));
    assert!(parse(&["pool", "update", "gpu", "--unset", "policy"]).is_err());
}

#[test]
fn a_selector_without_an_equals_sign_is_refused_clearly() {
    for args in [
        &["submit", "--kind", "noop", "--selector", "gpu"][..],
        &["pool", "create", "x", "--selector", "gpu"],
    ] {
        let err = parse(args).expect_err("`gpu` is no label").to_string();
        assert!(
            err.contains("`gpu` is not KEY=VALUE (such as gpu=a100)"),
            "{err}"
        );
    }
    let err = parse(&["submit", "--kind", "noop", "--selector", "=a100"])
        .expect_err("no key")
        .to_string();
    assert!(err.contains("has no key"), "{err}");
}

#[test]
fn submit_selector_builds_the_node_selector() {
    let cmd = submit(&[
        "submit",
        "--kind",
        "noop",
        "--selector",
        "gpu=a100",
        "--selector",
        "zone=eu",
    ]);
    assert_eq!(
        build_submission(&cmd.task).expect("a task"),
        json!({"kind": "noop", "node_selector": {"gpu": "a100", "zone": "eu"}})
    );
}

#[test]
fn node_and_services_commands_parse() {
    use taskyard_client::NodeOp;
    for op in NodeOp::ALL {
        let cli = parse(&["node", op.as_str(), "node-1"]).expect("valid arguments");
        let Command::Node(node) = cli.command else {
            panic!("expected node");
        };
        assert_eq!(node.action.op(), (op, "node-1"));
    }
    assert!(parse(&["node", "reboot", "node-1"]).is_err());
    assert!(parse(&["node", "drain"]).is_err(), "needs an id");
    assert!(matches!(
        parse(&["services", "--json"]).expect("valid").command,
        Command::Services(_)
    ));
    assert!(matches!(
        parse(&["pools"]).expect("valid").command,
        Command::Pools(_)
    ));
}

#[test]
fn token_commands_and_the_global_token_parse() {
    use taskyard_cli::commands::token::Token;
    use taskyard_store::tokens::Role;
    let cli = parse(&[
        "token",
        "create",
        "--name",
        "ci",
        "--role",
        "operator",
        "--database-url",
        "postgres://db/x",
    ])
    .expect("valid arguments");
    match cli.command {
        Command::Token(Token::Create(create)) => {
            assert_eq!(create.name, "ci");
            assert_eq!(create.role, Role::Operator);
            assert_eq!(create.database.database_url, "postgres://db/x");
        }
        other => panic!("expected token create, got {other:?}"),
    }
    assert!(parse(&["token", "create", "--name", "ci", "--role", "root"]).is_err());
    assert!(matches!(
        parse(&["token", "revoke", "ci"]).expect("valid").command,
        Command::Token(Token::Revoke(_))
    ));
    let cli = parse(&["tasks", "--token", "ty_abc"]).expect("valid arguments");
    assert_eq!(cli.global.token.as_deref(), Some("ty_abc"));
    assert_eq!(cli.global.api().token(), Some("ty_abc"));
}

#[test]
fn up_runs_the_api_open_only_on_loopback() {
    use taskyard_cli::commands::up::api_auth;
    assert_eq!(api_auth("127.0.0.1:8080".parse().expect("addr")), "off");
    assert_eq!(api_auth("[::1]:8080".parse().expect("addr")), "off");
    assert_eq!(api_auth("0.0.0.0:8080".parse().expect("addr")), "required");
}

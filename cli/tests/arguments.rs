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

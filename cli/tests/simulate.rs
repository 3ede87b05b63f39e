//! `taskyard simulate`, the binary itself: no stack needed.

use std::process::{Command, Output};
use taskyard_simulator::PolicyKind;

fn taskyard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_taskyard"))
        .args(args)
        .output()
        .expect("run taskyard")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "taskyard failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

const SMALL: [&str; 9] = [
    "simulate",
    "--tasks",
    "300",
    "--tenants",
    "3",
    "--nodes",
    "2",
    "--seed",
    "5",
];

#[test]
fn the_table_has_a_row_per_policy() {
    let text = stdout(&taskyard(&SMALL));
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|line| !line.starts_with("POLICY"))
        .skip(1)
        .take_while(|line| !line.is_empty())
        .collect();
    let names: Vec<&str> = rows
        .iter()
        .filter_map(|row| row.split_whitespace().next())
        .collect();
    assert_eq!(names, PolicyKind::NAMES.to_vec(), "{text}");
    for row in rows {
        assert_eq!(row.split_whitespace().nth(1), Some("300"), "{row}");
    }
    // The same seed, the same table.
    assert_eq!(stdout(&taskyard(&SMALL)), text);
}

#[test]
fn a_saved_workload_replays_to_the_same_report() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("workload.json");
    let path = path.to_str().expect("a UTF-8 path");
    let mut args = SMALL.to_vec();
    args.extend([
        "--policy",
        "wfq",
        "--policy",
        "fcfs",
        "--json",
        "--write-workload",
        path,
    ]);
    let generated: serde_json::Value =
        serde_json::from_str(&stdout(&taskyard(&args))).expect("JSON out");
    let replayed: serde_json::Value = serde_json::from_str(&stdout(&taskyard(&[
        "simulate",
        "--workload",
        path,
        "--policy",
        "wfq",
        "--policy",
        "fcfs",
        "--json",
    ])))
    .expect("JSON out");
    assert_eq!(generated, replayed);
    let policies: Vec<&str> = replayed["policies"]
        .as_array()
        .expect("a list of policies")
        .iter()
        .filter_map(|p| p["policy"].as_str())
        .collect();
    assert_eq!(policies, ["wfq", "fcfs"]);
}

#[test]
fn bad_input_is_refused_clearly() {
    let unknown = taskyard(&["simulate", "--policy", "lottery"]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("unknown scheduling policy \"lottery\""),
        "{stderr}"
    );

    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("bad.json");
    std::fs::write(
        &path,
        "{\"tenants\": {\"a\": 1},\n \"tasks\": [\n  {\"arrival_ms\": 0, \"tenant\": \"a\", \"cpu_millis\": \"x\", \"memory_mb\": 1, \"runtime_ms\": 1}\n]}\n",
    )
    .expect("write the file");
    let bad = taskyard(&["simulate", "--workload", path.to_str().expect("UTF-8")]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("tasks[0].cpu_millis"), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");

    let weights = taskyard(&["simulate", "--weights", "a=3,b"]);
    assert!(!weights.status.success());
    let stderr = String::from_utf8_lossy(&weights.stderr);
    assert!(stderr.contains("`b` is not NAME=N"), "{stderr}");
}

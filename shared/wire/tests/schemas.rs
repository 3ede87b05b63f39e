//! The committed JSON Schemas agree with the Rust types, and the example
//! messages in `schemas/examples/` are accepted by the Rust types and by
//! the schemas; those in `schemas/examples/invalid/` are refused by both.

use serde_json::Value;
use std::path::{Path, PathBuf};
use taskyard_wire::task::{Limits, Parsed, parse_submission};

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

#[test]
fn committed_schemas_match_the_types() {
    let bless = std::env::var_os("TASKYARD_BLESS").is_some();
    let mut stale = Vec::new();
    for (name, schema) in taskyard_wire::schema::all() {
        let path = schema_dir().join(format!("{name}.json"));
        let generated = taskyard_wire::schema::render(&schema);
        if bless {
            std::fs::write(&path, &generated).expect("write schema");
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != generated {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "these schemas differ from the Rust types (run `TASKYARD_BLESS=1 cargo test -p taskyard-wire` and review the diff): {stale:?}"
    );
}

#[test]
fn examples_parse_as_their_types() {
    let dir = schema_dir().join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read example");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("task") || name.starts_with("batch") || name.starts_with("workflow") {
            match parse_submission(&bytes, &Limits::default()) {
                Parsed::Valid(tasks) => assert!(!tasks.is_empty()),
                other => panic!("{name} is not a valid submission: {other:?}"),
            }
            seen += 1;
        }
    }
    assert!(seen >= 3, "expected the task examples, saw {seen}");
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).expect("read");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// Whether the committed schemas accept `example`: the schema its file name
/// starts with (`task`, `batch`, `workflow`), and each task's `spec` the
/// schema of its kind (`sleep-spec.json`), which `task.json` leaves to it.
fn schemas_accept(name: &str, example: &Value) -> Result<(), String> {
    let stem = ["task", "batch", "workflow"]
        .into_iter()
        .find(|stem| name.starts_with(stem))
        .unwrap_or("task");
    check_schema(stem, example)?;
    let tasks = match example {
        Value::Array(tasks) => tasks.clone(),
        Value::Object(object) if stem == "workflow" => object
            .get("tasks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        task => vec![task.clone()],
    };
    for task in &tasks {
        let kind = task.get("kind").and_then(Value::as_str).unwrap_or_default();
        let spec = schema_dir().join(format!("{kind}-spec.json"));
        if let Some(spec_value) = task.get("spec")
            && spec.exists()
        {
            check_schema(&format!("{kind}-spec"), spec_value)?;
        }
    }
    Ok(())
}

fn check_schema(stem: &str, instance: &Value) -> Result<(), String> {
    let schema = read_json(&schema_dir().join(format!("{stem}.json")));
    let validator = jsonschema::validator_for(&schema).map_err(|e| format!("{stem}: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{stem}.json: {e} at {}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[test]
fn examples_meet_the_committed_schemas() {
    let dir = schema_dir().join("examples");
    for entry in std::fs::read_dir(&dir).expect("examples dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if let Err(why) = schemas_accept(&name, &read_json(&path)) {
            panic!("{name} does not meet its schema: {why}");
        }
    }
}

/// Each bad example, the field its refusal names, and whether the schemas
/// can tell (a start time beyond the horizon depends on the clock).
const INVALID: [(&str, &str, bool); 11] = [
    ("task-nul-in-arg.json", "spec.args[2]", true),
    ("task-nul-in-label.json", "labels.team", true),
    ("task-nul-in-label-key.json", "labels", true),
    ("batch-nul-in-spec.json", "tasks[1].spec.deep[0].x", true),
    ("workflow-nul-in-name.json", "workflow", true),
    ("task-run-at-beyond-horizon.json", "run_at", false),
    ("task-delay-beyond-horizon.json", "delay_ms", true),
    ("task-priority-overflow.json", "priority", true),
    ("task-timeout-too-long.json", "timeout_ms", true),
    ("task-sleep-too-long.json", "spec.ms", true),
    ("task-env-name-with-equals.json", "spec.env.A=B", true),
];

#[test]
fn invalid_examples_are_refused_by_the_types_and_the_schemas() {
    let dir = schema_dir().join("examples").join("invalid");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("invalid examples dir")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    files.sort();
    let mut listed: Vec<String> = INVALID
        .iter()
        .map(|(name, ..)| (*name).to_owned())
        .collect();
    listed.sort();
    assert_eq!(files, listed, "every bad example is listed with its field");
    for (name, field, schema_tells) in INVALID {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).expect("read");
        let rejection = match parse_submission(&bytes, &Limits::default()) {
            Parsed::Invalid { rejection, .. } | Parsed::Unreadable(rejection) => rejection,
            Parsed::Valid(_) => panic!("{name} was accepted"),
        };
        assert_eq!(rejection.field, field, "{name}: {rejection}");
        let by_schema = schemas_accept(name, &read_json(&path));
        assert_eq!(
            by_schema.is_err(),
            schema_tells,
            "{name}: the schemas say {by_schema:?}"
        );
    }
}

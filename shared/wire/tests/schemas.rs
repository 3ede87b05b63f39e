//! The committed JSON Schemas agree with the Rust types, and the example
//! messages in `schemas/examples/` are accepted by the Rust types.

use std::path::PathBuf;

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
    use taskyard_wire::task::{Limits, Parsed, parse_submission};
    let dir = schema_dir().join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples dir") {
        let path = entry.expect("entry").path();
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

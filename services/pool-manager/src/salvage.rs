//! What can be kept of a report or log batch that Postgres refuses.
//!
//! Workers report what their tasks print, and a task may print anything: a
//! NUL byte is valid UTF-8 and valid JSON (`\u0000`), yet neither a `text`
//! column nor `jsonb` can hold it. Rather than lose the attempt's outcome
//! (or hold the rest of the batch back), a refused message is tried once
//! more with every NUL replaced by U+FFFD, the mark of a character that
//! could not be represented.

use serde_json::Value;
use taskyard_store::logs::NewLogLine;
use taskyard_wire::status::StatusReport;

const REPLACEMENT: &str = "\u{FFFD}";

/// `text` with every NUL replaced; whether anything was.
pub fn scrub_text(text: &mut String) -> bool {
    if !text.contains('\0') {
        return false;
    }
    *text = text.replace('\0', REPLACEMENT);
    true
}

/// `value` with every NUL in its strings and keys replaced.
pub fn scrub_value(value: &mut Value) -> bool {
    match value {
        Value::String(text) => scrub_text(text),
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |any, item| scrub_value(item) | any),
        Value::Object(map) => {
            let mut any = false;
            if map.keys().any(|key| key.contains('\0')) {
                let entries = std::mem::take(map);
                for (mut key, value) in entries {
                    scrub_text(&mut key);
                    map.insert(key, value);
                }
                any = true;
            }
            map.values_mut()
                .fold(any, |any, item| scrub_value(item) | any)
        }
        _ => false,
    }
}

/// A report's free text (result and error) scrubbed; whether anything was.
pub fn scrub_report(report: &mut StatusReport) -> bool {
    match report {
        StatusReport::Started { .. } => false,
        StatusReport::Finished { result, error, .. } => {
            let in_result = scrub_value(result);
            let in_error = error.as_mut().is_some_and(scrub_text);
            in_result | in_error
        }
    }
}

/// Log lines scrubbed; whether any was.
pub fn scrub_lines(lines: &mut [NewLogLine]) -> bool {
    lines
        .iter_mut()
        .fold(false, |any, line| scrub_text(&mut line.line) | any)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_in_strings_and_keys_is_replaced_and_nothing_else_changes() {
        let mut value =
            json!({"out": "a\u{0}b", "k\u{0}": [1, "x\u{0}", {"n": null}], "fine": "yes"});
        assert!(scrub_value(&mut value));
        assert_eq!(
            value,
            json!({"out": "a\u{FFFD}b", "k\u{FFFD}": [1, "x\u{FFFD}", {"n": null}], "fine": "yes"})
        );
        let mut clean = json!({"out": "ok", "n": [1, 2]});
        assert!(!scrub_value(&mut clean));
        assert_eq!(clean, json!({"out": "ok", "n": [1, 2]}));
    }

    #[test]
    fn a_finish_report_keeps_its_outcome() {
        let mut report = StatusReport::Finished {
            task_id: Default::default(),
            attempt: 1,
            node_id: "n1".to_owned(),
            outcome: taskyard_wire::status::Outcome::Succeeded,
            result: json!({"stdout": "\u{0}"}),
            error: Some("e\u{0}".to_owned()),
            started_at: taskyard_wire::now(),
            finished_at: taskyard_wire::now(),
        };
        assert!(scrub_report(&mut report));
        let StatusReport::Finished {
            result,
            error,
            outcome,
            ..
        } = report
        else {
            panic!("still a finish report");
        };
        assert_eq!(result, json!({"stdout": "\u{FFFD}"}));
        assert_eq!(error.as_deref(), Some("e\u{FFFD}"));
        assert_eq!(outcome, taskyard_wire::status::Outcome::Succeeded);
    }
}

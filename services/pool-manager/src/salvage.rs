//! What can be kept of a report or log batch that Postgres refuses.
//!
//! Workers report what their tasks print, and a task may print anything: a
//! NUL byte is valid UTF-8 and valid JSON (`\u0000`), yet neither a `text`
//! column nor `jsonb` can hold it. Rather than lose the attempt's outcome
//! (or hold the rest of the batch back), a refused message is tried once
//! more with every NUL replaced by U+FFFD, the mark of a character that
//! could not be represented.

use taskyard_store::logs::NewLogLine;
use taskyard_wire::status::StatusReport;
use taskyard_wire::storable::{find_nul, has_nul, scrub_nul, scrub_text};

/// `text` with every NUL replaced; whether anything was.
fn scrub_in_place(text: &mut String) -> bool {
    if !has_nul(text) {
        return false;
    }
    *text = scrub_text(text).into_owned();
    true
}

/// A report's free text (result and error) scrubbed; whether anything was.
pub fn scrub_report(report: &mut StatusReport) -> bool {
    match report {
        StatusReport::Started { .. } => false,
        StatusReport::Finished { result, error, .. } => {
            let in_result = find_nul(result).is_some();
            if in_result {
                scrub_nul(result);
            }
            let in_error = error.as_mut().is_some_and(scrub_in_place);
            in_result | in_error
        }
    }
}

/// Log lines scrubbed; whether any was.
pub fn scrub_lines(lines: &mut [NewLogLine]) -> bool {
    lines
        .iter_mut()
        .fold(false, |any, line| scrub_in_place(&mut line.line) | any)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_lines_with_nul_change() {
        let line = |text: &str| NewLogLine {
            task_id: Default::default(),
            attempt: 1,
            seq: 0,
            stream: "stdout",
            line: text.to_owned(),
            at: taskyard_wire::now(),
        };
        let mut lines = vec![line("fine"), line("a\u{0}b")];
        assert!(scrub_lines(&mut lines));
        assert_eq!(lines[0].line, "fine");
        assert_eq!(lines[1].line, "a\u{FFFD}b");
        let mut clean = vec![line("fine")];
        assert!(!scrub_lines(&mut clean));
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

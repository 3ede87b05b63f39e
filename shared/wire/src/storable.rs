//! Text that Postgres can store: no NUL character (U+0000) anywhere.
//!
//! Postgres refuses NUL in `text` columns and in `jsonb` ("unsupported
//! Unicode escape sequence"), and one row that it refuses fails the whole
//! multi-row statement that writes a batch. So a submission is checked for
//! NUL before anything else, in one walk over its parsed JSON: every string
//! and every object key, at any depth. [`find_nul`] names the first one it
//! meets; [`scrub_nul`] makes a refused submission storable, so that it can
//! still be recorded `rejected` as it was sent.
//!
//! Other text needs no such check: `serde_json` gives valid UTF-8 only (it
//! refuses a lone surrogate such as `"\ud800"` as invalid JSON), and
//! Postgres stores any other character.

use crate::rejection::Rejection;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt::Write as _;

/// The JSON Schema `pattern` of a string without NUL (ECMA-262 reads
/// `\u0000` as the character itself).
pub const NO_NUL_PATTERN: &str = r"^[^\u0000]*$";

/// What a NUL is replaced by in a refused submission that is recorded.
pub const NUL_REPLACEMENT: char = '\u{FFFD}';

/// Where the first NUL of a value is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NulAt<'a> {
    /// The steps from the root to the string, or to the object whose key
    /// holds the NUL; innermost first (it is built while the walk unwinds,
    /// so that the path costs nothing until a NUL is found).
    steps: Vec<Step<'a>>,
    /// The NUL is in a key of the object at `steps`, not in a string there.
    in_key: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The first NUL in `value`, in any string or object key at any depth.
///
/// Recursive: a value parsed by `serde_json` is at most 128 levels deep (its
/// recursion limit), so the stack is bounded.
pub fn find_nul(value: &Value) -> Option<NulAt<'_>> {
    match value {
        Value::String(text) if has_nul(text) => Some(NulAt {
            steps: Vec::new(),
            in_key: false,
        }),
        Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            find_nul(item).map(|mut at| {
                at.steps.push(Step::Index(index));
                at
            })
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            // The key is looked at before its value, so every key on the
            // path of a deeper NUL is itself free of NUL: the field name
            // that reports it can be stored.
            if has_nul(key) {
                return Some(NulAt {
                    steps: Vec::new(),
                    in_key: true,
                });
            }
            find_nul(item).map(|mut at| {
                at.steps.push(Step::Key(key));
                at
            })
        }),
        _ => None,
    }
}

/// Whether `text` holds a NUL (a `memchr` search, not a walk over chars).
pub fn has_nul(text: &str) -> bool {
    text.contains('\0')
}

impl NulAt<'_> {
    /// The JSON path of the string, or of the object whose key holds the
    /// NUL, as other rejections name fields (`tasks[1].spec.args[2]`). With
    /// `batch_root`, the root is a batch array, whose elements are named
    /// `tasks[i]` like a workflow's.
    pub fn field(&self, batch_root: bool) -> String {
        let mut field = String::new();
        for (depth, step) in self.steps.iter().rev().enumerate() {
            match step {
                // Writing to a String cannot fail.
                Step::Index(index) if depth == 0 && batch_root => {
                    let _ = write!(field, "tasks[{index}]");
                }
                Step::Index(index) => {
                    let _ = write!(field, "[{index}]");
                }
                Step::Key(key) => {
                    if !field.is_empty() {
                        field.push('.');
                    }
                    field.push_str(key);
                }
            }
        }
        field
    }

    /// The refusal, naming the field.
    pub fn rejection(&self, batch_root: bool) -> Rejection {
        let message = if self.in_key {
            "holds a key with a NUL character (U+0000), which Postgres cannot store"
        } else {
            "must not contain a NUL character (U+0000), which Postgres cannot store"
        };
        Rejection::new(self.field(batch_root), message)
    }
}

/// Replaces every NUL in `value` (strings and keys, at any depth) by
/// [`NUL_REPLACEMENT`], so that a refused submission can be stored as sent.
/// Two keys that differ only there become one (the last wins): this is the
/// record of a refusal, not a task.
pub fn scrub_nul(value: &mut Value) {
    match value {
        Value::String(text) => {
            if let Cow::Owned(clean) = scrub_text(text) {
                *text = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub_nul),
        Value::Object(map) => {
            if map.keys().any(|key| has_nul(key)) {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(key, item)| (scrub_text(&key).into_owned(), item))
                    .collect();
            }
            map.values_mut().for_each(scrub_nul);
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// `text` with every NUL replaced by [`NUL_REPLACEMENT`]; borrowed when it
/// has none.
pub fn scrub_text(text: &str) -> Cow<'_, str> {
    if has_nul(text) {
        Cow::Owned(text.replace('\0', &NUL_REPLACEMENT.to_string()))
    } else {
        Cow::Borrowed(text)
    }
}

/// The JSON Schema of any JSON value with no NUL in a string or key, at any
/// depth: what a task's `spec` and a `nats` payload may hold. It names no
/// type: each keyword applies only to values of its own type.
pub struct NulFreeJson;

impl JsonSchema for NulFreeJson {
    fn schema_name() -> Cow<'static, str> {
        "NulFreeJson".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        // Recursive: the generator hands back a `$ref` to this definition.
        let itself = generator.subschema_for::<Self>();
        json_schema!({
            "description": "Any JSON value with no NUL character (U+0000) in a string or an object key, at any depth: Postgres cannot store one.",
            "pattern": NO_NUL_PATTERN,
            "propertyNames": {"pattern": NO_NUL_PATTERN},
            "additionalProperties": itself,
            "items": itself,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(value: &Value, batch: bool) -> Option<(String, bool)> {
        find_nul(value).map(|at| (at.field(batch), at.in_key))
    }

    #[test]
    fn finds_the_first_nul_and_names_its_path() {
        assert_eq!(field(&json!({"a": [1, {"b": "ok"}]}), false), None);
        assert_eq!(field(&json!("x\u{0}"), false), Some((String::new(), false)));
        assert_eq!(
            field(&json!({"spec": {"args": ["a", "b", "c\u{0}"]}}), false),
            Some(("spec.args[2]".to_owned(), false))
        );
        assert_eq!(
            field(
                &json!([{"kind": "noop"}, {"labels": {"team": "\u{0}"}}]),
                true
            ),
            Some(("tasks[1].labels.team".to_owned(), false))
        );
        assert_eq!(
            field(&json!([[["\u{0}"]]]), true),
            Some(("tasks[0][0][0]".to_owned(), false))
        );
        assert_eq!(
            field(&json!({"labels": {"te\u{0}am": "x"}}), false),
            Some(("labels".to_owned(), true))
        );
        assert_eq!(
            field(&json!({"ki\u{0}nd": "noop"}), false),
            Some((String::new(), true))
        );
    }

    #[test]
    fn a_key_is_named_by_its_object() {
        let value = json!({"spec": {"env": {"A\u{0}": "1"}}});
        let at = find_nul(&value).expect("a NUL");
        let rejection = at.rejection(false);
        assert_eq!(rejection.field, "spec.env");
        assert!(rejection.message.contains("key"), "{rejection}");
        assert!(!has_nul(&rejection.to_string()));
    }

    #[test]
    fn scrubbing_leaves_no_nul() {
        let mut value = json!({"a\u{0}": ["b\u{0}c", {"\u{0}": "\u{0}"}], "ok": 1});
        scrub_nul(&mut value);
        assert_eq!(find_nul(&value), None);
        assert_eq!(
            value,
            json!({"a\u{FFFD}": ["b\u{FFFD}c", {"\u{FFFD}": "\u{FFFD}"}], "ok": 1})
        );
        assert!(matches!(scrub_text("clean"), Cow::Borrowed("clean")));
    }
}

//! `KEY=VALUE` arguments (node selectors), parsed once for every command.

use std::collections::BTreeMap;

/// Parses one `KEY=VALUE`; the key must not be empty, the value may be. The
/// error says what was given and what is expected, for clap to show.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        }
        Some(_) => Err(format!(
            "`{text}` has no key: use KEY=VALUE, such as gpu=a100"
        )),
        None => Err(format!("`{text}` is not KEY=VALUE (such as gpu=a100)")),
    }
}

/// The pairs as a map; a key given twice keeps its last value.
pub fn to_map(pairs: &[(String, String)]) -> BTreeMap<String, String> {
    pairs.iter().cloned().collect()
}

/// `key=value, ...`, or `-` for none.
pub fn format_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "-".to_owned();
    }
    labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_need_a_key_and_an_equals_sign() {
        assert_eq!(parse_label("gpu=a100"), Ok(("gpu".into(), "a100".into())));
        assert_eq!(parse_label("k=a=b"), Ok(("k".into(), "a=b".into())));
        assert_eq!(parse_label("k="), Ok(("k".into(), String::new())));
        assert!(parse_label("=x").is_err());
        let err = parse_label("gpu").expect_err("no equals sign");
        assert!(err.contains("`gpu` is not KEY=VALUE"), "{err}");
    }

    #[test]
    fn labels_print_in_key_order() {
        let pairs = [("zone".into(), "eu".into()), ("gpu".into(), "a100".into())];
        assert_eq!(format_labels(&to_map(&pairs)), "gpu=a100,zone=eu");
        assert_eq!(format_labels(&BTreeMap::new()), "-");
    }
}

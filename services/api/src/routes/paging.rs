//! What the list routes share: opaque cursors, page sizes, and where the
//! next page starts.

use crate::ApiError;

/// An opaque cursor: the page's kind and position, base64url. Clients pass
/// it back as they got it; its content may change between versions.
pub fn encode_cursor(kind: &str, position: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{kind}:{position}"))
}

/// The position in a cursor of `kind`, or a 400 naming `field`.
pub fn decode_cursor(kind: &str, raw: &str, field: &str) -> Result<i64, ApiError> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            let (k, n) = text.split_once(':')?;
            (k == kind).then(|| n.parse::<i64>().ok()).flatten()
        })
        .ok_or_else(|| {
            ApiError::bad_request(
                field,
                format!(
                    "`{raw}` is not a cursor of this list: pass the `next_cursor` of the last page"
                ),
            )
        })
}

/// A query parameter, with an empty value (what an HTML form sends for an
/// empty field) counted as absent.
pub fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// A page size sent as text (`limit=` of a form may be empty): absent means
/// `default`; anything but 1 to `max` is a 400 naming `limit`.
pub fn page_size(raw: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    match raw {
        None => Ok(default),
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "limit",
                    format!("`{raw}` is not a page size: use 1 to {max}"),
                )
            }),
    }
}

/// A page size already read as a number: 1 to `max`, else a 400 naming
/// `limit`.
pub fn check_limit(limit: u32, max: u32) -> Result<u32, ApiError> {
    if limit == 0 || limit > max {
        return Err(ApiError::bad_request(
            "limit",
            format!("must be between 1 and {max}"),
        ));
    }
    Ok(limit)
}

/// Where the page after `page` starts: the last row's position when the
/// page is full. A short page is the last one.
pub fn next_position<T>(page: &[T], limit: u32, position: impl Fn(&T) -> i64) -> Option<i64> {
    if page.len() >= limit as usize {
        page.last().map(position)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_keep_to_their_list() {
        let cursor = encode_cursor("tasks", 42);
        assert_eq!(decode_cursor("tasks", &cursor, "cursor").ok(), Some(42));
        let err = decode_cursor("events", &cursor, "cursor").expect_err("another list");
        assert_eq!(err.field(), Some("cursor"));
        assert!(decode_cursor("tasks", "!!", "cursor").is_err());
    }

    #[test]
    fn only_a_full_page_has_a_next_one() {
        assert_eq!(next_position(&[1, 2, 3], 3, |n| *n), Some(3));
        assert_eq!(next_position(&[1, 2], 3, |n| *n), None);
        assert_eq!(page_size(None, 50, 1000).ok(), Some(50));
        assert!(page_size(Some("0"), 50, 1000).is_err());
        assert!(check_limit(1001, 1000).is_err());
    }
}

//! How durations and times read for people, in the console and the CLI alike.

use taskyard_wire::Timestamp;

/// `12 ms`, `1.5 s`, `2m 5s`, `1h 2m`.
pub fn format_ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m {}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h {}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// `3s ago`, `5m ago` as seen at `now`, or the time itself when older than an hour.
pub fn format_age(at: Timestamp, now: Timestamp) -> String {
    let secs = (now - at).whole_seconds().max(0);
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        _ => format_time(at),
    }
}

/// `2026-01-02 10:11:12` (UTC, as the database keeps it).
pub fn format_time(at: Timestamp) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

//! Plain-text output: aligned tables and readable times.

pub use taskyard_client::readable::{format_ms, format_time};
use taskyard_wire::Timestamp;

/// Columns separated by two spaces, each as wide as its widest cell.
#[derive(Debug)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as lines of text; the last column is not padded.
    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let headers: Vec<String> = self.headers.iter().map(|h| h.to_uppercase()).collect();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (index, cell) in row.iter().enumerate().take(columns) {
                if index + 1 == columns {
                    line.push_str(cell);
                } else {
                    let pad = widths[index] - cell.chars().count();
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// [`format_time`], or `-` for none.
pub fn format_opt_time(at: Option<Timestamp>) -> String {
    at.map(format_time).unwrap_or_else(|| "-".to_owned())
}

/// The time from `start` to `end` (or to now while it runs), or empty
/// before it started.
pub fn run_duration(start: Option<Timestamp>, end: Option<Timestamp>) -> String {
    let Some(start) = start else {
        return String::new();
    };
    let end = end.unwrap_or_else(taskyard_wire::now);
    let ms = (end - start).whole_milliseconds().max(0);
    format_ms(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// `3s ago`, `5m ago`, or the time itself when older than an hour.
pub fn format_age(at: Timestamp) -> String {
    taskyard_client::readable::format_age(at, taskyard_wire::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let mut table = Table::new(&["id", "state", "node"]);
        table.row(vec!["a".into(), "succeeded".into(), "n1".into()]);
        table.row(vec!["bbbb".into(), "queued".into(), String::new()]);
        assert_eq!(
            table.render(),
            "ID    STATE      NODE\na     succeeded  n1\nbbbb  queued\n"
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_ms(12), "12 ms");
        assert_eq!(format_ms(1_500), "1.5 s");
        assert_eq!(format_ms(125_000), "2m 5s");
        assert_eq!(format_ms(3_720_000), "1h 2m");
    }

    #[test]
    fn times_are_utc_seconds() {
        let at = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("valid");
        assert_eq!(format_time(at), "2023-11-14 22:13:20");
    }
}

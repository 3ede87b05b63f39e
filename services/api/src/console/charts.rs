//! Charts as inline SVG, rendered on the server from SQL results: no
//! JavaScript, no library, and they print and screenshot as they show.

use maud::{Markup, html};
use time::OffsetDateTime;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 170.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 22.0;

/// One line of a chart: points are (unix seconds, value).
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// A CSS class giving its colour (`s1` .. `s4`).
    pub class: &'static str,
    pub points: Vec<(f64, f64)>,
}

/// Unix seconds of a timestamp, as a chart's x.
pub fn x_of(at: OffsetDateTime) -> f64 {
    at.unix_timestamp_nanos() as f64 / 1e9
}

/// A round number at least `value` (1, 2, 5 times a power of ten).
pub fn nice_max(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    for step in [1.0, 2.0, 5.0, 10.0] {
        if value <= step * magnitude {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

fn hh_mm(x: f64) -> String {
    match OffsetDateTime::from_unix_timestamp(x as i64) {
        Ok(at) => format!("{:02}:{:02}", at.hour(), at.minute()),
        Err(_) => String::new(),
    }
}

fn number(value: f64, unit: &str) -> String {
    if value >= 10_000.0 {
        format!("{:.0}k{unit}", value / 1000.0)
    } else if value >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0}{unit}")
    } else {
        format!("{value:.1}{unit}")
    }
}

/// The frame shared by both kinds of chart: axes, grid and labels.
fn frame(x0: f64, x1: f64, y_max: f64, unit: &str) -> Markup {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    html! {
        @for i in 0..=2 {
            @let y = TOP + plot_h * f64::from(i) / 2.0;
            @let value = y_max * f64::from(2 - i) / 2.0;
            line.grid x1=(LEFT) x2=(LEFT + plot_w) y1=(y) y2=(y) {}
            text.axis x=(LEFT - 6.0) y=(y + 4.0) text-anchor="end" { (number(value, unit)) }
        }
        text.axis x=(LEFT) y=(HEIGHT - 6.0) { (hh_mm(x0)) }
        text.axis x=(LEFT + plot_w) y=(HEIGHT - 6.0) text-anchor="end" { (hh_mm(x1)) " UTC" }
    }
}

/// A line chart of `series` over `[x0, x1]`, its y axis from 0 to a round
/// number above the highest value (at least `min_max`).
pub fn line_chart(
    label: &str,
    series: &[Series],
    x0: f64,
    x1: f64,
    unit: &str,
    min_max: f64,
) -> Markup {
    let highest = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max);
    let y_max = nice_max(highest.max(min_max));
    let span = (x1 - x0).max(1.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let px = |x: f64| LEFT + (x - x0) / span * plot_w;
    let py = |y: f64| TOP + plot_h - (y / y_max).clamp(0.0, 1.0) * plot_h;
    let empty = series.iter().all(|s| s.points.is_empty());
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(label) {
                (frame(x0, x1, y_max, unit))
                @for s in series {
                    @let path = s.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect::<Vec<_>>().join(" ");
                    polyline class={ "line " (s.class) } points=(path) {}
                    @if s.points.len() == 1 {
                        circle class={ "dot " (s.class) } cx=(px(s.points[0].0)) cy=(py(s.points[0].1)) r="3" {}
                    }
                }
                @if empty {
                    text.axis x=(WIDTH / 2.0) y=(HEIGHT / 2.0) text-anchor="middle" { "no data yet" }
                }
            }
            figcaption {
                (label)
                @for s in series {
                    " " span class={ "key " (s.class) } {} (s.name)
                }
            }
        }
    }
}

/// A stacked bar chart: one bar per x (a bucket of `bucket` seconds
/// starting there), stacked from the series in order.
pub fn bar_chart(label: &str, series: &[Series], x0: f64, x1: f64, bucket: f64) -> Markup {
    let mut totals: std::collections::BTreeMap<i64, f64> = Default::default();
    for s in series {
        for &(x, y) in &s.points {
            *totals.entry(x as i64).or_default() += y;
        }
    }
    let y_max = nice_max(totals.values().copied().fold(0.0, f64::max));
    let span = (x1 - x0).max(1.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let bar_w = (bucket / span * plot_w - 1.0).max(1.0);
    let mut stacked: std::collections::BTreeMap<i64, f64> = Default::default();
    let mut rects = Vec::new();
    for s in series {
        for &(x, y) in &s.points {
            if y <= 0.0 {
                continue;
            }
            let base = stacked.entry(x as i64).or_default();
            let top = *base + y;
            let rx = LEFT + (x - x0) / span * plot_w;
            let ry = TOP + plot_h - top / y_max * plot_h;
            let rh = y / y_max * plot_h;
            rects.push((
                s.class,
                rx,
                ry,
                rh,
                format!("{} {}: {}", hh_mm(x), s.name, y),
            ));
            *base = top;
        }
    }
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(label) {
                (frame(x0, x1, y_max, ""))
                @for (class, x, y, h, title) in &rects {
                    rect class={ "bar " (class) } x=(format!("{x:.1}")) y=(format!("{y:.1}")) width=(format!("{bar_w:.1}")) height=(format!("{h:.1}")) {
                        title { (title) }
                    }
                }
                @if rects.is_empty() {
                    text.axis x=(WIDTH / 2.0) y=(HEIGHT / 2.0) text-anchor="middle" { "nothing finished in this hour" }
                }
            }
            figcaption {
                (label)
                @for s in series {
                    " " span class={ "key " (s.class) } {} (s.name)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxima_are_round() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(42.0), 50.0);
        assert_eq!(nice_max(100.0), 100.0);
        assert_eq!(nice_max(101.0), 200.0);
    }

    #[test]
    fn charts_draw_their_points() {
        let series = [Series {
            name: "cpu".to_owned(),
            class: "s1",
            points: vec![(0.0, 10.0), (60.0, 50.0)],
        }];
        let svg = line_chart("cpu", &series, 0.0, 60.0, "%", 100.0).into_string();
        assert!(svg.contains("<polyline"), "{svg}");
        let svg = bar_chart("done", &series, 0.0, 120.0, 60.0).into_string();
        assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
        let svg = line_chart("none", &[], 0.0, 60.0, "", 1.0).into_string();
        assert!(svg.contains("no data yet"), "{svg}");
    }
}

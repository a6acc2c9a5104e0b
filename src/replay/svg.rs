//! Small inline SVG charts for the replay report: stacked bars over time and
//! bars over categories, with axes, gridlines, a legend and a native tooltip
//! (`<title>`) on every bar. No scripts, no fonts, no network: the markup
//! stands alone inside an HTML page.

use std::fmt::Write;

/// Chart width and height in SVG units (the page scales it to its column).
const W: f64 = 760.0;
const H: f64 = 260.0;
/// Plot margins: left (y labels), right, top (legend), bottom (x labels).
const ML: f64 = 64.0;
const MR: f64 = 12.0;
const MT: f64 = 28.0;
const MB: f64 = 36.0;

/// One series of a chart: its name, colour and a value per bar.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) color: &'static str,
    pub(crate) values: Vec<f64>,
}

/// Escapes text for HTML and SVG.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A "nice" axis step (1, 2 or 5 times a power of ten) for about `ticks` ticks.
fn nice_step(max: f64, ticks: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / ticks;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// A compact axis number: `1.5k`, `2M`, `0.25`.
pub(crate) fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{}G", trim(v / 1e9))
    } else if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_owned()
    }
}

fn open(out: &mut String, title: &str) {
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg">"#,
        t = esc(title)
    );
}

fn legend(out: &mut String, series: &[Series]) {
    let mut x = ML;
    for s in series {
        let _ = write!(
            out,
            r#"<rect x="{x:.1}" y="8" width="10" height="10" fill="{c}"/><text x="{tx:.1}" y="17" class="legend">{n}</text>"#,
            c = s.color,
            tx = x + 14.0,
            n = esc(&s.name)
        );
        x += 24.0 + 7.0 * s.name.chars().count() as f64;
    }
}

/// Y gridlines and labels (written by `label`) up to `max`; returns the axis
/// maximum.
fn y_axis(out: &mut String, max: f64, unit: &str, label: fn(f64) -> String) -> f64 {
    let step = nice_step(max, 4.0);
    let top = (max / step).ceil().max(1.0) * step;
    let ph = H - MT - MB;
    let mut v = 0.0;
    while v <= top + step * 0.01 {
        let y = MT + ph - v / top * ph;
        let _ = write!(
            out,
            r#"<line x1="{ML}" y1="{y:.1}" x2="{x2}" y2="{y:.1}" class="grid"/><text x="{tx}" y="{ty:.1}" class="ylab">{l}</text>"#,
            x2 = W - MR,
            tx = ML - 6.0,
            ty = y + 4.0,
            l = label(v)
        );
        v += step;
    }
    if !unit.is_empty() {
        let _ = write!(
            out,
            r#"<text x="12" y="{y:.1}" class="unit" transform="rotate(-90 12 {y:.1})">{u}</text>"#,
            y = MT + ph / 2.0,
            u = esc(unit)
        );
    }
    top
}

/// Stacked bars, one per label (`labels[i]` names bar `i` on the x axis and in
/// its tooltip). At most ~10 x labels are written, evenly spaced.
pub(crate) fn stacked_bars(
    title: &str,
    unit: &str,
    labels: &[String],
    series: &[Series],
) -> String {
    let n = labels.len();
    let mut out = String::new();
    open(&mut out, title);
    let totals: Vec<f64> = (0..n)
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().fold(0.0, f64::max);
    let top = y_axis(&mut out, max, unit, compact);
    legend(&mut out, series);
    let pw = W - ML - MR;
    let ph = H - MT - MB;
    let slot = pw / n.max(1) as f64;
    let bw = (slot * 0.85).max(1.0);
    for i in 0..n {
        let x = ML + i as f64 * slot + (slot - bw) / 2.0;
        let mut base = 0.0;
        let mut tip = format!("{}: total {}", labels[i], compact(totals[i]));
        for s in series {
            let v = s.values.get(i).copied().unwrap_or(0.0);
            if v > 0.0 {
                let _ = write!(tip, ", {} {}", s.name, compact(v));
            }
        }
        let _ = write!(out, "<g><title>{}</title>", esc(&tip));
        for s in series {
            let v = s.values.get(i).copied().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let h = v / top * ph;
            let y = MT + ph - (base + v) / top * ph;
            let _ = write!(
                out,
                r#"<rect x="{x:.2}" y="{y:.2}" width="{bw:.2}" height="{h:.2}" fill="{c}"/>"#,
                c = s.color
            );
            base += v;
        }
        out.push_str("</g>");
    }
    x_labels(&mut out, labels, slot);
    out.push_str("</svg>");
    out
}

fn x_labels(out: &mut String, labels: &[String], slot: f64) {
    let n = labels.len();
    let every = n.div_ceil(10).max(1);
    for (i, l) in labels.iter().enumerate() {
        if i % every != 0 {
            continue;
        }
        let x = ML + (i as f64 + 0.5) * slot;
        let _ = write!(
            out,
            r#"<text x="{x:.1}" y="{y}" class="xlab">{l}</text>"#,
            y = H - MB + 16.0,
            l = esc(l)
        );
    }
    let _ = write!(
        out,
        r#"<line x1="{ML}" y1="{y}" x2="{x2}" y2="{y}" class="axis"/>"#,
        y = H - MB,
        x2 = W - MR
    );
}

/// One bar per category, with its value written above it.
pub(crate) fn bars(
    title: &str,
    unit: &str,
    labels: &[String],
    values: &[f64],
    color: &'static str,
) -> String {
    let mut out = String::new();
    open(&mut out, title);
    let max = values.iter().copied().fold(0.0, f64::max);
    let top = y_axis(&mut out, max, unit, compact);
    let pw = W - ML - MR;
    let ph = H - MT - MB;
    let n = labels.len().max(1);
    let slot = pw / n as f64;
    let bw = (slot * 0.7).max(1.0);
    for (i, (l, v)) in labels.iter().zip(values).enumerate() {
        let x = ML + i as f64 * slot + (slot - bw) / 2.0;
        let h = v / top * ph;
        let y = MT + ph - h;
        let _ = write!(
            out,
            r#"<g><title>{t}</title><rect x="{x:.2}" y="{y:.2}" width="{bw:.2}" height="{h:.2}" fill="{color}"/><text x="{cx:.1}" y="{ty:.1}" class="val">{vl}</text></g>"#,
            t = esc(&format!("{l}: {}", compact(*v))),
            cx = x + bw / 2.0,
            ty = y - 4.0,
            vl = compact(*v)
        );
    }
    x_labels(&mut out, labels, slot);
    out.push_str("</svg>");
    out
}

/// Lines over the same x labels, for shares (`0..=1` shown as percentages); a
/// value that is not a number leaves a gap (no data there).
pub(crate) fn share_lines(title: &str, labels: &[String], series: &[Series]) -> String {
    let mut out = String::new();
    open(&mut out, title);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0, f64::max)
        .max(0.01);
    let ph = H - MT - MB;
    let pw = W - ML - MR;
    // The axis counts percentage points; values are shares.
    let top = y_axis(&mut out, max * 100.0, "", |v| format!("{}%", trim(v))) / 100.0;
    legend(&mut out, series);
    let n = labels.len().max(1);
    let slot = pw / n as f64;
    for s in series {
        // A value that is not a number (no data in that bucket) breaks the line.
        let mut d = String::new();
        let mut pen_down = false;
        for (i, v) in s.values.iter().enumerate() {
            if !v.is_finite() {
                pen_down = false;
                continue;
            }
            let x = ML + (i as f64 + 0.5) * slot;
            let y = MT + ph - v / top * ph;
            let _ = write!(d, "{}{x:.1},{y:.1} ", if pen_down { "L" } else { "M" });
            pen_down = true;
        }
        let _ = write!(
            out,
            r#"<path d="{d}" fill="none" stroke="{c}" stroke-width="2"><title>{t}</title></path>"#,
            d = d.trim_end(),
            c = s.color,
            t = esc(&s.name)
        );
        for (i, v) in s.values.iter().enumerate() {
            if !v.is_finite() {
                continue;
            }
            let x = ML + (i as f64 + 0.5) * slot;
            let y = MT + ph - v / top * ph;
            let _ = write!(
                out,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{c}"><title>{t}</title></circle>"#,
                c = s.color,
                t = esc(&format!(
                    "{}: {} {:.2}%",
                    labels.get(i).map_or("", String::as_str),
                    s.name,
                    v * 100.0
                ))
            );
        }
    }
    x_labels(&mut out, labels, slot);
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_nice() {
        assert_eq!(nice_step(100.0, 4.0), 50.0);
        assert_eq!(nice_step(7.0, 4.0), 2.0);
        assert_eq!(nice_step(0.0, 4.0), 1.0);
        assert_eq!(compact(1500.0), "1.5k");
        assert_eq!(compact(2_000_000.0), "2M");
        assert_eq!(compact(0.25), "0.25");
    }

    #[test]
    fn charts_are_well_formed_and_escape_text() {
        let labels = vec!["<0h>".to_owned(), "1h".to_owned()];
        let series = vec![Series {
            name: "a&b".into(),
            color: "#123456",
            values: vec![1.0, 3.0],
        }];
        for svg in [
            stacked_bars("t", "requests", &labels, &series),
            bars("t", "clusters", &labels, &[2.0, 0.0], "#000"),
            share_lines("t", &labels, &series),
            share_lines(
                "t",
                &labels,
                &[Series {
                    name: "gap".into(),
                    color: "#000",
                    values: vec![f64::NAN, 0.5],
                }],
            ),
        ] {
            assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
            assert!(!svg.contains("<0h>") && svg.contains("&lt;0h&gt;"), "{svg}");
            assert!(!svg.contains("a&b"), "{svg}");
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        }
        assert!(stacked_bars("t", "", &labels, &series).contains("a&amp;b"));
        // Empty input draws an empty chart, not NaN coordinates.
        let empty = stacked_bars("t", "", &[], &[]);
        assert!(!empty.contains("NaN"), "{empty}");
    }
}

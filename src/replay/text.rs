//! The replay summary as text for a person: aligned tables, whole words, no
//! Rust `Debug` forms. `replay` prints this by default and the JSON form with
//! `--json`.

use std::fmt;

use super::run::{Summary, Tally};

/// `1234567` → `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

fn status_text(code: u16) -> String {
    match http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{code} {reason}"),
        None => code.to_string(),
    }
}

/// A table with a header row; the first column left-aligned, the rest right.
fn table(f: &mut fmt::Formatter<'_>, header: &[&str], rows: &[Vec<String>]) -> fmt::Result {
    let cols = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let line = |f: &mut fmt::Formatter<'_>, cells: &[String]| -> fmt::Result {
        let mut text = String::from(" ");
        for (i, cell) in cells.iter().enumerate().take(cols) {
            let w = width[i];
            if i == 0 {
                text.push_str(&format!(" {cell:<w$}"));
            } else {
                text.push_str(&format!("  {cell:>w$}"));
            }
        }
        writeln!(f, "{}", text.trim_end())
    };
    let head: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    line(f, &head)?;
    for row in rows {
        line(f, row)?;
    }
    Ok(())
}

fn tally_rows(tallies: &[Tally], n: usize) -> Vec<Vec<String>> {
    tallies
        .iter()
        .take(n)
        .map(|t| {
            vec![
                t.id.clone(),
                thousands(u64::from(t.size)),
                thousands(t.requests),
                thousands(t.denied),
                format!("{:.2}", t.max_score),
            ]
        })
        .collect()
}

/// How many rows each top list shows.
const TOP: usize = 5;

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "replayed {} lines in {:.2} s ({} lines/s); {} malformed (skipped)",
            thousands(self.lines),
            self.seconds,
            thousands(self.lines_per_second.round() as u64),
            thousands(self.malformed)
        )?;
        let decided: u64 = self.by_action.values().sum();
        writeln!(f, "\ndecisions by action")?;
        // The ladder's order, mildest first, then anything else.
        let mut actions: Vec<(&String, &u64)> = self.by_action.iter().collect();
        let rank = |a: &str| {
            crate::extensions::Action::ALL
                .iter()
                .position(|x| x.as_str() == a)
                .unwrap_or(usize::MAX)
        };
        actions.sort_by_key(|(a, _)| (rank(a), (*a).clone()));
        let rows: Vec<Vec<String>> = actions
            .iter()
            .map(|(a, n)| vec![(*a).clone(), thousands(**n), share(**n, decided)])
            .collect();
        table(f, &["action", "requests", "share"], &rows)?;
        writeln!(f, "\nresponses by status")?;
        let rows: Vec<Vec<String>> = self
            .by_status
            .iter()
            .map(|(s, n)| vec![status_text(*s), thousands(*n), share(*n, decided)])
            .collect();
        table(f, &["status", "responses", "share"], &rows)?;
        if !self.by_model_group.is_empty() {
            writeln!(f, "\nrequests by model group")?;
            let rows: Vec<Vec<String>> = self
                .by_model_group
                .iter()
                .map(|(g, t)| {
                    vec![
                        g.clone(),
                        thousands(t.requests),
                        thousands(t.denied),
                        thousands(t.denied_by_group),
                    ]
                })
                .collect();
            table(
                f,
                &["model group", "requests", "refused", "by the group's limit"],
                &rows,
            )?;
        }
        let on_tag_rung: u64 = self
            .by_action
            .iter()
            .filter(|(a, _)| *a != "allow")
            .map(|(_, n)| *n)
            .sum();
        write!(f, "\ntagged responses: {}", thousands(self.tagged))?;
        match &self.tagging_off {
            Some(why) => writeln!(
                f,
                " ({why}; {} decisions were on the tag rung or above)",
                thousands(on_tag_rung)
            )?,
            None => writeln!(f)?,
        }
        write!(
            f,
            "\nclusters of 2 or more accounts: {}",
            thousands(self.clusters)
        )?;
        if self.cluster_sizes.is_empty() {
            writeln!(f)?;
        } else {
            // Smallest size class first (the keys sort as text: "10-99" < "2-9").
            let mut classes: Vec<(&String, &u64)> = self.cluster_sizes.iter().collect();
            classes.sort_by_key(|(k, _)| {
                k.split(['-', '+'])
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(u64::MAX)
            });
            let sizes: Vec<String> = classes
                .iter()
                .map(|(k, v)| format!("{} of {k} accounts", thousands(**v)))
                .collect();
            writeln!(f, " ({})", sizes.join(", "))?;
        }
        let header = ["cluster", "accounts", "requests", "denied", "max score"];
        if !self.top_clusters.is_empty() {
            writeln!(f, "\nbusiest clusters")?;
            table(f, &header, &tally_rows(&self.top_clusters, TOP))?;
        }
        if !self.most_suspicious_clusters.is_empty() {
            writeln!(f, "\nmost suspicious clusters")?;
            table(f, &header, &tally_rows(&self.most_suspicious_clusters, TOP))?;
        }
        if !self.top_accounts.is_empty() {
            writeln!(f, "\nbusiest accounts")?;
            table(
                f,
                &["account", "cluster size", "requests", "denied", "max score"],
                &tally_rows(&self.top_accounts, TOP),
            )?;
        }
        if let Some(score) = &self.score {
            writeln!(f, "\nscore against the labels")?;
            write!(f, "{score}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn summary_text_has_no_debug_forms() {
        let mut s = Summary {
            lines: 1200,
            ..Summary::default()
        };
        s.by_action.insert("tag".into(), 200);
        s.by_action.insert("allow".into(), 1000);
        s.by_status.insert(200, 1150);
        s.by_status.insert(429, 50);
        s.tagging_off = Some("no key".into());
        let text = s.to_string();
        assert!(!text.contains('{') && !text.contains('}'), "{text}");
        assert!(text.contains("429 Too Many Requests"), "{text}");
        assert!(text.contains("1,000"), "{text}");
        assert!(
            text.contains("tagged responses: 0 (no key; 200 decisions"),
            "{text}"
        );
        let allow = text.find("allow").expect("allow");
        let tag = text.find("  tag").expect("tag");
        assert!(allow < tag, "ladder order: {text}");
    }
}

//! Reading TOML text into a [`Config`] while collecting *every* problem: syntax
//! errors (the parser recovers and goes on), type errors and unknown fields (each
//! offending entry is set aside and the rest read again, so one mistake never hides
//! the next), then the validation of what was read. Each problem carries its TOML
//! path and the line it is on, and says what the field accepts in words
//! ("a positive integer or \"unlimited\""), not in Rust type names.

use std::ops::Range;

use toml::de::{DeArray, DeTable, DeValue};
use toml::Spanned;

use super::error::{ConfigError, FieldError};
use super::model::Config;

/// Most problems reported from one file; past this the reading stops.
const MAX_PROBLEMS: usize = 200;

/// One problem in a config file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Line (1-based) of the entry concerned, when the entry is in the file (a
    /// missing field or a cross-field rule may have none).
    pub line: Option<usize>,
    /// Column (1-based) of the entry concerned.
    pub column: Option<usize>,
    /// The TOML path and the message.
    pub error: FieldError,
}

impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

/// Folds located problems into a [`ConfigError`]; each message ends with its
/// line, so every caller (reload, the admin API, `serve`) shows where it is.
pub(crate) fn to_config_error(problems: Vec<Located>) -> ConfigError {
    ConfigError {
        errors: problems
            .into_iter()
            .map(|p| match p.line {
                Some(line) => FieldError {
                    path: p.error.path,
                    message: format!("{} (line {line})", p.error.message),
                },
                None => p.error,
            })
            .collect(),
    }
}

/// Reads and validates `text`, returning the config or every problem found in
/// the order: syntax, types and unknown fields, then validation.
pub fn check_toml(text: &str) -> Result<Config, Vec<Located>> {
    let lines = LineIndex::new(text);
    let (doc, syntax) = DeTable::parse_recoverable(text);
    let mut problems: Vec<Located> = syntax
        .iter()
        .take(MAX_PROBLEMS)
        .map(|e| {
            let (line, column) = e.span().map_or((None, None), |s| {
                let (l, c) = lines.line_col(s.start);
                (Some(l), Some(c))
            });
            let path = e
                .span()
                .map(|s| path_at(doc.get_ref(), s.start))
                .unwrap_or_default();
            Located {
                line,
                column,
                error: FieldError {
                    path,
                    message: format!("TOML syntax: {}", first_line(e.message())),
                },
            }
        })
        .collect();
    let mut doc = doc.into_inner();
    let mut removed = Removed::default();
    let mut config = None;
    while problems.len() < MAX_PROBLEMS {
        let de = toml::de::Deserializer::from(Spanned::new(0..text.len(), doc.clone()));
        match serde_path_to_error::deserialize::<_, Config>(de) {
            Ok(c) => {
                config = Some(c);
                break;
            }
            Err(e) => {
                let path = segments(e.path());
                let message = e.into_inner().message().to_owned();
                let Some(step) = set_aside(&mut doc, &path, &message) else {
                    // Nothing left to set aside: report and stop reading.
                    problems.push(locate_missing(&lines, &doc, &removed, &path, &message));
                    break;
                };
                problems.push(Located {
                    line: step.span.as_ref().map(|s| lines.line_col(s.start).0),
                    column: step.span.as_ref().map(|s| lines.line_col(s.start).1),
                    error: FieldError {
                        path: removed.original(&step.path),
                        message: humanize(&message),
                    },
                });
                removed.note(&step);
            }
        }
    }
    let Some(config) = config else {
        return Err(problems);
    };
    if let Err(invalid) = config.validate() {
        let reported: Vec<String> = problems.iter().map(|p| p.error.path.clone()).collect();
        for e in invalid.errors {
            // A field already reported as unreadable took its default: do not
            // also report what validation says about that default.
            if reported
                .iter()
                .any(|p| !p.is_empty() && e.path.starts_with(p.as_str()))
            {
                continue;
            }
            // The entry, or the nearest table around it that is in the file.
            let path = parse_path(&e.path);
            let span = (1..=path.len())
                .rev()
                .find_map(|n| span_of(&doc, &path[..n]));
            problems.push(Located {
                line: span.as_ref().map(|s| lines.line_col(s.start).0),
                column: span.as_ref().map(|s| lines.line_col(s.start).1),
                error: e,
            });
        }
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

/// Where `path` (as validation writes it, e.g. `tiers.default.burst_tokens`) is
/// in `text`: the entry's line and column, or its nearest enclosing table's;
/// `None` when neither is in the text.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let (doc, _) = DeTable::parse_recoverable(text);
    let path = parse_path(path);
    let span = (1..=path.len())
        .rev()
        .find_map(|n| span_of(doc.get_ref(), &path[..n]))?;
    Some(LineIndex::new(text).line_col(span.start))
}

/// A problem with no entry to set aside (a missing required field, or an error
/// at the document's root).
fn locate_missing(
    lines: &LineIndex,
    doc: &DeTable<'_>,
    removed: &Removed,
    path: &[Seg],
    message: &str,
) -> Located {
    let mut full = path.to_vec();
    if let Some(field) = quoted(message, "missing field ") {
        full.push(Seg::Key(field.to_owned()));
    }
    let span = span_of(doc, path);
    Located {
        line: span.as_ref().map(|s| lines.line_col(s.start).0),
        column: span.as_ref().map(|s| lines.line_col(s.start).1),
        error: FieldError {
            path: removed.original(&full),
            message: humanize(message),
        },
    }
}

/// One segment of a TOML path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn segments(path: &serde_path_to_error::Path) -> Vec<Seg> {
    path.iter()
        .filter_map(|s| match s {
            serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
            serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
            serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => {
                None
            }
        })
        .collect()
}

fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let bare = !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if bare {
                    out.push_str(k);
                } else {
                    out.push_str(&format!("{k:?}"));
                }
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Parses a dotted path as validation writes it (`quota.bands[0].at_least`,
/// `tiers.default.models."gpt-4.1".tokens_per_day`): a quoted key may hold
/// dots, and `\"` and `\\` inside it stand for `"` and `\`.
fn parse_path(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    let mut chars = path.chars().peekable();
    let mut key = String::new();
    let mut quoted = false;
    let flush = |key: &mut String, quoted: &mut bool, out: &mut Vec<Seg>| {
        if !key.is_empty() || *quoted {
            out.push(Seg::Key(std::mem::take(key)));
        }
        *quoted = false;
    };
    while let Some(c) = chars.next() {
        match c {
            '"' if key.is_empty() && !quoted => {
                quoted = true;
                while let Some(q) = chars.next() {
                    match q {
                        '\\' => {
                            if let Some(e) = chars.next() {
                                key.push(e);
                            }
                        }
                        '"' => break,
                        other => key.push(other),
                    }
                }
            }
            '.' => flush(&mut key, &mut quoted, &mut out),
            '[' => {
                flush(&mut key, &mut quoted, &mut out);
                let mut digits = String::new();
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                    digits.push(d);
                }
                if let Ok(i) = digits.parse() {
                    out.push(Seg::Index(i));
                }
            }
            other => key.push(other),
        }
    }
    flush(&mut key, &mut quoted, &mut out);
    out
}

/// What [`set_aside`] removed.
struct Step {
    path: Vec<Seg>,
    span: Option<Range<usize>>,
}

/// Removes the entry an error is about so the next reading gets past it.
/// Unknown fields are removed by name; a value of the wrong type is removed (its
/// field takes its default); a missing required field removes its whole table
/// (reported once). `None` when there is nothing to remove.
fn set_aside(doc: &mut DeTable<'_>, path: &[Seg], message: &str) -> Option<Step> {
    if let Some(field) = quoted(message, "unknown field ") {
        // The error's path may or may not already end at the unknown key.
        let parent: &[Seg] = match path.last() {
            Some(Seg::Key(k)) if k == field => &path[..path.len() - 1],
            _ => path,
        };
        let mut full = parent.to_vec();
        full.push(Seg::Key(field.to_owned()));
        let table = table_at(doc, parent)?;
        let (key, _) = table.get_key_value(field)?;
        let span = Some(key.span());
        table.remove(field)?;
        return Some(Step { path: full, span });
    }
    if quoted(message, "missing field ").is_some() {
        // Remove the table that lacks it, so its parent's default (if any) applies.
        let span = span_of(doc, path);
        remove_at(doc, path)?;
        return Some(Step {
            path: path.to_vec(),
            span,
        });
    }
    // A bad value: remove the deepest entry on the path that exists.
    let mut upto = path.len();
    while upto > 0 {
        if span_of(doc, &path[..upto]).is_some() {
            let span = span_of(doc, &path[..upto]);
            remove_at(doc, &path[..upto])?;
            return Some(Step {
                path: path[..upto].to_vec(),
                span,
            });
        }
        upto -= 1;
    }
    None
}

fn table_at<'a, 'i>(doc: &'a mut DeTable<'i>, path: &[Seg]) -> Option<&'a mut DeTable<'i>> {
    let mut table = doc;
    let mut iter = path.iter();
    while let Some(seg) = iter.next() {
        let Seg::Key(k) = seg else { return None };
        let value = table.get_mut(k.as_str())?.get_mut();
        table = match value {
            DeValue::Table(t) => t,
            DeValue::Array(a) => {
                let Some(Seg::Index(i)) = iter.next() else {
                    return None;
                };
                match a.get_mut(*i)?.get_mut() {
                    DeValue::Table(t) => t,
                    _ => return None,
                }
            }
            _ => return None,
        };
    }
    Some(table)
}

fn remove_at(doc: &mut DeTable<'_>, path: &[Seg]) -> Option<()> {
    let (last, parent) = path.split_last()?;
    match last {
        Seg::Key(k) => {
            table_at(doc, parent)?.remove(k.as_str())?;
        }
        Seg::Index(i) => {
            let (Seg::Key(array_key), table_path) = parent.split_last()? else {
                return None;
            };
            let table = table_at(doc, table_path)?;
            let DeValue::Array(a) = table.get_mut(array_key.as_str())?.get_mut() else {
                return None;
            };
            if *i >= a.len() {
                return None;
            }
            let mut kept = DeArray::new();
            for (j, v) in a.iter().enumerate() {
                if j != *i {
                    kept.push(v.clone());
                }
            }
            *a = kept;
        }
    }
    Some(())
}

/// The span of the entry at `path`: the key's for a table entry, the element's
/// for an array element.
fn span_of(doc: &DeTable<'_>, path: &[Seg]) -> Option<Range<usize>> {
    let mut table = doc;
    let mut span = None;
    let mut iter = path.iter().peekable();
    while let Some(seg) = iter.next() {
        let Seg::Key(k) = seg else { return None };
        let (key, value) = table.get_key_value(k.as_str())?;
        span = Some(key.span());
        match value.get_ref() {
            DeValue::Table(t) => table = t,
            DeValue::Array(a) => match iter.peek() {
                Some(Seg::Index(i)) => {
                    iter.next();
                    let el = a.get(*i)?;
                    span = Some(el.span());
                    match el.get_ref() {
                        DeValue::Table(t) => table = t,
                        _ => return iter.next().is_none().then_some(span).flatten(),
                    }
                }
                _ => return iter.next().is_none().then_some(span).flatten(),
            },
            _ => return iter.next().is_none().then_some(span).flatten(),
        }
    }
    span
}

/// The path of the deepest entry whose value spans `offset` (for syntax errors).
fn path_at(doc: &DeTable<'_>, offset: usize) -> String {
    let mut path = Vec::new();
    let mut table = doc;
    'walk: loop {
        for (k, v) in table.iter() {
            let inside = k.span().contains(&offset) || v.span().contains(&offset);
            if !inside {
                continue;
            }
            path.push(Seg::Key(k.get_ref().to_string()));
            if let DeValue::Table(t) = v.get_ref() {
                table = t;
                continue 'walk;
            }
            break 'walk;
        }
        break;
    }
    render(&path)
}

/// Array elements removed so far, to report later errors with the indices the
/// file has (the reader sees the array without the removed elements).
#[derive(Default)]
struct Removed {
    elements: Vec<(Vec<Seg>, usize)>,
}

impl Removed {
    fn note(&mut self, step: &Step) {
        if matches!(step.path.last(), Some(Seg::Index(_))) {
            let original = self.original_segments(&step.path);
            if let Some((Seg::Index(orig), parent)) = original.split_last() {
                self.elements.push((parent.to_vec(), *orig));
            }
        }
    }

    fn original_segments(&self, path: &[Seg]) -> Vec<Seg> {
        let mut out: Vec<Seg> = Vec::with_capacity(path.len());
        for seg in path {
            match seg {
                Seg::Index(i) => {
                    let mut removed: Vec<usize> = self
                        .elements
                        .iter()
                        .filter(|(p, _)| *p == out)
                        .map(|(_, r)| *r)
                        .collect();
                    removed.sort_unstable();
                    let mut idx = *i;
                    for r in removed {
                        if r <= idx {
                            idx += 1;
                        }
                    }
                    out.push(Seg::Index(idx));
                }
                Seg::Key(_) => out.push(seg.clone()),
            }
        }
        out
    }

    fn original(&self, path: &[Seg]) -> String {
        render(&self.original_segments(path))
    }
}

/// The text between the backticks after `prefix` in a serde message
/// (`unknown field `x`, expected …` → `x`).
fn quoted<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split('`').next()
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s).trim()
}

/// Rust and serde type names in a message, in words an operator knows.
const WORDS: [(&str, &str); 21] = [
    (
        "invalid socket address syntax",
        "not an address with a port, like \"127.0.0.1:8080\" or \"[::1]:8080\"",
    ),
    (
        "invalid IP address syntax",
        "not an IP address, like \"10.0.0.1\" or \"::1\"",
    ),
    ("expected u8", "expected a whole number from 0 to 255"),
    ("expected u16", "expected a whole number from 0 to 65535"),
    ("expected u32", "expected a whole number (0 or more)"),
    ("expected u64", "expected a whole number (0 or more)"),
    ("expected usize", "expected a whole number (0 or more)"),
    ("expected i64", "expected a whole number"),
    ("expected f32", "expected a number"),
    ("expected f64", "expected a number"),
    ("expected a boolean", "expected true or false"),
    ("expected a sequence", "expected an array (`[...]`)"),
    ("expected a map", "expected a table"),
    ("expected a borrowed string", "expected a string"),
    (
        "expected socket address",
        "expected an address with a port, like \"127.0.0.1:8080\"",
    ),
    (
        "expected IP network",
        "expected a network in CIDR form, like \"10.0.0.0/8\"",
    ),
    ("expected a path string", "expected a file path"),
    (
        "expected a duration",
        "expected a duration like \"30s\" or \"2m 30s\"",
    ),
    ("expected an integer", "expected a whole number"),
    ("expected a string", "expected a string (in double quotes)"),
    ("expected option", "expected a value"),
];

/// Turns a serde message into plain words: type names become what a field
/// accepts, and `struct X` becomes "a table".
fn humanize(message: &str) -> String {
    let mut m = first_line(message).to_owned();
    if let Some(rest) = m.strip_prefix("unknown field ") {
        // `unknown field `x`, expected one of `a`, `b`` → keep, but say it plainly.
        let (field, accepted) = match rest.split_once(", expected ") {
            Some((f, a)) => (f, Some(a)),
            None => (rest, None),
        };
        return match accepted {
            Some(a) => format!("unknown field {field}; this table accepts {a}"),
            None => format!("unknown field {field}"),
        };
    }
    if let Some(i) = m.find("expected struct ") {
        m.replace_range(i.., "expected a table");
    }
    for (from, to) in WORDS {
        if let Some(i) = m.find(from) {
            let end = i + from.len();
            // Whole words only: `expected u64` but not `expected u640`.
            let boundary = m[end..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_ascii_alphanumeric());
            if boundary {
                m.replace_range(i..end, to);
                break;
            }
        }
    }
    // `invalid type: string "x", expected y` → `expected y, got string "x"`:
    // what the field accepts first.
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((got, accepted)) = m
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once(", expected "))
        {
            return format!("expected {accepted}, got {got}");
        }
    }
    m
}

/// Byte offsets to lines and columns.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        Self { starts }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        (line, offset - self.starts[line - 1] + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<Located> {
        check_toml(text).expect_err("invalid")
    }

    #[test]
    fn unknown_negative_and_string_limits_are_all_reported_with_paths_and_lines() {
        let text = "[identity]\nsecret = \"9f2c41d0b7e85a36c1f04e9d2b7a8c55\"\n\n[tiers.default]\nbogus_field = 1\nrequests_per_minute = -5\ntokens_per_minute = \"lots\"\n";
        let p = problems(text);
        let got: Vec<(Option<usize>, &str)> =
            p.iter().map(|l| (l.line, l.error.path.as_str())).collect();
        assert_eq!(
            got,
            [
                (Some(5), "tiers.default.bogus_field"),
                (Some(6), "tiers.default.requests_per_minute"),
                (Some(7), "tiers.default.tokens_per_minute"),
            ],
            "{p:#?}"
        );
        assert!(
            p[0].error.message.contains("unknown field `bogus_field`"),
            "{}",
            p[0].error.message
        );
        assert!(
            p[0].error.message.contains("requests_per_minute"),
            "lists what the table accepts"
        );
        for l in &p[1..] {
            assert!(
                l.error
                    .message
                    .contains("a positive integer or \"unlimited\""),
                "{}",
                l.error.message
            );
            assert!(!l.error.message.contains("untagged"), "{}", l.error.message);
        }
        assert!(p[1].error.message.contains("-5"), "{}", p[1].error.message);
        assert!(
            p[2].error.message.contains("lots"),
            "{}",
            p[2].error.message
        );
    }

    #[test]
    fn type_errors_come_before_validation_errors_and_do_not_repeat() {
        let text = "[identity]\n\n[quota]\ncluster_exponent = 1.5\ndefault_max_output_tokens = \"many\"\n[server]\nlisten = \"nowhere\"\nupstream_timeout = \"soon\"\n";
        let p = problems(text);
        let paths: Vec<&str> = p.iter().map(|l| l.error.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "quota.default_max_output_tokens",
                "server.listen",
                "server.upstream_timeout",
                "identity.secret",
                "quota.cluster_exponent",
            ],
            "{p:#?}"
        );
        assert_eq!(p[0].line, Some(5));
        assert!(
            p[0].error.message.contains("whole number"),
            "{}",
            p[0].error.message
        );
        assert!(
            p[1].error.message.contains("127.0.0.1:8080"),
            "{}",
            p[1].error.message
        );
        assert_eq!(p[3].line, Some(1), "a missing field points at its table");
        assert_eq!(p[4].line, Some(4), "validation errors are located too");
    }

    #[test]
    fn syntax_errors_do_not_hide_the_rest() {
        let text = "[identity]\nsecret = \"9f2c41d0b7e85a36c1f04e9d2b7a8c55\"\n[tiers.default]\nrequests_per_minute = = 5\ntokens_per_minute = \"lots\"\n";
        let p = problems(text);
        assert!(p[0].error.message.starts_with("TOML syntax"), "{p:#?}");
        assert_eq!(p[0].line, Some(4));
        assert!(
            p.iter()
                .any(|l| l.error.path == "tiers.default.tokens_per_minute" && l.line == Some(5)),
            "{p:#?}"
        );
    }

    #[test]
    fn array_elements_keep_their_file_indices() {
        let text = "[identity]\nsecret = \"9f2c41d0b7e85a36c1f04e9d2b7a8c55\"\n[quota]\nbands = [{ at_least = 0.0, multiplier = 1.0 }, { at_least = \"x\", multiplier = 0.5 }, { at_least = 0.9, multiplier = \"y\" }]\n";
        let p = problems(text);
        let paths: Vec<&str> = p.iter().map(|l| l.error.path.as_str()).collect();
        assert!(paths.contains(&"quota.bands[1].at_least"), "{p:#?}");
        assert!(paths.contains(&"quota.bands[2].multiplier"), "{p:#?}");
    }

    #[test]
    fn a_missing_required_section_is_reported_and_reading_stops() {
        let p = problems("[tiers.default]\nrequests_per_minute = 5\nfoo = 1\n");
        let paths: Vec<&str> = p.iter().map(|l| l.error.path.as_str()).collect();
        assert!(paths.contains(&"tiers.default.foo"), "{p:#?}");
        assert!(paths.contains(&"identity"), "{p:#?}");
    }

    #[test]
    fn hostile_input_is_bounded() {
        let mut text =
            String::from("[identity]\nsecret = \"9f2c41d0b7e85a36c1f04e9d2b7a8c55\"\n[guard]\n");
        for i in 0..1000 {
            text.push_str(&format!("x{i} = 1\n"));
        }
        let p = problems(&text);
        assert_eq!(p.len(), MAX_PROBLEMS);
        for garbage in [
            "\u{0}\u{1}[[[",
            "a = [",
            "[a]\n[a]\n",
            "= = =",
            "\"\"\"",
            "[identity\nsecret=",
        ] {
            let _ = check_toml(garbage);
        }
    }

    #[test]
    fn lines_and_columns() {
        let idx = LineIndex::new("ab\ncd\n\nef");
        assert_eq!(idx.line_col(0), (1, 1));
        assert_eq!(idx.line_col(4), (2, 2));
        assert_eq!(idx.line_col(6), (3, 1));
        assert_eq!(idx.line_col(8), (4, 2));
    }

    #[test]
    fn paths_render_and_parse_back() {
        let p = vec![
            Seg::Key("quota".into()),
            Seg::Key("bands".into()),
            Seg::Index(2),
            Seg::Key("at_least".into()),
        ];
        assert_eq!(render(&p), "quota.bands[2].at_least");
        assert_eq!(parse_path("quota.bands[2].at_least"), p);
        assert_eq!(
            parse_path(r#"tiers.default.models."gpt-4.1".tokens_per_day"#),
            vec![
                Seg::Key("tiers".into()),
                Seg::Key("default".into()),
                Seg::Key("models".into()),
                Seg::Key("gpt-4.1".into()),
                Seg::Key("tokens_per_day".into()),
            ]
        );
        assert_eq!(
            locate(
                "[identity]\nsecret = \"s\"\n[tiers.default.models.\"gpt-4.1\"]\nrequests_per_minute = 0\n",
                r#"tiers.default.models."gpt-4.1".requests_per_minute"#
            ),
            Some((4, 1))
        );
        assert_eq!(
            render(&[Seg::Key("tiers".into()), Seg::Key("a b".into())]),
            "tiers.\"a b\""
        );
    }
}

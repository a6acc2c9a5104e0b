//! `[audit]`: the audit log's file and what it records (written by
//! `distill_guard::audit`).

use serde::{Deserialize, Serialize};

use super::Errors;

/// `[audit]`: where and what to audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// A file to append JSON lines to, or `"-"` for standard output. Absent: no
    /// audit log.
    pub path: Option<String>,
    /// Audit every decision, not only the notable ones.
    pub all: bool,
    /// Rotate the file to `<path>.1` (replacing an older one) once it would grow
    /// beyond this many bytes; 0 never rotates. Ignored for stdout.
    pub max_bytes: u64,
    /// Records queued for the writer before new ones are dropped.
    pub queue: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            path: None,
            all: false,
            max_bytes: 100 * 1024 * 1024,
            queue: 10_000,
        }
    }
}

impl AuditConfig {
    /// Adds every problem of this section to `errors`.
    pub(crate) fn validate(&self, errors: &mut Errors) {
        if let Some(p) = &self.path {
            if p.is_empty() {
                errors.push("audit.path", "must not be empty (use \"-\" for stdout)");
            } else if p != "-" && p.ends_with('/') {
                errors.push("audit.path", "must name a file, not a directory");
            }
        }
        if self.queue == 0 || self.queue > 10_000_000 {
            errors.push("audit.queue", "must be between 1 and 10000000");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let mut e = Errors::default();
        AuditConfig {
            path: Some(String::new()),
            queue: 0,
            ..AuditConfig::default()
        }
        .validate(&mut e);
        let paths: Vec<_> = e.0.iter().map(|e| e.path.clone()).collect();
        assert_eq!(paths, ["audit.path", "audit.queue"]);
    }
}

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use distill_guard::config::{check_toml, locate, Located};
use serde_json::json;

use super::{CliError, FileAction};

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The config file.
    file: std::path::PathBuf,
    /// Print the result as JSON (`valid`, `errors` and `warnings`, each with
    /// `path`, `line`, `column` and `message`).
    #[arg(long)]
    json: bool,
    /// Exit 1 on warnings too (placeholder or short secrets).
    #[arg(long)]
    deny_warnings: bool,
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn located_json(l: &Located) -> serde_json::Value {
    json!({"path": l.error.path, "line": l.line, "column": l.column, "message": l.error.message})
}

/// `FILE:LINE: error: PATH: message`, the shape editors and `grep` understand.
fn human_line(file: &Path, kind: &str, l: &Located) -> String {
    let at = match l.line {
        Some(line) => format!("{}:{line}", file.display()),
        None => file.display().to_string(),
    };
    format!("{at}: {kind}: {}", l.error)
}

pub(crate) fn run(args: CheckArgs) -> Result<ExitCode, CliError> {
    let file = &args.file;
    let text = std::fs::read_to_string(file).map_err(CliError::file(FileAction::Read, file))?;
    let (errors, warnings) = match check_toml(&text) {
        Ok(config) => {
            let warnings: Vec<Located> = config
                .warnings()
                .into_iter()
                .map(|w| {
                    let at = locate(&text, &w.path);
                    Located {
                        line: at.map(|a| a.0),
                        column: at.map(|a| a.1),
                        error: w,
                    }
                })
                .collect();
            (Vec::new(), warnings)
        }
        Err(errors) => (errors, Vec::new()),
    };
    let failed = !errors.is_empty() || (args.deny_warnings && !warnings.is_empty());
    if args.json {
        let out = json!({
            "file": file.display().to_string(),
            "valid": errors.is_empty(),
            "errors": errors.iter().map(located_json).collect::<Vec<_>>(),
            "warnings": warnings.iter().map(located_json).collect::<Vec<_>>(),
        });
        println!("{out:#}");
    } else {
        for e in &errors {
            println!("{}", human_line(file, "error", e));
        }
        for w in &warnings {
            println!("{}", human_line(file, "warning", w));
        }
        match (errors.len(), warnings.len()) {
            (0, 0) => println!("{}: ok", file.display()),
            (0, w) => println!("{}: ok, with {}", file.display(), plural(w, "warning")),
            (e, _) => println!(
                "{}: invalid, {} (nothing was changed; fix them and run check-config again)",
                file.display(),
                plural(e, "error")
            ),
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

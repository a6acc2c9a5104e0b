use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use distill_guard::config::Config;
use distill_guard::watermark::Watermarker;

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Config file with the `[[watermark.keys]]` that signed the tag.
    #[arg(long, short)]
    config: PathBuf,
    /// The tag: a header value, an SSE record, or text containing `dg1.…`
    /// (`-` or absent: read standard input).
    tag: Option<String>,
    /// Print the tag's fields as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct TraceArgs {
    /// Config file with the watermark keys (and `[admin]`, for `--server`).
    #[arg(long, short)]
    config: PathBuf,
    /// File with the leaked text (`-` or absent: standard input).
    file: Option<PathBuf>,
    /// Also search a live server's trace-back index over its admin listener
    /// (e.g. `http://127.0.0.1:9090`), authenticated with the config's admin token.
    #[arg(long)]
    server: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

fn stdin_text() -> Result<String, String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    Ok(s)
}

fn watermarker(config: &PathBuf) -> Result<Watermarker, String> {
    let cfg = Config::load(config).map_err(|e| e.to_string())?;
    Watermarker::from_config(&cfg.watermark).map_err(|e| e.to_string())
}

pub(crate) fn verify(args: VerifyArgs) -> Result<ExitCode, String> {
    let marker = watermarker(&args.config)?;
    let input = match args.tag.as_deref() {
        None | Some("-") => stdin_text()?,
        Some(t) => t.to_owned(),
    };
    match marker.verify(input.trim()) {
        Ok(fields) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&fields).map_err(|e| e.to_string())?
                );
            } else {
                println!("valid: {fields:?}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"valid": false, "error": e.to_string()})
                );
            } else {
                eprintln!("invalid: {e}");
            }
            Ok(ExitCode::from(1))
        }
    }
}

pub(crate) fn trace(args: TraceArgs) -> Result<ExitCode, String> {
    let marker = watermarker(&args.config)?;
    let text = match &args.file {
        None => stdin_text()?,
        Some(p) if p.as_os_str() == "-" => stdin_text()?,
        Some(p) => {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?
        }
    };
    let mut result = marker.trace(&text);
    if result.is_none() {
        if let Some(server) = &args.server {
            result = remote_trace(&args.config, server, &text)?;
        }
    }
    match result {
        Some(r) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?
                );
            } else {
                println!("{r:?}");
            }
            Ok(ExitCode::SUCCESS)
        }
        None => {
            if args.json {
                println!("{}", serde_json::json!({"found": false}));
            } else {
                eprintln!("no mark or indexed response matches this text");
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// Asks a live server's admin listener to search its trace-back index.
fn remote_trace(
    _config: &PathBuf,
    server: &str,
    _text: &str,
) -> Result<Option<distill_guard::watermark::TraceResult>, String> {
    Err(format!(
        "searching a live server's index needs its admin listener ({server}); not available in this build"
    ))
}

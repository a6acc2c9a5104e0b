use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use distill_guard::watermark::Watermarker;

/// Longest input read from stdin: tags are short; anything longer is not a tag.
const MAX_INPUT: u64 = 64 * 1024;

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Config file whose `[watermark]` keys verify the tag.
    #[arg(long, short)]
    config: PathBuf,
    /// The tag, a `x-distill-guard-tag` header line or an SSE record line; `-` or
    /// absent reads it from stdin.
    tag: Option<String>,
    /// Print the tag's fields as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: VerifyArgs) -> Result<ExitCode, String> {
    let config = super::load_config(Some(&args.config))?;
    let marker = Watermarker::from_config(&config.watermark).map_err(|e| e.to_string())?;
    let input = match args.tag.as_deref() {
        Some(t) if t != "-" => t.to_owned(),
        _ => {
            let mut s = String::new();
            std::io::stdin()
                .take(MAX_INPUT)
                .read_to_string(&mut s)
                .map_err(|e| format!("cannot read the tag from stdin: {e}"))?;
            s
        }
    };
    match marker.verify(input.trim()) {
        Ok(fields) => {
            if args.json {
                let text = serde_json::to_string(&fields)
                    .map_err(|e| format!("cannot print the tag's fields: {e}"))?;
                println!("{text}");
            } else {
                println!(
                    "valid: key {}, account {}, issued at {} ms",
                    fields.key_id, fields.account, fields.issued_at_ms
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("invalid: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

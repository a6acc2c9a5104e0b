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
                    serde_json::to_string(&fields).map_err(|e| e.to_string())?
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
    let mut result = match marker.trace(&text) {
        Some(r) => Some(serde_json::to_value(&r).map_err(|e| e.to_string())?),
        None => None,
    };
    if result.is_none() {
        if let Some(server) = &args.server {
            result = remote_trace(&args.config, server, &text)?;
        }
    }
    match result {
        Some(r) => {
            if args.json {
                println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
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

/// Longest excerpt sent to a live server (the query string carries it).
const REMOTE_TEXT_BYTES: usize = 8_000;

/// Percent-encodes a query value (everything but RFC 3986 unreserved bytes).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Asks a live server's admin listener (`GET /api/trace`) to search its
/// trace-back index, with the config's admin token.
fn remote_trace(
    config: &PathBuf,
    server: &str,
    text: &str,
) -> Result<Option<serde_json::Value>, String> {
    let cfg = Config::load(config).map_err(|e| e.to_string())?;
    let token = cfg
        .admin
        .resolve_token()
        .ok_or("the config has no [admin] token (token or token_env) to query a server with")?;
    let mut cut = text.len().min(REMOTE_TEXT_BYTES);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let url = format!(
        "{}/api/trace?limit=1&text={}",
        server.trim_end_matches('/'),
        encode(&text[..cut])
    );
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("bad --server URL {server}: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let body = rt.block_on(async {
        use http_body_util::BodyExt;
        let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let req = http::Request::get(uri)
            .header("authorization", format!("Bearer {token}"))
            .body(http_body_util::Empty::new())
            .map_err(|e| e.to_string())?;
        let res = tokio::time::timeout(std::time::Duration::from_secs(30), client.request(req))
            .await
            .map_err(|_| format!("{server} did not answer within 30 s"))?
            .map_err(|e| format!("cannot reach {server}: {e}"))?;
        let status = res.status();
        let bytes = res
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer from {server}: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "{server} answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        Ok(bytes)
    })?;
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("{server} answered non-JSON: {e}"))?;
    let first = v
        .get("hits")
        .and_then(|h| h.get(0))
        .and_then(|h| h.get("detail"))
        .cloned();
    match first {
        Some(detail) if detail.get("account").is_some() => Ok(Some(detail)),
        Some(_) => Err(format!("{server} answered an unexpected trace result")),
        None => Ok(None),
    }
}

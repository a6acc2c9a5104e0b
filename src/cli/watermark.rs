use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use distill_guard::watermark::tag::{TagFields, TagKind};
use distill_guard::watermark::Watermarker;

use super::{CliError, FileAction, ServerProblem};

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

fn stdin_text() -> Result<String, CliError> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(CliError::Stdin)?;
    Ok(s)
}

fn watermarker(config: &Path) -> Result<Watermarker, CliError> {
    let cfg = super::load_file(config)?;
    Ok(Watermarker::from_config(&cfg.watermark)?)
}

pub(crate) fn verify(args: VerifyArgs) -> Result<ExitCode, CliError> {
    let marker = watermarker(&args.config)?;
    let input = match args.tag.as_deref() {
        None | Some("-") => stdin_text()?,
        Some(t) => t.to_owned(),
    };
    match marker.verify(input.trim()) {
        Ok(fields) => {
            if args.json {
                println!("{}", serde_json::to_string(&fields)?);
            } else {
                print!("{}", verify_text(&fields));
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

pub(crate) fn trace(args: TraceArgs) -> Result<ExitCode, CliError> {
    let marker = watermarker(&args.config)?;
    let text = match &args.file {
        None => stdin_text()?,
        Some(p) if p.as_os_str() == "-" => stdin_text()?,
        Some(p) => std::fs::read_to_string(p).map_err(CliError::file(FileAction::Read, p))?,
    };
    let mut result = match marker.trace(&text) {
        Some(r) => Some(serde_json::to_value(&r)?),
        None => None,
    };
    if let Some(server) = &args.server {
        match result.as_mut() {
            None => result = remote_trace(&args.config, server, &text)?,
            Some(r) => complete_prefix(&args.config, server, r)?,
        }
    }
    match result {
        Some(r) => {
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print!("{}", trace_text(&r));
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

/// Aligned `name  value` lines.
fn rows(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("  {k:<width$}  {v}\n"))
        .collect()
}

fn rfc3339(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// `verify`'s readable answer.
pub(crate) fn verify_text(f: &TagFields) -> String {
    let kind = match f.kind {
        TagKind::Header => "header tag",
        TagKind::Body => "JSON body tag",
        TagKind::StreamStart => "stream start tag",
        TagKind::StreamEnd => "stream end tag",
    };
    let mut r = vec![
        ("account", f.account.to_string()),
        ("cluster", f.cluster.to_string()),
        ("request id", f.request_id.to_string()),
        (
            "issued at",
            format!("{} ({} ms)", rfc3339(f.issued_at_ms), f.issued_at_ms),
        ),
        (
            "text mark",
            if f.text_marked { "yes" } else { "no" }.to_owned(),
        ),
    ];
    if let Some(d) = f.text_digest {
        r.push(("text digest", d.to_string()));
    }
    if let Some(d) = f.stream_digest {
        r.push((
            "stream digest",
            format!("{d} over {} bytes", f.stream_bytes.unwrap_or(0)),
        ));
    }
    format!("valid {kind}, signed with key {}\n{}", f.key_id, rows(&r))
}

/// `trace`'s readable answer (from the JSON form, which a server's answer has too).
pub(crate) fn trace_text(r: &serde_json::Value) -> String {
    let s = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    let account = s("account");
    let method = s("method");
    let confidence = r.get("confidence").and_then(|v| v.as_f64()).unwrap_or(0.0);
    let how = match method.as_str() {
        "mark" => "decoded from its text mark",
        "index" => "matched in the server's trace-back index",
        _ => "traced",
    };
    let mut out = vec![
        (
            "account",
            if account.len() < 32 {
                format!("{account} (first {} of 32 hex digits: the mark carries only these; `--server` or GET /api/accounts/{account} on the admin listener completes it)", account.len())
            } else {
                account.clone()
            },
        ),
        (
            "cluster",
            match s("cluster") {
                c if c.len() < 34 => {
                    format!("{c} (first {} of 32 hex digits)", c.len().saturating_sub(2))
                }
                c => c,
            },
        ),
        (
            "served",
            if method == "mark" && r.get("request_id").is_none_or(|v| v.is_null()) {
                format!("in the hour starting {}", s("issued_at"))
            } else {
                s("issued_at")
            },
        ),
        ("confidence", format!("{confidence:.2}")),
    ];
    if let Some(id) = r.get("request_id").and_then(|v| v.as_str()) {
        out.push(("request id", id.to_owned()));
    }
    if let Some(k) = r.get("key_id").and_then(|v| v.as_str()) {
        out.push(("key", k.to_owned()));
    }
    format!("traced: {how}\n{}", rows(&out))
}

/// How long a live server has to answer.
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

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

/// `GET {server}{path}` on a live server's admin listener with the config's
/// admin token: the status and the JSON answer.
fn admin_get(
    config: &Path,
    server: &str,
    path: &str,
) -> Result<(http::StatusCode, serde_json::Value), CliError> {
    let cfg = super::load_file(config)?;
    let token = cfg.admin.resolve_token().ok_or(CliError::NoAdminToken)?;
    let problem = |problem| CliError::server(server, problem);
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let uri: http::Uri = url.parse().map_err(|e| problem(ServerProblem::Url(e)))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::system("start the runtime"))?;
    let (status, body) = rt.block_on(async {
        use http_body_util::BodyExt;
        let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let req = http::Request::get(uri)
            .header("authorization", format!("Bearer {token}"))
            .body(http_body_util::Empty::new())
            .map_err(|e| problem(ServerProblem::Request(e)))?;
        let res = tokio::time::timeout(ANSWER_TIMEOUT, client.request(req))
            .await
            .map_err(|_| problem(ServerProblem::Timeout(ANSWER_TIMEOUT.as_secs())))?
            .map_err(|e| problem(ServerProblem::Unreachable(e)))?;
        let status = res.status();
        let bytes = res
            .into_body()
            .collect()
            .await
            .map_err(|e| problem(ServerProblem::Body(e)))?
            .to_bytes();
        Ok::<_, CliError>((status, bytes))
    })?;
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|source| {
        problem(ServerProblem::NotJson {
            status,
            source,
            start: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        })
    })?;
    Ok((status, v))
}

/// Asks a live server's admin listener (`GET /api/trace`) to search its
/// trace-back index.
fn remote_trace(
    config: &Path,
    server: &str,
    text: &str,
) -> Result<Option<serde_json::Value>, CliError> {
    let mut cut = text.len().min(REMOTE_TEXT_BYTES);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let path = format!("/api/trace?limit=1&text={}", encode(&text[..cut]));
    let (status, v) = admin_get(config, server, &path)?;
    if !status.is_success() {
        return Err(CliError::server(
            server,
            ServerProblem::Status { status, answer: v },
        ));
    }
    let first = v
        .get("hits")
        .and_then(|h| h.get(0))
        .and_then(|h| h.get("detail"))
        .cloned();
    match first {
        Some(detail) if detail.get("account").is_some() => Ok(Some(detail)),
        Some(_) => Err(CliError::server(server, ServerProblem::UnexpectedTrace)),
        None => Ok(None),
    }
}

/// Completes a text mark's account prefix from a live server
/// (`GET /api/accounts/{prefix}`); leaves the result as it is when the server
/// does not know a unique account with that prefix (and says why on stderr).
fn complete_prefix(
    config: &Path,
    server: &str,
    result: &mut serde_json::Value,
) -> Result<(), CliError> {
    let Some(prefix) = result.get("account").and_then(|a| a.as_str()) else {
        return Ok(());
    };
    if prefix.len() >= 32 {
        return Ok(());
    }
    let (status, v) = admin_get(config, server, &format!("/api/accounts/{prefix}"))?;
    if !status.is_success() {
        let why = v.get("error").and_then(|e| e.as_str()).unwrap_or("");
        eprintln!("{server} could not complete the account {prefix}: {why}");
        return Ok(());
    }
    if let Some(full) = v.get("account").and_then(|a| a.as_str()) {
        result["account"] = serde_json::Value::from(full);
    }
    if let Some(cluster) = v.pointer("/cluster/id").and_then(|c| c.as_str()) {
        result["cluster"] = serde_json::Value::from(cluster);
    }
    Ok(())
}

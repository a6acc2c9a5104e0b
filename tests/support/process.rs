//! The binary as a process: `distill-guard serve` on free loopback ports, and an
//! HTTP client for it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A running `distill-guard serve`, killed on drop.
pub struct Served {
    pub child: Child,
    /// `http://127.0.0.1:PORT` of the API listener.
    pub url: String,
    /// `http://127.0.0.1:PORT` of the admin listener, when one was asked for.
    pub admin: Option<String>,
}

impl Served {
    /// The admin listener's URL (panics when it was not started).
    pub fn admin(&self) -> &str {
        self.admin
            .as_deref()
            .expect("started with an admin listener")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn address(line: &str, prefix: &str) -> String {
    line.trim()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("expected `{prefix}…`, got {line:?}"))
        .to_owned()
}

/// Starts `distill-guard serve --listen 127.0.0.1:0 ARGS` and reads the
/// addresses it prints; with `admin`, also `--admin-listen 127.0.0.1:0`.
pub fn serve(args: &[&str], admin: bool) -> Served {
    serve_with_env(args, admin, &[])
}

/// [`serve`] with these environment variables set for the process.
pub fn serve_with_env(args: &[&str], admin: bool, env: &[(&str, &str)]) -> Served {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_distill-guard"));
    cmd.envs(env.iter().copied());
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    if admin {
        cmd.args(["--admin-listen", "127.0.0.1:0"]);
    }
    let mut child = cmd
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the binary");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("first line");
    let url = address(&line, "listening on ");
    let admin = admin.then(|| {
        line.clear();
        out.read_line(&mut line).expect("second line");
        address(&line, "admin on ")
    });
    Served { child, url, admin }
}

/// A config file with `text`, removed on drop.
pub fn config_file(text: &str) -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f
}

/// A response, read whole.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: bytes::Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("utf8")
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Sends `req` over a fresh HTTP/1 client, bounded to 20 s.
pub async fn send(req: Request<Body>) -> Reply {
    let client: Client<_, Body> = Client::builder(TokioExecutor::new()).build_http();
    let res = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("no timeout")
        .expect("response");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

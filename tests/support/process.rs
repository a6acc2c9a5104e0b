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
    /// `http://127.0.0.1:PORT` of the admin listener, when one was asked for
    /// and started (`None` when the binary said it is disabled).
    pub admin: Option<String>,
    /// `http://127.0.0.1:PORT` of the metrics listener, when one was asked for.
    pub metrics: Option<String>,
}

impl Served {
    /// The admin listener's URL (panics when it was not started).
    pub fn admin(&self) -> &str {
        self.admin
            .as_deref()
            .expect("started with an admin listener")
    }

    /// The metrics listener's URL (panics when it was not started).
    pub fn metrics(&self) -> &str {
        self.metrics
            .as_deref()
            .expect("started with a metrics listener")
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

/// `distill-guard serve --listen 127.0.0.1:0`, to add to and [`start`](Self::start):
/// the one place the tests start the server and read the addresses it prints.
pub struct Serve {
    cmd: Command,
    admin: bool,
    metrics: bool,
}

impl Serve {
    /// The command, its standard error discarded.
    pub fn new() -> Self {
        let mut cmd = bin();
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        Self {
            cmd,
            admin: false,
            metrics: false,
        }
    }

    /// `--config PATH`.
    pub fn config(mut self, path: &std::path::Path) -> Self {
        self.cmd.arg("--config").arg(path);
        self
    }

    /// More arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.cmd.args(args);
        self
    }

    /// `--admin-listen 127.0.0.1:0`: reads the admin listener's address (or
    /// that it is disabled: no token configured).
    pub fn admin(mut self) -> Self {
        self.cmd.args(["--admin-listen", "127.0.0.1:0"]);
        self.admin = true;
        self
    }

    /// `--metrics-listen 127.0.0.1:0`: reads the metrics listener's address.
    pub fn metrics(mut self) -> Self {
        self.cmd.args(["--metrics-listen", "127.0.0.1:0"]);
        self.metrics = true;
        self
    }

    /// An environment variable for the process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// Where the process's standard error (its log) goes.
    pub fn stderr(mut self, to: impl Into<Stdio>) -> Self {
        self.cmd.stderr(to);
        self
    }

    /// Starts the process and reads the addresses it prints, in its order:
    /// the API listener, the admin listener, the metrics listener.
    pub fn start(mut self) -> Served {
        let mut child = self.cmd.spawn().expect("start the binary");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut next = || {
            let mut line = String::new();
            out.read_line(&mut line).expect("a line on stdout");
            line
        };
        let url = address(&next(), "listening on ");
        let admin = if self.admin {
            let line = next();
            (line.trim() != "admin disabled: no token configured")
                .then(|| address(&line, "admin on "))
        } else {
            None
        };
        let metrics = self.metrics.then(|| address(&next(), "metrics on "));
        Served {
            child,
            url,
            admin,
            metrics,
        }
    }
}

/// The path of the `distill-guard` binary Cargo built for the tests (the one
/// place the tests name it).
pub const BIN: &str = env!("CARGO_BIN_EXE_distill-guard");

/// The binary, as a command to add arguments to.
pub fn bin() -> Command {
    Command::new(BIN)
}

/// Sends `sig` (`-TERM`, `-HUP`, `-STOP`, …) to process `pid`.
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

/// Waits for `child` to exit, at most `patience`; kills it after that and
/// returns `None` (a watchdog for suites run as child processes).
pub fn exit_within(child: &mut Child, patience: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts `distill-guard serve --listen 127.0.0.1:0 ARGS` and reads the
/// addresses it prints; with `admin`, also `--admin-listen 127.0.0.1:0`.
pub fn serve(args: &[&str], admin: bool) -> Served {
    serve_with_env(args, admin, &[])
}

/// [`serve`] with these environment variables set for the process.
pub fn serve_with_env(args: &[&str], admin: bool, env: &[(&str, &str)]) -> Served {
    let mut serve = Serve::new().args(args);
    if admin {
        serve = serve.admin();
    }
    env.iter().fold(serve, |s, (k, v)| s.env(k, v)).start()
}

/// `serve --config PATH` with an admin listener.
pub fn serve_config(config: &std::path::Path) -> Served {
    Serve::new().config(config).admin().start()
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

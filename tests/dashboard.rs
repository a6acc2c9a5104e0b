//! The dashboard in a real headless browser (Debian's `chromium`): the page loads,
//! shows the accounts and clusters created by test traffic, and raises no script
//! errors. Without chromium the test prints `dashboard test SKIPPED` (CI fails on
//! that word and installs chromium).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

const TOKEN: &str = "dashboard test admin token";

struct Served {
    child: Child,
    url: String,
    admin: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM").map(PathBuf::from) {
        return p.exists().then_some(p);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn serve(config: &std::path::Path) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_distill-guard"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the binary");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("first line");
    let mut second = String::new();
    out.read_line(&mut second).expect("second line");
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected {first:?}"))
        .to_owned();
    let admin = second
        .trim()
        .strip_prefix("admin on ")
        .unwrap_or_else(|| panic!("unexpected {second:?}"))
        .to_owned();
    Served { child, url, admin }
}

async fn request(req: Request<Body>) -> (u16, Value) {
    let client: Client<_, Body> = Client::builder(TokioExecutor::new()).build_http();
    let res = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("no timeout")
        .expect("response");
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn chat(url: &str, key: &str) -> u16 {
    let req = Request::post(format!("{url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::from(
            json!({"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hello"}]})
                .to_string(),
        ))
        .expect("request");
    request(req).await.0
}

/// Runs headless chromium on `url` and returns (DOM, browser log).
async fn dump_dom(browser: &PathBuf, url: &str) -> (String, String) {
    let profile = tempfile::tempdir().expect("profile dir");
    let child = tokio::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromium");
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("chromium finished in time")
        .expect("chromium output");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Script errors the browser logged to its console.
fn console_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("CONSOLE") && (l.contains("Uncaught") || l.contains("Error")))
        .collect()
}

#[tokio::test]
async fn dashboard_shows_test_traffic_in_chromium() {
    let Some(browser) = chromium() else {
        println!("dashboard test SKIPPED: chromium not found");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("guard.toml");
    std::fs::write(
        &config,
        format!(
            "[identity]\nsecret = \"dashboard-secret\"\n[tiers.default]\nrequests_per_minute = 3\n[admin]\ntoken = \"{TOKEN}\"\n"
        ),
    )
    .expect("write config");
    let s = serve(&config);

    let mut statuses = Vec::new();
    for key in [
        "sk-dash-busy",
        "sk-dash-busy",
        "sk-dash-busy",
        "sk-dash-busy",
        "sk-dash-busy",
        "sk-dash-quiet",
    ] {
        statuses.push(chat(&s.url, key).await);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 200]);
    let (code, top) = request(
        Request::get(format!("{}/api/accounts", s.admin))
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(code, 200);
    let busy = top["accounts"][0]["account"]
        .as_str()
        .expect("busy account")
        .to_owned();
    let quiet = top["accounts"][1]["account"]
        .as_str()
        .expect("quiet account")
        .to_owned();
    assert_eq!(top["accounts"][0]["refused"], 2);

    let (dom, log) = dump_dom(
        &browser,
        &format!("{}/#token={}", s.admin, TOKEN.replace(' ', "%20")),
    )
    .await;
    assert!(
        dom.contains("data-loaded=\"1\""),
        "the page rendered the API data:\n{dom}"
    );
    assert!(
        dom.contains("data-errors=\"0\""),
        "no script errors:\n{dom}"
    );
    assert!(
        dom.contains("<ul id=\"errors\" aria-label=\"Page errors\"></ul>"),
        "{dom}"
    );
    assert!(
        console_errors(&log).is_empty(),
        "console errors: {:?}",
        console_errors(&log)
    );
    // The accounts and their clusters from the traffic above.
    assert!(dom.contains(&busy), "busy account shown");
    assert!(dom.contains(&quiet), "quiet account shown");
    assert!(dom.contains(&format!("c_{busy}")), "its cluster shown");
    assert!(
        dom.contains("rate limited (429)"),
        "the refusals are visible"
    );
    assert!(
        dom.contains("rate limited: 2"),
        "the chart legend counts refusals"
    );
    assert!(dom.contains("enforcing"), "config status shown");
    assert!(!dom.contains("sk-dash-busy"), "no raw key on the page");

    // Without the token the page asks for it, still without script errors.
    let (dom, log) = dump_dom(&browser, &format!("{}/", s.admin)).await;
    assert!(dom.contains("token needed"), "{dom}");
    assert!(dom.contains("data-errors=\"0\""), "{dom}");
    assert!(!dom.contains(&busy), "no data without the token");
    assert!(
        console_errors(&log).is_empty(),
        "console errors: {:?}",
        console_errors(&log)
    );
}

//! The dashboard in a real headless browser (Debian's `chromium`): the page loads,
//! shows the accounts created by test traffic and the cluster the engine linked
//! from a test campaign with its linking evidence, and raises no script errors. Without chromium the test prints `dashboard test SKIPPED` (CI fails on
//! that word and installs chromium).

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use axum::body::Body;
use http::Request;
use serde_json::{json, Value};
use support::process::serve_config as serve;

const TOKEN: &str = "dashboard test admin token";

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

async fn request(req: Request<Body>) -> (u16, Value) {
    let r = support::process::send(req).await;
    (r.status, r.json())
}

/// One request of a campaign (see `support::traffic`).
async fn campaign(url: &str, key: &str, i: u64) -> u16 {
    request(support::traffic::campaign_request(url, key, i, 16))
        .await
        .0
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
        support::report_skip_line("dashboard test SKIPPED: chromium not found");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("guard.toml");
    std::fs::write(
        &config,
        format!(
            "[identity]\nsecret = \"dashboard-secret\"\n[tiers.default]\nrequests_per_minute = 3\n[cluster]\nwarmup_accounts = 3\n[admin]\ntoken = \"{TOKEN}\"\n"
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
        Request::get(format!("{}/api/accounts", s.admin()))
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

    // Linking starts with the third account (`warmup_accounts = 3`), so the two
    // accounts above stay alone. A campaign of six accounts sharing one prompt
    // template: the engine links them (their requests may be refused by the shared cluster budget; what
    // matters here is the linking).
    let mut campaign_429 = 0;
    for round in 0..3u64 {
        for a in 0..6u64 {
            let status = campaign(&s.url, &format!("sk-dash-campaign-{a}"), round * 10 + a).await;
            assert!([200, 403, 429].contains(&status), "{status}");
            campaign_429 += usize::from(status == 429);
        }
    }
    let (code, clusters) = request(
        Request::get(format!("{}/api/clusters", s.admin()))
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(code, 200);
    let linked = &clusters["largest"][0];
    assert_eq!(linked["size"], 6, "the campaign is one cluster: {clusters}");
    assert_eq!(clusters["largest"].as_array().map(Vec::len), Some(1));
    let cluster_id = linked["id"].as_str().expect("cluster id").to_owned();
    let features: Vec<String> = linked["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .filter_map(|e| e["feature"].as_str().map(str::to_owned))
        .collect();
    assert!(!features.is_empty(), "linking evidence recorded: {linked}");
    let kinds: Vec<String> = linked["evidence_by_kind"]
        .as_array()
        .expect("evidence by kind")
        .iter()
        .filter_map(|k| {
            k["kind"]
                .as_str()
                .map(|kind| format!("{kind} (all values)"))
        })
        .collect();
    assert!(
        linked["evidence_by_kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k["family"] == "template")),
        "{linked}"
    );

    let (dom, log) = dump_dom(
        &browser,
        &format!("{}/#token={}", s.admin(), TOKEN.replace(' ', "%20")),
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
        dom.contains(&format!("rate limited: {}", 2 + campaign_429)),
        "the chart legend counts refusals"
    );
    assert!(dom.contains("enforcing"), "config status shown");
    // The campaign's cluster, in both lists, with its evidence in words.
    assert_eq!(
        dom.matches(&format!("data-cluster=\"{cluster_id}\""))
            .count(),
        2,
        "largest and most suspicious: {dom}"
    );
    assert!(dom.contains(&format!("<span class=\"mono\">{cluster_id}</span>")));
    assert!(dom.contains("6 accounts"), "members count shown");
    assert!(dom.contains("suspicion "), "suspicion shown");
    assert!(dom.contains("Linked by"), "evidence table shown");
    for f in &features {
        assert!(dom.contains(f.as_str()), "shared value {f} shown");
    }
    for k in &kinds {
        assert!(dom.contains(k.as_str()), "kind {k} shown");
    }
    assert!(dom.contains("<td>template</td>"), "the family is named");
    assert!(!dom.contains("sk-dash-campaign"), "no raw campaign key");
    assert!(!dom.contains("sk-dash-busy"), "no raw key on the page");

    // Without the token the page asks for it, still without script errors.
    let (dom, log) = dump_dom(&browser, &format!("{}/", s.admin())).await;
    assert!(dom.contains("token needed"), "{dom}");
    assert!(dom.contains("data-errors=\"0\""), "{dom}");
    assert!(!dom.contains(&busy), "no data without the token");
    assert!(
        console_errors(&log).is_empty(),
        "console errors: {:?}",
        console_errors(&log)
    );
}

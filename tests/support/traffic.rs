//! Test traffic shared by the suites: one distillation campaign's requests (a
//! long prompt template around a varying task, from one client) and organic
//! requests (each a text of its own).

use axum::body::Body;
use http::Request;

/// The campaign's prompt around task `i`.
pub fn campaign_prompt(i: u64) -> String {
    let task: String = (0..30)
        .map(|k| format!("w{} ", (i * 31 + k * 7) % 997))
        .collect();
    format!(
        "You are an expert competition programmer and mathematician. Read the task below with great care, consider the edge cases, the constraints and the complexity bounds, and then solve it completely in Python. TASK: {task} END OF TASK. Think step by step and write out your full reasoning in detail before giving the final answer, then give the complete program in one fenced code block and state its time complexity at the end."
    )
}

/// A chat-completions body of the campaign asking for `max_tokens`.
pub fn campaign_body(i: u64, max_tokens: u32) -> String {
    serde_json::json!({
        "model": "m",
        "temperature": 0.6,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": campaign_prompt(i)}],
    })
    .to_string()
}

/// A campaign request to `{base}/v1/chat/completions` (`base` empty for a
/// service called in process), with the campaign's client.
pub fn campaign_request(base: &str, key: &str, i: u64, max_tokens: u32) -> Request<Body> {
    Request::post(format!("{base}/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .header("user-agent", "python-httpx/0.27.0")
        .body(Body::from(campaign_body(i, max_tokens)))
        .expect("request")
}

/// An organic user's chat body: forty words of its own.
pub fn organic_body(i: u64) -> String {
    let words: String = (0..40)
        .map(|k| format!("t{} ", (i * 7919 + k * 104_729) % 100_003))
        .collect();
    format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{words}"}}]}}"#)
}

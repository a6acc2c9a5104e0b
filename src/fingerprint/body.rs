//! A dialect-neutral view of a parsed request body: system prompt, message roles,
//! the last user turn and the tools, for OpenAI chat completions, completions and
//! responses and Anthropic messages.
//!
//! The view borrows from the parsed JSON and is built in one bounded pass: at most
//! `max_items` messages, content parts and tools are looked at, and nested content
//! (tool results inside tool results) is followed only a few levels deep. Shapes
//! are recognised by their keys, not by the path, so `/v1/messages/count_tokens`,
//! proxies with other prefixes and mixed-up clients are handled alike.

use serde_json::{Map, Value};

/// Depth to which nested content blocks are followed.
const MAX_DEPTH: usize = 4;

/// The role of a message, as the fingerprint sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    System,
    User,
    Assistant,
    Tool,
    Other,
}

impl Role {
    fn parse(s: &str) -> Self {
        match s {
            "system" | "developer" => Role::System,
            "user" | "human" => Role::User,
            "assistant" | "model" | "ai" => Role::Assistant,
            "tool" | "function" | "ipython" => Role::Tool,
            _ => Role::Other,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
            Role::Other => "other",
        }
    }
}

/// What the fingerprint reads from a body.
#[derive(Debug, Default)]
pub(crate) struct Conversation<'a> {
    /// Text pieces of the system prompt, in order.
    pub(crate) system: Vec<&'a str>,
    /// Message roles, in order.
    pub(crate) roles: Vec<Role>,
    /// Text pieces of the last user turn.
    pub(crate) last_user: Vec<&'a str>,
    /// The first message object, for its key order.
    pub(crate) first_message: Option<&'a Map<String, Value>>,
    /// Tool definitions.
    pub(crate) tools: &'a [Value],
    /// A message carried a tool call or a tool result.
    pub(crate) tool_traffic: bool,
    /// Total messages in the body (may exceed `roles.len()` when capped).
    pub(crate) messages: usize,
}

struct Walker<'a> {
    conv: Conversation<'a>,
    budget: usize,
}

/// Builds the view of `body`.
pub(crate) fn conversation(body: &Map<String, Value>, max_items: usize) -> Conversation<'_> {
    let mut w = Walker {
        conv: Conversation::default(),
        budget: max_items,
    };
    // Anthropic top-level system prompt: a string or text blocks.
    if let Some(system) = body.get("system") {
        let mut pieces = Vec::new();
        w.texts(system, 0, &mut pieces);
        w.conv.system.extend(pieces);
    }
    // Responses API instructions.
    if let Some(Value::String(s)) = body.get("instructions") {
        w.conv.system.push(s);
    }
    if let Some(Value::Array(messages)) = body.get("messages") {
        w.messages(messages);
    } else if let Some(input) = body.get("input") {
        match input {
            Value::String(s) => w.user_only(s),
            Value::Array(items) => w.messages(items),
            _ => {}
        }
    } else if let Some(prompt) = body.get("prompt") {
        match prompt {
            Value::String(s) => w.user_only(s),
            // A batch of prompts: the last string is the turn (token arrays are
            // numbers and carry no text).
            Value::Array(items) => {
                if let Some(s) = items.iter().rev().take(max_items).find_map(Value::as_str) {
                    w.user_only(s);
                }
            }
            _ => {}
        }
    }
    let tools = match (body.get("tools"), body.get("functions")) {
        (Some(Value::Array(t)), _) | (None, Some(Value::Array(t))) => t.as_slice(),
        _ => &[],
    };
    w.conv.tools = &tools[..tools.len().min(max_items)];
    w.conv
}

impl<'a> Walker<'a> {
    fn user_only(&mut self, s: &'a str) {
        self.conv.roles.push(Role::User);
        self.conv.messages = 1;
        self.conv.last_user = vec![s];
    }

    fn messages(&mut self, items: &'a [Value]) {
        self.conv.messages = items.len();
        if let Some(Value::Object(first)) = items.first() {
            self.conv.first_message = Some(first);
        }
        for item in items {
            if self.budget == 0 {
                break;
            }
            self.budget -= 1;
            match item {
                // Responses API: a bare string item is user text.
                Value::String(s) => {
                    self.conv.roles.push(Role::User);
                    self.conv.last_user = vec![s];
                }
                Value::Object(m) => self.message(m),
                _ => {}
            }
        }
    }

    fn message(&mut self, m: &'a Map<String, Value>) {
        // One pass over the (few) keys instead of a hashed lookup per key.
        let (mut role, mut ty, mut content) = (None, "", None);
        for (k, v) in m {
            match k.as_str() {
                "role" => role = v.as_str(),
                "type" => ty = v.as_str().unwrap_or(""),
                "content" => content = Some(v),
                "tool_calls" | "function_call" => self.conv.tool_traffic = true,
                _ => {}
            }
        }
        let role = match role {
            Some(r) => Role::parse(r),
            None => match ty {
                "function_call" | "custom_tool_call" | "computer_call" => {
                    self.conv.tool_traffic = true;
                    Role::Assistant
                }
                "function_call_output" | "custom_tool_call_output" | "computer_call_output" => {
                    self.conv.tool_traffic = true;
                    Role::Tool
                }
                // Reasoning items and other non-message items are not turns.
                _ => return,
            },
        };
        let mut pieces = Vec::new();
        let mut only_tool_results = false;
        if let Some(content) = content {
            if let Value::Array(parts) = content {
                let mut results = 0;
                for p in parts {
                    match p.get("type").and_then(Value::as_str) {
                        Some("tool_result") => results += 1,
                        Some("tool_use") => self.conv.tool_traffic = true,
                        _ => {}
                    }
                }
                if results > 0 {
                    self.conv.tool_traffic = true;
                    only_tool_results = results == parts.len();
                }
            }
            self.texts(content, 0, &mut pieces);
        }
        let role = if role == Role::User && only_tool_results {
            Role::Tool
        } else {
            role
        };
        match role {
            Role::System => self.conv.system.extend(pieces),
            Role::User => self.conv.last_user = pieces,
            _ => {}
        }
        self.conv.roles.push(role);
    }

    /// Collects the text of a content value: a string, or parts with `text`
    /// (`text`, `input_text`, `output_text`), following tool results' `content`.
    fn texts(&mut self, v: &'a Value, depth: usize, out: &mut Vec<&'a str>) {
        if depth > MAX_DEPTH {
            return;
        }
        match v {
            Value::String(s) => out.push(s),
            Value::Array(parts) => {
                for p in parts {
                    if self.budget == 0 {
                        return;
                    }
                    self.budget -= 1;
                    match p {
                        Value::String(s) => out.push(s),
                        Value::Object(o) => {
                            if let Some(Value::String(s)) = o.get("text") {
                                out.push(s);
                            } else if let Some(inner) = o.get("content") {
                                self.texts(inner, depth + 1, out);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conv(v: &Value) -> Conversation<'_> {
        conversation(v.as_object().expect("object"), 512)
    }

    #[test]
    fn openai_chat() {
        let v = json!({"model": "m", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "1"}]},
            {"role": "tool", "content": "42"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "b"}]}
        ], "tools": [{"type": "function", "function": {"name": "f"}}]});
        let c = conv(&v);
        assert_eq!(c.system, vec!["Be brief."]);
        assert_eq!(c.last_user, vec!["a", "b"]);
        assert_eq!(
            c.roles,
            vec![
                Role::System,
                Role::User,
                Role::Assistant,
                Role::Tool,
                Role::User
            ]
        );
        assert!(c.tool_traffic);
        assert_eq!(c.tools.len(), 1);
        assert_eq!(c.messages, 5);
    }

    #[test]
    fn anthropic_messages() {
        let v = json!({"model": "m", "max_tokens": 10,
        "system": [{"type": "text", "text": "You are Claude Code."}],
        "messages": [
            {"role": "user", "content": "do it"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "bash", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "ok"}]}]}
        ]});
        let c = conv(&v);
        assert_eq!(c.system, vec!["You are Claude Code."]);
        // The tool-result turn is a tool turn; the last user text is "do it".
        assert_eq!(c.last_user, vec!["do it"]);
        assert_eq!(c.roles, vec![Role::User, Role::Assistant, Role::Tool]);
        assert!(c.tool_traffic);
    }

    #[test]
    fn responses_and_completions() {
        let v = json!({"model": "m", "instructions": "sys", "input": "hello"});
        let c = conv(&v);
        assert_eq!(c.system, vec!["sys"]);
        assert_eq!(c.last_user, vec!["hello"]);
        let v = json!({"input": [
            {"role": "developer", "content": "dev"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q"}]},
            {"type": "reasoning", "summary": []},
            {"type": "function_call", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "output": "1"}
        ]});
        let c = conv(&v);
        assert_eq!(c.system, vec!["dev"]);
        assert_eq!(c.last_user, vec!["q"]);
        assert_eq!(
            c.roles,
            vec![Role::System, Role::User, Role::Assistant, Role::Tool]
        );
        let v = json!({"prompt": ["first", [1, 2], "second"]});
        assert_eq!(conv(&v).last_user, vec!["second"]);
        let v = json!({"prompt": "p"});
        assert_eq!(conv(&v).last_user, vec!["p"]);
    }

    #[test]
    fn work_is_bounded() {
        let msgs: Vec<Value> = (0..10_000)
            .map(|i| json!({"role": "user", "content": format!("m{i}")}))
            .collect();
        let v = json!({ "messages": msgs });
        let c = conversation(v.as_object().expect("object"), 100);
        assert_eq!(c.roles.len(), 100);
        assert_eq!(c.messages, 10_000);
        // Deeply nested tool results stop at the depth cap.
        let mut inner = json!("deep");
        for _ in 0..50 {
            inner = json!([{"type": "wrapper", "content": inner}]);
        }
        let v = json!({"messages": [{"role": "user", "content": inner}]});
        assert!(conv(&v).last_user.is_empty());
    }
}

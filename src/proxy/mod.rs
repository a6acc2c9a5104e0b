//! The `serve` reverse proxy and the built-in demo model.
//!
//! [`server::stack`] is the one place the guarded stack is assembled, so `serve`,
//! `replay` and the end-to-end tests all run exactly the same layers.

pub mod demo;
pub mod server;
pub mod upstream;

/// Checks an upstream base URL; returns a message on error.
pub fn parse_upstream(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("`{url}` must start with http:// or https://")),
    }
    match uri.authority() {
        None => return Err(format!("`{url}` has no host")),
        Some(a) if a.as_str().contains('@') => {
            return Err(format!(
                "`{url}`: credentials in the URL are not supported (the client's own authorization header is forwarded)"
            ))
        }
        Some(_) => {}
    }
    if uri.query().is_some() {
        return Err(format!("`{url}`: a base URL takes no query string"));
    }
    Ok(uri)
}

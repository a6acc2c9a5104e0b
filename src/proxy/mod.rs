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
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "`{url}`: https upstreams are not supported yet; run the guard next to the model server over http"
            ))
        }
        _ => return Err(format!("`{url}` must start with http://")),
    }
    if uri.authority().is_none() {
        return Err(format!("`{url}` has no host"));
    }
    Ok(uri)
}

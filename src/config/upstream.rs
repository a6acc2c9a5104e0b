//! `[server] upstream`: the base URL `serve` forwards to, checked as data (the
//! proxy that uses it is a Cargo feature; the check is not).

/// Why an upstream base URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamUrlError {
    /// Not a URL at all.
    #[error("`{url}` is not a URL: {why}")]
    NotUrl {
        /// The URL given.
        url: String,
        /// The parser's explanation.
        why: String,
    },
    /// A scheme other than `http` or `https`.
    #[error("`{0}` must start with http:// or https://")]
    Scheme(String),
    /// No host.
    #[error("`{0}` has no host")]
    NoHost(String),
    /// `user:password@` in the URL.
    #[error("`{0}`: credentials in the URL are not supported (the client's own authorization header is forwarded)")]
    Credentials(String),
    /// A `?query`.
    #[error("`{0}`: a base URL takes no query string")]
    Query(String),
}

/// Checks an upstream base URL: `http://` or `https://`, a host, no credentials,
/// no query.
pub fn parse_upstream(url: &str) -> Result<http::Uri, UpstreamUrlError> {
    let uri: http::Uri =
        url.parse()
            .map_err(|e: http::uri::InvalidUri| UpstreamUrlError::NotUrl {
                url: url.to_owned(),
                why: e.to_string(),
            })?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(UpstreamUrlError::Scheme(url.to_owned()));
    }
    match uri.authority() {
        None => return Err(UpstreamUrlError::NoHost(url.to_owned())),
        Some(a) if a.as_str().contains('@') => {
            return Err(UpstreamUrlError::Credentials(url.to_owned()))
        }
        Some(_) => {}
    }
    if uri.query().is_some() {
        return Err(UpstreamUrlError::Query(url.to_owned()));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_are_checked_as_data() {
        assert!(parse_upstream("http://127.0.0.1:8000").is_ok());
        assert!(parse_upstream("https://models.internal/v1").is_ok());
        assert_eq!(
            parse_upstream("ftp://example"),
            Err(UpstreamUrlError::Scheme("ftp://example".into()))
        );
        assert_eq!(
            parse_upstream("http://user:pw@host"),
            Err(UpstreamUrlError::Credentials("http://user:pw@host".into()))
        );
        assert_eq!(
            parse_upstream("http://host/?a=1"),
            Err(UpstreamUrlError::Query("http://host/?a=1".into()))
        );
        assert!(matches!(
            parse_upstream("not a url"),
            Err(UpstreamUrlError::NotUrl { .. })
        ));
        assert!(matches!(
            parse_upstream("/just/a/path"),
            Err(UpstreamUrlError::Scheme(_))
        ));
    }
}

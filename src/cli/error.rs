//! Why a command stopped: every failure the binary reports (as `error: …`, exit
//! code 2) before it exits.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use distill_guard::config::ConfigError;
use distill_guard::proxy::UpstreamError;
use distill_guard::replay::ReplayError;
use distill_guard::simulate::SimulateError;
use http::StatusCode;

/// What a command could not do.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// A file could not be read, opened, created or written.
    #[error("cannot {action} {}: {source}", path.display())]
    File {
        /// What was being done.
        action: FileAction,
        /// The file.
        path: PathBuf,
        /// Why not.
        source: io::Error,
    },
    /// Standard input could not be read.
    #[error("cannot read standard input: {0}")]
    Stdin(#[source] io::Error),
    /// A config file does not parse or validate.
    #[error("{}: {source}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// Every problem in it.
        source: ConfigError,
    },
    /// The config (with the command line's overrides) is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `--upstream` or `[server] upstream` is not a usable upstream.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The replay failed.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The scenario or the simulation failed.
    #[error(transparent)]
    Simulate(#[from] SimulateError),
    /// A summary or result could not be written as JSON.
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// No randomness for the identity secret of the embedded default config.
    #[error("cannot get randomness for the identity secret: {0}")]
    Randomness(#[source] rand::rand_core::OsError),
    /// The operating system refused something the process needs (the runtime,
    /// a signal handler, the audit log).
    #[error("cannot {what}: {source}")]
    System {
        /// What could not be done.
        what: &'static str,
        /// Why not.
        source: io::Error,
    },
    /// A listener could not be bound, or its address read.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Which listener (`proxy`, `admin`, `metrics`).
        what: &'static str,
        /// Why not.
        source: io::Error,
    },
    /// The proxy's server stopped with an error.
    #[error("server error: {0}")]
    Serve(#[source] io::Error),
    /// `replay --compare` with the traffic on standard input.
    #[error("--compare replays the traffic twice: give a file, not stdin")]
    CompareNeedsFile,
    /// `trace --server` with a config that has no admin token.
    #[error("the config has no [admin] token (token or token_env) to query a server with")]
    NoAdminToken,
    /// A live server (`trace --server`) gave no usable answer.
    #[error("{server}: {problem}")]
    Server {
        /// The `--server` URL.
        server: String,
        /// What went wrong.
        problem: ServerProblem,
    },
}

/// What was being done to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileAction {
    Read,
    Open,
    Create,
    Write,
}

impl fmt::Display for FileAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileAction::Read => "read",
            FileAction::Open => "open",
            FileAction::Create => "create",
            FileAction::Write => "write",
        })
    }
}

/// Why a live server's admin listener gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServerProblem {
    /// `--server` is not a URL.
    #[error("not a URL: {0}")]
    Url(#[source] http::uri::InvalidUri),
    /// The request could not be built.
    #[error("cannot build the request: {0}")]
    Request(#[source] http::Error),
    /// No answer in time.
    #[error("did not answer within {0} s")]
    Timeout(u64),
    /// No connection.
    #[error("cannot reach it: {0}")]
    Unreachable(#[source] hyper_util::client::legacy::Error),
    /// The answer broke off.
    #[error("reading the answer: {0}")]
    Body(#[source] hyper::Error),
    /// The answer is not JSON (its first bytes are kept).
    #[error("answered {status} with non-JSON: {source}: {start}")]
    NotJson {
        /// The status.
        status: StatusCode,
        /// Why it does not parse.
        source: serde_json::Error,
        /// The answer's first 200 bytes.
        start: String,
    },
    /// An error status.
    #[error("answered {status}: {answer}")]
    Status {
        /// The status.
        status: StatusCode,
        /// The JSON answer.
        answer: serde_json::Value,
    },
    /// A trace result without an account.
    #[error("answered an unexpected trace result")]
    UnexpectedTrace,
}

impl CliError {
    /// A file error.
    pub(crate) fn file(
        action: FileAction,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| CliError::File {
            action,
            path,
            source,
        }
    }

    /// An error of the operating system.
    pub(crate) fn system(what: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| CliError::System { what, source }
    }

    /// A listener error.
    pub(crate) fn listen(addr: SocketAddr, what: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| CliError::Listen { addr, what, source }
    }

    /// A live server's problem.
    pub(crate) fn server(server: &str, problem: ServerProblem) -> Self {
        CliError::Server {
            server: server.to_owned(),
            problem,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_and_where() {
        let e = CliError::file(FileAction::Create, "/x/out.jsonl")(io::Error::other("denied"));
        assert_eq!(e.to_string(), "cannot create /x/out.jsonl: denied");
        let e = CliError::listen("127.0.0.1:1".parse().expect("addr"), "admin")(io::Error::other(
            "in use",
        ));
        assert_eq!(
            e.to_string(),
            "cannot listen on 127.0.0.1:1 (admin): in use"
        );
        let e = CliError::server(
            "http://h:9090",
            ServerProblem::Status {
                status: StatusCode::UNAUTHORIZED,
                answer: serde_json::json!({"error": "bad token"}),
            },
        );
        assert_eq!(
            e.to_string(),
            "http://h:9090: answered 401 Unauthorized: {\"error\":\"bad token\"}"
        );
        let e = CliError::system("install the SIGTERM handler")(io::Error::other("no"));
        assert_eq!(e.to_string(), "cannot install the SIGTERM handler: no");
    }
}

//! Shared test helpers: a throwaway `redis-server` on a free loopback port (here),
//! the binary as a process (`process`), labelled traffic (`traffic`) and waiting
//! on outside conditions (`wait`).

#![allow(dead_code, unreachable_pub)]

pub mod compress;
pub mod process;
#[cfg(feature = "proxy")]
pub mod stack;
pub mod traffic;
pub mod wait;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The exact line CI looks for to tell that the Redis tests did not run.
pub const SKIPPED: &str = "redis tests SKIPPED: redis-server not found";

/// `redis-server` on PATH, if any.
pub fn redis_server_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
}

/// Reports the Redis skip where CI and a person see it.
pub fn report_skip() {
    report_skip_line(SKIPPED);
}

/// Prints a `… SKIPPED: why` line where `.ci/run` and a person see it: straight to
/// the process's stdout and stderr, which libtest does not capture (`println!` and
/// `eprintln!` in a passing test are swallowed by its capture).
pub fn report_skip_line(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
    let _ = err.flush();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A running (or killed, restartable) `redis-server`.
#[derive(Debug)]
pub struct RedisServer {
    binary: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    /// A config file written into `dir` and passed first (sentinels need one).
    conf: Option<String>,
    /// More arguments after the defaults.
    extra: Vec<String>,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn free_cluster_port() -> u16 {
    for _ in 0..1_000 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = l.local_addr().expect("local addr").port();
        if port <= 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair for a cluster node");
}

impl RedisServer {
    /// Starts a server, or returns `None` (after reporting the skip) when
    /// `redis-server` is not installed.
    pub fn start() -> Option<Self> {
        Self::start_with(None, &[])
    }

    /// A replica of the server on `primary_port`.
    pub fn start_replica(primary_port: u16) -> Option<Self> {
        Self::start_with(
            None,
            &["--replicaof", "127.0.0.1", &primary_port.to_string()],
        )
    }

    /// A sentinel watching the primary on `primary_port` as `service`, which it
    /// declares down after 300 ms and fails over alone (quorum 1).
    pub fn start_sentinel(primary_port: u16, service: &str) -> Option<Self> {
        let conf = format!(
            "sentinel monitor {service} 127.0.0.1 {primary_port} 1\n\
             sentinel down-after-milliseconds {service} 300\n\
             sentinel failover-timeout {service} 2000\n\
             sentinel parallel-syncs {service} 1\n"
        );
        Self::start_with(Some(conf), &["--sentinel"])
    }

    /// A node of a Redis Cluster (not joined to one yet): cluster mode, node
    /// timeout 500 ms so that a failover takes about a second.
    pub fn start_cluster_node() -> Option<Self> {
        Self::start_on(
            None,
            &[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "500",
            ],
            free_cluster_port,
        )
    }

    fn start_with(conf: Option<String>, extra: &[&str]) -> Option<Self> {
        Self::start_on(conf, extra, free_port)
    }

    fn start_on(conf: Option<String>, extra: &[&str], port: fn() -> u16) -> Option<Self> {
        let Some(binary) = redis_server_binary() else {
            report_skip();
            return None;
        };
        for _ in 0..5 {
            let mut server = RedisServer {
                binary: binary.clone(),
                dir: tempfile::tempdir().expect("temp dir"),
                port: port(),
                child: None,
                conf: conf.clone(),
                extra: extra.iter().map(|s| s.to_string()).collect(),
            };
            if server.spawn() {
                return Some(server);
            }
        }
        panic!("redis-server would not start on any of 5 free ports");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) -> bool {
        let mut cmd = Command::new(&self.binary);
        if let Some(conf) = &self.conf {
            let path = self.dir.path().join("server.conf");
            std::fs::write(&path, conf).expect("write the server's config");
            cmd.arg(path);
        }
        let child = cmd
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        // Wait for the process to answer PING (bounded).
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return false; // exited: port taken
                }
            }
            if ping(self.port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        false
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port, with an empty dataset.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server would not restart on port {}", self.port);
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            process::signal(c.id(), sig);
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Resumes a frozen server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `redis-cli -p PORT ARGS…`'s output (empty when it fails).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(redis_cli_binary().unwrap_or_else(|| PathBuf::from("redis-cli")))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// `redis-cli` on PATH, if any.
pub fn redis_cli_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-cli"))
        .find(|p| p.is_file())
}

/// The exact line CI looks for to tell that the Redis Cluster tests did not run.
pub const CLUSTER_SKIPPED: &str = "redis tests SKIPPED: redis-server or redis-cli not found";

/// A Redis Cluster of local `redis-server`s, made with `redis-cli --cluster
/// create`: `masters` primaries sharing the 16,384 slots, each with `replicas`
/// replicas. Every node is killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts and joins the nodes and waits until the cluster serves every
    /// slot; `None` (after reporting the skip) without `redis-server` or
    /// `redis-cli`.
    pub fn start(masters: usize, replicas: usize) -> Option<Self> {
        if redis_server_binary().is_none() || redis_cli_binary().is_none() {
            report_skip_line(CLUSTER_SKIPPED);
            return None;
        }
        let mut nodes = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            nodes.push(RedisServer::start_cluster_node()?);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new(redis_cli_binary()?)
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes };
        let want = masters * (1 + replicas);
        wait::until_blocking("the cluster serves every slot on every node", || {
            cluster.nodes.iter().all(|n| {
                let info = n.cli(&["cluster", "info"]);
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && info.contains(&format!("cluster_known_nodes:{want}"))
            }) && cluster.replicas_attached() == masters * replicas
        });
        Some(cluster)
    }

    /// `redis://127.0.0.1:PORT` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Replicas whose link to their primary is up, as the first live node sees it.
    fn replicas_attached(&self) -> usize {
        let Some(n) = self.nodes.iter().find(|n| n.is_running()) else {
            return 0;
        };
        n.cli(&["cluster", "nodes"])
            .lines()
            .filter(|l| l.contains(" slave ") && l.contains(" connected"))
            .count()
    }

    /// The node serving `key`'s slot as primary, as the first live node sees
    /// it (`None` while it knows none, e.g. during a failover).
    pub fn primary_of(&self, key: &str) -> Option<usize> {
        let live = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a live node");
        let slot: u16 = live
            .cli(&["cluster", "keyslot", key])
            .trim()
            .parse()
            .expect("a slot number");
        let nodes = live.cli(&["cluster", "nodes"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                match (lo.parse::<u16>(), hi.parse::<u16>()) {
                    (Ok(lo), Ok(hi)) => (lo..=hi).contains(&slot),
                    _ => false,
                }
            });
            if serves {
                let port: u16 = fields[1]
                    .split(['@', ':'])
                    .nth(1)
                    .and_then(|p| p.parse().ok())
                    .expect("a node port");
                return self.nodes.iter().position(|n| n.port == port);
            }
        }
        None
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.resume();
        self.kill();
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    matches!(s.read_exact(&mut buf), Ok(())) && &buf == b"+PONG\r\n"
}

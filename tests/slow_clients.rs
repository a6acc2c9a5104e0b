//! `[server] header_read_timeout` over real sockets, on tokio's paused clock: a
//! client that sends its request headers a byte at a time, a partial HTTP/2
//! preface or nothing at all is disconnected at the deadline without an answer;
//! kept-alive connections are closed once idle that long; a request in flight,
//! however long, is never cut (HTTP/1 and HTTP/2).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::Request;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use support::wait::finishes_at;

const TIMEOUT: Duration = Duration::from_secs(10);

/// `serve` on a loopback port: `/` answers at once, `/slow` after three
/// header timeouts.
async fn server() -> SocketAddr {
    let app = Router::new().route("/", get(|| async { "ok" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(TIMEOUT * 3).await;
            "slow ok"
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(distill_guard::listen::serve(
        listener,
        app,
        TIMEOUT,
        std::future::pending(),
    ));
    addr
}

/// Waits for the server to close `sock`, sending `drip` a byte every
/// `every` meanwhile; returns what the server sent and when it closed. A
/// connection still open after ten deadlines fails the test (it would hang).
async fn closed_while_dripping(sock: &mut TcpStream, drip: &[u8], every: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let mut drip = drip.iter();
    let give_up = Instant::now() + TIMEOUT * 10;
    loop {
        tokio::select! {
            r = sock.read(&mut buf) => match r {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            },
            () = tokio::time::sleep(every) => {
                if let Some(b) = drip.next() {
                    // A write may fail once the server has closed.
                    let _ = sock.write_all(std::slice::from_ref(b)).await;
                }
            }
            () = tokio::time::sleep_until(give_up) => panic!("the connection was never closed"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn headers_sent_a_byte_at_a_time_are_cut_off_at_the_deadline() {
    let addr = server().await;
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    let opened = Instant::now();
    sock.write_all(b"GET / HTTP/1.1\r\n").await.expect("write");
    // A byte every second: each read makes progress, the whole never completes.
    let got = finishes_at(
        "the close of a trickling connection",
        opened + TIMEOUT,
        closed_while_dripping(
            &mut sock,
            b"host: x\r\nx-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
            Duration::from_secs(1),
        ),
    )
    .await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_sends_nothing_or_a_partial_http2_preface_is_closed() {
    let addr = server().await;
    for sent in [&b""[..], b"P", b"PRI * HTTP/2.0\r\n"] {
        let mut sock = TcpStream::connect(addr).await.expect("connect");
        let opened = Instant::now();
        sock.write_all(sent).await.expect("write");
        let got = finishes_at(
            &format!("the close of a connection that sent {sent:?}"),
            opened + TIMEOUT,
            closed_while_dripping(&mut sock, b"", TIMEOUT),
        )
        .await;
        assert!(got.is_empty(), "{sent:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_prompt_client_is_served_and_its_idle_connection_closed_after_the_timeout() {
    let addr = server().await;
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    // Headers in a trickle that completes within the deadline are served.
    let got = closed_while_dripping(
        &mut sock,
        b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
        TIMEOUT / 40,
    )
    .await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("ok"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_request_in_flight_is_never_cut_and_the_idle_connection_then_closes() {
    let addr = server().await;
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    sock.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let sent = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    // The answer comes when the handler is done (three timeouts), uncut.
    finishes_at("the slow answer", sent + TIMEOUT * 3, async {
        while !got.ends_with(b"slow ok") {
            let n = sock.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed while the answer was on its way");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    // Then idle: closed one timeout after the answer.
    let n = finishes_at(
        "the close of the idle connection",
        sent + TIMEOUT * 4,
        sock.read(&mut buf),
    )
    .await
    .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test(start_paused = true)]
async fn over_http2_streams_in_flight_keep_the_connection_and_idle_closes_it() {
    let addr = server().await;
    let sock = TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(sock))
            .await
            .expect("handshake");
    let conn = tokio::spawn(conn);
    let opened = Instant::now();
    let res = finishes_at(
        "the slow answer",
        opened + TIMEOUT * 3,
        send.send_request(
            Request::get(format!("http://{addr}/slow"))
                .body(Body::empty())
                .expect("request"),
        ),
    )
    .await
    .expect("an answer after three timeouts");
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], b"slow ok");
    // Idle from there: the server closes the connection one timeout later
    // (how the client's connection task ends does not matter, only when).
    let _ = finishes_at(
        "the close of the idle HTTP/2 connection",
        opened + TIMEOUT * 4,
        conn,
    )
    .await;
}

//! `temper server start-dev --health-port`: liveness and readiness over HTTP, for
//! orchestrators that run the dev server (the container image's default command).

// Synchronous tests with no async runtime: they poll a child process with a plain sleep.
#![allow(clippy::disallowed_methods)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `GET path` on 127.0.0.1:`port`: the status code and body, or `None` if nothing answers.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    Some((status, body))
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what} within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ready_once_serving_and_not_ready_while_stopping() {
    let port = support::free_port();
    let health = support::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_temper"))
        .args(["server", "start-dev", "--ephemeral", "--ip", "127.0.0.1"])
        .args(["--port", &port.to_string(), "--log-level", "warn"])
        .args(["--health-port", &health.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("temper starts");

    wait_for("liveness", || {
        get(health, "/health/live").is_some_and(|(s, _)| s == 200)
    });
    wait_for("readiness", || {
        get(health, "/health/ready").is_some_and(|(s, _)| s == 200)
    });
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "the gRPC port takes connections once ready"
    );
    assert_eq!(
        get(health, "/health/nothing").map(|(s, _)| s),
        Some(404),
        "other paths are not found"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut not_ready_seen = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        // Once it has said it is not ready (or stopped answering), it never says ready again.
        match get(health, "/health/ready") {
            Some((200, _)) => assert!(!not_ready_seen, "ready again while stopping"),
            Some((code, body)) => {
                assert_eq!(code, 503, "{body}");
                assert!(body.contains("stopping"), "{body}");
                not_ready_seen = true;
            }
            None => not_ready_seen = true,
        }
        assert!(Instant::now() < deadline, "stopped within 15 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success(), "a clean exit: {status}");
}

//! The shard count is fixed when a store is created: a server started on an existing store
//! with another count refuses to start and says why, both `start-dev` and a cluster node.

// Synchronous tests with no async runtime: they poll a child process with a plain sleep.
#![allow(clippy::disallowed_methods)]

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Run `command` to its end (at most 30 s) and return what it printed.
fn run_to_exit(command: &mut Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("temper starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("temper kept running with a different shard count");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Wait (at most 30 s) for the line start-dev prints once the store is set up and it serves:
/// the port is bound before the store is opened, so a connection alone proves nothing.
fn wait_ready(child: &mut std::process::Child) {
    let stderr = child.stderr.take().expect("piped stderr");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            if line.is_ok_and(|l| l.contains("listening on")) {
                let _ = ready_tx.send(());
                return;
            }
        }
    });
    if ready_rx.recv_timeout(Duration::from_secs(30)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("temper did not say it is ready (a refused start says nothing of the kind)");
    }
}

#[test]
fn a_store_keeps_the_shard_count_it_was_created_with() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("dev.sqlite");
    let port = support::free_port();
    let dev = |shards: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_temper"));
        c.args([
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--log-level",
            "warn",
        ])
        .args(["--port", &port.to_string(), "--num-shards", shards])
        .arg("--db-file")
        .arg(&db);
        c
    };

    // Create the store with 4 shards, then stop.
    let mut first = dev("4")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("temper starts");
    wait_ready(&mut first);
    let _ = first.kill();
    let _ = first.wait();

    let refused = run_to_exit(&mut dev("8"));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "started with 8 shards: {stderr}");
    assert!(
        stderr.contains("created with 4 shards, not 8"),
        "start-dev says why: {stderr}"
    );

    let gossip = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port();
    let refused = run_to_exit(
        Command::new(env!("CARGO_BIN_EXE_temper"))
            .args(["server", "start"])
            .args(["--set", "cluster.num_shards=16"])
            .args(["--set", "store.kind=sqlite"])
            .args(["--set", &format!("store.path={}", db.display())])
            .args(["--set", &format!("node.grpc_address=127.0.0.1:{port}")])
            .args([
                "--set",
                &format!("node.membership_address=127.0.0.1:{gossip}"),
            ])
            .args(["--set", "log.level=warn"]),
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "a node started with 16 shards: {stderr}"
    );
    assert!(
        stderr.contains("cluster.num_shards") && stderr.contains("created with 4 shards, not 16"),
        "the node names the key and says why: {stderr}"
    );

    // The store is untouched: the right count still starts.
    let mut again = dev("4")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("temper starts");
    wait_ready(&mut again);
    let _ = again.kill();
    let _ = again.wait();
}

//! The Cassandra options of the `temper` binary, without a cluster: an unreachable cluster
//! is reported clearly, the server keeps retrying instead of exiting, and the schema
//! commands fail with the reason.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    support::free_port()
}

#[test]
fn start_dev_waits_for_an_unreachable_cluster_instead_of_exiting() {
    let contact = format!("127.0.0.1:{}", closed_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_temper"))
        .args([
            "server",
            "start-dev",
            "--store",
            "cassandra",
            "--contact-points",
            &contact,
            "--port",
            &support::free_port().to_string(),
            "--log-level",
            "off",
        ])
        .env_remove("TEMPER_CASSANDRA_KEYSPACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("temper starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Two attempts (the first retry waits 1 s), and the process is still running.
    let mut retries = Vec::new();
    while retries.len() < 2 {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a retry message within 30 s");
        if line.contains("retrying in") {
            retries.push(line);
        }
    }
    assert!(
        retries[0].contains("cannot reach the Cassandra cluster") && retries[0].contains(&contact),
        "{retries:?}"
    );
    assert!(
        child.try_wait().expect("status").is_none(),
        "the server must keep waiting for the cluster"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn schema_commands_report_an_unreachable_cluster_and_fail() {
    let contact = format!("127.0.0.1:{}", closed_port());
    for command in ["setup", "migrate"] {
        let out = Command::new(env!("CARGO_BIN_EXE_temper"))
            .args([
                "schema",
                command,
                "--store",
                "cassandra",
                "--contact-points",
                &contact,
                "--keyspace",
                "temper_test",
                "--replication-factor",
                "3",
            ])
            .output()
            .expect("temper runs");
        assert!(!out.status.success(), "{command} must fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("cannot reach the Cassandra cluster") && stderr.contains(&contact),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn bad_cassandra_settings_fail_before_connecting() {
    let out = Command::new(env!("CARGO_BIN_EXE_temper"))
        .args([
            "schema",
            "setup",
            "--store",
            "cassandra",
            "--keyspace",
            "not-a-keyspace",
        ])
        .output()
        .expect("temper runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("keyspace"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_temper"))
        .args([
            "schema",
            "setup",
            "--store",
            "cassandra",
            "--replication-factor",
            "0",
        ])
        .output()
        .expect("temper runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("replication factor"), "{stderr}");
}

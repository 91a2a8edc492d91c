//! What the tests against a real temper share: finding (or building) the binary and starting
//! `temper server start-dev --ephemeral` on a free loopback port.

// Synchronous helpers with no async runtime: they wait on child processes with a plain sleep.
#![allow(clippy::disallowed_methods)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("loadtest/ sits in the workspace")
        .to_path_buf()
}

/// How to provide the binary, for the failure messages.
const HOW_TO_PROVIDE: &str =
    "build it with `cargo build --bin temper` or set TEMPER_BIN to a temper binary";

/// The temper binary, built if need be. Fails the test if there is none: a test that cannot
/// run must not read as passed.
pub fn temper_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TEMPER_BIN") {
        let bin = PathBuf::from(p);
        assert!(
            bin.exists(),
            "TEMPER_BIN={} does not exist; {HOW_TO_PROVIDE}",
            bin.display()
        );
        return bin;
    }
    let bin = workspace_root().join("target/debug/temper");
    if bin.exists() {
        return bin;
    }
    eprintln!(
        "{} is missing; running `cargo build --bin temper`",
        bin.display()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut build = Command::new(cargo)
        .args(["build", "--bin", "temper"])
        .current_dir(workspace_root())
        .env_remove("CARGO_TARGET_DIR")
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run `cargo build --bin temper` ({e}); {HOW_TO_PROVIDE}")
        });
    let deadline = Instant::now() + Duration::from_secs(15 * 60);
    loop {
        match build.try_wait() {
            Ok(Some(status)) if status.success() && bin.exists() => return bin,
            Ok(Some(status)) => {
                panic!("`cargo build --bin temper` failed ({status}); {HOW_TO_PROVIDE}")
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            _ => {
                let _ = build.kill();
                panic!("`cargo build --bin temper` did not finish in 15 minutes; {HOW_TO_PROVIDE}");
            }
        }
    }
}

pub fn start_temper(bin: &Path) -> Server {
    let port = free_port();
    let child = Command::new(bin)
        .args([
            "server",
            "start-dev",
            "--ephemeral",
            "--ip",
            "127.0.0.1",
            "--port",
        ])
        .arg(port.to_string())
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("temper starts");
    let server = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "temper did not listen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

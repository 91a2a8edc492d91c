//! The short fuzz run of CI: 10,000 arbitrary and mutated requests, with a fixed seed, to
//! every WorkflowService and OperatorService RPC of a real `temper server start-dev
//! --ephemeral`; no answer may be bad (INTERNAL, UNKNOWN, a dropped connection) and the
//! server must still answer DescribeNamespace afterwards. See docs/testing.md.
//!
//! Uses `../target/debug/temper` (or `$TEMPER_BIN`), built if missing, as
//! `against_temper.rs` does.

mod common;

use std::process::Command;

use common::{start_temper, temper_bin};

/// The seed CI runs; a failure prints `--seed 20 --only-index N` for each bad answer.
const SEED: &str = "20";
const REQUESTS: &str = "10000";

#[test]
fn fuzzed_requests_get_no_bad_answer_from_temper() {
    let bin = temper_bin();
    let server = start_temper(&bin);
    let out = Command::new(env!("CARGO_BIN_EXE_temper-loadtest"))
        .args(["fuzz", "--target"])
        .arg(format!("127.0.0.1:{}", server.port))
        .args(["--requests", REQUESTS, "--seed", SEED, "--deadline", "2s"])
        .arg("--server-pid")
        .arg(server.child.id().to_string())
        .output()
        .expect("temper-loadtest runs");
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}");
    assert!(
        out.status.success(),
        "temper-loadtest fuzz found bad answers or an unhealthy server: {}\n{report}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("server healthy; bad answers: 0"),
        "{report}"
    );
    assert!(
        report.contains(&format!("fuzz: {REQUESTS} requests with seed {SEED}")),
        "{report}"
    );
}

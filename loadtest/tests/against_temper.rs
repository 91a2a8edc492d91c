//! Run every scenario temper supports against a real `temper server start-dev --ephemeral`
//! and check the books balance: every started workflow is counted as completed or failed,
//! and none failed. Small iteration counts keep it to a few seconds per scenario.
//!
//! Uses `../target/debug/temper` (or `$TEMPER_BIN`); if it is missing, builds it with
//! `cargo build --bin temper`, and fails (saying how to provide the binary) if that fails.
//! `scripts/test` builds the binary before `cargo test` and sets `TEMPER_BIN` when
//! `CARGO_TARGET_DIR` moves it.

// Synchronous tests with no async runtime: they wait on child processes with a plain sleep.
#![allow(clippy::disallowed_methods)]

mod common;

use std::process::Command;

use common::{start_temper, temper_bin};

use serde_json::Value;

/// Run the generator binary and return its JSON report.
fn loadtest(port: u16, args: &[&str]) -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_temper-loadtest"))
        .args(["run", "--quiet", "--target"])
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "--drain",
            "30s",
            "--pollers",
            "4",
            "--connections",
            "2",
            "--report",
        ])
        .arg(&report)
        .args(args)
        .output()
        .expect("temper-loadtest runs");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "temper-loadtest {args:?} failed: {}\n{table}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = std::fs::read_to_string(&report).expect("the report was written");
    let v: Value = serde_json::from_str(&json).expect("the report is JSON");
    eprintln!("{args:?}\n{table}");
    v
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("report has no number {key}: {v}"))
}

fn check_balanced(v: &Value, what: &str) {
    let (started, completed, failed) = (n(v, "started"), n(v, "completed"), n(v, "failed"));
    assert!(started > 0, "{what}: nothing started: {v}");
    assert_eq!(started, completed + failed, "{what}: unbalanced: {v}");
}

fn check_clean(v: &Value, what: &str) {
    check_balanced(v, what);
    assert_eq!(n(v, "failed"), 0, "{what}: failures: {}", v["failures"]);
    assert_eq!(
        n(v, "start_errors"),
        0,
        "{what}: start errors: {}",
        v["failures"]
    );
    let lat = &v["latency_ms"];
    for k in ["p50", "p90", "p99", "max"] {
        assert!(
            lat[k].as_f64().is_some_and(|x| x > 0.0),
            "{what}: latency_ms.{k}: {v}"
        );
    }
    for k in ["duration_s", "workflows_per_s", "state_transitions_per_s"] {
        assert!(v[k].as_f64().is_some_and(|x| x > 0.0), "{what}: {k}: {v}");
    }
}

#[test]
fn every_supported_scenario_runs_clean_against_temper() {
    let bin = temper_bin();
    let server = start_temper(&bin);
    let closed = ["--concurrency", "5", "--iterations", "15"];
    let runs: &[(&str, &[&str])] = &[
        ("noop", &[]),
        ("activity", &[]),
        ("sequential-activities", &["--option", "count=3"]),
        ("parallel-activities", &["--option", "count=3"]),
        (
            "timers",
            &["--option", "count=2", "--option", "duration_ms=50"],
        ),
        ("signals", &["--option", "count=3"]),
        ("nexus", &[]),
        ("tenant-mix", &["--option", "flood_factor=4"]),
        (
            "tenant-mix",
            &["--option", "flood_factor=4", "--option", "inner=nexus"],
        ),
    ];
    for (scenario, options) in runs {
        let mut args = vec!["--scenario", scenario];
        args.extend_from_slice(options);
        args.extend_from_slice(&closed);
        let v = loadtest(server.port, &args);
        check_clean(&v, scenario);
        assert_eq!(v["scenario"], *scenario);
        assert_eq!(n(&v, "started"), 15, "{scenario}: iterations");
        if *scenario == "tenant-mix" {
            let ns = v["namespaces"].as_object().expect("per-namespace numbers");
            assert_eq!(ns.len(), 3, "{v}");
            let flood = n(&ns["loadtest-ns-0"], "completed");
            let other = n(&ns["loadtest-ns-1"], "completed");
            assert!(
                flood > other && other > 0,
                "flooding namespace gets more: {v}"
            );
        }
    }

    // Open loop for a second, with sticky queues.
    let v = loadtest(
        server.port,
        &[
            "--scenario",
            "activity",
            "--option",
            "sticky=true",
            "--rate",
            "20",
            "--duration",
            "1s",
        ],
    );
    check_clean(&v, "activity open loop sticky");
    assert_eq!(v["mode"], "open");
    assert!(
        n(&v, "sticky_cache_hits") > 0,
        "sticky tasks came back: {v}"
    );

    // Two fairness keys on one task queue, open loop, a worker with two slow activity slots.
    // The light load does not saturate it; this checks that the keys reach the activities
    // (the server echoes the merged priority in the poll response) and show in the report.
    let v = loadtest(
        server.port,
        &[
            "--scenario",
            "fairness-mix",
            "--option",
            "flood_factor=3",
            "--option",
            "weight_b=2",
            "--option",
            "activity_slots=2",
            "--option",
            "activity_ms=5",
            "--rate",
            "40",
            "--duration",
            "1s",
        ],
    );
    check_clean(&v, "fairness-mix");
    let keys = v["fairness_keys"].as_object().expect("per-key numbers");
    assert_eq!(keys.len(), 2, "{v}");
    let (a, b) = (&keys["a"], &keys["b"]);
    assert!(
        n(a, "completed") > n(b, "completed") && n(b, "completed") > 0,
        "key a offers three times b's load: {v}"
    );
    for k in [a, b] {
        let s2s = &k["activity_task_schedule_to_start_ms"];
        assert_eq!(n(s2s, "count"), n(k, "completed"), "{v}");
    }
    assert_eq!(
        n(a, "completed") + n(b, "completed"),
        n(&v, "completed"),
        "{v}"
    );

    // temper has no child workflows yet: whatever happens, every workflow is accounted for,
    // and failures say why.
    let v = loadtest(
        server.port,
        &[
            "--scenario",
            "child-workflows",
            "--option",
            "count=2",
            "--concurrency",
            "3",
            "--iterations",
            "6",
        ],
    );
    check_balanced(&v, "child-workflows");
    if n(&v, "failed") > 0 {
        let reasons = v["failures"].as_object().expect("failure reasons");
        assert!(!reasons.is_empty(), "{v}");
    }
}

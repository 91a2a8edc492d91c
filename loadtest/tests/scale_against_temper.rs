//! The scale check of CI: `temper-loadtest scale` against real `temper server start-dev`
//! processes on SQLite files, with 1,000 and then 10,000 open workflows that wait on timers
//! (a 4 MiB run cache). What a server whose memory grew with the open workflows would fail:
//!
//! - the timers held in memory stay far below the open workflows (the 1-hour timers wait in
//!   the store, past the timer window), after the fill and after a restart;
//! - the run cache stays within its budget;
//! - after a restart, RSS grows by less than 1 KB per extra open workflow between the two
//!   counts, and while filling it stays under 256 MiB;
//! - after the restart, the timers that come due all fire and their workflows complete.
//!
//! Uses `../target/debug/temper` (or `$TEMPER_BIN`), built if missing. See docs/testing.md.

// This test runs its servers through `temper-loadtest scale`; it needs only the binary.
#[allow(dead_code)]
mod common;

use std::process::Command;

use common::temper_bin;

const COUNTS: [u64; 2] = [1000, 10_000];
const DUE: u64 = 500;
const CACHE_BUDGET_MIB: f64 = 4.0;

#[test]
fn memory_does_not_grow_with_open_workflows_and_their_timers_fire_after_a_restart() {
    let bin = temper_bin();
    let dir = tempfile::tempdir().expect("temp dir");
    let report_path = dir.path().join("scale.json");
    let counts = COUNTS.map(|c| c.to_string()).join(",");
    let out = Command::new(env!("CARGO_BIN_EXE_temper-loadtest"))
        .arg("scale")
        .arg("--server-bin")
        .arg(&bin)
        .args(["--counts", &counts, "--due", &DUE.to_string()])
        .args([
            "--noop-rate",
            "50",
            "--noop-duration",
            "2s",
            "--fire-margin",
            "5s",
        ])
        .arg("--server-arg=--dynamic-config-value")
        .arg(format!(
            "--server-arg=temper.history.cacheBudgetMib={CACHE_BUDGET_MIB}"
        ))
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .arg("--report")
        .arg(&report_path)
        .output()
        .expect("temper-loadtest runs");
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("{table}");
    assert!(
        out.status.success(),
        "temper-loadtest scale failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).expect("report written"))
            .expect("report is JSON");
    let rows = report["counts"].as_array().expect("a row per count");
    assert_eq!(rows.len(), COUNTS.len(), "{report}");
    let num = |row: &serde_json::Value, path: &[&str]| -> f64 {
        let mut v = row;
        for p in path {
            v = &v[*p];
        }
        v.as_f64()
            .unwrap_or_else(|| panic!("{} missing in {row}", path.join(".")))
    };
    for row in rows {
        assert_eq!(num(row, &["due_completed"]), DUE as f64, "{row}");
        assert_eq!(row["all_due_completed"], true, "{row}");
        assert_eq!(
            num(row, &["timer_lateness_ms", "count"]),
            DUE as f64,
            "{row}"
        );
        for at in ["gauges_filled", "gauges_restarted"] {
            let cache = num(row, &[at, "cache_mib"]);
            assert!(
                cache <= CACHE_BUDGET_MIB * 1.25,
                "{at}: the run cache holds {cache} MiB with a budget of {CACHE_BUDGET_MIB}: {row}"
            );
        }
        // Bounded caches (SQLite's pages and statements per connection) fill up as the store
        // grows, so the fill is checked against a fixed bound, not per workflow.
        let peak = num(row, &["rss_fill_peak_mib"]);
        assert!(peak < 256.0, "RSS reached {peak} MiB while filling: {row}");
    }
    let (small, large) = (&rows[0], &rows[1]);
    let long = (COUNTS[1] - DUE) as f64;
    for at in ["gauges_filled", "gauges_restarted"] {
        // The due timers and the workflow task timeouts of the last seconds' tasks are in
        // the window; the 9,500 one-hour timers are not.
        let timers = num(large, &[at, "timers_in_memory"]);
        assert!(
            timers < DUE as f64 + long / 2.0,
            "{at}: {timers} timers in memory with {} open workflows: {large}",
            COUNTS[1]
        );
    }
    // After a restart nothing is cached yet: RSS must not depend on the open workflows,
    // beyond caches that are bounded but fill as the store grows: SQLite's page cache, up
    // to 2 MiB on each of its 17 connections (16 readers and the writer), which the
    // smaller store cannot fill.
    let rss = "rss_restarted_noop_mib";
    let grown = (num(large, &[rss]) - num(small, &[rss])) * 1048576.0;
    let sqlite_caches = 17.0 * 2.0 * 1048576.0;
    let per_workflow = (grown - sqlite_caches).max(0.0) / (COUNTS[1] - COUNTS[0]) as f64;
    assert!(
        per_workflow < 1000.0,
        "{rss} grew by {:.1} MiB, {per_workflow:.0} bytes per extra open workflow beyond \
         SQLite's bounded caches: {report}",
        grown / 1048576.0
    );
}

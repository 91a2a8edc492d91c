//! The membership table: heartbeats insert or refresh a row, rows expire after their ttl.

use std::time::{Duration, Instant};

use crate::{MemberRow, Persistence};

fn row(host_id: &str, role: &str, address: &str, heartbeat_ms: i64) -> MemberRow {
    MemberRow {
        host_id: host_id.to_owned(),
        role: role.to_owned(),
        rpc_address: address.to_owned(),
        session_start_ms: 1_700_000_000_000,
        last_heartbeat_ms: heartbeat_ms,
    }
}

/// A heartbeat inserts a row per `(role, host_id)`; the next one replaces it (a restarted
/// node, a new address); rows come back ordered by role then host id.
pub async fn case_membership_heartbeat_and_list(p: &Persistence) {
    let s = &p.membership;
    let ttl = Duration::from_secs(60);
    assert_eq!(s.live_members().await.expect("list"), Vec::new());

    let b_history = row("node-b", "history", "127.0.0.1:7002", 1);
    let a_history = row("node-a", "history", "127.0.0.1:7001", 1);
    let a_matching = row("node-a", "matching", "127.0.0.1:7001", 1);
    for r in [&b_history, &a_history, &a_matching] {
        s.heartbeat_member(r, ttl).await.expect("heartbeat");
    }
    assert_eq!(
        s.live_members().await.expect("list"),
        vec![a_history.clone(), b_history.clone(), a_matching.clone()]
    );

    // node-a restarts on another port: same key, new session and address.
    let restarted = MemberRow {
        session_start_ms: 1_700_000_009_000,
        ..row("node-a", "history", "127.0.0.1:7101", 2)
    };
    s.heartbeat_member(&restarted, ttl).await.expect("refresh");
    assert_eq!(
        s.live_members().await.expect("list"),
        vec![restarted, b_history, a_matching]
    );
}

/// A row not refreshed within its ttl is no longer listed; a refreshed one stays.
pub async fn case_membership_rows_expire(p: &Persistence) {
    let s = &p.membership;
    let short = row("node-short", "history", "127.0.0.1:7001", 1);
    let long = row("node-long", "history", "127.0.0.1:7002", 1);
    s.heartbeat_member(&short, Duration::from_secs(1))
        .await
        .expect("heartbeat short");
    s.heartbeat_member(&long, Duration::from_secs(120))
        .await
        .expect("heartbeat long");
    let listed = s.live_members().await.expect("list");
    assert!(listed.contains(&short), "a fresh row is listed: {listed:?}");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = s.live_members().await.expect("list");
        assert!(
            listed.contains(&long),
            "the long-lived row stays: {listed:?}"
        );
        if !listed.contains(&short) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a row with a 1 s ttl is still listed after 10 s: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Heartbeating again brings it back.
    s.heartbeat_member(&short, Duration::from_secs(120))
        .await
        .expect("heartbeat again");
    assert_eq!(s.live_members().await.expect("list"), vec![long, short]);
}

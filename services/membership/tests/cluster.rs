//! Several `Membership` instances gossiping on 127.0.0.1 (OS-assigned ports): they find each
//! other, agree on owners, and notice leaves, crashes, restarts and joins in time.
//!
//! Every wait polls the published views with a deadline; the timings printed are the
//! measured ones (run with `--nocapture`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use temper_membership::{ClusterView, Membership, MembershipConfig, MembershipError, Role};
use temper_persistence::MembershipStore;

const ROLES: &[Role] = &[Role::History, Role::Matching, Role::Frontend];

fn config(name: &str, seeds: &[&Membership]) -> MembershipConfig {
    let mut c = MembershipConfig::new(
        name,
        ROLES.to_vec(),
        format!("{name}.grpc:7233"),
        "127.0.0.1:0".parse().expect("addr"),
    );
    c.cluster_id = "membership-tests".into();
    c.seeds = seeds
        .iter()
        .map(|m| m.me().gossip_address.to_string())
        .collect();
    c
}

async fn start(name: &str, seeds: &[&Membership]) -> Membership {
    Membership::start(config(name, seeds), None)
        .await
        .expect("start membership")
}

fn names(view: &ClusterView) -> Vec<&str> {
    view.members().iter().map(|m| m.name.as_str()).collect()
}

fn history_ring(view: &ClusterView) -> Vec<&str> {
    view.ring_members(Role::History)
        .iter()
        .map(|m| m.name.as_str())
        .collect()
}

/// Wait until `m`'s view satisfies `ok`; panics with the last view after `within`.
async fn wait_for(
    m: &Membership,
    within: Duration,
    what: &str,
    ok: impl Fn(&ClusterView) -> bool,
) -> Duration {
    let started = Instant::now();
    let mut views = m.subscribe();
    let waited = tokio::time::timeout(within, views.wait_for(|v| ok(v))).await;
    match waited {
        Ok(Ok(_)) => started.elapsed(),
        Ok(Err(_)) => panic!(
            "{}: membership stopped while waiting for {what}",
            m.me().name
        ),
        Err(_) => panic!(
            "{}: no view with {what} within {within:?}; last view: {:?}",
            m.me().name,
            m.view()
        ),
    }
}

async fn wait_all(
    ms: &[&Membership],
    within: Duration,
    what: &str,
    ok: impl Fn(&ClusterView) -> bool + Copy,
) -> Duration {
    let started = Instant::now();
    for m in ms {
        let left = within.saturating_sub(started.elapsed());
        wait_for(m, left, what, ok).await;
    }
    started.elapsed()
}

fn owners(view: &ClusterView, shards: u32) -> Vec<String> {
    (1..=shards)
        .map(|s| {
            view.history_shard_owner(s)
                .map(|m| m.name.clone())
                .unwrap_or_default()
        })
        .collect()
}

async fn three() -> (Membership, Membership, Membership) {
    let a = start("a", &[]).await;
    let b = start("b", &[&a]).await;
    let c = start("c", &[&b]).await;
    let took = wait_all(&[&a, &b, &c], Duration::from_secs(10), "a, b and c", |v| {
        names(v) == ["a", "b", "c"]
    })
    .await;
    println!("three nodes converged in {took:?}");
    (a, b, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_works_alone() {
    let a = start("a", &[]).await;
    let view = a.view();
    assert_eq!(names(&view), ["a"]);
    assert_eq!(view.member("a"), Some(a.me()));
    assert_eq!(view.shards_of("a", 16), (1..=16).collect::<Vec<_>>());
    assert_ne!(
        a.me().gossip_address.port(),
        0,
        "the bound port is advertised"
    );
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_converge_to_identical_views() {
    let (a, b, c) = three().await;
    // Wait for each to see the others' final announcements, then compare.
    let (va, vb, vc) = (a.view(), b.view(), c.view());
    assert_eq!(va.members(), vb.members());
    assert_eq!(va.members(), vc.members());
    assert_eq!(va.member("b"), Some(b.me()));
    assert_eq!(owners(&va, 256), owners(&vb, 256));
    assert_eq!(owners(&va, 256), owners(&vc, 256));
    for role in [Role::Matching, Role::Frontend] {
        for key in ["tq/default/0", "tq/default/1", "tq/other/3"] {
            assert_eq!(
                va.owner(role, key).map(|m| &m.name),
                vc.owner(role, key).map(|m| &m.name)
            );
        }
    }
    let total: usize = ["a", "b", "c"]
        .iter()
        .map(|n| va.shards_of(n, 256).len())
        .sum();
    assert_eq!(total, 256);
    for m in [a, b, c] {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_node_leaves_the_rings_at_once() {
    let (a, b, c) = three().await;
    let started = Instant::now();
    c.leave().await;
    let returned = started.elapsed();
    wait_all(
        &[&a, &b, &c],
        Duration::from_secs(3),
        "c out of the rings",
        |v| history_ring(v) == ["a", "b"],
    )
    .await;
    println!(
        "leave() returned after {returned:?}; c was out of every ring {:?} after the call",
        started.elapsed()
    );
    assert!(
        a.view().member("c").is_some_and(|m| m.leaving),
        "a leaving node stays listed while it runs"
    );
    assert!(a.view().shards_of("c", 64).is_empty());
    for m in [a, b, c] {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_node_leaves_the_rings_within_the_bound() {
    let (a, b, c) = three().await;
    let killed = Instant::now();
    drop(c); // no leave, no shutdown: gossip stops as with kill -9
    let took = wait_all(&[&a, &b], Duration::from_secs(10), "c gone", |v| {
        names(v) == ["a", "b"]
    })
    .await;
    println!("a crashed node left every view after {took:?}");
    assert!(
        killed.elapsed() <= Duration::from_secs(8),
        "dead_after 3 s + debounce 0.5 s should take about 3.5 s, took {took:?}"
    );
    assert_eq!(a.view().shards_of("c", 64), Vec::<u32>::new());
    assert_eq!(owners(&a.view(), 64), owners(&b.view(), 64));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_appears_everywhere() {
    let a = start("a", &[]).await;
    let b = start("b", &[&a]).await;
    wait_all(&[&a, &b], Duration::from_secs(10), "a and b", |v| {
        names(v) == ["a", "b"]
    })
    .await;
    let before = a.view().version();
    let d = start("d", &[&a]).await;
    let took = wait_all(&[&a, &b, &d], Duration::from_secs(10), "d", |v| {
        names(v) == ["a", "b", "d"]
    })
    .await;
    println!("a joining node appeared everywhere within {took:?}");
    assert!(a.view().version() > before);
    assert!(
        !a.view().shards_of("d", 256).is_empty(),
        "d took some shards"
    );
    for m in [a, b, d] {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_replaces_its_old_incarnation() {
    let a = start("a", &[]).await;
    let b = start("b", &[&a]).await;
    wait_all(&[&a, &b], Duration::from_secs(10), "a and b", |v| {
        names(v) == ["a", "b"]
    })
    .await;
    let old = b.me().clone();
    drop(b);
    let b = start("b", &[&a]).await;
    assert!(b.me().generation > old.generation);
    let new = b.me().clone();
    let took = wait_for(&a, Duration::from_secs(10), "the new b", |v| {
        v.member("b") == Some(&new)
    })
    .await;
    println!("a restarted node replaced its old incarnation within {took:?}");
    assert!(
        took < Duration::from_secs(3),
        "the new generation should replace the old one without waiting for dead_after"
    );
    assert_eq!(names(&a.view()), ["a", "b"]);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_seeded_only_from_the_store_finds_the_others() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn MembershipStore> = Arc::new(
        temper_persistence_sqlite::SqliteStore::open(&dir.path().join("temper.db"))
            .expect("open store"),
    );
    let mut cfg_a = config("a", &[]);
    cfg_a.seed_refresh = Duration::from_millis(500);
    let a = Membership::start(cfg_a, Some(store.clone()))
        .await
        .expect("start a");
    let b = start("b", &[&a]).await; // found by gossip only, never writes the table
    let rows = store.live_members().await.expect("rows");
    assert!(
        rows.iter()
            .any(|r| r.host_id == "a" && r.rpc_address == a.me().gossip_address.to_string()),
        "a heartbeats its row: {rows:?}"
    );
    let mut cfg_c = config("c", &[]);
    cfg_c.seed_refresh = Duration::from_millis(500);
    let c = Membership::start(cfg_c, Some(store.clone()))
        .await
        .expect("start c");
    let took = wait_all(&[&a, &b, &c], Duration::from_secs(10), "a, b and c", |v| {
        names(v) == ["a", "b", "c"]
    })
    .await;
    println!("a store-seeded node joined within {took:?}");
    for m in [a, b, c] {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_cluster_never_joins() {
    let a = start("a", &[]).await;
    let mut other = config("x", &[&a]);
    other.cluster_id = "someone-else".into();
    let x = Membership::start(other, None).await.expect("start x");
    let b = start("b", &[&a]).await;
    wait_all(&[&a, &b], Duration::from_secs(10), "a and b", |v| {
        names(v) == ["a", "b"]
    })
    .await;
    // b joined through the same seed in the meantime; x never did, nor did x see them.
    assert_eq!(names(&a.view()), ["a", "b"]);
    assert_eq!(names(&x.view()), ["x"]);
    for m in [a, b, x] {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_a_clear_error() {
    let a = start("a", &[]).await;
    let mut cfg = config("b", &[]);
    cfg.gossip_listen = a.me().gossip_address;
    cfg.gossip_advertise = a.me().gossip_address;
    let err = Membership::start(cfg, None).await.expect_err("port taken");
    assert!(matches!(err, MembershipError::Bind { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "cannot bind gossip address {}",
            a.me().gossip_address
        )) && msg.contains("address in use"),
        "{msg}"
    );
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_do_not_stop_gossip() {
    let a = start("a", &[]).await;
    let sender = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind sender");
    let magic = 45_139u16.to_le_bytes();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..2_000usize {
        // xorshift: deterministic noise, some of it behind a valid header.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 300) as usize;
        let mut datagram: Vec<u8> = (0..len)
            .map(|j| (seed.rotate_left((j % 64) as u32) >> 3) as u8)
            .collect();
        if i % 2 == 0 && datagram.len() >= 4 {
            datagram[..2].copy_from_slice(&magic);
            datagram[2] = (i % 3) as u8; // protocol version (0 and 1 exist)
            datagram[3] = (i % 5) as u8; // message type
        }
        sender
            .send_to(&datagram, a.me().gossip_address)
            .await
            .expect("send");
    }
    let b = start("b", &[&a]).await;
    wait_all(&[&a, &b], Duration::from_secs(10), "a and b", |v| {
        names(v) == ["a", "b"]
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

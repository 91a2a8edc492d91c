//! Network partitions, on chitchat's in-memory transport (`ChannelTransport`): links between
//! nodes are cut and healed, and every node must see the others leave and come back.
//!
//! Time is tokio's paused clock, which chitchat's failure detector and our tracker both
//! follow: every wait is a deadline in virtual time, so the production timings (gossip every
//! 200 ms, dead after 3 s, debounce 500 ms) cost no real time, and the waits measured are
//! those a cluster would see.

use std::net::SocketAddr;
use std::time::Duration;

use temper_membership::{
    ChannelTransport, ClusterView, Membership, MembershipConfig, MembershipError, Role,
};
use tokio::time::Instant;

const ROLES: &[Role] = &[Role::History, Role::Matching, Role::Frontend];

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn config(name: &str, port: u16, seeds: &[u16]) -> MembershipConfig {
    let mut c = MembershipConfig::new(
        name,
        ROLES.to_vec(),
        format!("{name}.grpc:7233"),
        addr(port),
    );
    c.cluster_id = "partition-tests".into();
    c.seeds = seeds.iter().map(|p| addr(*p).to_string()).collect();
    c
}

async fn start(net: &ChannelTransport, name: &str, port: u16, seeds: &[u16]) -> Membership {
    Membership::start_with_transport(config(name, port, seeds), None, net)
        .await
        .expect("start membership")
}

fn history_ring(view: &ClusterView) -> Vec<&str> {
    view.ring_members(Role::History)
        .iter()
        .map(|m| m.name.as_str())
        .collect()
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

/// Wait until every node's view satisfies `ok`; panics with the last view after `within`
/// (virtual time). Returns how long it took.
async fn wait_all(
    ms: &[&Membership],
    within: Duration,
    what: &str,
    ok: impl Fn(&ClusterView) -> bool + Copy,
) -> Duration {
    let started = Instant::now();
    for m in ms {
        let left = within.saturating_sub(started.elapsed());
        let mut views = m.subscribe();
        match tokio::time::timeout(left, views.wait_for(|v| ok(v))).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => panic!("{}: membership stopped waiting for {what}", m.me().name),
            Err(_) => panic!(
                "{}: no view with {what} within {within:?}; last view: {:?}",
                m.me().name,
                m.view()
            ),
        }
    }
    started.elapsed()
}

/// a (port 1), b (2, seeded with a) and c (3, seeded with b), converged.
async fn three(net: &ChannelTransport) -> (Membership, Membership, Membership) {
    let a = start(net, "a", 1, &[]).await;
    let b = start(net, "b", 2, &[1]).await;
    let c = start(net, "c", 3, &[2]).await;
    wait_all(&[&a, &b, &c], Duration::from_secs(10), "a, b and c", |v| {
        history_ring(v) == ["a", "b", "c"]
    })
    .await;
    (a, b, c)
}

#[tokio::test(start_paused = true)]
async fn a_cut_off_node_leaves_the_rings_and_returns_when_the_network_heals() {
    let net = ChannelTransport::default();
    let (a, b, c) = three(&net).await;
    let MembershipConfig {
        dead_after,
        gossip_interval,
        ..
    } = config("any", 9, &[]);

    net.remove_link(addr(1), addr(3)).await;
    net.remove_link(addr(2), addr(3)).await;
    let cut = Instant::now();
    let majority = wait_all(
        &[&a, &b],
        Duration::from_secs(10),
        "c out of the ring",
        |v| history_ring(v) == ["a", "b"],
    )
    .await;
    println!("a and b dropped c {majority:?} after the cut");
    assert!(
        majority >= dead_after - gossip_interval,
        "c was dropped after {majority:?}, before it was silent for dead_after ({dead_after:?})"
    );
    assert!(
        majority <= dead_after + Duration::from_secs(2),
        "dead_after 3 s + debounce 0.5 s should take about 3.5 s, took {majority:?}"
    );
    assert!(
        a.view().shards_of("c", 64).is_empty(),
        "c's shards moved to a and b"
    );
    assert_eq!(owners(&a.view(), 64), owners(&b.view(), 64));
    wait_all(&[&c], Duration::from_secs(10), "c alone", |v| {
        history_ring(v) == ["c"]
    })
    .await;
    println!("c was alone {:?} after the cut", cut.elapsed());

    net.add_link(addr(1), addr(3)).await;
    net.add_link(addr(2), addr(3)).await;
    let healed = wait_all(
        &[&a, &b, &c],
        Duration::from_secs(15),
        "a, b and c again",
        |v| history_ring(v) == ["a", "b", "c"],
    )
    .await;
    println!("every node saw the others again {healed:?} after the heal");
    let (va, vb, vc) = (a.view(), b.view(), c.view());
    assert_eq!(va.members(), vb.members());
    assert_eq!(va.members(), vc.members());
    assert_eq!(va.member("c"), Some(c.me()), "the same incarnation of c");
    assert_eq!(owners(&va, 64), owners(&vc, 64));
    assert!(!va.shards_of("c", 64).is_empty(), "c owns shards again");
    for m in [a, b, c] {
        m.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_partial_cut_removes_nobody_while_gossip_routes_around_it() {
    let net = ChannelTransport::default();
    let (a, b, c) = three(&net).await;
    let dead_after = config("any", 9, &[]).dead_after;

    // a and c cannot talk, but both still talk to b, which relays their heartbeats.
    net.remove_link(addr(1), addr(3)).await;
    let watch = dead_after * 3;
    for m in [&a, &c] {
        let mut views = m.subscribe();
        let dropped = tokio::time::timeout(
            watch,
            views.wait_for(|v| history_ring(v) != ["a", "b", "c"]),
        )
        .await;
        assert!(
            dropped.is_err(),
            "{} changed its ring under a partial cut: {:?}",
            m.me().name,
            m.view()
        );
    }
    assert_eq!(history_ring(&b.view()), ["a", "b", "c"]);
    for m in [a, b, c] {
        m.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_address_taken_on_the_transport_is_a_clear_error() {
    let net = ChannelTransport::default();
    let a = start(&net, "a", 1, &[]).await;
    let err = Membership::start_with_transport(config("b", 1, &[]), None, &net)
        .await
        .expect_err("address taken");
    assert!(matches!(err, MembershipError::Gossip(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("cannot open the gossip transport on 127.0.0.1:1"),
        "{err}"
    );
    a.shutdown().await;
}

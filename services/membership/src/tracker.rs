//! The sans-IO core of membership: turns what gossip reports into published views.
//!
//! Every tick the shell hands [`Tracker::observe`] the nodes chitchat's failure detector
//! considers live, with their heartbeat counters. The tracker
//! - drops a node whose heartbeat has not advanced for `dead_after` (chitchat's phi
//!   detector is only a backstop, tuned looser), so the bound does not depend on how often
//!   heartbeats happen to arrive;
//! - keeps one generation per name (a restarted node replaces its old incarnation at once);
//! - publishes a new [`ClusterView`] only after the member list has been quiet for
//!   `debounce`, at most once per `debounce`, and at the latest `3 * debounce` after the
//!   first unpublished change (so a flapping member cannot hold back every other change).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::view::newest_generation_by_name;
use crate::{ClusterView, Member};

/// One node as gossip reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The node's name.
    pub name: String,
    /// Its process incarnation.
    pub generation: u64,
    /// Where it gossips.
    pub gossip_address: SocketAddr,
    /// The node's heartbeat counter; it only grows while the node runs.
    pub heartbeat: u64,
    /// Its announced key-values.
    pub key_values: Vec<(String, String)>,
}

/// Timing and ring settings of a [`Tracker`].
#[derive(Clone, Copy, Debug)]
pub struct TrackerSettings {
    /// A node whose heartbeat has not advanced this long is left out.
    pub dead_after: Duration,
    /// Quiet time before a change is published, and minimum time between views.
    pub debounce: Duration,
    /// Virtual nodes per member per ring.
    pub virtual_nodes: u32,
}

#[derive(Debug)]
struct Heard {
    heartbeat: u64,
    advanced_at: Instant,
}

#[derive(Debug)]
struct Pending {
    members: Vec<Member>,
    /// When `members` last changed.
    changed_at: Instant,
    /// When the member list first differed from the published one.
    since: Instant,
}

/// Decides which members are live and when to publish a new view.
#[derive(Debug)]
pub struct Tracker {
    me: Member,
    settings: TrackerSettings,
    heard: HashMap<(String, u64), Heard>,
    published: Arc<ClusterView>,
    published_at: Instant,
    pending: Option<Pending>,
}

impl Tracker {
    /// A tracker whose first view (version 1) holds only `me`.
    pub fn new(me: Member, settings: TrackerSettings, now: Instant) -> Tracker {
        let published = Arc::new(ClusterView::build(
            1,
            vec![me.clone()],
            settings.virtual_nodes,
        ));
        Tracker {
            me,
            settings,
            heard: HashMap::new(),
            published,
            published_at: now,
            pending: None,
        }
    }

    /// The last published view.
    pub fn view(&self) -> Arc<ClusterView> {
        self.published.clone()
    }

    /// Feed the nodes gossip considers live now; returns a new view when one is due.
    /// Call it regularly (every tick), even with nothing new: time alone expires
    /// silent nodes and releases debounced changes.
    pub fn observe(&mut self, now: Instant, live: &[Observation]) -> Option<Arc<ClusterView>> {
        let members = self.live_members(now, live);
        self.debounce(now, members)
    }

    fn is_me(&self, name: &str, generation: u64) -> bool {
        name == self.me.name && generation == self.me.generation
    }

    fn live_members(&mut self, now: Instant, live: &[Observation]) -> Vec<Member> {
        // Forget nodes gossip no longer reports: if one comes back, it starts afresh.
        self.heard.retain(|(name, generation), _| {
            live.iter()
                .any(|o| o.name == *name && o.generation == *generation)
        });
        let mut members = Vec::with_capacity(live.len() + 1);
        let mut saw_me = false;
        for o in live {
            let me = self.is_me(&o.name, o.generation);
            let heard = self
                .heard
                .entry((o.name.clone(), o.generation))
                .or_insert(Heard {
                    heartbeat: o.heartbeat,
                    advanced_at: now,
                });
            if o.heartbeat > heard.heartbeat {
                heard.heartbeat = o.heartbeat;
                heard.advanced_at = now;
            }
            let silent_for = now.saturating_duration_since(heard.advanced_at);
            if !me && silent_for >= self.settings.dead_after {
                continue;
            }
            let member = Member::from_gossip(
                &o.name,
                o.generation,
                o.gossip_address,
                o.key_values.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            if let Some(member) = member {
                saw_me |= me;
                members.push(member);
            }
        }
        if !saw_me {
            members.push(self.me.clone());
        }
        newest_generation_by_name(members)
    }

    fn debounce(&mut self, now: Instant, members: Vec<Member>) -> Option<Arc<ClusterView>> {
        if self.published.same_members(&members) {
            self.pending = None;
            return None;
        }
        let pending = match self.pending.take() {
            Some(p) if p.members == members => p,
            Some(p) => Pending {
                members,
                changed_at: now,
                since: p.since,
            },
            None => Pending {
                members,
                changed_at: now,
                since: now,
            },
        };
        let debounce = self.settings.debounce;
        let quiet = now.saturating_duration_since(pending.changed_at) >= debounce;
        let overdue = now.saturating_duration_since(pending.since) >= debounce * 3;
        let rested = now.saturating_duration_since(self.published_at) >= debounce;
        if rested && (quiet || overdue) {
            let view = Arc::new(ClusterView::build(
                self.published.version() + 1,
                pending.members,
                self.settings.virtual_nodes,
            ));
            self.published = view.clone();
            self.published_at = now;
            Some(view)
        } else {
            self.pending = Some(pending);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;
    use crate::member::{KEY_GRPC, KEY_LEAVING, KEY_ROLES, KEY_STORE};

    const MS: Duration = Duration::from_millis(1);

    fn settings() -> TrackerSettings {
        TrackerSettings {
            dead_after: Duration::from_secs(3),
            debounce: Duration::from_millis(500),
            virtual_nodes: 32,
        }
    }

    fn obs(name: &str, generation: u64, heartbeat: u64) -> Observation {
        Observation {
            name: name.to_owned(),
            generation,
            gossip_address: "127.0.0.1:1".parse().expect("addr"),
            heartbeat,
            key_values: vec![
                (KEY_ROLES.into(), "history,matching".into()),
                (KEY_GRPC.into(), format!("{name}:7233")),
            ],
        }
    }

    fn me() -> Member {
        Member::from_gossip(
            "a",
            1,
            "127.0.0.1:1".parse().expect("addr"),
            obs("a", 1, 0)
                .key_values
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .expect("me")
    }

    fn names(view: &ClusterView) -> Vec<String> {
        view.members().iter().map(|m| m.name.clone()).collect()
    }

    /// Observe every 100 ms from `from` for `ms`, heartbeats advancing for the nodes in
    /// `beating`; returns the views published, with when.
    fn run(
        t: &mut Tracker,
        from: Instant,
        ms: u64,
        nodes: &[(&str, u64)],
        beating: &[&str],
    ) -> Vec<(Duration, Arc<ClusterView>)> {
        let mut out = Vec::new();
        for step in 0..=ms / 100 {
            let now = from + MS * u32::try_from(step * 100).expect("small");
            let live: Vec<Observation> = nodes
                .iter()
                .map(|&(name, generation)| {
                    let hb = if beating.contains(&name) { step } else { 0 };
                    obs(name, generation, hb)
                })
                .collect();
            if let Some(v) = t.observe(now, &live) {
                out.push((now - from, v));
            }
        }
        out
    }

    #[test]
    fn starts_with_itself_then_publishes_joiners_after_the_debounce() {
        let t0 = Instant::now();
        let mut t = Tracker::new(me(), settings(), t0);
        assert_eq!(names(&t.view()), ["a"]);
        assert_eq!(t.view().version(), 1);
        let views = run(
            &mut t,
            t0,
            2_000,
            &[("a", 1), ("b", 1), ("c", 1)],
            &["a", "b", "c"],
        );
        assert_eq!(views.len(), 1, "one change, one view");
        let (at, view) = &views[0];
        assert_eq!(names(view), ["a", "b", "c"]);
        assert_eq!(view.version(), 2);
        assert_eq!(*at, Duration::from_millis(500));
    }

    #[test]
    fn a_silent_node_leaves_after_dead_after() {
        let t0 = Instant::now();
        let mut t = Tracker::new(me(), settings(), t0);
        run(&mut t, t0, 1_000, &[("a", 1), ("b", 1)], &["a", "b"]);
        assert_eq!(names(&t.view()), ["a", "b"]);
        // b stops beating at t1 but gossip still calls it live: the tracker drops it after
        // dead_after, then publishes after the debounce.
        let t1 = t0 + Duration::from_millis(1_100);
        let views = run(&mut t, t1, 6_000, &[("a", 1), ("b", 1)], &["a"]);
        assert_eq!(views.len(), 1);
        let (at, view) = &views[0];
        assert_eq!(names(view), ["a"]);
        assert!(
            *at >= Duration::from_millis(3_000) && *at <= Duration::from_millis(3_600),
            "dropped after {at:?}"
        );
    }

    #[test]
    fn a_restart_replaces_the_old_generation_at_once() {
        let t0 = Instant::now();
        let mut t = Tracker::new(me(), settings(), t0);
        run(&mut t, t0, 1_000, &[("a", 1), ("b", 1)], &["a", "b"]);
        let t1 = t0 + Duration::from_millis(1_100);
        let views = run(
            &mut t,
            t1,
            1_000,
            &[("a", 1), ("b", 1), ("b", 2)],
            &["a", "b"],
        );
        assert_eq!(views.len(), 1);
        let view = &views[0].1;
        assert_eq!(names(view), ["a", "b"]);
        assert_eq!(view.member("b").map(|m| m.generation), Some(2));
    }

    #[test]
    fn a_leaving_node_leaves_the_rings_without_a_failure_wait() {
        let t0 = Instant::now();
        let mut t = Tracker::new(me(), settings(), t0);
        run(&mut t, t0, 1_000, &[("a", 1), ("b", 1)], &["a", "b"]);
        assert!(!t.view().shards_of("b", 64).is_empty());
        let mut leaving = obs("b", 1, 100);
        leaving.key_values.push((KEY_LEAVING.into(), "true".into()));
        let t1 = t0 + Duration::from_secs(2);
        assert!(
            t.observe(t1, &[obs("a", 1, 100), leaving.clone()])
                .is_none()
        );
        let view = t
            .observe(t1 + MS * 500, &[obs("a", 1, 101), leaving])
            .expect("published after the debounce");
        assert!(view.member("b").expect("still listed").leaving);
        assert_eq!(view.shards_of("b", 64), Vec::<u32>::new());
        assert_eq!(view.shards_of("a", 64).len(), 64);
        assert!(
            view.ring_members(Role::History)
                .iter()
                .all(|m| m.name == "a")
        );
    }

    #[test]
    fn a_node_that_cannot_reach_the_store_leaves_the_rings_and_comes_back() {
        let t0 = Instant::now();
        let mut t = Tracker::new(me(), settings(), t0);
        run(&mut t, t0, 1_000, &[("a", 1), ("b", 1)], &["a", "b"]);
        let flagged = |value: &str, heartbeat: u64| {
            let mut o = obs("b", 1, heartbeat);
            o.key_values.push((KEY_STORE.into(), value.into()));
            o
        };
        let t1 = t0 + Duration::from_secs(2);
        t.observe(t1, &[obs("a", 1, 100), flagged("down", 100)]);
        let view = t
            .observe(t1 + MS * 500, &[obs("a", 1, 101), flagged("down", 101)])
            .expect("published after the debounce");
        assert!(view.member("b").expect("still listed").store_down);
        assert_eq!(view.shards_of("b", 64), Vec::<u32>::new());
        assert_eq!(view.shards_of("a", 64).len(), 64);
        let t2 = t1 + Duration::from_secs(2);
        t.observe(t2, &[obs("a", 1, 102), flagged("ok", 102)]);
        let view = t
            .observe(t2 + MS * 500, &[obs("a", 1, 103), flagged("ok", 103)])
            .expect("published after the debounce");
        assert!(!view.shards_of("b", 64).is_empty());
    }

    #[test]
    fn flapping_cannot_hold_back_a_view_forever() {
        let t0 = Instant::now();
        let mut t = Tracker::new(me(), settings(), t0);
        // b appears and disappears every 200 ms: never quiet for 500 ms.
        let mut published = None;
        for step in 0..40u32 {
            let now = t0 + MS * (step * 100);
            let mut live = vec![obs("a", 1, step.into())];
            if (step / 2) % 2 == 0 {
                live.push(obs("b", 1, step.into()));
                live.push(obs("c", 1, step.into()));
            } else {
                live.push(obs("c", 1, step.into()));
            }
            if let Some(v) = t.observe(now, &live) {
                published = Some(now - t0);
                assert!(v.member("c").is_some());
                break;
            }
        }
        let at = published.expect("a view despite the flapping");
        assert!(at <= Duration::from_millis(1_500), "published after {at:?}");
    }

    #[test]
    fn changes_are_published_at_most_once_per_debounce() {
        let t0 = Instant::now();
        let mut t = Tracker::new(me(), settings(), t0);
        let v = t.observe(t0 + MS * 600, &[obs("a", 1, 1), obs("b", 1, 1)]);
        assert!(v.is_none(), "just seen");
        let v = t
            .observe(t0 + MS * 1_100, &[obs("a", 1, 2), obs("b", 1, 2)])
            .expect("quiet for 500 ms");
        assert_eq!(v.version(), 2);
        // A change right after: waits for the debounce again.
        let live = [obs("a", 1, 3), obs("b", 1, 3), obs("c", 1, 3)];
        assert!(t.observe(t0 + MS * 1_200, &live).is_none());
        assert!(t.observe(t0 + MS * 1_500, &live).is_none());
        let v = t.observe(t0 + MS * 1_700, &live).expect("published");
        assert_eq!(v.version(), 3);
        assert_eq!(names(&v), ["a", "b", "c"]);
    }

    #[test]
    fn incomplete_announcements_are_left_out_and_self_is_always_in() {
        let t0 = Instant::now();
        let mut t = Tracker::new(me(), settings(), t0);
        let mut half = obs("b", 1, 1);
        half.key_values.clear();
        // Gossip has not even reported self yet.
        for i in 0..20u32 {
            assert!(
                t.observe(t0 + MS * (i * 100), std::slice::from_ref(&half))
                    .is_none()
            );
        }
        assert_eq!(names(&t.view()), ["a"]);
    }
}

//! Whether this node may take shards: its view must hold a majority of the nodes that are
//! alive. Gossip alone cannot tell "the others are gone" from "I am cut off from them": a
//! node cut off from its peers sees a view of one and its ring gives it every shard. The
//! store's membership table tells the two apart, because a node cut off from its peers
//! but not from the store still sees their rows being refreshed. Sans-IO: the caller feeds
//! it the rows it read and the views it got.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use temper_persistence::MemberRow;

use crate::{ClusterView, Role};

/// What the store's membership table shows about the other nodes, as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorePeers {
    /// The node runs without a membership table: gossip alone decides.
    NoStore,
    /// The table has not been read yet, or the last read failed. A node that cannot read
    /// the store cannot take shards anyway (that is a CAS in the store).
    Unknown,
    /// The nodes whose rows are being refreshed: `(name, generation)` with the roles of
    /// their rows.
    Alive(Vec<AliveNode>),
}

/// A node whose membership row the store shows being refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliveNode {
    pub name: String,
    pub generation: i64,
    pub roles: BTreeSet<String>,
}

/// Which nodes keep refreshing their rows. A row counts as alive while its heartbeat
/// changed within `window` of this node's own clock (so clock skew between nodes does not
/// matter); a row seen for the first time counts as alive until it has been still for
/// `window`.
#[derive(Debug)]
pub struct StoreLiveness {
    window: Duration,
    seen: HashMap<String, Seen>,
}

#[derive(Debug)]
struct Seen {
    heartbeat_ms: i64,
    generation: i64,
    roles: BTreeSet<String>,
    changed_at: Instant,
}

impl StoreLiveness {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            seen: HashMap::new(),
        }
    }

    /// The live rows of one read of the table, at `now`.
    pub fn observe(&mut self, now: Instant, rows: &[MemberRow]) {
        let mut latest: HashMap<&str, (i64, i64, BTreeSet<String>)> = HashMap::new();
        for row in rows {
            let e = latest.entry(row.host_id.as_str()).or_insert((
                i64::MIN,
                row.session_start_ms,
                BTreeSet::new(),
            ));
            if row.last_heartbeat_ms > e.0 {
                e.0 = row.last_heartbeat_ms;
                e.1 = row.session_start_ms;
            }
            e.2.insert(row.role.clone());
        }
        self.seen
            .retain(|name, _| latest.contains_key(name.as_str()));
        for (name, (heartbeat_ms, generation, roles)) in latest {
            match self.seen.get_mut(name) {
                Some(s) => {
                    if s.heartbeat_ms != heartbeat_ms || s.generation != generation {
                        s.changed_at = now;
                    }
                    s.heartbeat_ms = heartbeat_ms;
                    s.generation = generation;
                    s.roles = roles;
                }
                None => {
                    self.seen.insert(
                        name.to_owned(),
                        Seen {
                            heartbeat_ms,
                            generation,
                            roles,
                            changed_at: now,
                        },
                    );
                }
            }
        }
    }

    /// The nodes alive at `now`, by name.
    pub fn alive(&self, now: Instant) -> StorePeers {
        let mut nodes: Vec<AliveNode> = self
            .seen
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.changed_at) <= self.window)
            .map(|(name, s)| AliveNode {
                name: name.clone(),
                generation: s.generation,
                roles: s.roles.clone(),
            })
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        StorePeers::Alive(nodes)
    }
}

/// Decides from the views and the store's table whether this node may take shards.
#[derive(Debug, Default)]
pub struct Quorum {
    /// Nodes seen announcing a graceful leave, `(name, generation)`: their rows may still
    /// look alive for a while after they exit, but they are gone.
    left: HashSet<(String, i64)>,
}

impl Quorum {
    /// Remember who is leaving in `view`.
    pub fn observe_view(&mut self, view: &ClusterView) {
        for m in view.members().iter().filter(|m| m.leaving) {
            let generation = i64::try_from(m.generation).unwrap_or(i64::MAX);
            self.left.insert((m.name.clone(), generation));
        }
    }

    /// Whether `view` holds a strict majority of the nodes running `role` that are alive:
    /// those in the view (not leaving) and those the store shows alive that the view lacks
    /// (cut off from this node, not gone). With no membership table, always.
    pub fn holds(&self, view: &ClusterView, store: &StorePeers, role: Role) -> bool {
        let alive = match store {
            StorePeers::NoStore => return true,
            StorePeers::Unknown => return false,
            StorePeers::Alive(nodes) => nodes,
        };
        let members = view.ring_members(role);
        let in_view: HashSet<&str> = view.members().iter().map(|m| m.name.as_str()).collect();
        let elsewhere = alive
            .iter()
            .filter(|n| n.roles.contains(role.as_str()))
            .filter(|n| !in_view.contains(n.name.as_str()))
            .filter(|n| !self.left.contains(&(n.name.clone(), n.generation)))
            .count();
        members.len() > elsewhere
    }

    /// The names [`Self::holds`] counts as alive but missing from `view`, for logs.
    pub fn missing(&self, view: &ClusterView, store: &StorePeers, role: Role) -> Vec<String> {
        let StorePeers::Alive(alive) = store else {
            return Vec::new();
        };
        alive
            .iter()
            .filter(|n| n.roles.contains(role.as_str()))
            .filter(|n| view.member(&n.name).is_none())
            .filter(|n| !self.left.contains(&(n.name.clone(), n.generation)))
            .map(|n| n.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Member;

    const S: Duration = Duration::from_secs(1);

    fn row(name: &str, generation: i64, heartbeat_ms: i64) -> MemberRow {
        MemberRow {
            host_id: name.into(),
            role: "history".into(),
            rpc_address: format!("{name}:7000"),
            session_start_ms: generation,
            last_heartbeat_ms: heartbeat_ms,
        }
    }

    fn member(name: &str, generation: u64, leaving: bool) -> Member {
        Member {
            name: name.into(),
            generation,
            roles: vec![Role::History],
            grpc_address: format!("{name}:7233"),
            gossip_address: "127.0.0.1:7000".parse().expect("address"),
            leaving,
            store_down: false,
        }
    }

    fn view(members: &[Member]) -> ClusterView {
        ClusterView::from_members(members.to_vec(), 16)
    }

    /// The store showing `nodes` (name, generation) alive, each a history node.
    fn alive(nodes: &[(&str, i64)]) -> StorePeers {
        StorePeers::Alive(
            nodes
                .iter()
                .map(|(name, generation)| AliveNode {
                    name: (*name).into(),
                    generation: *generation,
                    roles: ["history".to_string()].into(),
                })
                .collect(),
        )
    }

    #[test]
    fn a_row_counts_as_alive_while_its_heartbeat_moves() {
        let t0 = Instant::now();
        let mut l = StoreLiveness::new(S * 6);
        l.observe(t0, &[row("a", 1, 100), row("b", 1, 100)]);
        l.observe(t0 + S * 3, &[row("a", 1, 103), row("b", 1, 100)]);
        l.observe(t0 + S * 6, &[row("a", 1, 106), row("b", 1, 100)]);
        let names = |p: StorePeers| match p {
            StorePeers::Alive(n) => n.into_iter().map(|n| n.name).collect::<Vec<_>>(),
            other => panic!("unexpected {other:?}"),
        };
        // b's heartbeat stood still since t0: alive until t0 + 6 s, then not.
        assert_eq!(names(l.alive(t0 + S * 6)), ["a", "b"]);
        assert_eq!(names(l.alive(t0 + S * 7)), ["a"]);
        // A restart (new generation) counts as a change even with an old-looking clock.
        l.observe(t0 + S * 9, &[row("a", 1, 109), row("b", 2, 50)]);
        assert_eq!(names(l.alive(t0 + S * 9)), ["a", "b"]);
        // A row gone from the table (its ttl ran out) is gone.
        l.observe(t0 + S * 10, &[row("a", 1, 110)]);
        assert_eq!(names(l.alive(t0 + S * 10)), ["a"]);
    }

    #[test]
    fn a_node_cut_off_from_its_peers_has_no_majority_and_they_do() {
        let q = Quorum::default();
        let store = alive(&[("a", 1), ("b", 1), ("c", 1)]);
        let cut_off = view(&[member("c", 1, false)]);
        let majority = view(&[member("a", 1, false), member("b", 1, false)]);
        assert!(!q.holds(&cut_off, &store, Role::History));
        assert_eq!(q.missing(&cut_off, &store, Role::History), ["a", "b"]);
        assert!(q.holds(&majority, &store, Role::History));
        // Two nodes split in two: neither takes the other's shards.
        let two = alive(&[("a", 1), ("b", 1)]);
        assert!(!q.holds(&view(&[member("a", 1, false)]), &two, Role::History));
        // Once b's row stops moving (it died), a alone is the majority.
        let only_a = alive(&[("a", 1)]);
        assert!(q.holds(&view(&[member("a", 1, false)]), &only_a, Role::History));
        // Unknown (the store did not answer) never allows; no table always does.
        assert!(!q.holds(&majority, &StorePeers::Unknown, Role::History));
        assert!(q.holds(&cut_off, &StorePeers::NoStore, Role::History));
    }

    #[test]
    fn a_node_that_left_gracefully_does_not_count_while_its_row_lingers() {
        let mut q = Quorum::default();
        let store = alive(&[("a", 1), ("b", 1)]);
        q.observe_view(&view(&[member("a", 1, false), member("b", 1, true)]));
        // b exited: gone from the view, its row still fresh.
        assert!(q.holds(&view(&[member("a", 1, false)]), &store, Role::History));
        // b restarted (new generation): it counts again.
        let restarted = alive(&[("a", 1), ("b", 2)]);
        assert!(!q.holds(&view(&[member("a", 1, false)]), &restarted, Role::History));
    }
}

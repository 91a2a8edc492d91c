//! [`ClusterView`]: one consistent snapshot of the live members and a ring per role.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::ring::Ring;
use crate::{Member, Role};

/// The ring key of history shard `shard`.
pub fn history_shard_key(shard: u32) -> String {
    format!("shard/{shard}")
}

/// One consistent snapshot: the live members and one ring per role. Two nodes that see
/// the same live members build identical rings (deterministic hashing; no RandomState).
///
/// Members that announced a graceful leave are listed but are in no ring.
#[derive(Debug)]
pub struct ClusterView {
    version: u64,
    members: Vec<Member>,
    rings: BTreeMap<Role, Ring>,
    /// [`Self::balanced_shard_owners`] for the shard count it was first asked for.
    shard_owners: OnceLock<(u32, Vec<Option<usize>>)>,
}

impl ClusterView {
    /// A view built directly from members, for tests and single-process mode. Members are
    /// sorted by name; of several with one name, the newest generation is kept.
    pub fn from_members(members: Vec<Member>, virtual_nodes: u32) -> ClusterView {
        ClusterView::build(0, members, virtual_nodes)
    }

    pub(crate) fn build(version: u64, members: Vec<Member>, virtual_nodes: u32) -> ClusterView {
        let members = newest_generation_by_name(members);
        let rings = Role::ALL
            .into_iter()
            .map(|role| {
                let in_ring = in_ring(&members, role)
                    .into_iter()
                    .map(|i| (i, members[i].name.as_str()));
                (role, Ring::new(in_ring, virtual_nodes))
            })
            .collect();
        ClusterView {
            version,
            members,
            rings,
            shard_owners: OnceLock::new(),
        }
    }

    /// This view (same version) with only the members `keep` accepts, the rings rebuilt over
    /// them: a node leaves out the members it cannot trust yet (see the server's internode
    /// admission).
    pub fn retain(&self, keep: impl Fn(&Member) -> bool, virtual_nodes: u32) -> ClusterView {
        let members = self.members.iter().filter(|m| keep(m)).cloned().collect();
        ClusterView::build(self.version, members, virtual_nodes)
    }

    /// Increases on every change a [`crate::Membership`] publishes (0 for
    /// [`Self::from_members`]).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The live members, sorted by name, including those leaving.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member named `name`, if live.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members
            .binary_search_by(|m| m.name.as_str().cmp(name))
            .ok()
            .and_then(|i| self.members.get(i))
    }

    /// The member that owns `key` on `role`'s ring; `None` when no live, non-leaving member
    /// has the role.
    pub fn owner(&self, role: Role, key: &str) -> Option<&Member> {
        let index = self.rings.get(&role)?.owner(key)?;
        self.members.get(index)
    }

    /// The members in `role`'s ring (live, not leaving, running the role), by name.
    pub fn ring_members(&self, role: Role) -> Vec<&Member> {
        in_ring(&self.members, role)
            .into_iter()
            .map(|i| &self.members[i])
            .collect()
    }

    /// The plain ring owner of history shard `shard`: `owner(Role::History, "shard/{shard}")`.
    /// Shards are placed with [`Self::balanced_shard_owner`]; this is the ring it starts from.
    pub fn history_shard_owner(&self, shard: u32) -> Option<&Member> {
        self.owner(Role::History, &history_shard_key(shard))
    }

    /// The owner of history shard `shard` of `num_shards`, on the history ring with bounded
    /// loads: shards are placed in order, each on the first member clockwise from its key
    /// that holds fewer than `ceil(num_shards / members)` shards. Plain consistent hashing
    /// leaves a member with two or three times its share when shards are few (16 shards on 3
    /// nodes came out 9/4/3); with the bound every member gets its share, and a member
    /// joining or leaving still moves only a few shards besides its own. Deterministic: the
    /// same members give the same owners on every node.
    pub fn balanced_shard_owner(&self, shard: u32, num_shards: u32) -> Option<&Member> {
        if shard == 0 || shard > num_shards {
            return None;
        }
        let index = match self.shard_owners.get() {
            Some((n, owners)) if *n == num_shards => owners[(shard - 1) as usize],
            Some(_) => self.balanced_shard_owners(num_shards)[(shard - 1) as usize],
            None => {
                let (_, owners) = self
                    .shard_owners
                    .get_or_init(|| (num_shards, self.balanced_shard_owners(num_shards)));
                owners[(shard - 1) as usize]
            }
        }?;
        self.members.get(index)
    }

    fn balanced_shard_owners(&self, num_shards: u32) -> Vec<Option<usize>> {
        let Some(ring) = self.rings.get(&Role::History).filter(|r| !r.is_empty()) else {
            return vec![None; num_shards as usize];
        };
        let size = self.ring_members(Role::History).len().max(1) as u32;
        let cap = num_shards.div_ceil(size);
        let mut loads = vec![0u32; self.members.len()];
        (1..=num_shards)
            .map(|s| {
                let owner = ring
                    .candidates(&history_shard_key(s))
                    .find(|&i| loads[i] < cap)?;
                loads[owner] += 1;
                Some(owner)
            })
            .collect()
    }

    /// The shards among `1..=num_shards` that `node_name` owns
    /// ([`Self::balanced_shard_owner`]), ascending.
    pub fn shards_of(&self, node_name: &str, num_shards: u32) -> Vec<u32> {
        (1..=num_shards)
            .filter(|&s| {
                self.balanced_shard_owner(s, num_shards)
                    .is_some_and(|m| m.name == node_name)
            })
            .collect()
    }

    /// Same members (including their generation, leaving and store flags), hence same rings.
    pub(crate) fn same_members(&self, members: &[Member]) -> bool {
        self.members == members
    }
}

/// Sorted by name; for a name seen twice (a restart), the highest generation.
pub(crate) fn newest_generation_by_name(mut members: Vec<Member>) -> Vec<Member> {
    members.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then_with(|| b.generation.cmp(&a.generation))
    });
    members.dedup_by(|later, first| later.name == first.name);
    members
}

/// The indexes of the members in `role`'s ring: live, not leaving, running the role; and for
/// the roles that need the store (history, matching), able to reach it, unless none of them
/// can (a store outage everywhere moves nothing).
fn in_ring(members: &[Member], role: Role) -> Vec<usize> {
    let candidates: Vec<usize> = members
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.leaving && m.has_role(role))
        .map(|(i, _)| i)
        .collect();
    if !matches!(role, Role::History | Role::Matching) {
        return candidates;
    }
    let reaching: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|&i| !members[i].store_down)
        .collect();
    if reaching.is_empty() {
        candidates
    } else {
        reaching
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, roles: &[Role]) -> Member {
        Member {
            name: name.to_owned(),
            generation: 1,
            roles: roles.to_vec(),
            grpc_address: format!("{name}:7233"),
            gossip_address: "127.0.0.1:6933".parse().expect("addr"),
            leaving: false,
            store_down: false,
        }
    }

    fn owners(view: &ClusterView, num_shards: u32) -> Vec<String> {
        (1..=num_shards)
            .map(|s| view.history_shard_owner(s).expect("owner").name.clone())
            .collect()
    }

    const ALL: &[Role] = &[Role::Frontend, Role::History, Role::Matching, Role::Worker];

    fn balanced(view: &ClusterView, num_shards: u32) -> Vec<String> {
        (1..=num_shards)
            .map(|s| {
                view.balanced_shard_owner(s, num_shards)
                    .expect("owner")
                    .name
                    .clone()
            })
            .collect()
    }

    fn view_of(names: &[&str]) -> ClusterView {
        ClusterView::from_members(names.iter().map(|n| member(n, ALL)).collect(), 128)
    }

    /// Every member holds at most `ceil(shards / members)` shards, whatever the count.
    #[test]
    fn balanced_shards_respect_the_bound() {
        for (names, num_shards) in [
            (&["a", "b", "c"][..], 16u32),
            (&["a", "b", "c"][..], 512),
            (&["a", "b"][..], 16),
            (&["a", "b", "c", "d", "e"][..], 7),
        ] {
            let view = view_of(names);
            let cap = num_shards.div_ceil(names.len() as u32) as usize;
            let counts: Vec<usize> = names
                .iter()
                .map(|n| view.shards_of(n, num_shards).len())
                .collect();
            println!("{num_shards} shards over {names:?}: {counts:?}");
            assert_eq!(counts.iter().sum::<usize>(), num_shards as usize);
            assert!(
                counts.iter().all(|&c| c <= cap),
                "{counts:?} over cap {cap}"
            );
        }
        let reordered = ClusterView::from_members(
            vec![member("c", ALL), member("a", ALL), member("b", ALL)],
            128,
        );
        assert_eq!(
            balanced(&view_of(&["a", "b", "c"]), 64),
            balanced(&reordered, 64)
        );
        assert!(view_of(&[]).balanced_shard_owner(1, 4).is_none());
        assert!(view_of(&["a"]).balanced_shard_owner(5, 4).is_none());
    }

    /// A member leaving moves its own shards, and only a few others.
    #[test]
    fn balanced_shards_move_little_when_a_member_leaves() {
        for num_shards in [16u32, 512] {
            let three = balanced(&view_of(&["a", "b", "c"]), num_shards);
            let two = balanced(&view_of(&["a", "b"]), num_shards);
            let own = three.iter().filter(|o| *o == "c").count();
            let others = (0..num_shards as usize)
                .filter(|&i| three[i] != "c" && three[i] != two[i])
                .count();
            println!("{num_shards} shards: c leaving moves its {own} and {others} others");
            assert!(
                others <= own / 2 + 1,
                "{others} shards of staying members moved (c had {own})"
            );
        }
    }

    #[test]
    fn rings_do_not_depend_on_member_order() {
        let abc = ClusterView::from_members(
            vec![member("a", ALL), member("b", ALL), member("c", ALL)],
            128,
        );
        let cab = ClusterView::from_members(
            vec![member("c", ALL), member("a", ALL), member("b", ALL)],
            128,
        );
        let bca = ClusterView::from_members(
            vec![member("b", ALL), member("c", ALL), member("a", ALL)],
            128,
        );
        assert_eq!(
            abc.members().iter().map(|m| &m.name).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(abc.members(), cab.members());
        assert_eq!(owners(&abc, 512), owners(&cab, 512));
        assert_eq!(owners(&abc, 512), owners(&bca, 512));
        for role in Role::ALL {
            for key in ["q/0", "q/1", "tq-a/3", "x"] {
                assert_eq!(
                    abc.owner(role, key).map(|m| &m.name),
                    bca.owner(role, key).map(|m| &m.name)
                );
            }
        }
        // shards_of partitions the shards.
        let mut all: Vec<u32> = ["a", "b", "c"]
            .iter()
            .flat_map(|n| abc.shards_of(n, 512))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (1..=512).collect::<Vec<_>>());
    }

    /// 512 shards over 3 members: each within ±40% of its fair share (the numbers are
    /// printed; run with `--nocapture` to see them).
    #[test]
    fn shards_spread_evenly() {
        let view = ClusterView::from_members(
            vec![member("a", ALL), member("b", ALL), member("c", ALL)],
            128,
        );
        let fair = 512.0 / 3.0;
        for name in ["a", "b", "c"] {
            let n = view.shards_of(name, 512).len();
            println!("{name}: {n} of 512 shards (fair share {fair:.1})");
            let ratio = n as f64 / fair;
            assert!(
                (0.6..=1.4).contains(&ratio),
                "{name} owns {n} of 512 shards, fair share {fair:.1}"
            );
        }
    }

    #[test]
    fn a_fourth_member_moves_about_a_quarter_of_the_keys() {
        let three = ClusterView::from_members(
            vec![member("a", ALL), member("b", ALL), member("c", ALL)],
            128,
        );
        let four = ClusterView::from_members(
            vec![
                member("a", ALL),
                member("b", ALL),
                member("c", ALL),
                member("d", ALL),
            ],
            128,
        );
        let before = owners(&three, 512);
        let after = owners(&four, 512);
        let moved: Vec<usize> = (0..512).filter(|&i| before[i] != after[i]).collect();
        println!("adding d moved {} of 512 shards", moved.len());
        assert!(
            moved.iter().all(|&i| after[i] == "d"),
            "keys only move to the new member"
        );
        assert!(
            (77..=179).contains(&moved.len()),
            "{} of 512 shards moved; about 128 expected",
            moved.len()
        );
    }

    #[test]
    fn members_that_cannot_reach_the_store_own_no_shard_unless_none_can() {
        let a = member("a", &[Role::History, Role::Matching, Role::Frontend]);
        let mut b = member("b", &[Role::History, Role::Matching, Role::Frontend]);
        b.store_down = true;
        let view = ClusterView::from_members(vec![a.clone(), b.clone()], 128);
        assert_eq!(view.shards_of("b", 8), Vec::<u32>::new());
        assert_eq!(view.shards_of("a", 8), (1..=8).collect::<Vec<_>>());
        assert_eq!(view.ring_members(Role::History).len(), 1);
        assert_eq!(view.ring_members(Role::Frontend).len(), 2);
        assert!(view.member("b").expect("listed").store_down);
        // Everyone cut off from the store: the rings stay as they were.
        let mut a_down = a;
        a_down.store_down = true;
        let everyone = ClusterView::from_members(vec![a_down, b], 128);
        assert_eq!(
            everyone.shards_of("a", 8).len() + everyone.shards_of("b", 8).len(),
            8
        );
        assert_eq!(everyone.ring_members(Role::History).len(), 2);
    }

    #[test]
    fn leaving_members_are_listed_but_own_nothing() {
        let mut b = member("b", ALL);
        b.leaving = true;
        let view = ClusterView::from_members(vec![member("a", ALL), b], 128);
        assert_eq!(view.members().len(), 2);
        assert!(view.member("b").expect("listed").leaving);
        assert_eq!(view.shards_of("b", 64), Vec::<u32>::new());
        assert_eq!(view.shards_of("a", 64), (1..=64).collect::<Vec<_>>());
        assert_eq!(
            view.ring_members(Role::Matching)
                .iter()
                .map(|m| &m.name)
                .collect::<Vec<_>>(),
            ["a"]
        );
        let mut a = member("a", ALL);
        a.leaving = true;
        let everyone_leaving = ClusterView::from_members(vec![a], 128);
        assert_eq!(everyone_leaving.history_shard_owner(1), None);
        assert_eq!(everyone_leaving.shards_of("a", 4), Vec::<u32>::new());
    }

    #[test]
    fn each_role_has_its_own_ring() {
        let view = ClusterView::from_members(
            vec![
                member("front", &[Role::Frontend]),
                member("hist", &[Role::History]),
                member("both", &[Role::History, Role::Matching]),
            ],
            64,
        );
        for key in (0..100).map(|i| format!("k{i}")) {
            assert_eq!(
                view.owner(Role::Frontend, &key).map(|m| m.name.as_str()),
                Some("front")
            );
            assert_eq!(
                view.owner(Role::Matching, &key).map(|m| m.name.as_str()),
                Some("both")
            );
            let h = view.owner(Role::History, &key).expect("history owner");
            assert!(h.name == "hist" || h.name == "both", "{}", h.name);
        }
        assert_eq!(view.owner(Role::Worker, "k"), None, "nobody runs worker");
        assert_eq!(view.shards_of("front", 16), Vec::<u32>::new());
        let history: usize = ["hist", "both"]
            .iter()
            .map(|n| view.shards_of(n, 16).len())
            .sum();
        assert_eq!(history, 16);
    }

    #[test]
    fn a_restarted_member_replaces_its_old_generation() {
        let mut old = member("a", ALL);
        old.generation = 1;
        old.grpc_address = "old:1".into();
        let mut new = member("a", ALL);
        new.generation = 2;
        new.grpc_address = "new:1".into();
        for members in [vec![old.clone(), new.clone()], vec![new.clone(), old]] {
            let view = ClusterView::from_members(members, 16);
            assert_eq!(view.members(), std::slice::from_ref(&new));
            assert_eq!(
                view.history_shard_owner(1).map(|m| m.grpc_address.as_str()),
                Some("new:1")
            );
        }
    }

    #[test]
    fn members_are_found_by_name() {
        let view = ClusterView::from_members(vec![member("b", ALL), member("a", ALL)], 8);
        assert_eq!(view.member("b").map(|m| m.name.as_str()), Some("b"));
        assert_eq!(view.member("a").map(|m| m.name.as_str()), Some("a"));
        assert_eq!(view.member("c"), None);
        assert_eq!(view.version(), 0);
    }
}

//! One consistent-hash ring: each member placed at `virtual_nodes` points, a key owned by
//! the first member clockwise from the key's hash.
//!
//! Built with the `consistent_hash` crate's `StaticHashRing`, whose `DefaultHash` is
//! SipHash-1-3 with fixed zero keys over `std::hash::Hash` of `(member name, vnode index)`
//! and of the key: no `RandomState`, so every node that sees the same members builds the
//! same ring, whatever order it learned them in (the crate sorts nodes by key).

use consistent_hash::{DefaultHash, Node, StaticHashRing};

/// A ring whose node values are indexes into the view's member list.
#[derive(Debug)]
pub(crate) struct Ring {
    ring: StaticHashRing<'static, String, usize, DefaultHash>,
}

impl Ring {
    /// `members` are `(index, name)`; names must be unique.
    pub(crate) fn new<'a>(
        members: impl IntoIterator<Item = (usize, &'a str)>,
        virtual_nodes: u32,
    ) -> Ring {
        let quantity = usize::try_from(virtual_nodes.max(1)).unwrap_or(1);
        let nodes = members.into_iter().map(|(index, name)| Node {
            key: name.to_owned(),
            value: index,
            quantity,
        });
        Ring {
            ring: StaticHashRing::new(DefaultHash, nodes),
        }
    }

    /// The member index owning `key`; `None` for an empty ring.
    pub(crate) fn owner(&self, key: &str) -> Option<usize> {
        self.ring
            .calc_candidates(&key)
            .next()
            .map(|node| node.value)
    }

    /// Every member index, in the order the ring prefers them for `key` (the owner first).
    pub(crate) fn candidates(&self, key: &str) -> impl Iterator<Item = usize> + '_ {
        self.ring.calc_candidates(&key).map(|node| node.value)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ring.nodes().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_ring_owns_nothing() {
        let ring = Ring::new([], 16);
        assert!(ring.is_empty());
        assert_eq!(ring.owner("shard/1"), None);
    }

    #[test]
    fn a_single_member_owns_everything() {
        let ring = Ring::new([(3, "a")], 16);
        for shard in 1..=64 {
            assert_eq!(ring.owner(&format!("shard/{shard}")), Some(3));
        }
    }

    /// Pinned placements: a change of hash function (a crate upgrade, a different `Hash`
    /// impl) would make nodes of different versions disagree on owners, so it must be seen.
    #[test]
    fn placement_is_stable_across_builds() {
        let ring = Ring::new([(0, "a"), (1, "b"), (2, "c")], 128);
        let owners: Vec<usize> = (1..=12)
            .map(|s| ring.owner(&format!("shard/{s}")).expect("owner"))
            .collect();
        assert_eq!(owners, PINNED_OWNERS);
    }

    const PINNED_OWNERS: [usize; 12] = [1, 1, 1, 1, 1, 1, 0, 0, 2, 0, 1, 2];
}

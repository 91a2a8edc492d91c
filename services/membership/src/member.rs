//! A cluster member and how it is announced in gossip: a few key-values on its chitchat
//! node state. Parsing never fails loudly: values from the network that make no sense
//! leave the node out of the view (or drop an unknown role) instead.

use std::net::SocketAddr;

use crate::Role;

/// Gossip key: the node's roles, comma-separated lowercase names.
pub(crate) const KEY_ROLES: &str = "roles";
/// Gossip key: the `host:port` of the node's gRPC endpoint.
pub(crate) const KEY_GRPC: &str = "grpc";
/// Gossip key: present (`"true"`) once the node announced a graceful leave.
pub(crate) const KEY_LEAVING: &str = "leaving";
/// Gossip key: `"down"` while the node cannot reach the store (`"ok"` otherwise).
pub(crate) const KEY_STORE: &str = "store";

/// One node of the cluster, as gossip describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Unique per node (config `node_name`).
    pub name: String,
    /// Process incarnation (start time in ms); a restarted node is a new generation and
    /// replaces the old one.
    pub generation: u64,
    /// The roles it runs, sorted, without duplicates.
    pub roles: Vec<Role>,
    /// `host:port` other nodes call its gRPC at.
    pub grpc_address: String,
    /// Where peers gossip with it.
    pub gossip_address: SocketAddr,
    /// It announced a graceful leave: still listed in the members, but in no ring.
    pub leaving: bool,
    /// It announced that it cannot reach the store: still listed, but in no history or
    /// matching ring while another member of that ring can (see [`crate::ClusterView`]).
    pub store_down: bool,
}

impl Member {
    /// Whether it runs `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The key-values this member announces in gossip.
    pub(crate) fn gossip_key_values(&self) -> Vec<(String, String)> {
        vec![
            (KEY_ROLES.to_owned(), encode_roles(&self.roles)),
            (KEY_GRPC.to_owned(), self.grpc_address.clone()),
        ]
    }

    /// The member a gossip node state describes; `None` while its announcement is
    /// incomplete (its key-values have not arrived yet) or nonsensical.
    pub(crate) fn from_gossip<'a>(
        name: &str,
        generation: u64,
        gossip_address: SocketAddr,
        key_values: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<Member> {
        let mut roles = None;
        let mut grpc_address = None;
        let mut leaving = false;
        let mut store_down = false;
        for (key, value) in key_values {
            match key {
                KEY_ROLES => roles = Some(decode_roles(value)),
                KEY_GRPC => grpc_address = Some(value),
                KEY_LEAVING => leaving = value == "true",
                KEY_STORE => store_down = value == "down",
                _ => {}
            }
        }
        let grpc_address = grpc_address.filter(|a| !a.is_empty())?;
        if name.is_empty() {
            return None;
        }
        Some(Member {
            name: name.to_owned(),
            generation,
            roles: roles?,
            grpc_address: grpc_address.to_owned(),
            gossip_address,
            leaving,
            store_down,
        })
    }
}

/// Sorted, deduplicated roles.
pub(crate) fn normalize_roles(roles: &[Role]) -> Vec<Role> {
    let mut roles = roles.to_vec();
    roles.sort_unstable();
    roles.dedup();
    roles
}

fn encode_roles(roles: &[Role]) -> String {
    normalize_roles(roles)
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Unknown names (a newer node's role) are skipped, not fatal.
fn decode_roles(value: &str) -> Vec<Role> {
    let roles: Vec<Role> = value
        .split(',')
        .filter_map(|name| name.trim().parse().ok())
        .collect();
    normalize_roles(&roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:6933".parse().expect("addr")
    }

    #[test]
    fn announcement_round_trips() {
        let member = Member {
            name: "a".into(),
            generation: 7,
            roles: vec![Role::History, Role::Frontend],
            grpc_address: "10.0.0.5:7233".into(),
            gossip_address: addr(),
            leaving: false,
            store_down: false,
        };
        let kvs = member.gossip_key_values();
        let back = Member::from_gossip(
            "a",
            7,
            addr(),
            kvs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .expect("complete announcement");
        assert_eq!(back.roles, vec![Role::Frontend, Role::History]);
        assert_eq!(
            back,
            Member {
                roles: vec![Role::Frontend, Role::History],
                ..member
            }
        );
    }

    #[test]
    fn incomplete_or_odd_announcements() {
        let parse = |kvs: &[(&'static str, &'static str)]| {
            Member::from_gossip("a", 1, addr(), kvs.iter().copied())
        };
        assert_eq!(parse(&[]), None, "nothing arrived yet");
        assert_eq!(parse(&[(KEY_ROLES, "history")]), None, "no grpc address");
        assert_eq!(parse(&[(KEY_GRPC, "h:1")]), None, "no roles key");
        let m = parse(&[
            (KEY_ROLES, "history,teleport,,history, matching"),
            (KEY_GRPC, "h:1"),
            (KEY_LEAVING, "true"),
            ("someone-elses-key", "x"),
        ])
        .expect("parsed");
        assert_eq!(m.roles, vec![Role::History, Role::Matching]);
        assert!(m.leaving);
        let m = parse(&[(KEY_ROLES, ""), (KEY_GRPC, "h:1")]).expect("parsed");
        assert!(m.roles.is_empty(), "a node may run no role");
        assert_eq!(
            Member::from_gossip("", 1, addr(), [(KEY_ROLES, ""), (KEY_GRPC, "h:1")]),
            None
        );
    }
}

//! [`MembershipConfig`]: who this node is and how it gossips.

use std::net::SocketAddr;
use std::time::Duration;

use crate::Role;

/// How this node joins the cluster. [`MembershipConfig::new`] fills in the defaults.
#[derive(Clone, Debug)]
pub struct MembershipConfig {
    /// Unique per node, e.g. `"a"` or `"10.0.0.5:7233"`.
    pub node_name: String,
    /// The roles this node runs.
    pub roles: Vec<Role>,
    /// `host:port` other nodes call this node's gRPC at (advertised).
    pub grpc_address: String,
    /// UDP bind address of gossip. Port 0 binds any free port (the advertised port then
    /// follows the bound one if `gossip_advertise`'s port is 0 too).
    pub gossip_listen: SocketAddr,
    /// What peers use to reach us. Port 0: the port actually bound.
    pub gossip_advertise: SocketAddr,
    /// Nodes with another cluster id never join us.
    pub cluster_id: String,
    /// `host:port` gossip addresses; may be DNS names (e.g. a Kubernetes headless service
    /// `temper-headless:6933`), re-resolved every `seed_refresh`.
    pub seeds: Vec<String>,
    /// How often the node gossips. Default 200 ms.
    pub gossip_interval: Duration,
    /// A silent node leaves the rings after about this long. Default 3 s.
    pub dead_after: Duration,
    /// Ring changes are published after membership is quiet this long, and at most this
    /// often. Default 500 ms.
    pub ring_debounce: Duration,
    /// Virtual nodes per member per ring. Default 128.
    pub virtual_nodes: u32,
    /// How often the node refreshes its membership-table row (which lives 3x this long),
    /// re-reads the table and re-resolves DNS seeds. Default 3 s.
    pub seed_refresh: Duration,
}

impl MembershipConfig {
    /// Defaults for everything else; gossip listens on and advertises `gossip`.
    pub fn new(
        node_name: impl Into<String>,
        roles: Vec<Role>,
        grpc_address: impl Into<String>,
        gossip: SocketAddr,
    ) -> Self {
        Self {
            node_name: node_name.into(),
            roles,
            grpc_address: grpc_address.into(),
            gossip_listen: gossip,
            gossip_advertise: gossip,
            cluster_id: "temper".to_owned(),
            seeds: Vec::new(),
            gossip_interval: Duration::from_millis(200),
            dead_after: Duration::from_secs(3),
            ring_debounce: Duration::from_millis(500),
            virtual_nodes: 128,
            seed_refresh: Duration::from_secs(3),
        }
    }

    /// A message for the first setting that cannot work.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.node_name.is_empty() {
            return Err("node_name is empty: every node needs a unique name".into());
        }
        if self.grpc_address.is_empty() {
            return Err("grpc_address is empty: peers need this node's gRPC address".into());
        }
        if self.gossip_advertise.ip().is_unspecified() {
            return Err(format!(
                "gossip_advertise {} is not an address peers can reach; set it to this \
                 node's address",
                self.gossip_advertise
            ));
        }
        for (name, value) in [
            ("gossip_interval", self.gossip_interval),
            ("dead_after", self.dead_after),
            ("seed_refresh", self.seed_refresh),
        ] {
            if value.is_zero() {
                return Err(format!("{name} must be longer than zero"));
            }
        }
        if self.dead_after < self.gossip_interval * 3 {
            return Err(format!(
                "dead_after ({:?}) must be at least 3 gossip intervals ({:?}), or live \
                 nodes would be declared dead",
                self.dead_after, self.gossip_interval
            ));
        }
        if self.virtual_nodes == 0 {
            return Err("virtual_nodes must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MembershipConfig {
        MembershipConfig::new(
            "a",
            vec![Role::History],
            "127.0.0.1:7233",
            "127.0.0.1:6933".parse().expect("addr"),
        )
    }

    #[test]
    fn defaults_are_valid() {
        let c = config();
        assert_eq!(c.check(), Ok(()));
        assert_eq!(c.gossip_listen, c.gossip_advertise);
        assert_eq!(c.gossip_interval, Duration::from_millis(200));
        assert_eq!(c.dead_after, Duration::from_secs(3));
        assert_eq!(c.ring_debounce, Duration::from_millis(500));
        assert_eq!(c.virtual_nodes, 128);
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        let mut c = config();
        c.gossip_advertise = "0.0.0.0:6933".parse().expect("addr");
        assert!(
            c.check()
                .expect_err("unspecified")
                .contains("gossip_advertise")
        );
        let mut c = config();
        c.dead_after = Duration::from_millis(300);
        assert!(c.check().expect_err("too short").contains("dead_after"));
        let mut c = config();
        c.node_name.clear();
        assert!(c.check().expect_err("no name").contains("node_name"));
        let mut c = config();
        c.virtual_nodes = 0;
        assert!(c.check().expect_err("no vnodes").contains("virtual_nodes"));
    }
}

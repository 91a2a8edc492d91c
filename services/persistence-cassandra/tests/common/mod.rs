//! What the store tests that need a real cluster share.

use temper_persistence_cassandra::CassandraConfig;
use temper_persistence_cassandra::schema::{self, Replication};

/// A fresh keyspace `<prefix>_<random>` on the cluster at `TEMPER_CASSANDRA_CONTACT_POINTS`,
/// set up at the newest schema version (replication factor 1). Without the variable the test
/// fails, saying so: a test that needs a cluster never passes without one.
pub async fn fresh_keyspace(prefix: &str) -> CassandraConfig {
    let points = std::env::var("TEMPER_CASSANDRA_CONTACT_POINTS")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .expect(
            "this test needs a cluster: set TEMPER_CASSANDRA_CONTACT_POINTS=host:port[,...], \
             or leave this target out with `--exclude temper-persistence-cassandra`",
        );
    let random = uuid::Uuid::new_v4().simple().to_string();
    let config = CassandraConfig {
        contact_points: CassandraConfig::parse_contact_points(&points),
        keyspace: format!("{prefix}_{}", &random[..16]),
        ..CassandraConfig::default()
    };
    schema::setup(config.clone(), &Replication::Simple { factor: 1 })
        .await
        .expect("setup");
    config
}

//! The persistence conformance suite against a real Cassandra or ScyllaDB cluster.
//!
//! Needs `TEMPER_CASSANDRA_CONTACT_POINTS` naming the cluster (`host:port[,...]`); without it
//! every case fails with a message saying so (a skipped case must never read as a pass).
//! Leave the target out explicitly where there is no cluster:
//! `cargo test --workspace --exclude temper-persistence-cassandra` (as `scripts/test` does,
//! saying so). Each case gets a
//! fresh keyspace (`temper_conformance_<random>`), set up with `schema::setup` and dropped
//! afterwards. Optional: `TEMPER_CASSANDRA_DATACENTER` (local datacenter; the keyspace then
//! uses NetworkTopologyStrategy), `TEMPER_CASSANDRA_REPLICATION_FACTOR` (default 1),
//! `TEMPER_CASSANDRA_USERNAME` / `TEMPER_CASSANDRA_PASSWORD`, and
//! `TEMPER_CASSANDRA_KEEP_KEYSPACES=1` to keep the keyspaces for inspection.
//!
//! ```sh
//! TEMPER_CASSANDRA_CONTACT_POINTS=127.0.0.1:9042 \
//!     cargo test -p temper-persistence-cassandra --test conformance -- --test-threads=4
//! ```

use temper_persistence::Persistence;
use temper_persistence_cassandra::schema::{self, Replication};
use temper_persistence_cassandra::{CassandraConfig, CassandraStore};

/// Drops its keyspace when dropped (after the store, as the harness tuple orders them).
struct Keyspace {
    config: CassandraConfig,
    keep: bool,
}

impl Drop for Keyspace {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("keeping keyspace {}", self.config.keyspace);
            return;
        }
        // Drop runs outside async code: use a runtime of its own on a thread of its own.
        let config = self.config.clone();
        let keyspace = config.keyspace.clone();
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(schema::drop_keyspace(config))
                .map_err(|e| e.to_string())
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop keyspace {keyspace}: {e}"),
            Err(_) => eprintln!("dropping keyspace {keyspace} panicked"),
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Schema changes one at a time: concurrent DDL on one cluster can disagree.
static DDL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn cassandra_store() -> Option<(Persistence, Keyspace)> {
    let Some(points) = env("TEMPER_CASSANDRA_CONTACT_POINTS") else {
        panic!(
            "the Cassandra conformance suite needs a cluster: set \
             TEMPER_CASSANDRA_CONTACT_POINTS=host:port[,...], or leave this target out with \
             `cargo test --workspace --exclude temper-persistence-cassandra`"
        );
    };
    let random = uuid::Uuid::new_v4().simple().to_string();
    let config = CassandraConfig {
        contact_points: CassandraConfig::parse_contact_points(&points),
        keyspace: format!("temper_conformance_{}", &random[..16]),
        datacenter: env("TEMPER_CASSANDRA_DATACENTER"),
        username: env("TEMPER_CASSANDRA_USERNAME"),
        password: env("TEMPER_CASSANDRA_PASSWORD"),
        ..CassandraConfig::default()
    };
    let factor = env("TEMPER_CASSANDRA_REPLICATION_FACTOR")
        .map(|f| {
            f.parse()
                .expect("TEMPER_CASSANDRA_REPLICATION_FACTOR is a number")
        })
        .unwrap_or(1);
    let replication =
        Replication::new(factor, config.datacenter.as_deref()).expect("valid replication");
    let keyspace = Keyspace {
        config: config.clone(),
        keep: env("TEMPER_CASSANDRA_KEEP_KEYSPACES").is_some(),
    };
    {
        let _one_at_a_time = DDL.lock().await;
        schema::setup(config.clone(), &replication)
            .await
            .unwrap_or_else(|e| panic!("schema setup in a fresh keyspace: {e}"));
    }
    let store = CassandraStore::connect(config)
        .await
        .unwrap_or_else(|e| panic!("connecting to the fresh keyspace: {e}"));
    Some((store.into_persistence(), keyspace))
}

temper_persistence::persistence_conformance_tests!(optional cassandra_store);

mod visibility {
    temper_persistence::persistence_visibility_conformance_tests!(optional super::cassandra_store);
}

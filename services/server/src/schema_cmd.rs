//! `temper schema setup|migrate`: create the Cassandra keyspace and apply the schema
//! migrations of `schema/cassandra/` in order. The embedded SQLite store migrates itself
//! when it is opened.

use anyhow::Context;
use temper_persistence_cassandra::schema::{self, Replication, SchemaReport};
use temper_server::store::{StoreArgs, StoreKind};

#[derive(clap::Subcommand, Debug)]
pub enum SchemaCommand {
    /// Create the keyspace if it is missing, then apply every pending schema version.
    Setup(SchemaArgs),
    /// Apply pending schema versions to an existing keyspace (run before upgrading servers).
    Migrate(SchemaArgs),
}

#[derive(clap::Args, Debug)]
pub struct SchemaArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Copies of each row (used when `setup` creates the keyspace): SimpleStrategy, or
    /// NetworkTopologyStrategy in --datacenter when one is given.
    #[arg(long, default_value_t = 1)]
    pub replication_factor: u32,
}

pub async fn run(command: SchemaCommand) -> anyhow::Result<()> {
    let (setup, args) = match command {
        SchemaCommand::Setup(args) => (true, args),
        SchemaCommand::Migrate(args) => (false, args),
    };
    if args.store.store == StoreKind::Sqlite {
        println!(
            "the sqlite store needs no schema command: it applies its migrations when it is \
             opened (use --store cassandra for a Cassandra or ScyllaDB cluster)"
        );
        return Ok(());
    }
    let config = args.store.cassandra.config()?;
    let keyspace = config.keyspace.clone();
    let report = if setup {
        let replication = Replication::new(args.replication_factor, config.datacenter.as_deref())?;
        schema::setup(config, &replication)
            .await
            .with_context(|| format!("setting up keyspace {keyspace}"))?
    } else {
        schema::migrate(config)
            .await
            .with_context(|| format!("migrating keyspace {keyspace}"))?
    };
    println!("{}", describe(&report));
    Ok(())
}

fn describe(report: &SchemaReport) -> String {
    let mut out = String::new();
    if report.created_keyspace {
        out.push_str(&format!("created keyspace {}; ", report.keyspace));
    }
    if report.applied.is_empty() {
        out.push_str(&format!(
            "keyspace {} is at schema version {}, nothing to apply",
            report.keyspace, report.to
        ));
    } else {
        let versions: Vec<String> = report.applied.iter().map(i32::to_string).collect();
        out.push_str(&format!(
            "keyspace {}: applied schema version(s) {} (from {} to {})",
            report.keyspace,
            versions.join(", "),
            report.from,
            report.to
        ));
    }
    if report.to > schema::LATEST_SCHEMA_VERSION {
        out.push_str(&format!(
            "; note: newer than this temper's version {}",
            schema::LATEST_SCHEMA_VERSION
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_say_what_happened() {
        let report = SchemaReport {
            keyspace: "temper".into(),
            created_keyspace: true,
            from: 0,
            to: 1,
            applied: vec![1],
        };
        assert_eq!(
            describe(&report),
            "created keyspace temper; keyspace temper: applied schema version(s) 1 (from 0 to 1)"
        );
        let noop = SchemaReport {
            created_keyspace: false,
            from: 1,
            applied: vec![],
            ..report
        };
        assert_eq!(
            describe(&noop),
            "keyspace temper is at schema version 1, nothing to apply"
        );
    }
}

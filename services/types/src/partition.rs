//! Task queue partitions: Temporal's names for them, how many a queue has, and the key a
//! router places each one on the matching ring with.
//!
//! Partition 0 (the root) of a queue is named like the queue itself; partition `n > 0` is
//! `/_sys/<name>/<n>`. Users may name a queue anything that does not start with `/_sys/`
//! (the frontend refuses such names with INVALID_ARGUMENT, as Temporal does), so the two
//! forms never collide.

use std::collections::BTreeMap;

/// What every non-root partition name starts with.
pub const PARTITION_PREFIX: &str = "/_sys/";

/// The gRPC metadata key that marks a matching call one partition forwarded to another
/// (its value: the sending partition's number). Routers must send such a call to the owner
/// of exactly the partition it names, never to another partition of the queue; the receiving
/// partition never forwards it again, and answers a forwarded add only by sync match.
pub const FORWARDED_FROM_HEADER: &str = "temper-forwarded-from";

/// The name of partition `n` of the queue `base`.
pub fn partition_name(base: &str, n: u32) -> String {
    if n == 0 {
        base.to_owned()
    } else {
        format!("{PARTITION_PREFIX}{base}/{n}")
    }
}

/// The queue and partition a name denotes. A name that only looks like a partition name
/// (`/_sys/x/abc`, `/_sys/x/0`, `/_sys//3`) is a plain name: partition 0 of itself.
pub fn parse_partition(name: &str) -> (&str, u32) {
    let Some(rest) = name.strip_prefix(PARTITION_PREFIX) else {
        return (name, 0);
    };
    let Some((base, suffix)) = rest.rsplit_once('/') else {
        return (name, 0);
    };
    let digits_only = !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit());
    match suffix.parse::<u32>() {
        Ok(n)
            if n > 0 && digits_only && !base.is_empty() && !base.starts_with(PARTITION_PREFIX) =>
        {
            (base, n)
        }
        _ => (name, 0),
    }
}

/// The key a router hashes to find the matching node that owns one partition:
/// `tq/<namespace id>/<task type>/<partition name>`. Stable: changing it moves every
/// partition to another node.
pub fn routing_key(namespace_id: &str, name: &str, task_type: i32) -> String {
    format!("tq/{namespace_id}/{task_type}/{name}")
}

/// How many partitions each normal task queue has. Sticky queues always have one.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct PartitionConfig {
    /// Partitions of a queue not named in `per_queue`. Default 1 (what `start-dev` runs);
    /// clusters set 4, Temporal's default.
    pub default_partitions: u32,
    /// Partitions of particular queues, by queue name (every namespace alike).
    pub per_queue: BTreeMap<String, u32>,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        Self {
            default_partitions: 1,
            per_queue: BTreeMap::new(),
        }
    }
}

impl PartitionConfig {
    /// `n` partitions for every queue.
    pub fn uniform(n: u32) -> Self {
        Self {
            default_partitions: n,
            per_queue: BTreeMap::new(),
        }
    }

    /// How many partitions the queue `base` has; at least 1.
    pub fn partitions(&self, base: &str) -> u32 {
        self.per_queue
            .get(base)
            .copied()
            .unwrap_or(self.default_partitions)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(partition_name("orders", 0), "orders");
        assert_eq!(partition_name("orders", 3), "/_sys/orders/3");
        for n in [0, 1, 3, 17] {
            assert_eq!(parse_partition(&partition_name("orders", n)), ("orders", n));
            assert_eq!(parse_partition(&partition_name("a/b/1", n)), ("a/b/1", n));
        }
    }

    #[test]
    fn malformed_partition_names_are_plain_names() {
        for name in [
            "/_sys/x/abc",
            "/_sys/x/0",
            "/_sys/x/-1",
            "/_sys/x/+1",
            "/_sys/x/",
            "/_sys//3",
            "/_sys/x",
            "/_sys/",
            "/_sys/x/99999999999",
            "/_sys//_sys/x/1/2",
        ] {
            assert_eq!(parse_partition(name), (name, 0), "{name}");
        }
        assert_eq!(parse_partition("_sys/x/1"), ("_sys/x/1", 0));
    }

    #[test]
    fn partition_counts() {
        let mut config = PartitionConfig::uniform(4);
        config.per_queue.insert("hot".to_owned(), 16);
        config.per_queue.insert("broken".to_owned(), 0);
        assert_eq!(config.partitions("orders"), 4);
        assert_eq!(config.partitions("hot"), 16);
        assert_eq!(config.partitions("broken"), 1);
        assert_eq!(PartitionConfig::default().partitions("orders"), 1);
        let parsed: PartitionConfig =
            serde_json::from_str(r#"{"per_queue":{"hot":8}}"#).expect("config parses");
        assert_eq!(parsed.default_partitions, 1);
        assert_eq!(parsed.partitions("hot"), 8);
    }

    #[test]
    fn routing_keys_name_the_partition() {
        assert_eq!(
            routing_key("ns", &partition_name("orders", 2), 1),
            "tq/ns/1//_sys/orders/2"
        );
        assert_ne!(
            routing_key("ns", "orders", 1),
            routing_key("ns", "orders", 2)
        );
    }
}

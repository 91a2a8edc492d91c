//! Shard rows and cluster metadata.

use temper_types::{RangeId, ShardId};

use super::SHARD;
use crate::{ClusterMetadata, Persistence, ShardRecord, StoreError};

/// A missing shard row is created with range 0; later calls return the stored row as is.
pub async fn case_shard_get_or_create(p: &Persistence) {
    let created = p
        .executions
        .get_or_create_shard(SHARD, b"initial")
        .await
        .expect("create shard");
    assert_eq!(
        created,
        ShardRecord {
            shard_id: SHARD,
            range_id: RangeId(0),
            info: b"initial".to_vec(),
        }
    );

    let again = p
        .executions
        .get_or_create_shard(SHARD, b"other initial info")
        .await
        .expect("read shard");
    assert_eq!(
        again, created,
        "an existing shard row must not be overwritten"
    );

    let other = p
        .executions
        .get_or_create_shard(ShardId(2), b"two")
        .await
        .expect("create shard 2");
    assert_eq!(other.shard_id, ShardId(2));
    assert_eq!(other.range_id, RangeId(0));
    assert_eq!(other.info, b"two");
}

/// `update_shard` is a compare-and-set on the range id.
pub async fn case_shard_update_is_fenced(p: &Persistence) {
    p.executions
        .get_or_create_shard(SHARD, b"initial")
        .await
        .expect("create shard");

    // Acquire: range 0 -> 1.
    let owned = ShardRecord {
        shard_id: SHARD,
        range_id: RangeId(1),
        info: b"owner A".to_vec(),
    };
    p.executions
        .update_shard(RangeId(0), &owned)
        .await
        .expect("acquire with the right range");
    let row = p
        .executions
        .get_or_create_shard(SHARD, b"ignored")
        .await
        .expect("read shard");
    assert_eq!(row, owned);

    // Save info under the same range.
    let saved = ShardRecord {
        info: b"owner A, acks saved".to_vec(),
        ..owned.clone()
    };
    p.executions
        .update_shard(RangeId(1), &saved)
        .await
        .expect("save info under the held range");

    // A stale owner (still thinking range 0) fails and changes nothing.
    let stale = ShardRecord {
        shard_id: SHARD,
        range_id: RangeId(1),
        info: b"stale owner".to_vec(),
    };
    let err = p
        .executions
        .update_shard(RangeId(0), &stale)
        .await
        .expect_err("stale expected range must fail");
    assert_eq!(
        err,
        StoreError::OwnershipLost {
            held: RangeId(0),
            actual: RangeId(1),
        }
    );
    // An expected range ahead of the store is just as wrong.
    let err = p
        .executions
        .update_shard(
            RangeId(7),
            &ShardRecord {
                range_id: RangeId(8),
                ..stale.clone()
            },
        )
        .await
        .expect_err("expected range ahead of the store must fail");
    assert_eq!(
        err,
        StoreError::OwnershipLost {
            held: RangeId(7),
            actual: RangeId(1),
        }
    );
    let row = p
        .executions
        .get_or_create_shard(SHARD, b"ignored")
        .await
        .expect("read shard");
    assert_eq!(row, saved, "a failed update must change nothing");

    // Another node takes over: 1 -> 2; the first owner is now stale.
    p.executions
        .update_shard(
            RangeId(1),
            &ShardRecord {
                shard_id: SHARD,
                range_id: RangeId(2),
                info: b"owner B".to_vec(),
            },
        )
        .await
        .expect("take over");
    let err = p
        .executions
        .update_shard(RangeId(1), &saved)
        .await
        .expect_err("previous owner is fenced");
    assert_eq!(
        err,
        StoreError::OwnershipLost {
            held: RangeId(1),
            actual: RangeId(2),
        }
    );

    // Other shards are untouched.
    let other = p
        .executions
        .get_or_create_shard(ShardId(2), b"two")
        .await
        .expect("create shard 2");
    assert_eq!(other.range_id, RangeId(0));
}

/// The first init stores the metadata; later inits return what was stored first.
pub async fn case_cluster_metadata_first_init_wins(p: &Persistence) {
    let first = ClusterMetadata {
        cluster_name: "active".to_owned(),
        num_shards: 4,
    };
    let stored = p
        .cluster
        .init_cluster_metadata(&first)
        .await
        .expect("first init");
    assert_eq!(stored, first);

    let second = ClusterMetadata {
        cluster_name: "other".to_owned(),
        num_shards: 512,
    };
    let stored = p
        .cluster
        .init_cluster_metadata(&second)
        .await
        .expect("second init");
    assert_eq!(
        stored, first,
        "the originally stored metadata must be returned"
    );

    let stored = p
        .cluster
        .init_cluster_metadata(&first)
        .await
        .expect("same init again");
    assert_eq!(stored, first);
}

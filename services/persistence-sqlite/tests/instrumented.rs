//! The store metrics wrapper counts every call by operation, and failures by kind.

use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// One snapshot of every metric (taking a snapshot drains it).
type Metrics = Vec<(CompositeKey, DebugValue)>;
use temper_persistence::StoreError;
use temper_persistence::faulty::{FaultyStore, Op};
use temper_persistence_sqlite::SqliteStore;
use temper_types::NamespaceId;

/// The value of the counter `name` whose labels are exactly `labels`.
fn counter(snap: &Metrics, name: &str, labels: &[(&str, &str)]) -> u64 {
    snap.iter()
        .find_map(|(key, value)| {
            let k = key.key();
            let same = k.name() == name
                && k.labels().count() == labels.len()
                && labels
                    .iter()
                    .all(|(n, v)| k.labels().any(|l| l.key() == *n && l.value() == *v));
            match (same, value) {
                (true, DebugValue::Counter(c)) => Some(*c),
                _ => None,
            }
        })
        .unwrap_or(0)
}

/// How many latency samples `operation` recorded.
fn latency_samples(snap: &Metrics, operation: &str) -> usize {
    snap.iter()
        .filter(|(key, _)| {
            let k = key.key();
            k.name() == "temper_persistence_latency_seconds"
                && k.labels()
                    .any(|l| l.key() == "operation" && l.value() == operation)
        })
        .map(|(_, value)| match value {
            DebugValue::Histogram(v) => v.len(),
            _ => 0,
        })
        .sum()
}

#[test]
fn failed_and_successful_calls_are_counted_by_operation_and_kind() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let sqlite = SqliteStore::open_in_memory().expect("store");
            let faulty = FaultyStore::new(sqlite.into_persistence());
            let store = faulty.clone().into_persistence().instrumented();
            let ns = NamespaceId("ns".into());

            faulty.fail(
                Op::GetNamespaceById,
                1,
                StoreError::Unavailable("injected".into()),
            );
            let failed = store.namespaces.get_namespace_by_id(&ns).await;
            assert!(matches!(failed, Err(StoreError::Unavailable(_))));
            let ok = store.namespaces.get_namespace_by_id(&ns).await;
            assert_eq!(ok, Ok(None));
        });
    });

    let snap: Metrics = snap
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key, value))
        .collect();
    let op = ("operation", "get_namespace_by_id");
    assert_eq!(
        counter(&snap, "temper_persistence_requests_total", &[op]),
        2
    );
    assert_eq!(
        counter(
            &snap,
            "temper_persistence_errors_total",
            &[op, ("kind", "unavailable")]
        ),
        1
    );
    assert_eq!(latency_samples(&snap, "get_namespace_by_id"), 2);
}

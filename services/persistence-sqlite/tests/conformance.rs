//! The persistence conformance suite against both flavours of the SQLite store.

use temper_persistence::Persistence;
use temper_persistence_sqlite::SqliteStore;

/// A fresh database file in its own temp dir, deleted after the store is dropped.
async fn file_store() -> (Persistence, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("temper.db")).expect("open file store");
    (store.into_persistence(), dir)
}

async fn memory_store() -> Persistence {
    SqliteStore::open_in_memory()
        .expect("open in-memory store")
        .into_persistence()
}

mod file {
    temper_persistence::persistence_conformance_tests!(super::file_store);
    temper_persistence::persistence_visibility_conformance_tests!(super::file_store);
}

mod memory {
    temper_persistence::persistence_conformance_tests!(super::memory_store);
    temper_persistence::persistence_visibility_conformance_tests!(super::memory_store);
}

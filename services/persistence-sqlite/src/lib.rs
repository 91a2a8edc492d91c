//! temper's embedded store: every persistence trait on one SQLite database.
//!
//! Used by `start-dev` and single-host clusters; several processes on one host may share a
//! file (WAL mode), so every write condition (shard range id, record version, current-run
//! pointer, lease) is checked inside the `BEGIN IMMEDIATE` transaction that applies the
//! write, never from a cache.
//!
//! SQLite is blocking, so every call runs on tokio's blocking pool: writes on the one writer
//! connection (SQLite admits one writer at a time anyway), reads on a small pool of reader
//! connections that see the last committed state (see `pool.rs`).

mod executions;
mod history;
mod membership;
mod namespaces;
mod nexus_endpoints;
mod pool;
mod schema;
mod task_queues;
mod visibility;

use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;
use temper_persistence::{Persistence, StoreError};

use pool::{OpenError, Pool};
pub use schema::LATEST_SCHEMA_VERSION;

/// How long [`SqliteStore::open`] keeps trying a database another process has locked.
const OPEN_LOCKED_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

/// A SQLite database implementing every store trait of `temper-persistence`.
///
/// Cheap to clone: clones share the connections.
#[derive(Clone)]
pub struct SqliteStore {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("location", &self.pool.location())
            .finish()
    }
}

impl SqliteStore {
    /// Open (creating it if needed) the database file at `path`, switch it to WAL mode and
    /// apply pending schema migrations. Refuses a database written by a newer temper.
    ///
    /// This blocks for a few milliseconds; call it at start-up or from `spawn_blocking`.
    ///
    /// Several processes may open one file at once (the nodes of a local cluster): switching
    /// a new file to WAL mode and migrating its schema take locks that the busy timeout does
    /// not always wait for, so a locked database is retried for a while before giving up.
    // A blocking call by contract (see above), so it may sleep between attempts.
    #[allow(clippy::disallowed_methods)]
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + OPEN_LOCKED_RETRY;
        let mut pause = std::time::Duration::from_millis(5);
        loop {
            match Pool::open_file(path) {
                Ok(pool) => {
                    return Ok(Self {
                        pool: Arc::new(pool),
                    });
                }
                Err(OpenError::Locked(_)) if std::time::Instant::now() < deadline => {
                    tracing::debug!(path = %path.display(), "SQLite database is locked; opening again");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(200));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A private in-memory database, gone when the last clone is dropped. All calls share
    /// one connection, serialised (an in-memory database has no WAL readers).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Ok(Self {
            pool: Arc::new(Pool::open_in_memory()?),
        })
    }

    /// This store as the services' bundle of trait objects.
    pub fn into_persistence(self) -> Persistence {
        Persistence::from_backend(Arc::new(self))
    }

    /// Run `f` on the writer connection, off the async threads, in a group transaction
    /// (see `pool`).
    async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        self.pool.write(f).await
    }

    /// Run `f` on a reader connection, off the async threads.
    async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let slot = self.pool.reader_slot().await;
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let out = pool.with_reader(f);
            drop(slot);
            out
        })
        .await
        .map_err(|e| StoreError::Internal(format!("sqlite reader task failed: {e}")))?
    }
}

/// `LIMIT` parameter for a page size.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

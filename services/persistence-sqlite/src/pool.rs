//! Connections and error mapping.
//!
//! One writer connection behind a mutex: SQLite takes one writer at a time per database,
//! so queueing writers here costs nothing and keeps their statement cache warm. Readers
//! take an idle connection (opening one if none is idle) and give it back afterwards, so
//! reads run in parallel with the writer under WAL. An in-memory database has a single
//! connection for both.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use temper_persistence::StoreError;

use crate::schema;

/// How long a connection waits for another one's lock before giving up with
/// [`StoreError::Unavailable`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Reader connections kept open while idle.
const MAX_IDLE_READERS: usize = 4;
/// Prepared statements cached per connection (more than the store has).
const STATEMENT_CACHE: usize = 96;

pub(crate) struct Pool {
    writer: Mutex<Connection>,
    /// `None` for an in-memory database: reads go to the writer.
    readers: Option<Readers>,
}

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    pub(crate) fn open_file(path: &Path) -> Result<Self, StoreError> {
        let mut writer = Connection::open(path).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot open SQLite database {}: {e}; check that the directory exists and is writable",
                path.display()
            ))
        })?;
        configure(&writer).map_err(store_error)?;
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(store_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Invalid(format!(
                "SQLite database {} refused WAL mode (journal mode is {mode}); \
                 is it on a network file system?",
                path.display()
            )));
        }
        schema::migrate(&mut writer)?;
        tracing::debug!(path = %path.display(), "opened SQLite store");
        Ok(Self {
            writer: Mutex::new(writer),
            readers: Some(Readers {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    pub(crate) fn open_in_memory() -> Result<Self, StoreError> {
        let mut conn = Connection::open_in_memory().map_err(store_error)?;
        configure(&conn).map_err(store_error)?;
        schema::migrate(&mut conn)?;
        Ok(Self {
            writer: Mutex::new(conn),
            readers: None,
        })
    }

    pub(crate) fn location(&self) -> String {
        match &self.readers {
            Some(r) => r.path.display().to_string(),
            None => ":memory:".to_owned(),
        }
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock left no open transaction behind (rusqlite's
        // `Transaction` rolls back on drop, unwinding included), so the connection is fine.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn with_writer<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> Result<R, StoreError> {
        f(&mut self.writer()).map_err(store_error)
    }

    pub(crate) fn with_reader<R>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> Result<R, StoreError> {
        let Some(readers) = &self.readers else {
            return f(&self.writer()).map_err(store_error);
        };
        let idle = readers
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => readers.open()?,
        };
        let out = f(&conn);
        let mut idle = readers.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        out.map_err(store_error)
    }
}

impl Readers {
    fn open(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot open a reader on SQLite database {}: {e}",
                self.path.display()
            ))
        })?;
        configure(&conn).map_err(store_error)?;
        // Readers only read: a bug that writes through one fails loudly instead of
        // bypassing the writer's conditions.
        conn.pragma_update(None, "query_only", true)
            .map_err(store_error)?;
        Ok(conn)
    }
}

/// Per-connection settings (journal mode is per database and set once by the writer).
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // In WAL mode NORMAL loses at most the last transactions on power loss, never
    // consistency; FULL would fsync every commit.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// The one mapping from driver errors to store errors.
pub(crate) fn store_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::Error as E;
    match &e {
        E::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreError::Unavailable(
                format!("SQLite database is locked by another connection or process: {e}"),
            ),
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                StoreError::Invalid(format!("SQLite database file is damaged: {e}"))
            }
            ErrorCode::CannotOpen | ErrorCode::DiskFull | ErrorCode::SystemIoFailure => {
                StoreError::Unavailable(format!("SQLite I/O failed: {e}"))
            }
            _ => StoreError::Internal(format!("SQLite: {e}")),
        },
        E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::InvalidColumnType(..)
        | E::Utf8Error(..) => StoreError::Invalid(format!("stored value cannot be decoded: {e}")),
        _ => StoreError::Internal(format!("SQLite: {e}")),
    }
}

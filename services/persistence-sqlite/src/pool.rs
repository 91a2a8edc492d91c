//! Connections and error mapping.
//!
//! One writer connection behind a mutex: SQLite takes one writer at a time per database,
//! so queueing writers here costs nothing and keeps their statement cache warm. Writes are
//! group-committed: those queued while a transaction is being written go together into the
//! next one, each in a savepoint of its own (a write that fails rolls back only itself), and
//! each caller hears back once the transaction is committed. Every shard's writer and the
//! matching backlogs write through here, so at load one transaction (one lock, one WAL
//! append of the pages they share) serves many of them instead of one each. Readers
//! take an idle connection (opening one if none is idle) and give it back afterwards, so
//! reads run in parallel with the writer under WAL. An in-memory database has a single
//! connection for both.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use temper_persistence::StoreError;

use crate::schema;

/// How long a connection waits for another one's lock before giving up with
/// [`StoreError::Unavailable`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Reads at once on a database file, each on its own connection, all kept open while idle.
/// More would not read faster on a few cores; unbounded, a burst of reads opened (and,
/// beyond the idle ones, closed again) a connection per read, paying for the open, the
/// pragmas and statement preparation every time.
const MAX_READERS: usize = 16;
/// Prepared statements cached per connection (more than the store has).
const STATEMENT_CACHE: usize = 96;

pub(crate) struct Pool {
    writer: Mutex<Connection>,
    /// `None` for an in-memory database: reads go to the writer.
    readers: Option<Readers>,
    /// Writes waiting for the next group transaction.
    queue: Mutex<WriteQueue>,
}

/// What a write tells its caller once its group's transaction has ended (the commit's
/// outcome).
type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A queued write: run in the group's transaction (`None`: the transaction could not be
/// begun, so it is not run).
type Job = Box<dyn FnOnce(Option<&mut Connection>) -> Finish + Send>;

#[derive(Default)]
struct WriteQueue {
    jobs: Vec<Job>,
    /// A blocking thread is writing groups; it takes new jobs until none are left.
    draining: bool,
}

/// The savepoint each write of a group runs in (statements prepared once, cached).
const SAVEPOINT: &str = "SAVEPOINT temper_write";
const RELEASE: &str = "RELEASE temper_write";
const ROLLBACK_TO: &str = "ROLLBACK TO temper_write; RELEASE temper_write";

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// One permit per reader connection; see [`Pool::reader_slot`].
    slots: Arc<tokio::sync::Semaphore>,
}

impl Pool {
    pub(crate) fn open_file(path: &Path) -> Result<Self, OpenError> {
        let mut writer = Connection::open(path).map_err(|e| {
            OpenError::sqlite(e, |e| {
                StoreError::Unavailable(format!(
                    "cannot open SQLite database {}: {e}; check that the directory exists and is writable",
                    path.display()
                ))
            })
        })?;
        configure(&writer)?;
        let mode: String =
            writer.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(OpenError::Failed(StoreError::Invalid(format!(
                "SQLite database {} refused WAL mode (journal mode is {mode}); \
                 is it on a network file system?",
                path.display()
            ))));
        }
        schema::migrate(&mut writer)?;
        tracing::debug!(path = %path.display(), "opened SQLite store");
        Ok(Self {
            writer: Mutex::new(writer),
            readers: Some(Readers {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
                slots: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
            }),
            queue: Mutex::default(),
        })
    }

    pub(crate) fn open_in_memory() -> Result<Self, StoreError> {
        let mut conn = Connection::open_in_memory().map_err(store_error)?;
        configure(&conn).map_err(store_error)?;
        schema::migrate(&mut conn).map_err(StoreError::from)?;
        Ok(Self {
            writer: Mutex::new(conn),
            readers: None,
            queue: Mutex::default(),
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

    /// Run `f` on the writer connection, in the next group transaction, off the async
    /// threads; returns once that transaction is committed. `f` runs in a savepoint: an error
    /// (or a panic) rolls back what it wrote and nothing else. `f` must not begin or end a
    /// transaction itself; it may use savepoints.
    pub(crate) async fn write<R, F>(self: &Arc<Self>, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let out = match conn {
                Some(conn) => run_in_savepoint(conn, f),
                None => Err(StoreError::Unavailable("not written".into())),
            };
            Box::new(move |committed: Result<(), StoreError>| {
                let _ = tx.send(committed.and(out));
            })
        });
        let start = {
            let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            q.jobs.push(job);
            !std::mem::replace(&mut q.draining, true)
        };
        if start {
            let pool = self.clone();
            tokio::task::spawn_blocking(move || pool.drain());
        }
        rx.await.unwrap_or_else(|_| {
            Err(StoreError::Internal(
                "the SQLite writer stopped before answering".into(),
            ))
        })
    }

    /// Write groups until no write is waiting.
    fn drain(&self) {
        loop {
            let jobs = {
                let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                if q.jobs.is_empty() {
                    q.draining = false;
                    return;
                }
                std::mem::take(&mut q.jobs)
            };
            let (committed, finishes) = write_group(&mut self.writer(), jobs);
            for finish in finishes {
                finish(committed.clone());
            }
        }
    }

    /// Wait (asynchronously) for a reader connection to be free; hold the slot while
    /// reading with [`Self::with_reader`]. `None` for an in-memory database, whose reads
    /// queue on the writer.
    pub(crate) async fn reader_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let readers = self.readers.as_ref()?;
        readers.slots.clone().acquire_owned().await.ok()
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
        if idle.len() < MAX_READERS {
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

/// One group transaction: begin, run each job in its savepoint, commit. Returns the
/// commit's outcome (what every job's caller hears unless its own write failed) and the
/// jobs' finishers.
fn write_group(conn: &mut Connection, jobs: Vec<Job>) -> (Result<(), StoreError>, Vec<Finish>) {
    let mut finishes = Vec::with_capacity(jobs.len());
    if let Err(e) = exec_cached(conn, "BEGIN IMMEDIATE") {
        let err = store_error(e);
        finishes.extend(jobs.into_iter().map(|job| job(None)));
        return (Err(err), finishes);
    }
    let mut aborted = false;
    for job in jobs {
        if aborted {
            finishes.push(job(None));
            continue;
        }
        finishes.push(job(Some(conn)));
        // Some errors (a full disk, an I/O error) make SQLite roll the whole transaction
        // back; the writes after that would each commit on their own. Run no more of them.
        aborted = conn.is_autocommit();
    }
    if aborted {
        return (
            Err(StoreError::Unavailable(
                "SQLite rolled the write transaction back".into(),
            )),
            finishes,
        );
    }
    let committed = match exec_cached(conn, "COMMIT") {
        Ok(()) => Ok(()),
        Err(e) => {
            let err = store_error(e);
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            Err(err)
        }
    };
    (committed, finishes)
}

/// Run one write of a group in its own savepoint.
fn run_in_savepoint<R>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
) -> Result<R, StoreError> {
    exec_cached(conn, SAVEPOINT).map_err(store_error)?;
    let out = match catch_unwind(AssertUnwindSafe(|| f(conn))) {
        Ok(Ok(r)) => {
            return exec_cached(conn, RELEASE).map(|()| r).map_err(store_error);
        }
        Ok(Err(e)) => Err(store_error(e)),
        Err(_) => Err(StoreError::Internal("a SQLite write panicked".into())),
    };
    if !conn.is_autocommit() {
        let _ = conn.execute_batch(ROLLBACK_TO);
    }
    out
}

/// One statement without parameters or rows, prepared once per connection.
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Per-connection settings (journal mode is per database and set once by the writer).
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // In WAL mode NORMAL loses at most the last transactions on power loss, never
    // consistency; FULL would fsync every commit.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // The savepoint each write of a group runs in keeps its undo pages in a temporary
    // journal: in memory, not in a file.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Why opening a database file failed: a lock that another connection or process holds,
/// which SQLite did not wait out (opening again shortly may succeed), or anything else.
#[derive(Debug)]
pub(crate) enum OpenError {
    Locked(StoreError),
    Failed(StoreError),
}

impl OpenError {
    /// `e`, described by `describe`, told apart by its SQLite error code.
    pub(crate) fn sqlite(
        e: rusqlite::Error,
        describe: impl FnOnce(rusqlite::Error) -> StoreError,
    ) -> Self {
        if is_locked(&e) {
            Self::Locked(describe(e))
        } else {
            Self::Failed(describe(e))
        }
    }
}

impl From<rusqlite::Error> for OpenError {
    fn from(e: rusqlite::Error) -> Self {
        Self::sqlite(e, store_error)
    }
}

impl From<OpenError> for StoreError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Locked(e) | OpenError::Failed(e) => e,
        }
    }
}

/// Whether SQLite refused because another connection holds a lock (`SQLITE_BUSY`: another
/// connection or process is writing; `SQLITE_LOCKED`: a conflict within one connection or
/// shared cache), by the error's code.
pub(crate) fn is_locked(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(failure, _)
            if matches!(failure.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// The one mapping from driver errors to store errors.
pub(crate) fn store_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::Error as E;
    if is_locked(&e) {
        return StoreError::Unavailable(format!(
            "SQLite database is locked by another connection or process: {e}"
        ));
    }
    match &e {
        E::SqliteFailure(failure, _) => match failure.code {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool on a fresh file with a table `t (x INTEGER UNIQUE)`.
    async fn pool_with_table(dir: &tempfile::TempDir) -> Arc<Pool> {
        let pool = Arc::new(Pool::open_file(&dir.path().join("group.db")).expect("open"));
        pool.write(|c| c.execute_batch("CREATE TABLE t (x INTEGER UNIQUE)"))
            .await
            .expect("create");
        pool
    }

    fn rows(pool: &Pool) -> Vec<i64> {
        pool.with_reader(|c| {
            let mut stmt = c.prepare("SELECT x FROM t ORDER BY x")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect()
        })
        .expect("read")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_or_panicking_write_rolls_back_only_itself() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = pool_with_table(&dir).await;
        // Many writes at once, so that groups form; some fail halfway (a unique key taken
        // by their own first insert), one panics after writing.
        let mut calls = Vec::new();
        for i in 0..200i64 {
            let pool = pool.clone();
            calls.push(tokio::spawn(async move {
                pool.write(move |c| {
                    let sp = c.savepoint()?;
                    sp.execute("INSERT INTO t (x) VALUES (?1)", [i * 10])?;
                    if i % 7 == 3 {
                        // Fails: written already, by this very write.
                        sp.execute("INSERT INTO t (x) VALUES (?1)", [i * 10])?;
                    }
                    if i == 101 {
                        panic!("a write that panics");
                    }
                    sp.execute("INSERT INTO t (x) VALUES (?1)", [i * 10 + 1])?;
                    sp.commit()
                })
                .await
            }));
        }
        let mut expected = Vec::new();
        for (i, call) in calls.into_iter().enumerate() {
            let i = i as i64;
            let out = call.await.expect("join");
            if i % 7 == 3 {
                assert!(
                    matches!(&out, Err(StoreError::Internal(m)) if m.contains("UNIQUE")),
                    "{i}: {out:?}"
                );
            } else if i == 101 {
                assert_eq!(
                    out,
                    Err(StoreError::Internal("a SQLite write panicked".into()))
                );
            } else {
                assert_eq!(out, Ok(()), "{i}");
                expected.extend([i * 10, i * 10 + 1]);
            }
        }
        assert_eq!(
            rows(&pool),
            expected,
            "exactly the successful writes, whole"
        );
        // The writer goes on after all that.
        pool.write(|c| c.execute("INSERT INTO t (x) VALUES (-1)", []))
            .await
            .expect("a later write");
        assert_eq!(rows(&pool).first(), Some(&-1));
    }

    #[tokio::test]
    async fn a_write_that_cannot_begin_reports_the_lock() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = pool_with_table(&dir).await;
        let holder = Connection::open(dir.path().join("group.db")).expect("open");
        holder
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (5);")
            .expect("hold the write lock");
        pool.writer()
            .busy_timeout(Duration::from_millis(50))
            .expect("short wait");
        let out = pool
            .write(|c| c.execute("INSERT INTO t (x) VALUES (6)", []))
            .await;
        assert!(matches!(out, Err(StoreError::Unavailable(_))), "{out:?}");
        holder.execute_batch("ROLLBACK").expect("release");
        pool.write(|c| c.execute("INSERT INTO t (x) VALUES (7)", []))
            .await
            .expect("written once the lock is free");
        assert_eq!(rows(&pool), vec![7]);
    }

    /// A connection to `path` that gives up at once instead of waiting for a lock.
    fn impatient(path: &Path) -> Connection {
        let conn = Connection::open(path).expect("open a second connection");
        conn.busy_timeout(Duration::ZERO).expect("no busy timeout");
        conn
    }

    #[test]
    fn a_write_transaction_held_elsewhere_is_recognised_as_busy() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("busy.db");
        let holder = Connection::open(&path).expect("open");
        let mode: String = holder
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .expect("WAL mode");
        assert_eq!(mode, "wal");
        holder
            .execute_batch("CREATE TABLE t (x INTEGER); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
            .expect("hold a write transaction");

        let other = impatient(&path);
        let busy = || {
            other
                .execute_batch("BEGIN IMMEDIATE")
                .expect_err("the first connection holds the write lock")
        };
        let err = busy();
        assert!(
            matches!(&err, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::DatabaseBusy),
            "{err:?}"
        );
        assert!(is_locked(&err));
        assert!(matches!(store_error(busy()), StoreError::Unavailable(_)));
        assert!(matches!(OpenError::from(busy()), OpenError::Locked(_)));

        // Once the holder commits, the same call goes through.
        holder.execute_batch("COMMIT").expect("commit");
        other
            .execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .expect("lock is free");
    }

    #[test]
    fn a_table_locked_in_a_shared_cache_is_recognised() {
        // SQLITE_LOCKED: two connections sharing one cache, one writing the table the
        // other reads.
        let uri = "file:locked-test?mode=memory&cache=shared";
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI;
        let writer = Connection::open_with_flags(uri, flags).expect("open");
        writer
            .execute_batch("CREATE TABLE t (x INTEGER); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
            .expect("hold a write transaction");
        let reader = Connection::open_with_flags(uri, flags).expect("open a second connection");
        let err = reader
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get::<_, i64>(0))
            .expect_err("the table is locked");
        assert!(
            matches!(&err, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::DatabaseLocked),
            "{err:?}"
        );
        assert!(is_locked(&err));
    }

    #[test]
    fn the_code_decides_not_the_message() {
        let says_locked = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some("no such table: locked".into()),
        );
        assert!(!is_locked(&says_locked));
        assert!(matches!(
            OpenError::from(says_locked),
            OpenError::Failed(StoreError::Internal(_))
        ));
        let syntax = Connection::open_in_memory()
            .expect("open")
            .execute_batch("NOT SQL")
            .expect_err("syntax error");
        assert!(!is_locked(&syntax));
    }
}

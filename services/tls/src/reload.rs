//! TLS material that follows its files: read once at start (an error there is a start-up
//! error), then read again whenever a file's contents change. A change that does not load
//! (a key written before its certificate, say) is logged and the previous material kept; the
//! next change is tried again.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::TlsError;

/// How often the files are read for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

type Loader<T> = Box<dyn Fn() -> Result<T, TlsError> + Send + Sync>;

/// Material of type `T` built from `paths` by a loader, kept current.
pub struct Reloading<T> {
    /// What this is, for the log (`gRPC server TLS`, `internode client TLS`).
    what: &'static str,
    paths: Vec<PathBuf>,
    load: Loader<T>,
    current: RwLock<Arc<T>>,
    /// The files' contents when last loaded (`None`: unreadable then).
    seen: Mutex<Vec<Option<Vec<u8>>>>,
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Load now; the error names the file at fault.
    pub fn new(
        what: &'static str,
        paths: Vec<PathBuf>,
        load: impl Fn() -> Result<T, TlsError> + Send + Sync + 'static,
    ) -> Result<Arc<Self>, TlsError> {
        let seen = snapshot(&paths);
        let first = load()?;
        Ok(Arc::new(Self {
            what,
            paths,
            load: Box::new(load),
            current: RwLock::new(Arc::new(first)),
            seen: Mutex::new(seen),
        }))
    }

    /// The material in force.
    pub fn current(&self) -> Arc<T> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Read the files; if any changed, load them and put the result in force. `Ok(true)`:
    /// reloaded; `Ok(false)`: nothing changed; `Err`: changed but not loadable (the old
    /// material stays). Blocking file reads: call from a blocking context.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = snapshot(&self.paths);
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if *seen == now {
                return Ok(false);
            }
            *seen = now;
        }
        let fresh = (self.load)()?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(fresh);
        Ok(true)
    }

    /// Check the files every `interval` until `stop`.
    pub fn watch(
        self: &Arc<Self>,
        interval: Duration,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
                let check = me.clone();
                match tokio::task::spawn_blocking(move || check.reload_if_changed()).await {
                    Ok(Ok(true)) => {
                        tracing::info!(what = me.what, files = ?me.paths, "reloaded TLS certificates")
                    }
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => tracing::warn!(
                        what = me.what,
                        "TLS files changed but cannot be loaded; keeping the previous ones: {e}"
                    ),
                    Err(e) => tracing::warn!(what = me.what, "TLS reload check failed: {e}"),
                }
            }
        })
    }
}

fn snapshot(paths: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    paths.iter().map(|p| std::fs::read(p).ok()).collect()
}

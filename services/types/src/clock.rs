//! Time comes from an injected clock so timer logic can be tested without sleeping.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Wall-clock time source.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> SystemTime;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    // The one place that reads the wall clock (clippy.toml sends everything else here).
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Wall-clock milliseconds since the Unix epoch, for records other processes read (leases,
/// membership heartbeats, schema history); timer logic takes a [`Clock`] instead.
pub fn wall_clock_millis() -> i64 {
    SystemClock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    pub fn new(start: SystemTime) -> Self {
        Self(Mutex::new(start))
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().expect("clock mutex poisoned");
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().expect("clock mutex poisoned")
    }
}

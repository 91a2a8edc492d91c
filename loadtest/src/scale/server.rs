//! The temper process a `scale` run measures: `server start-dev` on a SQLite file, on free
//! loopback ports, stopped with SIGTERM so a restart finds what a graceful stop leaves.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::schedbench::procstat;

/// How long a start may take before the run gives up.
const READY_PATIENCE: Duration = Duration::from_secs(120);
/// How long a graceful stop may take before the process is killed.
const STOP_PATIENCE: Duration = Duration::from_secs(60);

pub struct Server {
    bin: PathBuf,
    dir: PathBuf,
    extra: Vec<String>,
    pub port: u16,
    health_port: u16,
    metrics_port: u16,
    child: Option<Child>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Server {
    pub fn new(bin: &Path, dir: &Path, extra: &[String]) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            extra: extra.to_vec(),
            port: free_port()?,
            health_port: free_port()?,
            metrics_port: free_port()?,
            child: None,
        })
    }

    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Start the process and wait until its health endpoint says ready; how long that took
    /// from the spawn.
    pub async fn start(&mut self) -> anyhow::Result<Duration> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))?;
        let spawned = Instant::now();
        let child = Command::new(&self.bin)
            .args([
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--log-level",
                "warn",
            ])
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--health-port")
            .arg(self.health_port.to_string())
            .arg("--metrics-port")
            .arg(self.metrics_port.to_string())
            .arg("--db-file")
            .arg(self.dir.join("scale.sqlite"))
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        let health = SocketAddr::from(([127, 0, 0, 1], self.health_port));
        while spawned.elapsed() < READY_PATIENCE {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "the server exited with {status}; see {}",
                    self.dir.join("server.log").display()
                );
            }
            if ready(health).await {
                return Ok(spawned.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        bail!("the server was not ready within {READY_PATIENCE:?}")
    }

    /// SIGTERM, then wait for the exit (SIGKILL after `STOP_PATIENCE`).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let asked = Instant::now();
        while asked.elapsed() < STOP_PATIENCE {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!("the server did not stop within {STOP_PATIENCE:?} of SIGTERM; killed")
    }

    /// The process's resident set now, in MiB.
    pub fn rss_mib(&self) -> anyhow::Result<f64> {
        let pid = self.pid().context("the server is not running")?;
        Ok(procstat::sample(pid)?.rss_kib as f64 / 1024.0)
    }

    /// Bytes of the store's files (the database, its WAL and shared memory).
    pub fn disk_bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("scale.sqlite"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `GET /health/ready` answers 200.
async fn ready(addr: SocketAddr) -> bool {
    get(addr, "/health/ready").await.is_some()
}

/// The body of `GET path` if it answers 200.
async fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.ok()?;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        if !answer.starts_with("HTTP/1.1 200") {
            return None;
        }
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        Some(body.to_string())
    };
    tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .ok()
        .flatten()
}

/// The value of an unlabelled gauge in Prometheus text.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok()).flatten()
    })
}

/// What the server's own gauges say about its memory.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Gauges {
    /// Timers held in memory (loaded and not done), over all shards.
    pub timers_in_memory: Option<f64>,
    /// The run cache's bytes, in MiB.
    pub cache_mib: Option<f64>,
}

impl Server {
    /// Read the memory gauges (they are refreshed every second or so).
    pub async fn gauges(&self) -> Gauges {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.metrics_port));
        let Some(text) = get(addr, "/metrics").await else {
            return Gauges::default();
        };
        Gauges {
            timers_in_memory: gauge(&text, "temper_timer_queue_pending"),
            cache_mib: gauge(&text, "temper_history_cache_bytes").map(|b| b / 1048576.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::gauge;

    #[test]
    fn gauges_are_read_from_prometheus_text() {
        let text = "# TYPE temper_timer_queue_pending gauge\ntemper_timer_queue_pending 12\n\
                    temper_history_cache_bytes 2097152\ntemper_x{a=\"b\"} 3\n";
        assert_eq!(gauge(text, "temper_timer_queue_pending"), Some(12.0));
        assert_eq!(gauge(text, "temper_history_cache_bytes"), Some(2097152.0));
        assert_eq!(gauge(text, "temper_missing"), None);
    }
}

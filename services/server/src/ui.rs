//! `temper server start-dev --ui`: the official Temporal Web UI, run as a child process.
//!
//! temper does not build the UI: `scripts/ui-server install` builds the Go module
//! `github.com/temporalio/ui-server/v2` (which embeds the UI) into
//! `$XDG_CACHE_HOME/temper/ui-server-<version>/bin/ui-server`. start-dev finds the newest one
//! there (or takes `--ui-server-bin`), writes a config for it pointed at its own gRPC address,
//! runs it, and kills it on shutdown. Without one it says how to install it and serves gRPC
//! alone.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio_util::sync::CancellationToken;

/// The command that builds the UI server, for messages.
pub const INSTALL_COMMAND: &str = "scripts/ui-server install";
/// Name of the binary inside `ui-server-<version>/bin`.
const BINARY_NAME: &str = "ui-server";
/// How long to wait for the UI server's port before saying it did not come up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of the UI server's output kept to explain an early exit.
const KEPT_LINES: usize = 20;

/// Where `scripts/ui-server` installs: `${XDG_CACHE_HOME:-~/.cache}/temper`.
pub fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("temper"))
}

/// The numeric parts of `ui-server-v2.56.4` (`[2, 56, 4]`), or `None` for another name.
fn version_of(dir_name: &str) -> Option<Vec<u64>> {
    let v = dir_name.strip_prefix("ui-server-v")?;
    v.split('.').map(|p| p.parse().ok()).collect()
}

/// The installed UI server with the highest version under `cache`, if any.
pub fn find_installed(cache: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(cache).ok()?;
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = version_of(e.file_name().to_str()?)?;
            let bin = e.path().join("bin").join(BINARY_NAME);
            bin.is_file().then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// The UI server binary: `explicit` if given (it must exist), else the newest installed one.
/// The error says how to get one.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(format!("--ui-server-bin {}: no such file", path.display()))
        };
    }
    let cache = cache_dir();
    if let Some(bin) = cache.as_deref().and_then(find_installed) {
        return Ok(bin);
    }
    let at = cache
        .map(|c| c.join("ui-server-<version>").display().to_string())
        .unwrap_or_else(|| "$XDG_CACHE_HOME/temper/ui-server-<version>".into());
    Err(format!(
        "the Temporal Web UI server is not installed; build it with `{INSTALL_COMMAND}` \
         (run in the temper repository; it goes to {at}), or pass --ui-server-bin PATH"
    ))
}

/// The address the UI server dials: the gRPC address, with loopback for an unspecified IP.
pub fn dial_address(grpc: SocketAddr) -> SocketAddr {
    match grpc.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), grpc.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), grpc.port())
        }
        _ => grpc,
    }
}

/// The UI's URL as a browser on this machine opens it.
pub fn url(ui: SocketAddr) -> String {
    format!("http://{}", dial_address(ui))
}

/// How the UI server reaches a TLS gRPC port (`start-dev --tls-cert`): it trusts the
/// certificate chain the port serves and checks that it names `server_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiTls {
    /// The PEM chain of `--tls-cert` (absolute: the UI server runs in its own directory).
    pub ca_file: PathBuf,
    pub server_name: String,
    /// The client certificate and key the UI server presents (a port with a client CA).
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// How the UI server signs users in: an OpenID Connect provider and the UI's client there.
/// The UI server passes the signed-in user's token on as the `authorization` header of its
/// calls, which temper checks like any other caller's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiAuth {
    pub provider_url: String,
    pub issuer_url: Option<String>,
    pub client_id: String,
    pub client_secret: String,
    pub callback_url: String,
    pub scopes: Vec<String>,
    /// Pass the ID token instead of the access token.
    pub use_id_token: bool,
}

/// Our config for the UI server (its YAML keys, from its config struct): the Temporal API
/// address (over TLS with `tls`), where to listen, sign-in (off without `auth`), plain-HTTP
/// cookies unless the callback is https, no phoning home.
pub fn config_yaml(
    grpc: SocketAddr,
    ui: SocketAddr,
    tls: Option<&UiTls>,
    auth: Option<&UiAuth>,
) -> String {
    let host = match ui.ip() {
        IpAddr::V6(ip) => format!("\"{ip}\""),
        IpAddr::V4(ip) => ip.to_string(),
    };
    let port = ui.port();
    let mut origins = vec![
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{port}"),
    ];
    let own = url(ui);
    if !origins.contains(&own) {
        origins.push(own);
    }
    let origins: String = origins.iter().map(|o| format!("    - \"{o}\"\n")).collect();
    format!(
        "# Written by `temper server start-dev --ui`.\n\
         temporalGrpcAddress: \"{grpc}\"\n\
         host: {host}\n\
         port: {port}\n\
         enableUi: true\n\
         defaultNamespace: default\n\
         cors:\n  \
           cookieInsecure: true\n  \
           allowOrigins:\n{origins}\
         {auth}\
         disableNewsFetch: true\n\
         notifyOnNewVersion: false\n\
         hideLogs: true\n\
         {tls}",
        grpc = dial_address(grpc),
        tls = tls.map(tls_yaml).unwrap_or_default(),
        auth = auth.map_or_else(|| "auth:\n  enabled: false\n".to_owned(), auth_yaml),
    )
}

/// The UI server's `auth` section: one OIDC provider.
fn auth_yaml(auth: &UiAuth) -> String {
    let scopes: String = auth
        .scopes
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| format!("        - {}\n", yaml_string(s)))
        .collect();
    let issuer = auth
        .issuer_url
        .as_ref()
        .map(|i| format!("      issuerUrl: {}\n", yaml_string(i)))
        .unwrap_or_default();
    format!(
        "auth:\n  enabled: true\n  providers:\n    - label: temper\n      type: oidc\n      \
         providerUrl: {provider}\n{issuer}      clientId: {id}\n      clientSecret: {secret}\n      \
         callbackUrl: {callback}\n      useIdTokenAsBearer: {id_token}\n      scopes:\n{scopes}",
        provider = yaml_string(&auth.provider_url),
        id = yaml_string(&auth.client_id),
        secret = yaml_string(&auth.client_secret),
        callback = yaml_string(&auth.callback_url),
        id_token = auth.use_id_token,
    )
}

/// The UI server's `tls` section: without `enableHostVerification` it would not check the
/// certificate at all.
fn tls_yaml(tls: &UiTls) -> String {
    let identity = tls
        .identity
        .as_ref()
        .map(|(cert, key)| {
            format!(
                "  certFile: {}\n  keyFile: {}\n",
                yaml_string(&cert.to_string_lossy()),
                yaml_string(&key.to_string_lossy())
            )
        })
        .unwrap_or_default();
    format!(
        "tls:\n  caFile: {ca}\n  serverName: {name}\n  enableHostVerification: true\n{identity}",
        ca = yaml_string(&tls.ca_file.to_string_lossy()),
        name = yaml_string(&tls.server_name),
    )
}

/// Write `text` to a new file only its owner may read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

/// A YAML double-quoted string.
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// A running UI server. Dropping it (or [`UiServer::stop`]) kills the process.
pub struct UiServer {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl UiServer {
    /// Writes the config and starts `bin` serving the UI on `ui`, talking to `grpc`. Prints
    /// the URL once the port accepts connections, or what went wrong if the process exits.
    pub fn start(
        bin: &Path,
        grpc: SocketAddr,
        ui: SocketAddr,
        tls: Option<&UiTls>,
        auth: Option<&UiAuth>,
    ) -> anyhow::Result<UiServer> {
        // The UI server would only log a bind error and exit: say so before starting it.
        std::net::TcpListener::bind(ui)
            .with_context(|| format!("the Web UI's address {ui} is not free (--ui-port)"))?;
        let dir =
            std::env::temp_dir().join(format!("temper-ui-{}-{}", std::process::id(), ui.port()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let config = dir.join("temper.yaml");
        // The config may hold the UI's OAuth2 client secret: readable by this user only.
        write_private(&config, &config_yaml(grpc, ui, tls, auth))
            .with_context(|| format!("writing {}", config.display()))?;
        let mut child = tokio::process::Command::new(bin)
            .arg("--root")
            .arg(&dir)
            .args(["--config", ".", "--env", "temper", "start"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the UI server {}", bin.display()))?;
        let pid = child.id();
        tracing::info!(bin = %bin.display(), pid, ui = %ui, "started the Temporal Web UI server");
        let output = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(keep_lines(out, output.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(keep_lines(err, output.clone()));
        }
        let stop = CancellationToken::new();
        let ready = tokio::spawn(announce_when_ready(ui));
        let stopping = stop.clone();
        let task = tokio::spawn(async move {
            tokio::select! {
                status = child.wait() => {
                    ready.abort();
                    match status {
                        // Ctrl-C in a terminal, or a kill of the whole process group, reaches
                        // the UI server with temper: it was stopped, it did not fail.
                        Ok(s) if stopped_by_signal(&s) => {
                            tracing::info!(status = %s, "the Temporal Web UI server stopped");
                        }
                        status => {
                            let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                            let lines: Vec<String> = output.lock().map(|o| o.iter().cloned().collect()).unwrap_or_default();
                            tracing::warn!(%status, "the Temporal Web UI server exited");
                            eprintln!("warning: the Temporal Web UI server exited ({status}); gRPC keeps serving. Its last output:");
                            for line in lines {
                                eprintln!("  {line}");
                            }
                        }
                    }
                }
                _ = stopping.cancelled() => {
                    ready.abort();
                    let _ = child.kill().await;
                    tracing::info!("stopped the Temporal Web UI server");
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        });
        Ok(UiServer { stop, task })
    }

    /// Kills the UI server and waits for it to be gone.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for UiServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Whether the process ended on SIGINT or SIGTERM.
#[cfg(unix)]
fn stopped_by_signal(status: &std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    matches!(status.signal(), Some(2 | 15))
}

#[cfg(not(unix))]
fn stopped_by_signal(_: &std::process::ExitStatus) -> bool {
    false
}

/// Keeps the last lines of the UI server's output (and logs them at debug).
async fn keep_lines(from: impl AsyncRead + Unpin, into: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(from).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(target: "temper::ui", "{line}");
        if let Ok(mut kept) = into.lock() {
            if kept.len() == KEPT_LINES {
                kept.pop_front();
            }
            kept.push_back(line);
        }
    }
}

async fn announce_when_ready(ui: SocketAddr) {
    let dial = dial_address(ui);
    let waited = tokio::time::timeout(READY_TIMEOUT, async {
        while tokio::net::TcpStream::connect(dial).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    match waited {
        Ok(()) => {
            tracing::info!(url = %url(ui), "Temporal Web UI ready");
            eprintln!("Temporal Web UI at {}", url(ui));
        }
        Err(_) => eprintln!(
            "warning: the Temporal Web UI server did not open {dial} within {READY_TIMEOUT:?}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_newest_installed_version() {
        let cache = tempfile::tempdir().expect("temp dir");
        for (dir, with_bin) in [
            ("ui-server-v2.9.0", true),
            ("ui-server-v2.56.4", true),
            ("ui-server-v2.58.1", false),
            ("ui-server-latest", true),
            ("other", true),
        ] {
            let bin_dir = cache.path().join(dir).join("bin");
            std::fs::create_dir_all(&bin_dir).expect("mkdir");
            if with_bin {
                std::fs::write(bin_dir.join(BINARY_NAME), "").expect("write");
            }
        }
        assert_eq!(
            find_installed(cache.path()),
            Some(cache.path().join("ui-server-v2.56.4/bin/ui-server"))
        );
        assert_eq!(find_installed(&cache.path().join("missing")), None);
    }

    #[test]
    fn missing_binary_names_the_install_command() {
        let err = locate(Some(Path::new("/nonexistent/ui-server"))).expect_err("no such file");
        assert!(err.contains("--ui-server-bin"), "{err}");
    }

    #[test]
    fn config_points_at_loopback_for_an_unspecified_ip() {
        let yaml = config_yaml(
            "0.0.0.0:7233".parse().expect("address"),
            "0.0.0.0:8233".parse().expect("address"),
            None,
            None,
        );
        assert!(
            yaml.contains("temporalGrpcAddress: \"127.0.0.1:7233\"\n"),
            "{yaml}"
        );
        assert!(yaml.contains("host: 0.0.0.0\nport: 8233\n"), "{yaml}");
        assert!(yaml.contains("    - \"http://localhost:8233\"\n"), "{yaml}");
        assert!(yaml.contains("auth:\n  enabled: false\n"), "{yaml}");
        let v6 = config_yaml(
            "[::1]:7233".parse().expect("address"),
            "[::1]:8233".parse().expect("address"),
            None,
            None,
        );
        assert!(v6.contains("temporalGrpcAddress: \"[::1]:7233\"\n"), "{v6}");
        assert!(v6.contains("host: \"::1\"\n"), "{v6}");
        assert!(!v6.contains("tls:"), "plaintext: no tls section\n{v6}");
    }

    #[test]
    fn with_tls_the_ui_server_checks_the_served_certificate() {
        let tls = UiTls {
            ca_file: PathBuf::from("/certs/server.pem"),
            server_name: "localhost".into(),
            identity: None,
        };
        let yaml = config_yaml(
            "127.0.0.1:7233".parse().expect("address"),
            "127.0.0.1:8233".parse().expect("address"),
            Some(&tls),
            None,
        );
        assert!(
            yaml.ends_with(
                "tls:\n  caFile: \"/certs/server.pem\"\n  serverName: \"localhost\"\n  enableHostVerification: true\n"
            ),
            "{yaml}"
        );
        let mutual = UiTls {
            identity: Some(("/certs/ui.pem".into(), "/certs/ui.key".into())),
            ..tls
        };
        let yaml = config_yaml(
            "127.0.0.1:7233".parse().expect("address"),
            "127.0.0.1:8233".parse().expect("address"),
            Some(&mutual),
            None,
        );
        assert!(
            yaml.ends_with(
                "enableHostVerification: true\n  certFile: \"/certs/ui.pem\"\n  keyFile: \"/certs/ui.key\"\n"
            ),
            "{yaml}"
        );
    }

    #[test]
    fn with_a_provider_the_ui_server_signs_users_in() {
        let auth = UiAuth {
            provider_url: "http://127.0.0.1:9000".into(),
            issuer_url: None,
            client_id: "temper-ui".into(),
            client_secret: "s\"ecret".into(),
            callback_url: "http://127.0.0.1:8233/auth/sso/callback".into(),
            scopes: vec!["openid".into(), "email".into()],
            use_id_token: false,
        };
        let yaml = config_yaml(
            "127.0.0.1:7233".parse().expect("address"),
            "127.0.0.1:8233".parse().expect("address"),
            None,
            Some(&auth),
        );
        assert!(!yaml.contains("enabled: false"), "{yaml}");
        assert!(
            yaml.contains(
                "auth:\n  enabled: true\n  providers:\n    - label: temper\n      type: oidc\n      \
                 providerUrl: \"http://127.0.0.1:9000\"\n      clientId: \"temper-ui\"\n      \
                 clientSecret: \"s\\\"ecret\"\n      callbackUrl: \"http://127.0.0.1:8233/auth/sso/callback\"\n      \
                 useIdTokenAsBearer: false\n      scopes:\n        - \"openid\"\n        - \"email\"\n"
            ),
            "{yaml}"
        );
        assert!(yaml.contains("disableNewsFetch: true\n"), "{yaml}");
        let yaml = config_yaml(
            "127.0.0.1:7233".parse().expect("address"),
            "127.0.0.1:8233".parse().expect("address"),
            None,
            Some(&UiAuth {
                issuer_url: Some("https://idp.example.com/".into()),
                use_id_token: true,
                ..auth
            }),
        );
        assert!(
            yaml.contains("      issuerUrl: \"https://idp.example.com/\"\n"),
            "{yaml}"
        );
        assert!(yaml.contains("useIdTokenAsBearer: true\n"), "{yaml}");
    }
}

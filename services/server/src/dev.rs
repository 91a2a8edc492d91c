//! `temper server start-dev`: frontend, history and matching in one process on an embedded
//! SQLite store, the way `temporal server start-dev` runs; `--store cassandra` runs the same
//! process on a Cassandra / ScyllaDB keyspace instead (waiting for the cluster while it is
//! unreachable).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use temper_frontend::{Frontend, Operator};
use temper_persistence::Persistence;
use temper_persistence_sqlite::SqliteStore;
use temper_proto::api::operatorservice::v1::operator_service_server::OperatorServiceServer;
use temper_proto::api::workflowservice::v1::workflow_service_server::WorkflowServiceServer;
use temper_server::health::{Health, Readiness};
use temper_server::node::{Node, NodeConfig};
use temper_server::store::{self, StoreArgs, StoreKind};
use tonic::codec::CompressionEncoding;

/// Largest gRPC message accepted or sent (Temporal allows large history pages).
const MAX_MESSAGE_BYTES: usize = 128 * 1024 * 1024;
/// How long in-flight requests may take to finish after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(clap::Args, Debug)]
pub struct DevArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: String,
    /// Frontend gRPC port.
    #[arg(long, short = 'p', default_value_t = 7233)]
    pub port: u16,
    /// SQLite file to keep state in (created if missing). Default: temper/dev.sqlite in the
    /// user's data directory.
    #[arg(long = "db-file", alias = "db-filename", short = 'f')]
    pub db_file: Option<PathBuf>,
    /// Keep everything in memory; nothing survives a restart.
    #[arg(long, conflicts_with = "db_file")]
    pub ephemeral: bool,
    /// Namespaces to register at start, besides `default`.
    #[arg(long = "namespace", short = 'n')]
    pub namespaces: Vec<String>,
    /// Serve Prometheus metrics on this port (same IP as `--ip`), `GET /metrics`; 0: off.
    #[arg(long, default_value_t = 0)]
    pub metrics_port: u16,
    /// Serve `GET /health/live` and `GET /health/ready` on this port (same IP as `--ip`);
    /// ready once the store answers and every shard is running, 503 before that and while
    /// stopping. 0: off.
    #[arg(long, default_value_t = 0)]
    pub health_port: u16,
    /// History shards (fixed when the store is created).
    #[arg(long, default_value_t = 4)]
    pub num_shards: u32,
    /// Log level or filter (`info`, `temper_history=debug,info`...).
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// `text` or `json`.
    #[arg(long, default_value = "text")]
    pub log_format: String,
    /// Export every RPC's span over OTLP/gRPC to this OpenTelemetry collector
    /// (`http://127.0.0.1:4317`). Default: off.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Share of new traces exported when `--otlp-endpoint` is set, 0.0 to 1.0.
    #[arg(long, default_value_t = 1.0)]
    pub trace_sample_ratio: f64,
    /// The store (`--store sqlite|cassandra`) and how to reach a Cassandra cluster.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Temporal's dynamic config keys that temper honours, `KEY=VALUE` (repeatable):
    /// `frontend.namespaceRPS` (requests per second per namespace), `frontend.rps`
    /// (per node), `frontend.MaxConcurrentBatchOperationPerNamespace` (running batch
    /// operations per namespace, default 1), `worker.batcherRPS` (operations per second of
    /// a batch that sets no rate, default 50), `limit.historyCount.suggestContinueAsNew`
    /// (events, default 4096) and `limit.historySize.suggestContinueAsNew` (bytes, default
    /// 4 MiB) past which workflow tasks suggest continue-as-new,
    /// `system.enableEagerWorkflowStart` (default true), `matching.getTasksBatchSize` (the
    /// backlog page: tasks read from the store at once, default 1000), and
    /// `frontend.enableExecuteMultiOperation` and `frontend.activityAPIsEnabled` when true
    /// (always on in temper). Every other key is ignored with one warning line each.
    #[arg(long = "dynamic-config-value", value_name = "KEY=VALUE")]
    pub dynamic_config: Vec<String>,
    /// Also serve the official Temporal Web UI: runs the UI server that
    /// `scripts/ui-server install` builds (or `--ui-server-bin`) as a child process pointed at
    /// this server. Without one installed, says how to install it and serves gRPC alone.
    #[arg(long, conflicts_with = "headless")]
    pub ui: bool,
    /// Web UI port, with `--ui` (default: `--port` + 1000, so 8233).
    #[arg(long)]
    pub ui_port: Option<u16>,
    /// Web UI address, with `--ui` (default: `--ip`).
    #[arg(long)]
    pub ui_ip: Option<String>,
    /// The UI server binary, with `--ui` (default: the newest one `scripts/ui-server install`
    /// built under `$XDG_CACHE_HOME/temper`, or `~/.cache/temper`).
    #[arg(long, env = "TEMPER_UI_SERVER_BIN", value_name = "PATH")]
    pub ui_server_bin: Option<PathBuf>,
    /// Serve TLS on the gRPC port with this PEM certificate chain (leaf first); needs
    /// `--tls-key`. Reloaded when the file changes. Default: plaintext.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require every client to present a certificate signed by a CA in this PEM bundle
    /// (mutual TLS); needs `--tls-cert`.
    /// With `--ui`, also give the UI server a client certificate of that CA
    /// (`--ui-tls-cert`, `--ui-tls-key`).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// With `--ui` and `--tls-client-ca`: the PEM client certificate the Web UI server
    /// presents to the gRPC port; needs `--ui-tls-key`.
    #[arg(long, value_name = "PEM", requires_all = ["ui_tls_key", "tls_client_ca", "ui"])]
    pub ui_tls_cert: Option<PathBuf>,
    /// The PEM private key of `--ui-tls-cert`.
    #[arg(long, value_name = "PEM", requires = "ui_tls_cert")]
    pub ui_tls_key: Option<PathBuf>,
    /// With `--ui` and `--tls-cert`: the name the Web UI server checks in the certificate
    /// (a DNS name or IP address it names). Default: localhost.
    #[arg(long, value_name = "NAME", requires = "tls_cert")]
    pub ui_tls_server_name: Option<String>,
    /// Turn authorization on: check every call's bearer token (a JWT) against the keys of
    /// this JWKS document (http:// or https://), fetched at start, every minute, and when a
    /// token names an unknown key id. Roles come from the token's `permissions` claim
    /// (docs/security.md). Default: off (every call allowed).
    #[arg(long, value_name = "URL", conflicts_with = "auth_key_file")]
    pub auth_jwks_url: Option<String>,
    /// With `--auth-jwks-url https://...`: also trust the CAs of this PEM bundle for the
    /// JWKS server's certificate (besides the system's root CAs).
    #[arg(long, value_name = "PEM", requires = "auth_jwks_url")]
    pub auth_jwks_ca: Option<PathBuf>,
    /// Turn authorization on with the signing keys in this file: a PEM public key (RSA or
    /// P-256) or a JWKS JSON document.
    #[arg(long, value_name = "FILE")]
    pub auth_key_file: Option<PathBuf>,
    /// With `--auth-*`: tokens must name this audience (`aud`).
    #[arg(long, value_name = "AUD")]
    pub auth_audience: Option<String>,
    /// With `--auth-*`: tokens must come from this issuer (`iss`).
    #[arg(long, value_name = "ISS")]
    pub auth_issuer: Option<String>,
    /// With `--auth-*`: log every authorization decision on the `temper::audit` target.
    #[arg(long)]
    pub auth_audit_log: bool,
    /// With `--ui`: the Web UI signs users in through this OpenID Connect provider (its
    /// issuer URL, where `.well-known/openid-configuration` is found) and passes their token
    /// on with every call; needed with `--ui` and `--auth-*`. Needs `--ui-auth-client-id`.
    #[arg(long, value_name = "URL", requires_all = ["ui", "ui_auth_client_id"])]
    pub ui_auth_provider_url: Option<String>,
    /// With `--ui-auth-provider-url`: the Web UI's OAuth2 client id at the provider.
    #[arg(long, value_name = "ID", requires = "ui_auth_provider_url")]
    pub ui_auth_client_id: Option<String>,
    /// With `--ui-auth-provider-url`: the Web UI's OAuth2 client secret (better given in the
    /// environment than on the command line).
    #[arg(
        long,
        value_name = "SECRET",
        env = "TEMPER_UI_AUTH_CLIENT_SECRET",
        hide_env_values = true,
        requires = "ui_auth_provider_url"
    )]
    pub ui_auth_client_secret: Option<String>,
    /// With `--ui-auth-provider-url`: where the provider sends the browser back, as
    /// registered with it. Default: the Web UI's own `/auth/sso/callback`.
    #[arg(long, value_name = "URL", requires = "ui_auth_provider_url")]
    pub ui_auth_callback_url: Option<String>,
    /// With `--ui-auth-provider-url`: the issuer the provider's tokens name, when it differs
    /// from the provider URL.
    #[arg(long, value_name = "URL", requires = "ui_auth_provider_url")]
    pub ui_auth_issuer_url: Option<String>,
    /// With `--ui-auth-provider-url`: the OAuth2 scopes to ask for, comma-separated.
    #[arg(
        long,
        value_name = "SCOPES",
        value_delimiter = ',',
        default_value = "openid,profile,email",
        requires = "ui_auth_provider_url"
    )]
    pub ui_auth_scopes: Vec<String>,
    /// With `--ui-auth-provider-url`: pass the user's ID token to the gRPC port instead of
    /// the access token (for providers whose access tokens are not JWTs).
    #[arg(long, requires = "ui_auth_provider_url")]
    pub ui_auth_use_id_token: bool,
    /// Accepted for compatibility with `temporal server start-dev`: no UI (the default
    /// without `--ui`).
    #[arg(long, hide = true)]
    pub headless: bool,
}

impl DevArgs {
    /// The trace export, if `--otlp-endpoint` is given.
    pub fn otlp_export(&self) -> Option<temper_server::telemetry::OtlpExport> {
        Some(temper_server::telemetry::OtlpExport {
            endpoint: self.otlp_endpoint.clone()?,
            service_name: "temper".into(),
            instance: format!("{}:{}", self.ip, self.port),
            sample_ratio: self.trace_sample_ratio,
        })
    }
}

fn default_db_file() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("temper").join("dev.sqlite")
}

async fn open_store(args: &DevArgs) -> anyhow::Result<(Persistence, String)> {
    if args.store.store == StoreKind::Cassandra {
        if args.ephemeral || args.db_file.is_some() {
            anyhow::bail!(
                "--ephemeral and --db-file are for the sqlite store, not --store cassandra"
            );
        }
        let config = args.store.cassandra.config()?;
        let where_ = format!(
            "cassandra keyspace {} at {}",
            config.keyspace,
            config.contact_points.join(",")
        );
        let store = store::connect_cassandra(config).await?;
        return Ok((store.into_persistence(), where_));
    }
    if args.ephemeral {
        let store = tokio::task::spawn_blocking(SqliteStore::open_in_memory).await??;
        return Ok((store.into_persistence(), "in memory".into()));
    }
    let path = args.db_file.clone().unwrap_or_else(default_db_file);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let p = path.clone();
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&p))
        .await?
        .with_context(|| format!("opening the store at {}", path.display()))?;
    Ok((store.into_persistence(), path.display().to_string()))
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if args.num_shards == 0 {
        anyhow::bail!("--num-shards must be at least 1");
    }
    let addr: SocketAddr = format!("{}:{}", args.ip, args.port)
        .parse()
        .with_context(|| format!("invalid listen address {}:{}", args.ip, args.port))?;
    if args.ui && args.tls_client_ca.is_some() && args.ui_tls_cert.is_none() {
        anyhow::bail!(
            "--ui with --tls-client-ca needs --ui-tls-cert and --ui-tls-key: a client \
             certificate of the client CA for the Web UI server"
        );
    }
    let auth_on = args.auth_jwks_url.is_some() || args.auth_key_file.is_some();
    if args.ui && auth_on && args.ui_auth_provider_url.is_none() {
        anyhow::bail!(
            "--ui with --auth-* needs --ui-auth-provider-url and --ui-auth-client-id: the Web \
             UI signs users in through an OpenID Connect provider and passes their tokens on \
             (docs/security.md#the-web-ui)"
        );
    }
    let ui_addr = args.ui.then(|| ui_address(&args, addr)).transpose()?;
    let health = Health::new();
    let stop_health = tokio_util::sync::CancellationToken::new();
    let health_http = match args.health_port {
        0 => None,
        port => Some(
            temper_server::health::serve(
                SocketAddr::new(addr.ip(), port),
                health.clone(),
                None,
                stop_health.clone(),
            )
            .await?,
        ),
    };
    health.set(Readiness::Starting("opening the store".into()));
    let (persistence, where_) = open_store(&args).await?;
    health.set(Readiness::Starting("starting the shards".into()));
    let metrics_at =
        (args.metrics_port != 0).then(|| SocketAddr::new(addr.ip(), args.metrics_port));
    let persistence = match temper_server::metrics::install(metrics_at, false)?.is_on() {
        true => persistence.instrumented(),
        false => persistence,
    };
    // After the metrics recorder is installed: loading records the certificates' expiry.
    let tls = tls_files(&args)
        .map(|files| temper_server::tls::NodeTls::serve_only(files, TLS_RELOAD_INTERVAL))
        .transpose()?;
    let auth = temper_server::auth::start(auth_settings(&args)).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let mut config = NodeConfig::dev(args.num_shards, addr.to_string());
    config.namespaces.extend(args.namespaces.iter().cloned());
    config.store_name = args.store.store.name().into();
    config.rate_limits = rate_limits(&args.dynamic_config)?;
    config.batch = batch_config(&args.dynamic_config)?;
    crate::dynamic_config::apply(&args.dynamic_config, &mut config)?;
    let node = Node::start(persistence, config).await?;
    let (frontend, matching, history) = (
        node.frontend.clone(),
        node.matching.clone(),
        node.history.clone(),
    );
    let shards = node.cluster.num_shards;
    let batcher = node.frontend.batcher().clone();

    let (health_reporter, health_service) = temper_server::health::grpc_health_service();
    health_reporter
        .set_serving::<WorkflowServiceServer<Frontend>>()
        .await;
    let namespaces = frontend.namespaces.clone();
    let nexus_endpoints = frontend.nexus_endpoints.clone();
    let workflow_service = temper_frontend::RpcMetrics::new(temper_auth::Authorize::new(
        temper_frontend::AdmissionScope::new(
            WorkflowServiceServer::from_arc(frontend)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        ),
        auth.clone(),
    ));
    let operator_service = temper_frontend::RpcMetrics::new(temper_auth::Authorize::new(
        OperatorServiceServer::new(Operator::new(namespaces, nexus_endpoints))
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip),
        auth.clone(),
    ));

    let shutdown = tokio_util::sync::CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        temper_server::wait_for_signal().await;
        signal.cancel();
    });

    health.set(Readiness::Ready);
    if tls.is_some() {
        let mutual = args.tls_client_ca.is_some();
        tracing::info!(address = %addr, client_certificates_required = mutual, "serving TLS on the gRPC port");
    }
    tracing::info!(address = %addr, store = %where_, shards, ready_ms = started.elapsed().as_millis() as u64, "temper server listening");
    eprintln!(
        "temper dev server listening on {addr} (store: {where_}; ready in {} ms)",
        started.elapsed().as_millis()
    );

    let ui = match ui_addr {
        None => None,
        Some(ui_addr) => match crate::ui::locate(args.ui_server_bin.as_deref()) {
            Ok(bin) => {
                let auth = ui_auth(&args, ui_addr);
                let tls = ui_tls(&args);
                match crate::ui::UiServer::start(&bin, addr, ui_addr, tls.as_ref(), auth.as_ref()) {
                    Ok(ui) => Some(ui),
                    Err(e) => {
                        tracing::warn!("no Temporal Web UI: {e:#}");
                        eprintln!("warning: no Temporal Web UI: {e:#}. Serving gRPC only.");
                        None
                    }
                }
            }
            Err(why) => {
                tracing::warn!("no Temporal Web UI: {why}");
                eprintln!("warning: no Temporal Web UI: {why}. Serving gRPC only.");
                None
            }
        },
    };

    // Small request/response RPCs: without TCP_NODELAY on every accepted socket, Nagle's
    // algorithm and delayed ACKs add ~40 ms to many calls. (The builder's tcp_nodelay only
    // applies when tonic binds the socket itself.)
    let drain = shutdown.clone();
    let (m, h, b, stopping) = (
        matching.clone(),
        history.clone(),
        batcher.clone(),
        health.clone(),
    );
    let router = tonic::transport::Server::builder()
        .trace_fn(temper_server::telemetry::rpc_span)
        .add_service(health_service)
        .add_service(workflow_service)
        .add_service(operator_service);
    let stop_accepting = tokio_util::sync::CancellationToken::new();
    let drained = async move {
        drain.cancelled().await;
        tracing::info!("shutting down");
        stopping.set(Readiness::Stopping);
        // Batches stop between operations and resume at the next start.
        b.shutdown().await;
        // Wake every long poll so in-flight calls finish promptly.
        m.shutdown();
        h.shutdown().await;
    };
    let mut server: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), tonic::transport::Error>> + Send>,
    > = match &tls {
        Some(tls) => Box::pin(router.serve_with_incoming_shutdown(
            tls.server.incoming(listener, stop_accepting.clone()),
            drained,
        )),
        None => Box::pin(router.serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            drained,
        )),
    };
    tokio::select! {
        r = &mut server => r.context("serving gRPC")?,
        _ = shutdown.cancelled() => {
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
                Ok(r) => r.context("serving gRPC")?,
                Err(_) => tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; stopping anyway"),
            }
        }
    }
    stop_accepting.cancel();
    if let Some(tls) = tls {
        tls.stop().await;
    }
    if let Some(auth) = auth {
        auth.stop().await;
    }
    if let Some(ui) = ui {
        ui.stop().await;
    }
    batcher.shutdown().await;
    matching.shutdown();
    history.shutdown().await;
    stop_health.cancel();
    if let Some(h) = health_http {
        let _ = h.await;
    }
    eprintln!("temper dev server stopped");
    Ok(())
}

/// How often start-dev reads its TLS files for changes.
const TLS_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// What `--auth-jwks-url` / `--auth-key-file` and their companions ask for; `None` (auth
/// off) without either.
fn auth_settings(args: &DevArgs) -> Option<temper_auth::AuthSettings> {
    let keys = match (&args.auth_jwks_url, &args.auth_key_file) {
        (Some(url), _) => temper_auth::KeySource::Url(url.clone()),
        (None, Some(path)) => temper_auth::KeySource::File(path.clone()),
        (None, None) => return None,
    };
    Some(temper_auth::AuthSettings {
        keys: Some(keys),
        jwks_ca_file: args.auth_jwks_ca.clone(),
        refresh_interval: Duration::from_secs(60),
        rules: temper_auth::TokenRules {
            audience: args.auth_audience.clone(),
            issuer: args.auth_issuer.clone(),
            ..temper_auth::TokenRules::default()
        },
        cert_permissions: Default::default(),
        audit_log: args.auth_audit_log,
        max_message_bytes: MAX_MESSAGE_BYTES,
    })
}

/// How `--ui` signs users in (`--ui-auth-*`), if it does.
fn ui_auth(args: &DevArgs, ui: SocketAddr) -> Option<crate::ui::UiAuth> {
    let provider_url = args.ui_auth_provider_url.clone()?;
    Some(crate::ui::UiAuth {
        provider_url,
        issuer_url: args.ui_auth_issuer_url.clone(),
        client_id: args.ui_auth_client_id.clone().unwrap_or_default(),
        client_secret: args.ui_auth_client_secret.clone().unwrap_or_default(),
        callback_url: args
            .ui_auth_callback_url
            .clone()
            .unwrap_or_else(|| format!("{}/auth/sso/callback", crate::ui::url(ui))),
        scopes: args.ui_auth_scopes.clone(),
        use_id_token: args.ui_auth_use_id_token,
    })
}

/// How `--ui` reaches a TLS gRPC port: trusting the chain `--tls-cert` serves.
fn ui_tls(args: &DevArgs) -> Option<crate::ui::UiTls> {
    let cert = args.tls_cert.as_ref()?;
    let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    Some(crate::ui::UiTls {
        ca_file: absolute(cert),
        identity: args
            .ui_tls_cert
            .as_ref()
            .zip(args.ui_tls_key.as_ref())
            .map(|(c, k)| (absolute(c), absolute(k))),
        server_name: args
            .ui_tls_server_name
            .clone()
            .unwrap_or_else(|| "localhost".into()),
    })
}

/// What `--tls-cert`, `--tls-key` and `--tls-client-ca` name (clap makes them go together).
fn tls_files(args: &DevArgs) -> Option<temper_tls::ServerFiles> {
    Some(temper_tls::ServerFiles {
        frontend: temper_tls::Identity {
            cert: args.tls_cert.clone()?,
            key: args.tls_key.clone()?,
        },
        client_ca: args.tls_client_ca.clone(),
        internode: None,
    })
}

/// Where `--ui` serves the Web UI: `--ui-ip` (default `--ip`) and `--ui-port` (default the
/// gRPC port + 1000, as `temporal server start-dev` does).
fn ui_address(args: &DevArgs, grpc: SocketAddr) -> anyhow::Result<SocketAddr> {
    let port = match args.ui_port {
        Some(port) => port,
        None => grpc.port().checked_add(1000).with_context(|| {
            format!(
                "--port {} + 1000 is not a port: pass --ui-port",
                grpc.port()
            )
        })?,
    };
    let ip = args.ui_ip.as_deref().unwrap_or(&args.ip);
    format!("{ip}:{port}")
        .parse()
        .or_else(|_| format!("[{ip}]:{port}").parse())
        .with_context(|| format!("invalid Web UI address {ip}:{port}"))
}

const BATCH_MAX_CONCURRENT: &str = "frontend.MaxConcurrentBatchOperationPerNamespace";
const BATCHER_RPS: &str = "worker.batcherRPS";

/// The batch settings named by `--dynamic-config-value` flags.
fn batch_config(values: &[String]) -> anyhow::Result<temper_frontend::BatchConfig> {
    let mut batch = temper_frontend::BatchConfig::default();
    for kv in values {
        let Some((key, value)) = kv.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key != BATCH_MAX_CONCURRENT && key != BATCHER_RPS {
            continue;
        }
        let v: f64 = value
            .trim()
            .parse()
            .with_context(|| format!("--dynamic-config-value {key}: `{value}` is not a number"))?;
        if !(v.is_finite() && v >= 1.0 && v <= f64::from(u32::MAX)) {
            anyhow::bail!("--dynamic-config-value {key}: {value} must be at least 1");
        }
        if key == BATCH_MAX_CONCURRENT {
            batch.max_concurrent_per_namespace = v as u64;
        } else {
            batch.default_rps = v;
        }
    }
    Ok(batch)
}

/// The rate limits named by `--dynamic-config-value` flags (Temporal's keys and JSON values).
fn rate_limits(values: &[String]) -> anyhow::Result<temper_frontend::RateLimitConfig> {
    let mut limits = temper_frontend::RateLimitConfig::default();
    for kv in values {
        let (key, value) = kv
            .split_once('=')
            .with_context(|| format!("--dynamic-config-value {kv}: expected KEY=VALUE"))?;
        let number = || -> anyhow::Result<u32> {
            let v: f64 = value.trim().parse().with_context(|| {
                format!("--dynamic-config-value {key}: `{value}` is not a number")
            })?;
            if !(0.0..=f64::from(u32::MAX)).contains(&v) {
                anyhow::bail!("--dynamic-config-value {key}: {value} is out of range");
            }
            Ok(v.round() as u32)
        };
        match key.trim() {
            "frontend.namespaceRPS" => limits.namespace_rps = number()?,
            "frontend.rps" => limits.host_rps = number()?,
            "frontend.namespaceRPS.visibility" => limits.namespace_visibility_rps = number()?,
            // The other keys: `dynamic_config::apply`, which reports those not honoured.
            _ => {}
        }
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn batch_settings_come_from_temporals_dynamic_config_keys() {
        let b = batch_config(&values(&[
            "frontend.MaxConcurrentBatchOperationPerNamespace=3",
            "worker.batcherRPS=20",
            "frontend.rps=100",
        ]))
        .expect("valid");
        assert_eq!(b.max_concurrent_per_namespace, 3);
        assert_eq!(b.default_rps, 20.0);
        assert_eq!(
            batch_config(&[]).expect("valid"),
            temper_frontend::BatchConfig::default()
        );
        assert!(batch_config(&values(&["worker.batcherRPS=0"])).is_err());
        assert!(batch_config(&values(&["worker.batcherRPS=x"])).is_err());
        // The batch keys are not reported as unknown rate limit keys.
        assert_eq!(
            rate_limits(&values(&["worker.batcherRPS=20"])).expect("valid"),
            temper_frontend::RateLimitConfig::default()
        );
    }
}

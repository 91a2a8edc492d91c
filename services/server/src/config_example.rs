//! `temper config example`: every config key with its default value (taken from
//! `ServerConfig::default()` itself) and what it means. A test checks that every key the
//! structs have is documented here, so the example cannot fall behind the code.

use crate::config::ServerConfig;

/// One documented key: its section, its name, what it does, and for a key that is unset
/// by default (an `Option`), a value to show in a commented-out line.
struct Doc {
    section: &'static str,
    key: &'static str,
    doc: &'static str,
    unset_example: Option<&'static str>,
}

const fn doc(section: &'static str, key: &'static str, doc: &'static str) -> Doc {
    Doc {
        section,
        key,
        doc,
        unset_example: None,
    }
}

const fn unset(
    section: &'static str,
    key: &'static str,
    doc: &'static str,
    example: &'static str,
) -> Doc {
    Doc {
        section,
        key,
        doc,
        unset_example: Some(example),
    }
}

const DOCS: &[Doc] = &[
    unset(
        "node",
        "name",
        "Unique name of this node in the cluster. Default: the advertised gRPC address.",
        "\"node-a\"",
    ),
    doc(
        "node",
        "roles",
        "Roles this process runs: any of frontend (the Temporal API), history (workflow state), matching (task queues).",
    ),
    doc(
        "node",
        "grpc_address",
        "gRPC listen address (IP:port): the Temporal API for the frontend role and the node-to-node services.",
    ),
    unset(
        "node",
        "advertise_grpc_address",
        "The gRPC address other nodes use, when it differs from grpc_address (a pod IP while listening on 0.0.0.0).",
        "\"10.0.0.5:7233\"",
    ),
    doc(
        "node",
        "membership_address",
        "UDP address (IP:port) of gossip membership.",
    ),
    unset(
        "node",
        "advertise_membership_address",
        "The gossip address other nodes use, when it differs from membership_address.",
        "\"10.0.0.5:6933\"",
    ),
    doc(
        "cluster",
        "id",
        "Cluster id: nodes gossip only with nodes of the same id.",
    ),
    doc(
        "cluster",
        "num_shards",
        "History shards. Fixed when the store is created; a node configured with another number refuses to start.",
    ),
    doc(
        "cluster",
        "seeds",
        "Gossip addresses (host:port) to join through; DNS names (a Kubernetes headless service) are resolved again every few seconds. The store's membership table is used as well.",
    ),
    doc(
        "cluster",
        "namespaces",
        "Namespaces registered at start-up if missing.",
    ),
    doc(
        "cluster",
        "retention_days",
        "Retention of those namespaces, in days: closed workflows are deleted this long after they close.",
    ),
    doc(
        "cluster",
        "dead_after_ms",
        "A node that stopped answering gossip leaves the rings after this long; its shards move to the others.",
    ),
    doc(
        "cluster",
        "ring_debounce_ms",
        "Ring changes are applied once membership has been quiet this long.",
    ),
    doc(
        "cluster",
        "handover_timeout_ms",
        "On graceful shutdown, how long to wait for other nodes to take this node's shards.",
    ),
    doc(
        "cluster",
        "shard_check_interval_ms",
        "How often a node reads the store row of each shard it runs, to stop one another node took (so it never serves a stale cache); a stopped shard is taken again after three intervals. Each check is one read per owned shard: raise it on a large Cassandra cluster, at the cost of noticing later.",
    ),
    doc(
        "cluster",
        "update_callbacks",
        "Completion callbacks on workflow updates (Temporal's history.enableUpdateCallbacks): an update request's completion_callbacks are called with its outcome. Off: they are not registered.",
    ),
    doc(
        "history",
        "cache_budget_mib",
        "The run cache's memory budget for the whole node, in MiB, shared by the shards it runs. Past it, runs nobody is using are evicted (closed ones first) and read again from the store when next needed. The gauge temper_history_cache_bytes shows what it holds.",
    ),
    doc(
        "history",
        "timer_window_s",
        "Timers due within this many seconds are held in memory; later ones wait in the store and are read as the window moves on (every quarter of it, at most every 10 s), so memory does not grow with the number of waiting workflows.",
    ),
    doc(
        "history",
        "max_timers_in_memory",
        "At most this many timers held in memory by the node, shared by the shards it runs (1024 to 100000000). Past a shard's share, its latest timers wait in the store too, however soon they are due, and are read as the ones held fire: a burst of due timers costs bounded memory.",
    ),
    doc(
        "store",
        "kind",
        "Where state lives: sqlite (one file; several processes on one host may share it) or cassandra (Cassandra 4+ or ScyllaDB).",
    ),
    unset(
        "store",
        "path",
        "The SQLite file. Default: temper-cluster.sqlite in the working directory.",
        "\"/var/lib/temper/temper.sqlite\"",
    ),
    doc(
        "store.cassandra",
        "contact_points",
        "Cassandra / ScyllaDB nodes to contact first (host[:port]); the driver discovers the others.",
    ),
    doc(
        "store.cassandra",
        "keyspace",
        "Keyspace holding temper's tables (create it with `temper schema setup`).",
    ),
    unset(
        "store.cassandra",
        "datacenter",
        "The local datacenter: requests stay in it (LOCAL_QUORUM / LOCAL_SERIAL are relative to it).",
        "\"dc1\"",
    ),
    unset(
        "store.cassandra",
        "username",
        "Username for password authentication.",
        "\"temper\"",
    ),
    unset(
        "store.cassandra",
        "password",
        "Password for password authentication (prefer TEMPER_STORE__CASSANDRA__PASSWORD).",
        "\"...\"",
    ),
    doc(
        "store.cassandra",
        "consistency",
        "Consistency of reads and writes and of the commit phase of lightweight transactions.",
    ),
    doc(
        "store.cassandra",
        "serial_consistency",
        "Consistency of the Paxos phase of lightweight transactions: SERIAL or LOCAL_SERIAL.",
    ),
    doc(
        "store.cassandra",
        "request_timeout_ms",
        "Client-side timeout of one request, in milliseconds.",
    ),
    doc(
        "store.cassandra",
        "connect_timeout_ms",
        "Timeout of opening one connection, in milliseconds.",
    ),
    doc(
        "store.cassandra",
        "page_size",
        "Rows per page of reads that can grow.",
    ),
    doc(
        "store.cassandra.tls",
        "enabled",
        "Connect to Cassandra with TLS.",
    ),
    unset(
        "store.cassandra.tls",
        "ca_file",
        "PEM file of the CA that signed the nodes' certificates (required with TLS).",
        "\"/etc/temper/cassandra-ca.pem\"",
    ),
    unset(
        "store.cassandra.tls",
        "cert_file",
        "PEM client certificate, for clusters that require one.",
        "\"/etc/temper/client.pem\"",
    ),
    unset(
        "store.cassandra.tls",
        "key_file",
        "PEM private key of cert_file.",
        "\"/etc/temper/client-key.pem\"",
    ),
    doc(
        "store.cassandra.tls",
        "verify_hostname",
        "Check that each node's certificate names the node's IP address.",
    ),
    doc(
        "matching.partitions",
        "default_partitions",
        "Partitions of each normal task queue, spread over the matching nodes (sticky queues have one).",
    ),
    doc(
        "matching",
        "lease_check_interval_ms",
        "How often a matching node confirms the lease of each task-queue partition it holds (one conditional write per partition), so tasks stored by a node with a stale ring are found.",
    ),
    doc(
        "matching.partitions.per_queue",
        "",
        "Partitions of particular task queues, by name: \"busy-queue\" = 8.",
    ),
    doc(
        "log",
        "level",
        "Log level or filter: error, warn, info, debug, trace, or a filter such as temper_history=debug,info.",
    ),
    doc("log", "format", "Log format: text or json."),
    unset(
        "tracing",
        "otlp_endpoint",
        "OTLP/gRPC endpoint of an OpenTelemetry collector; when set, every RPC's span (service, method, namespace, workflow_id, run_id) is exported there in batches, whatever the log level. Callers' W3C traceparent headers are honoured. Default: off.",
        "\"http://127.0.0.1:4317\"",
    ),
    doc(
        "tracing",
        "service_name",
        "service.name of the exported spans (service.instance.id is the node's name).",
    ),
    doc(
        "tracing",
        "sample_ratio",
        "Share of new traces exported, 0.0 to 1.0; a trace a caller started follows the caller's sampling decision.",
    ),
    doc(
        "frontend",
        "namespace_rps",
        "Requests per second of each namespace on this node (long polls are not counted); over it, RESOURCE_EXHAUSTED \"namespace rate limit exceeded\", which SDKs retry. 0: no limit.",
    ),
    doc(
        "frontend",
        "host_rps",
        "Requests per second of all namespaces together on this node; 0: no limit.",
    ),
    doc(
        "frontend",
        "namespace_visibility_rps",
        "Visibility queries (list, scan and count of workflows and schedules) per second of each namespace on this node, on top of namespace_rps; over it, RESOURCE_EXHAUSTED \"namespace visibility rate limit exceeded\". 0: no limit.",
    ),
    doc(
        "frontend",
        "max_inflight",
        "Requests bringing new work (starts, signals, cancels, terminations, resets, deletes, describes) running at once on this node; the others wait in one queue per namespace and get places in turn, so a namespace that floods the node does not delay the others' requests. Task completions and heartbeats are never held back. 0: no bound.",
    ),
    doc(
        "frontend",
        "overload_target_lag_ms",
        "Overload control: while this node's scheduling lag (how late a task that sleeps 5 ms runs again, the median over 100 ms) is above this many milliseconds, requests bringing new work are admitted at a paced rate, lowered until the lag is back under it, and served in turn between namespaces (with namespace_weights); a namespace that floods the node waits in its own queue. 2 suits a node that should stay responsive (values under 2 count as 2: an idle node's lag is about 1 ms, the timer's resolution); higher lets more work in at more latency. 0: off.",
    ),
    doc(
        "frontend",
        "namespace_max_queued",
        "Requests of one namespace waiting for a place (with max_inflight); more get RESOURCE_EXHAUSTED \"namespace concurrent request limit exceeded\", which SDKs retry.",
    ),
    doc(
        "frontend",
        "namespace_max_open_workflows",
        "Running workflows of each namespace; a start beyond it gets RESOURCE_EXHAUSTED \"namespace open workflow limit exceeded\" (counted from visibility once a second per node, so it may be passed by a second's starts). 0: no bound.",
    ),
    doc(
        "frontend",
        "worker_versioning_data_apis",
        "Legacy worker versioning's build id version sets (UpdateWorkerBuildIdCompatibility, GetWorkerBuildIdCompatibility, GetWorkerTaskReachability; Temporal's frontend.workerVersioningDataAPIs). temper keeps and reports them but does not route tasks by them. Off: those calls answer PERMISSION_DENIED.",
    ),
    doc(
        "frontend.per_namespace_rps",
        "",
        "Namespaces with their own limit, by name: \"big-tenant\" = 5000.",
    ),
    doc(
        "frontend.namespace_weights",
        "",
        "Namespaces with a larger share of the places when max_inflight is reached (places per turn, default 1): \"big-tenant\" = 3.",
    ),
    doc(
        "frontend.per_namespace_max_open_workflows",
        "",
        "Namespaces with their own bound on running workflows: \"big-tenant\" = 1000000.",
    ),
    unset(
        "metrics",
        "listen_address",
        "HTTP address (IP:port) of GET /metrics, the Prometheus endpoint. Default: off.",
        "\"127.0.0.1:9090\"",
    ),
    doc(
        "metrics",
        "tls",
        "Serve GET /metrics over HTTPS with the node's [tls] cert and key, reloaded like them; with tls.client_ca, scrapers must present a client certificate it (or tls.internode.ca) signed. Needs tls.cert and tls.key.",
    ),
    unset(
        "health",
        "listen_address",
        "HTTP address (IP:port) of GET /health/live (200 while the process runs) and GET /health/ready (200 once the store answers and the node runs its shards, 503 otherwise). Default: off.",
        "\"127.0.0.1:7243\"",
    ),
    doc(
        "health",
        "tls",
        "Serve the health endpoints over HTTPS with the node's [tls] cert and key, reloaded like them; with tls.client_ca, callers must present a client certificate it (or tls.internode.ca) signed. Kubernetes probes with scheme: HTTPS connect without checking the certificate. Needs tls.cert and tls.key.",
    ),
    doc(
        "health",
        "store_failure_window_ms",
        "How long the store must fail every readiness check (one each half second) before a ready node turns not ready, so one slow store call does not flap the probe. 0: at the first failure.",
    ),
    unset(
        "tls",
        "cert",
        "TLS on the gRPC port (docs/security.md): the PEM certificate chain clients see, leaf first. Clients and nodes share the port, so set [tls.internode] too. Default: none (plaintext).",
        "\"/etc/temper/tls/frontend.pem\"",
    ),
    unset(
        "tls",
        "key",
        "The PEM private key of tls.cert.",
        "\"/etc/temper/tls/frontend.key\"",
    ),
    unset(
        "tls",
        "client_ca",
        "PEM CA bundle: when set, every client must present a certificate it signed (mutual TLS). Default: none.",
        "\"/etc/temper/tls/clients-ca.pem\"",
    ),
    doc(
        "tls",
        "reload_interval_ms",
        "How often the TLS files are read again; a change is loaded without a restart (certificate rotation).",
    ),
    unset(
        "tls.internode",
        "cert",
        "Internode mTLS: this node's PEM certificate chain, signed by tls.internode.ca and naming tls.internode.server_name in its subject alternative names.",
        "\"/etc/temper/tls/node.pem\"",
    ),
    unset(
        "tls.internode",
        "key",
        "The PEM private key of tls.internode.cert.",
        "\"/etc/temper/tls/node.key\"",
    ),
    unset(
        "tls.internode",
        "ca",
        "PEM bundle of the internode CA: only nodes with a certificate it signed reach the history, matching and admin services.",
        "\"/etc/temper/tls/internode-ca.pem\"",
    ),
    doc(
        "tls.internode",
        "server_name",
        "The name nodes ask for (SNI) and check in each other's certificates.",
    ),
    doc(
        "auth",
        "enabled",
        "Authenticate and authorize every Temporal API call (docs/security.md): a JWT bearer token in the authorization header, or a client certificate listed in [auth.cert_permissions]. Needs jwks_url, key_file or cert_permissions. Internode calls and health checks are not subject to it.",
    ),
    unset(
        "auth",
        "jwks_url",
        "JWKS document (http:// or https://) with the keys that sign the tokens (RS256, ES256). Fetched at start, every jwks_refresh_interval_ms, and when a token names an unknown key id.",
        "\"https://idp.example.com/.well-known/jwks.json\"",
    ),
    doc(
        "auth",
        "jwks_refresh_interval_ms",
        "How often jwks_url is fetched again.",
    ),
    unset(
        "auth",
        "jwks_ca_file",
        "A PEM CA bundle an https jwks_url's certificate may chain to, besides the system's root CAs (an identity provider with a private CA).",
        "\"/etc/temper/auth/idp-ca.pem\"",
    ),
    unset(
        "auth",
        "key_file",
        "Instead of jwks_url: a PEM public key (RSA or P-256) or a JWKS JSON file, read at start.",
        "\"/etc/temper/auth/jwt-signing-key.pem\"",
    ),
    doc(
        "auth",
        "permissions_claim",
        "The token claim holding the permissions: strings `namespace:role`, role one of read, worker, write, admin; `temporal-system:<role>` holds in every namespace and for cluster calls.",
    ),
    unset(
        "auth",
        "audience",
        "When set, tokens must name it in their aud claim.",
        "\"temper\"",
    ),
    unset(
        "auth",
        "issuer",
        "When set, tokens' iss claim must be it.",
        "\"https://idp.example.com/\"",
    ),
    doc(
        "auth",
        "leeway_ms",
        "Clock skew allowed when checking exp and nbf (Temporal allows none).",
    ),
    doc(
        "auth",
        "audit_log",
        "Log every authorization decision (subject, method, namespace, allowed or denied) on the tracing target temper::audit.",
    ),
    unset(
        "auth.cert_permissions",
        "worker-a",
        "Permissions of callers without a token, by the common name of their client certificate (with tls.client_ca).",
        "[\"orders:worker\"]",
    ),
];

/// The example config: every key, its default and its meaning, as TOML that parses back to
/// the defaults.
pub fn example() -> String {
    let defaults = toml::Value::try_from(ServerConfig::default())
        .expect("the default config serialises to TOML");
    let mut out = String::from(
        "# temper node config (`temper server start --config FILE`). Every key is optional;\n\
         # shown with its default. Environment variables override the file\n\
         # (TEMPER_<SECTION>__<KEY>, e.g. TEMPER_CLUSTER__NUM_SHARDS=512) and\n\
         # `--set section.key=value` flags override both.\n",
    );
    let mut section = "";
    for d in DOCS {
        if d.section != section {
            section = d.section;
            out.push_str(&format!("\n[{section}]\n"));
        }
        if d.key.is_empty() {
            for line in wrap(d.doc) {
                out.push_str(&format!("# {line}\n"));
            }
            continue;
        }
        for line in wrap(d.doc) {
            out.push_str(&format!("# {line}\n"));
        }
        match lookup(&defaults, d.section, d.key) {
            Some(value) => out.push_str(&format!("{} = {}\n", d.key, value)),
            None => out.push_str(&format!(
                "# {} = {}\n",
                d.key,
                d.unset_example.unwrap_or("\"\"")
            )),
        }
    }
    out
}

fn lookup<'a>(root: &'a toml::Value, section: &str, key: &str) -> Option<&'a toml::Value> {
    let mut v = root;
    for part in section.split('.') {
        v = v.get(part)?;
    }
    v.get(key)
}

/// Split a comment into lines of at most ~90 characters.
fn wrap(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > 90 {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every leaf key of the default config, as `section.key`.
    fn leaves(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    toml::Value::Table(_) => leaves(&path, v, out),
                    _ => out.push(path),
                }
            }
        }
    }

    #[test]
    fn every_key_is_documented() {
        let defaults = toml::Value::try_from(ServerConfig::default()).expect("serialises");
        let mut keys = Vec::new();
        leaves("", &defaults, &mut keys);
        let documented: Vec<String> = DOCS
            .iter()
            .map(|d| format!("{}.{}", d.section, d.key))
            .collect();
        for k in &keys {
            assert!(documented.contains(k), "config key `{k}` is not in DOCS");
        }
        // And every documented key is a real one: with every optional line uncommented,
        // the example parses and no key is unknown.
        let mut text = example();
        for d in DOCS.iter().filter(|d| d.unset_example.is_some()) {
            let example = d.unset_example.unwrap_or_default();
            text = text.replace(
                &format!("# {} = {example}", d.key),
                &format!("{} = {example}", d.key),
            );
        }
        let (_, unknown) = ServerConfig::parse_reporting(&text).expect("parses");
        assert!(
            unknown.is_empty(),
            "undocumented or misspelt keys: {unknown:?}"
        );
    }

    #[test]
    fn the_example_parses_back_to_the_defaults() {
        let parsed = ServerConfig::parse(&example()).expect("the example parses");
        let a = toml::Value::try_from(parsed).expect("serialises");
        let b = toml::Value::try_from(ServerConfig::default()).expect("serialises");
        assert_eq!(a, b);
    }
}

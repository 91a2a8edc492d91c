//! Operator commands: the `AdminService` every cluster node serves, and the
//! `temper admin ...` commands that call it.

use std::sync::Arc;

use prost::Message;
use temper_client::Channels;
use temper_history::HistoryEngine;
use temper_membership::Membership;
use temper_persistence::Persistence;
use temper_proto::internal::v1 as internal;
use temper_proto::internal::v1::admin_service_client::AdminServiceClient;
use temper_proto::internal::v1::admin_service_server::AdminService;
use temper_types::ShardId;
use tonic::{Request, Response, Status};

/// The node's admin API.
pub struct AdminApi {
    membership: Arc<Membership>,
    /// The views this node routes by (with internode TLS, admitted members only).
    views: tokio::sync::watch::Receiver<Arc<temper_membership::ClusterView>>,
    history: Option<Arc<HistoryEngine>>,
    persistence: Persistence,
    num_shards: u32,
    channels: Arc<Channels>,
}

impl AdminApi {
    pub fn new(
        membership: Arc<Membership>,
        views: tokio::sync::watch::Receiver<Arc<temper_membership::ClusterView>>,
        history: Option<Arc<HistoryEngine>>,
        persistence: Persistence,
        num_shards: u32,
        channels: Arc<Channels>,
    ) -> Self {
        Self {
            membership,
            views,
            history,
            persistence,
            num_shards,
            channels,
        }
    }

    fn local_queues(&self, shard: ShardId) -> Option<internal::ShardQueues> {
        let s = self.history.as_ref()?.shard_stats(shard)?;
        Some(internal::ShardQueues {
            transfer_ack_task_id: s.transfer_ack_task_id,
            timer_ack_fire_time_ms: s.timer_ack_fire_time_ms,
            timer_ack_task_id: s.timer_ack_task_id,
            transfer_pending: s.transfer_pending,
            timers_pending: s.timers_pending,
            queued_commits: s.queued_commits,
        })
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn describe_cluster(
        &self,
        _request: Request<internal::DescribeClusterRequest>,
    ) -> Result<Response<internal::DescribeClusterResponse>, Status> {
        let view = self.views.borrow().clone();
        let members = view
            .members()
            .iter()
            .map(|m| internal::ClusterMember {
                name: m.name.clone(),
                roles: m.roles.iter().map(|r| r.to_string()).collect(),
                grpc_address: m.grpc_address.clone(),
                membership_address: m.gossip_address.to_string(),
                status: if m.leaving { "leaving" } else { "alive" }.into(),
                generation: m.generation,
                ring_shards: view.shards_of(&m.name, self.num_shards),
            })
            .collect();
        let owned_shards = self
            .history
            .as_ref()
            .map(|h| h.owned_shards().into_iter().map(|s| s.0).collect())
            .unwrap_or_default();
        Ok(Response::new(internal::DescribeClusterResponse {
            node: self.membership.me().name.clone(),
            num_shards: self.num_shards,
            members,
            owned_shards,
            view_version: view.version(),
        }))
    }

    async fn describe_shard(
        &self,
        request: Request<internal::DescribeShardRequest>,
    ) -> Result<Response<internal::DescribeShardResponse>, Status> {
        let r = request.into_inner();
        if r.shard_id == 0 || r.shard_id > self.num_shards {
            return Err(Status::invalid_argument(format!(
                "shard {} does not exist: shards are numbered 1 to {}",
                r.shard_id, self.num_shards
            )));
        }
        let shard = ShardId(r.shard_id);
        let me = self.membership.me().name.clone();
        let view = self.views.borrow().clone();
        let ring_owner = view
            .balanced_shard_owner(r.shard_id, self.num_shards)
            .cloned();
        let mut out = internal::DescribeShardResponse {
            shard_id: r.shard_id,
            ring_owner: ring_owner
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default(),
            ..Default::default()
        };
        let rec = self
            .persistence
            .executions
            .get_or_create_shard(shard, &[])
            .await
            .map_err(|e| Status::unavailable(format!("reading shard {}: {e}", r.shard_id)))?;
        out.range_id = rec.range_id.0;
        out.store_owner = temper_proto::persistence::v1::ShardInfo::decode(rec.info.as_slice())
            .map(|i| i.owner)
            .unwrap_or_default();
        if let Some(q) = self.local_queues(shard) {
            out.running_on = me;
            out.queues = Some(q);
        } else if !r.local_only
            && let Some(owner) = ring_owner.filter(|o| o.name != me)
        {
            let channel = self.channels.get(&owner.grpc_address)?;
            let remote = AdminServiceClient::new(channel)
                .describe_shard(internal::DescribeShardRequest {
                    shard_id: r.shard_id,
                    local_only: true,
                })
                .await;
            if let Ok(resp) = remote {
                let resp = resp.into_inner();
                out.running_on = resp.running_on;
                out.queues = resp.queues;
            }
        }
        Ok(Response::new(out))
    }
}

/// `temper admin ...`
#[derive(clap::Args, Debug)]
pub struct AdminArgs {
    /// gRPC address of any node of the cluster.
    #[arg(long, default_value = "127.0.0.1:7233", env = "TEMPER_ADDRESS")]
    pub address: String,
    /// `text` or `json`.
    #[arg(long, short = 'o', default_value = "text")]
    pub output: String,
    /// A node certificate (PEM) signed by the internode CA, for a cluster with internode
    /// TLS: the admin API answers only nodes. Needs `--tls-key` and `--tls-ca`.
    #[arg(long, value_name = "PEM", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// The internode CA bundle (PEM) the node's certificate must chain to.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// The internode server name (the config's `tls.internode.server_name`).
    #[arg(long, default_value = "temper-internode")]
    pub tls_server_name: String,
    #[command(subcommand)]
    pub command: AdminCommand,
}

impl AdminArgs {
    fn internode_files(&self) -> Option<temper_tls::InternodeFiles> {
        Some(temper_tls::InternodeFiles {
            identity: temper_tls::Identity {
                cert: self.tls_cert.clone()?,
                key: self.tls_key.clone()?,
            },
            ca: self.tls_ca.clone()?,
            server_name: self.tls_server_name.clone(),
        })
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum AdminCommand {
    /// The cluster as seen by one node.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// One history shard.
    #[command(subcommand)]
    Shard(ShardCommand),
}

#[derive(clap::Subcommand, Debug)]
pub enum ClusterCommand {
    /// Every member: roles, addresses, status and the shards the ring gives it.
    Members,
}

#[derive(clap::Subcommand, Debug)]
pub enum ShardCommand {
    /// Owner (on the ring and in the store), range id and queue positions of shard N.
    Describe { shard: u32 },
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let json = match args.output.as_str() {
        "json" => true,
        "text" => false,
        other => anyhow::bail!("--output must be text or json, not {other}"),
    };
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", args.address))
        .map_err(|e| anyhow::anyhow!("bad --address {}: {e}", args.address))?
        .connect_timeout(std::time::Duration::from_secs(3));
    let connected = match args.internode_files() {
        Some(files) => {
            let tls = temper_tls::InternodeClient::load(files)?;
            endpoint.connect_with_connector(tls.connector()).await
        }
        None => endpoint.connect().await,
    };
    let channel = connected
        .map_err(|e| anyhow::anyhow!("cannot reach a temper node at {}: {e}", args.address))?;
    let mut client = AdminServiceClient::new(channel);
    let status = |s: Status| anyhow::anyhow!("{}: {}", args.address, s.message());
    match args.command {
        AdminCommand::Cluster(ClusterCommand::Members) => {
            let r = client
                .describe_cluster(internal::DescribeClusterRequest {})
                .await
                .map_err(status)?
                .into_inner();
            if json {
                let members: Vec<serde_json::Value> = r
                    .members
                    .iter()
                    .map(|m| {
                        serde_json::json!({
                            "name": m.name, "roles": m.roles, "grpc_address": m.grpc_address,
                            "membership_address": m.membership_address, "status": m.status,
                            "generation": m.generation, "shards": m.ring_shards,
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({
                        "node": r.node, "num_shards": r.num_shards, "view_version": r.view_version,
                        "owned_shards": r.owned_shards, "members": members,
                    })
                );
            } else {
                println!(
                    "{:<16} {:<26} {:<22} {:<22} {:<8} {:>6}  SHARD IDS",
                    "NAME", "ROLES", "GRPC", "MEMBERSHIP", "STATUS", "SHARDS"
                );
                for m in &r.members {
                    println!(
                        "{:<16} {:<26} {:<22} {:<22} {:<8} {:>6}  {}",
                        m.name,
                        m.roles.join(","),
                        m.grpc_address,
                        m.membership_address,
                        m.status,
                        m.ring_shards.len(),
                        compact(&m.ring_shards)
                    );
                }
                println!(
                    "({} shards; answered by {}, which runs {} of them)",
                    r.num_shards,
                    r.node,
                    r.owned_shards.len()
                );
            }
        }
        AdminCommand::Shard(ShardCommand::Describe { shard }) => {
            let r = client
                .describe_shard(internal::DescribeShardRequest {
                    shard_id: shard,
                    local_only: false,
                })
                .await
                .map_err(status)?
                .into_inner();
            let q = r.queues.unwrap_or_default();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "shard_id": r.shard_id, "ring_owner": r.ring_owner, "store_owner": r.store_owner,
                        "range_id": r.range_id, "running_on": r.running_on,
                        "queues": {
                            "transfer_ack_task_id": q.transfer_ack_task_id,
                            "timer_ack_fire_time_ms": q.timer_ack_fire_time_ms,
                            "timer_ack_task_id": q.timer_ack_task_id,
                            "transfer_pending": q.transfer_pending,
                            "timers_pending": q.timers_pending,
                            "queued_commits": q.queued_commits,
                        },
                    })
                );
            } else {
                println!("shard:                {}", r.shard_id);
                println!("ring owner:           {}", r.ring_owner);
                println!("store owner:          {}", r.store_owner);
                println!("range id:             {}", r.range_id);
                println!("running on:           {}", or_none(&r.running_on));
                println!("transfer acked below: {}", q.transfer_ack_task_id);
                println!(
                    "timers acked below:   {} ms / task {}",
                    q.timer_ack_fire_time_ms, q.timer_ack_task_id
                );
                println!("transfer pending:     {}", q.transfer_pending);
                println!("timers pending:       {}", q.timers_pending);
                println!("queued commits:       {}", q.queued_commits);
            }
        }
    }
    Ok(())
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "(none)" } else { s }
}

/// `1-4,7,9-10`
fn compact(ids: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && ids[i + 1] == end + 1 {
            i += 1;
            end = ids[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    #[test]
    fn compact_ranges() {
        assert_eq!(super::compact(&[1, 2, 3, 4, 7, 9, 10]), "1-4,7,9-10");
        assert_eq!(super::compact(&[]), "");
        assert_eq!(super::compact(&[5]), "5");
    }
}

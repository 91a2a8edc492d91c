//! The `temper` command.

mod dev;

mod logging;
mod schema_cmd;

use clap::{Parser, Subcommand};

/// glibc's malloc hands large freed blocks back to the kernel and faults them in again on
/// the next request; per-message buffers (gzip state above all) made that a third of the
/// server's CPU. mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "temper",
    version,
    about = "A durable execution server that speaks the Temporal API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    #[command(subcommand)]
    Server(ServerCommand),
    /// Create or upgrade the Cassandra / ScyllaDB schema (`setup`, `migrate`).
    #[command(subcommand)]
    Schema(schema_cmd::SchemaCommand),
    /// Inspect a running cluster (`cluster members`, `shard describe N`).
    Admin(temper_server::admin::AdminArgs),
    /// Drive load against any server that speaks the Temporal API (same as `temper-loadtest`).
    #[command(disable_help_flag = true)]
    Loadtest {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

#[derive(Subcommand)]
enum ServerCommand {
    /// Run every role in one process on an embedded store, with the `default` namespace.
    StartDev(dev::DevArgs),
    /// Run one node of a cluster: the roles, addresses, store and seeds in its config file.
    Start(StartArgs),
}

#[derive(clap::Args, Debug)]
struct StartArgs {
    /// The node's config file (TOML).
    #[arg(long, short = 'c', env = "TEMPER_CONFIG")]
    config: std::path::PathBuf,
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("temper")
        .build()
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(ServerCommand::StartDev(args)) => {
            logging::init(&args.log_level, &args.log_format)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("temper")
                .build()?;
            rt.block_on(dev::run(args))
        }
        Command::Server(ServerCommand::Start(args)) => {
            let config = temper_server::config::ServerConfig::load(&args.config)?;
            logging::init(&config.log.level, &config.log.format)?;
            runtime()?.block_on(temper_server::cluster::run(config))
        }
        Command::Admin(args) => runtime()?.block_on(temper_server::admin::run(args)),
        Command::Schema(command) => {
            logging::init("warn", "text")?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("temper")
                .build()?;
            rt.block_on(schema_cmd::run(command))
        }
        Command::Loadtest { args } => match temper_loadtest::main_with_args(args) {
            Err(e) => match e.downcast::<clap::Error>() {
                Ok(usage) => usage.exit(),
                Err(e) => Err(e),
            },
            ok => ok,
        },
    }
}

//! The `temper` command.

mod dev;
mod dynamic_config;
mod schema_cmd;
mod ui;

use clap::{Parser, Subcommand};
use temper_server::telemetry;

/// glibc's malloc hands large freed blocks back to the kernel and faults them in again on
/// the next request; per-message buffers (gzip state above all) made that a third of the
/// server's CPU. mimalloc keeps them. (Without the default feature `mimalloc` the system
/// allocator serves, for heap profilers.)
#[cfg(feature = "mimalloc")]
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

// Parsed once from the command line; boxing the larger subcommand would gain nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server.
    #[command(subcommand)]
    Server(ServerCommand),
    /// Create or upgrade the Cassandra / ScyllaDB schema (`setup`, `migrate`).
    #[command(subcommand)]
    Schema(schema_cmd::SchemaCommand),
    /// Node configuration (`example`, `check`).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inspect a running cluster (`cluster members`, `shard describe N`).
    Admin(temper_server::admin::AdminArgs),
    /// Drive load against any server that speaks the Temporal API (same as `temper-loadtest`).
    #[command(disable_help_flag = true)]
    Loadtest {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

// Parsed once from the command line; boxing the larger subcommand would gain nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum ServerCommand {
    /// Run every role in one process on an embedded store, with the `default` namespace.
    StartDev(dev::DevArgs),
    /// Run one node of a cluster: the roles, addresses, store and seeds in its config file.
    Start(StartArgs),
}

#[derive(clap::Args, Debug)]
struct StartArgs {
    /// The node's config file (TOML; `temper config example` prints every key). Without
    /// one, the defaults plus environment variables and --set flags.
    #[arg(long, short = 'c', env = "TEMPER_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Override one key, e.g. `--set cluster.num_shards=512` (repeatable; wins over the
    /// file and over TEMPER_<SECTION>__<KEY> environment variables).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl StartArgs {
    fn load(&self) -> anyhow::Result<temper_server::config::ServerConfig> {
        temper_server::config::ServerConfig::layered(
            self.config.as_deref(),
            std::env::vars(),
            &self.set,
        )
    }
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print every config key with its default and its meaning (a valid config file).
    Example,
    /// Check a config (file, environment, --set) and print the result as TOML.
    Check(StartArgs),
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("temper")
        // A history task polls its transaction inline (task -> call -> shard -> state
        // machine); unoptimised builds keep every temporary of those frames on the stack,
        // which came within a few KiB of tokio's 2 MiB default. Only touched pages count.
        .thread_stack_size(8 * 1024 * 1024)
        .build()
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(ServerCommand::StartDev(args)) => {
            let rt = runtime()?;
            let telemetry = {
                let _in_runtime = rt.enter();
                telemetry::init(
                    &args.log_level,
                    &args.log_format,
                    args.otlp_export().as_ref(),
                )?
            };
            let result = rt.block_on(dev::run(args));
            telemetry.shutdown();
            result
        }
        Command::Config(ConfigCommand::Example) => {
            print!("{}", temper_server::config_example::example());
            Ok(())
        }
        Command::Config(ConfigCommand::Check(args)) => {
            let mut config = args.load()?;
            if config.store.cassandra.password.is_some() {
                config.store.cassandra.password = Some("(set)".into());
            }
            print!("{}", toml::to_string(&config)?);
            Ok(())
        }
        Command::Server(ServerCommand::Start(args)) => {
            let config = args.load()?;
            let rt = runtime()?;
            let telemetry = {
                let _in_runtime = rt.enter();
                telemetry::init(
                    &config.log.level,
                    &config.log.format,
                    config.otlp_export().as_ref(),
                )?
            };
            let result = rt.block_on(temper_server::cluster::run(config));
            telemetry.shutdown();
            result
        }
        Command::Admin(args) => runtime()?.block_on(temper_server::admin::run(args)),
        Command::Schema(command) => {
            let telemetry = telemetry::init("warn", "text", None)?;
            let result = runtime()?.block_on(schema_cmd::run(command));
            telemetry.shutdown();
            result
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

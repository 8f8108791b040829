//! `peregrine server`: the HTTP API, until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use peregrine_server::config::{Config, Overrides};
use peregrine_server::{AppState, serve};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (port 0 picks a free one) [default: 127.0.0.1:8080]
    #[arg(long)]
    pub bind: Option<SocketAddr>,
    /// Where the WAL and stored flows live [default: ./data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// A kebab-case YAML config file; `PEREGRINE_*` variables override it.
    #[arg(long, env = "PEREGRINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the settings in force, defaults included, and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Start even though a WAL (a shard's, or the flows log) is damaged:
    /// drop what cannot be read and log every execution lost with it
    /// (sets `wal.skip-damaged`). Without it, damage refuses the start.
    #[arg(long)]
    pub skip_damaged_wal: bool,
}

pub fn main(args: Args) -> ExitCode {
    // All of it: `PEREGRINE_*` are settings, and those with
    // `variables.env-vars-prefix` are what flows read as `envs`.
    let env = std::env::vars_os();
    let overrides = Overrides {
        bind: args.bind,
        data_dir: args.data_dir.clone(),
        skip_damaged_wal: args.skip_damaged_wal,
    };
    let config = match Config::load(args.config.as_deref(), env, &overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.print_config {
        print!("{}", config.to_yaml());
        return ExitCode::SUCCESS;
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Into the log (where operators look), and on stderr only if
            // the log would not show it.
            if tracing::enabled!(tracing::Level::ERROR) {
                tracing::error!("{e:#}");
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    use anyhow::Context as _;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("http")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.server.bind)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.bind))?;
        let addr = listener.local_addr()?;
        tracing::info!(
            threads = config.threads().get(),
            durability = config.wal.durability.as_str(),
            data_dir = %config.data_dir.display(),
            auth = config.server.basic_auth.is_some(),
            envs = ?config.envs,
            globals = config.variables.globals.len(),
            "starting"
        );
        let state = tokio::task::block_in_place(|| AppState::open(config))
            .context("cannot open the data folder and start the engine")?;
        // On stdout, for scripts and tests that bound port 0.
        println!("peregrine listening on http://{addr}");
        tracing::info!("listening on http://{addr}");
        serve(listener, state, shutdown_signal()).await?;
        Ok(())
    })
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C received"),
                }
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM ({e}); Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

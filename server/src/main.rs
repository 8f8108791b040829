//! `peregrine`: run Kestra flows, try expressions, serve the HTTP API.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// mimalloc, counting what each thread holds: the memory budget of jq
/// programs and JSONata evaluations (`expression.max-memory`) reads that
/// count, and a JSONata evaluation's steps (`expression.max-steps`) are its
/// allocations, counted here.
#[global_allocator]
static GLOBAL: peregrine_engine::memory::Counting<mimalloc::MiMalloc> =
    peregrine_engine::memory::Counting(mimalloc::MiMalloc);

#[derive(Debug, Parser)]
#[command(
    name = "peregrine",
    version,
    about = "A low-latency engine for Kestra flows"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Render a Pebble template, as Kestra would, and print the result.
    Expr(cli::expr::Args),
    /// Run one execution of a flow in-process and print its final JSON.
    Run(cli::run::Args),
    /// Serve the HTTP API (Kestra-compatible) until SIGTERM.
    Server(cli::server::Args),
    /// Work with flows: validate flow files, export a data folder's flows.
    #[command(subcommand, alias = "flows")]
    Flow(cli::FlowCommand),
    /// Check the write-ahead logs of a data folder.
    #[command(subcommand)]
    Wal(cli::WalCommand),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Expr(args) => cli::expr::main(args),
        Command::Run(args) => cli::run::main(args),
        Command::Flow(cli::FlowCommand::Validate(args)) => cli::validate::main(args),
        Command::Flow(cli::FlowCommand::Export(args)) => cli::export::main(args),
        Command::Wal(cli::WalCommand::Check(args)) => cli::wal::check(args),
        Command::Server(args) => cli::server::main(args),
    }
}

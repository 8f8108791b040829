//! One module per subcommand.

pub mod export;
pub mod expr;
pub mod run;
pub mod server;
pub mod validate;
pub mod wal;

/// `peregrine flow ...` (or `flows`): work with flows.
#[derive(Debug, clap::Subcommand)]
pub enum FlowCommand {
    /// Parse and validate flow files; print every problem with its position.
    Validate(validate::Args),
    /// Write every flow of a data folder (its latest source) as YAML files,
    /// reading the folder without changing it.
    Export(export::Args),
}

/// `peregrine wal ...`: the write-ahead logs of a data folder.
#[derive(Debug, clap::Subcommand)]
pub enum WalCommand {
    /// Read every log of a data folder without changing anything and say
    /// whether each is clean, ends in a torn tail, or is damaged.
    Check(wal::CheckArgs),
}

//! One module per subcommand.

pub mod expr;
pub mod run;
pub mod server;
pub mod validate;

/// `peregrine flow ...`: work with flow files.
#[derive(Debug, clap::Subcommand)]
pub enum FlowCommand {
    /// Parse and validate flow files; print every problem with its position.
    Validate(validate::Args),
}

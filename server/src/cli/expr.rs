//! `peregrine expr TEMPLATE [--context FILE.json]`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The template, e.g. `{{ inputs.name | upper }}`.
    pub template: String,
    /// A JSON object whose keys are the root variables (`inputs`, `outputs`, ...).
    #[arg(long)]
    pub context: Option<std::path::PathBuf>,
}

pub fn main(_args: Args) -> ExitCode {
    eprintln!("expressions are not wired yet");
    ExitCode::FAILURE
}

//! `peregrine flow validate FILE...`: parse and validate flows, as Kestra
//! does when a flow is saved, and print every problem.
//!
//! Output, one line each: `FILE:LINE:COLUMN: PATH: MESSAGE` for a problem
//! (the form editors and terminals link to), `FILE: OK (namespace.id, N tasks)`
//! for a valid file. Exits 1 when any file is invalid or unreadable.
//!
//! A template syntax error in a task property is a warning
//! (`FILE:LINE:COLUMN: PATH: warning: MESSAGE`): Kestra saves such a flow
//! and fails the task when it runs, and so do we. `--strict` makes warnings
//! fail the file.

use std::path::PathBuf;
use std::process::ExitCode;

use peregrine_engine::flow::{Error, Flow};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Flow YAML files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Treat warnings (template syntax errors Kestra would only report at
    /// run time) as errors.
    #[arg(long)]
    pub strict: bool,
}

pub fn main(args: Args) -> ExitCode {
    let mut all_valid = true;
    for file in &args.files {
        let shown = file.display();
        let source = match std::fs::read_to_string(file) {
            Ok(s) => s,
            Err(e) => {
                println!("{shown}: cannot read: {e}");
                all_valid = false;
                continue;
            }
        };
        match Flow::parse(&source) {
            Ok(flow) => {
                for p in &flow.warnings {
                    println!(
                        "{shown}:{}:{}: {}: warning: {}",
                        p.line, p.column, p.path, p.message
                    );
                }
                if args.strict && !flow.warnings.is_empty() {
                    all_valid = false;
                    continue;
                }
                let kafka = peregrine_server::kafka::config_problems(&flow, &Default::default());
                if !kafka.is_empty() {
                    for (path, why) in kafka {
                        println!("{shown}: {path}: {why}");
                    }
                    all_valid = false;
                    continue;
                }
                let warnings = match flow.warnings.len() {
                    0 => String::new(),
                    n => format!(", {n} warnings"),
                };
                println!(
                    "{shown}: OK ({}.{}, {} tasks{warnings})",
                    flow.namespace,
                    flow.id,
                    flow.all_tasks().len()
                );
            }
            Err(Error::Invalid(problems)) => {
                all_valid = false;
                for p in problems {
                    let path = if p.path.is_empty() { "(flow)" } else { &p.path };
                    println!("{shown}:{}:{}: {path}: {}", p.line, p.column, p.message);
                }
            }
            Err(other) => {
                all_valid = false;
                println!("{shown}: {other}");
            }
        }
    }
    if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

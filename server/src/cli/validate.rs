//! `peregrine flow validate FILE...`: parse and validate flows, as Kestra
//! does when a flow is saved, and print every problem.
//!
//! Output, one line each: `FILE:LINE:COLUMN: PATH: MESSAGE` for a problem
//! (the form editors and terminals link to), `FILE: OK (namespace.id, N tasks)`
//! for a valid file. Exits 1 when any file is invalid or unreadable.

use std::path::PathBuf;
use std::process::ExitCode;

use peregrine_engine::flow::{Error, Flow};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Flow YAML files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
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
            Ok(flow) => println!(
                "{shown}: OK ({}.{}, {} tasks)",
                flow.namespace,
                flow.id,
                flow.all_tasks().len()
            ),
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

//! `peregrine-loadtest`: see `peregrine-loadtest --help`.

use std::process::ExitCode;

use clap::Parser;
use peregrine_loadtest::Options;

// The allocator `peregrine server` runs with, so embedded figures compare.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let settings = match Options::parse().validate() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("peregrine-loadtest: {e}");
            return ExitCode::from(2);
        }
    };
    match peregrine_loadtest::run(settings) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peregrine-loadtest: {e}");
            ExitCode::FAILURE
        }
    }
}

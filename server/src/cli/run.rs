//! `peregrine run FLOW.yaml [--input key=value]...`: one execution,
//! in-process, its final JSON on stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use peregrine_engine::State;
use peregrine_engine::flow::{Flow, validate_text_inputs};
use peregrine_engine::{FlowRevision, NewExecution, run_to_end_observed};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The flow's YAML file.
    pub flow: PathBuf,
    /// An input, `key=value`; repeat for several. A JSON input's value is
    /// parsed as JSON.
    #[arg(long = "input", short = 'i', value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,
    /// Print the execution on every change, one JSON document per line.
    #[arg(long)]
    pub follow: bool,
}

pub fn main(args: Args) -> ExitCode {
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, String> {
    let source = std::fs::read_to_string(&args.flow)
        .map_err(|e| format!("cannot read {}: {e}", args.flow.display()))?;
    let flow = Flow::parse(&source).map_err(|e| format!("{}: {e}", args.flow.display()))?;
    let mut pairs = Vec::with_capacity(args.inputs.len());
    for raw in &args.inputs {
        let (key, value) = raw
            .split_once('=')
            .ok_or_else(|| format!("--input `{raw}` is not key=value"))?;
        pairs.push((key, value));
    }
    let inputs = validate_text_inputs(&flow, pairs.iter().map(|(k, v)| (*k, *v)))
        .map_err(|e| e.to_string())?;
    let revision = Arc::new(FlowRevision::new(Arc::new(flow)));
    let follow = args.follow;
    let execution = run_to_end_observed(NewExecution::new(revision, inputs), |exec| {
        if follow {
            emit(&exec.to_json(chrono::Utc::now()).to_string());
        }
    });
    for log in execution.logs().entries() {
        eprintln!(
            "{} {:5} {} {}",
            peregrine_engine::format_date(log.date),
            log.level.as_str(),
            log.task_id.as_deref().unwrap_or("-"),
            log.message
        );
    }
    let json = execution.to_json(chrono::Utc::now());
    let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
    emit(&text);
    Ok(match execution.state() {
        State::Success | State::Warning => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

/// Writes a line to stdout; a closed pipe (`| head`) is not an error.
fn emit(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

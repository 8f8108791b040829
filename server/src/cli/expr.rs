//! `peregrine expr TEMPLATE [--context FILE.json]`: renders a template the
//! way Kestra would. A typed result (one `{{ expression }}` yielding a map,
//! list, number, boolean or null) prints as JSON; a string prints as text.
//! An error prints with its position and exits with status 1.

use std::process::ExitCode;

use peregrine_engine::expression::{Error, JsonContext, Template};
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The template, e.g. `{{ inputs.name | upper }}`.
    pub template: String,
    /// A JSON object whose keys are the root variables (`inputs`, `outputs`, ...).
    #[arg(long)]
    pub context: Option<std::path::PathBuf>,
}

/// Context files larger than this are refused rather than read into memory.
const MAX_CONTEXT_BYTES: u64 = 256 * 1024 * 1024;

pub fn main(args: Args) -> ExitCode {
    let vars = match &args.context {
        Some(path) => match read_context(path) {
            Ok(vars) => vars,
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::FAILURE;
            }
        },
        None => Value::Object(serde_json::Map::new()),
    };
    match render(&args.template, &vars) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{}", describe(&err));
            ExitCode::FAILURE
        }
    }
}

fn read_context(path: &std::path::Path) -> Result<Value, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if len > MAX_CONTEXT_BYTES {
        return Err(format!(
            "{} is larger than {MAX_CONTEXT_BYTES} bytes",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let vars: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
    if !vars.is_object() {
        return Err(format!(
            "{} must hold a JSON object whose keys are variables",
            path.display()
        ));
    }
    Ok(vars)
}

/// The text `peregrine expr` prints for a template.
pub fn render(template: &str, vars: &Value) -> Result<String, Error> {
    let template = Template::compile(template)?;
    let value = template.render(&JsonContext::new(vars))?;
    Ok(match value {
        Value::String(s) => s,
        other => serde_json::to_string_pretty(&other).unwrap_or_else(|_| other.to_string()),
    })
}

/// The error, then the template line with a caret under the failing column.
fn describe(err: &Error) -> String {
    let mut out = format!("error: {err}");
    if let Some(line) = err.template.lines().nth(err.line.saturating_sub(1)) {
        out.push('\n');
        out.push_str(line);
        out.push('\n');
        out.push_str(&" ".repeat(err.column.saturating_sub(1)));
        out.push('^');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_values_print_as_json_and_text_as_is() {
        let vars = json!({"inputs": {"n": 2, "name": "ada", "m": {"a": [1]}}});
        assert_eq!(render("{{ inputs.n + 1 }}", &vars).expect("renders"), "3");
        assert_eq!(
            render("{{ inputs.m }}", &vars).expect("renders"),
            "{\n  \"a\": [\n    1\n  ]\n}"
        );
        assert_eq!(render("{{ inputs.name }}", &vars).expect("renders"), "ada");
        assert_eq!(
            render("{{ inputs.nope ?? null }}", &vars).expect("renders"),
            "null"
        );
        assert_eq!(
            render("{{ inputs.n > 1 }}", &vars).expect("renders"),
            "true"
        );
        assert_eq!(
            render("hi {{ inputs.name | upper }}", &vars).expect("renders"),
            "hi ADA"
        );
        assert_eq!(render("plain", &vars).expect("renders"), "plain");
    }

    #[test]
    fn errors_point_at_their_column() {
        let err = render("a\n  {{ nope }}", &json!({})).expect_err("fails");
        assert_eq!((err.line, err.column), (2, 6));
        let text = describe(&err);
        assert!(text.contains("Unable to find `nope`"), "{text}");
        assert!(text.ends_with("  {{ nope }}\n     ^"), "{text}");
    }

    #[test]
    fn context_files_must_be_json_objects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.json");
        std::fs::write(&good, r#"{"inputs": {"x": 1}}"#).expect("writes");
        assert_eq!(
            read_context(&good).expect("reads"),
            json!({"inputs": {"x": 1}})
        );
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "[1]").expect("writes");
        assert!(read_context(&bad).is_err());
        std::fs::write(&bad, "{").expect("writes");
        assert!(read_context(&bad).is_err());
        assert!(read_context(&dir.path().join("missing.json")).is_err());
    }
}

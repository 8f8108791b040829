//! Fixtures for the benchmarks (feature `internals`): the executor's output
//! index filled with many task runs, and a template that reads one of them.

use std::sync::Arc;

use serde_json::Value;

use super::outputs::OutputIndex;
use crate::expression::{Context, Scope, Template};

/// `n` task-run outputs of one task inside a 3-level ForEach, keyed
/// `outputs.ret[a][b][c]`, and a template that reads the last one.
#[derive(Debug)]
pub struct OutputLookup {
    index: OutputIndex,
    template: Template,
}

struct OnlyOutputs<'a>(&'a OutputIndex);

impl Context for OnlyOutputs<'_> {
    fn root(&self, name: &str) -> Option<Scope<'_>> {
        (name == "outputs").then_some(Scope::Lazy(self.0))
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::UNIX_EPOCH
    }
}

impl OutputLookup {
    pub fn new(n: usize) -> Self {
        let side = (n as f64).cbrt().ceil().max(1.0) as usize;
        let task: Arc<str> = Arc::from("ret");
        let mut index = OutputIndex::default();
        let mut last = (0, 0, 0);
        'fill: for a in 0..side {
            for b in 0..side {
                for c in 0..side {
                    if a * side * side + b * side + c >= n {
                        break 'fill;
                    }
                    let chain: [Arc<str>; 3] = [
                        Arc::from(format!("a{a}")),
                        Arc::from(format!("b{b}")),
                        Arc::from(format!("c{c}")),
                    ];
                    let out = Arc::new(serde_json::json!({ "value": format!("{a}-{b}-{c}") }));
                    index.insert(&task, &chain, out);
                    last = (a, b, c);
                }
            }
        }
        let (a, b, c) = last;
        let source = format!("{{{{ outputs.ret['a{a}']['b{b}']['c{c}'].value }}}}");
        let template = Template::compile(&source).expect("the fixture's template is valid");
        Self { index, template }
    }

    /// One lookup through the expression engine.
    pub fn render(&self) -> Value {
        self.template
            .render(&OnlyOutputs(&self.index))
            .unwrap_or(Value::Null)
    }
}

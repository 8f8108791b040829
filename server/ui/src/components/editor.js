// The flow's YAML in CodeMirror, checked by the server as one types: the
// text goes to `POST /flows/validate` (after a pause in typing) and the
// problems it finds are marked in the text and listed below it.
import { html } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "../api.js";

/** Milliseconds without typing before the text is checked. */
const VALIDATE_DELAY = 300;

/**
 * Lines before each YAML document of `text`, as the server splits them: a
 * line that is `---` ends a document, except on the first line where it
 * starts the first one. The server's line numbers are per document.
 */
function documentStarts(text) {
  const starts = [0];
  text.split("\n").forEach((line, i) => {
    if (line.trimEnd() !== "---") return;
    if (i === 0) starts[0] = 1;
    else starts.push(i + 1);
  });
  return starts;
}

/** A server problem placed in `doc`; one without a line goes on the first. */
function place(problem, before, doc) {
  const known = problem.line > 0;
  const number = Math.min(doc.lines, before + (known ? problem.line : 1));
  const line = doc.line(number);
  const column = known && problem.column > 0 ? problem.column : 1;
  const from = Math.min(line.from + column - 1, line.to);
  // The mark runs to the end of the line's text: the value that is wrong.
  const end = line.from + line.text.trimEnd().length;
  const where = known ? `line ${number}${problem.column > 0 ? `, column ${problem.column}` : ""}: ` : "";
  const what = `${problem.path ? `${problem.path}: ` : ""}${problem.message}`;
  return { from, to: known ? Math.max(from, end) : line.to, line: number, column, text: `${where}${what}`, message: what };
}

/** The answer of /flows/validate for the text of `doc`. */
function toReport(results, doc) {
  const starts = documentStarts(doc.toString());
  const problems = [];
  const constraints = [];
  const warnings = [];
  for (const result of Array.isArray(results) ? results : []) {
    const listed = Array.isArray(result.problems) ? result.problems : [];
    const before = starts[result.index] ?? 0;
    problems.push(...listed.map((p) => place(p, before, doc)));
    // Constraints the server could not place (no problems) are shown as text.
    if (!listed.length && result.constraints) constraints.push(result.constraints);
    if (Array.isArray(result.warnings)) warnings.push(...result.warnings.map(String));
  }
  problems.sort((a, b) => a.from - b.from);
  return { checking: false, problems, constraints, warnings };
}

function Report({ report, onPick }) {
  const { checking, error, problems = [], constraints = [], warnings = [] } = report;
  const count = problems.length + constraints.length;
  const status = checking ? "Checking…"
    : error ? `Could not validate: ${error.message || error}`
    : count ? `${count} problem${count > 1 ? "s" : ""}` : "Valid flow.";
  return html`
    <div class="editor-report">
      <div class=${`editor-status${count && !checking ? " bad" : ""}`} data-testid="validation-status">${status}</div>
      <ul class="problems" data-testid="problems">
        ${problems.map((p) => html`<li key=${`${p.from}:${p.text}`} data-line=${p.line}>
          <a href="#" onClick=${(e) => { e.preventDefault(); onPick(p); }}>${p.text}</a></li>`)}
        ${constraints.map((c) => html`<li class="constraint">${c}</li>`)}
      </ul>
      ${warnings.length > 0 && html`<ul class="warnings">${warnings.map((w) => html`<li>${w}</li>`)}</ul>`}
    </div>`;
}

/**
 * The editor, holding `value` when it mounts (later changes of `value` are
 * not applied: the text is the editor's). `onChange(text)` on each edit,
 * `onSave()` on Ctrl-S / Cmd-S.
 */
export function FlowEditor({ value, onChange, onSave }) {
  const host = useRef(null);
  const view = useRef(null);
  const handlers = useRef({});
  handlers.current = { onChange, onSave };
  const [report, setReport] = useState({ checking: true });

  useEffect(() => {
    let live = true;
    const check = async (editor) => {
      const doc = editor.state.doc;
      let report;
      try {
        report = toReport(await api.validate(doc.toString()), doc);
      } catch (error) {
        report = { checking: false, error, problems: [] };
      }
      // An answer for text that has changed since is dropped (CodeMirror
      // drops its diagnostics the same way).
      if (!live || editor.state.doc !== doc) return [];
      setReport(report);
      return report.problems.map((p) => ({ from: p.from, to: p.to, severity: "error", message: p.message }));
    };
    let editor = null;
    import("./cm.js").then(({ basicSetup, EditorView, yaml, linter, lintGutter }) => {
      if (!live) return;
      editor = new EditorView({
        doc: value,
        parent: host.current,
        extensions: [
          basicSetup,
          yaml(),
          lintGutter(),
          linter(check, { delay: VALIDATE_DELAY }),
          EditorView.updateListener.of((update) => {
            if (!update.docChanged) return;
            setReport((r) => ({ ...r, checking: true }));
            handlers.current.onChange?.(update.state.doc.toString());
          }),
        ],
      });
      view.current = editor;
    }, (error) => live && setReport({ checking: false, error, problems: [] }));
    return () => {
      live = false;
      editor?.destroy();
    };
  }, []);

  const onKeyDown = (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "s" && handlers.current.onSave) {
      e.preventDefault();
      handlers.current.onSave();
    }
  };
  const pick = (problem) => {
    if (!view.current) return;
    view.current.dispatch({ selection: { anchor: problem.from }, scrollIntoView: true });
    view.current.focus();
  };

  return html`
    <div onKeyDown=${onKeyDown}>
      <div class="editor" data-testid="flow-editor" ref=${host}></div>
      <${Report} report=${report} onPick=${pick} />
    </div>`;
}

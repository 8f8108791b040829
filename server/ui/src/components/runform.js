// The form that starts an execution: one field per typed input of the
// flow, sent as Kestra's UI sends it (multipart, one part per input, FILE
// inputs as uploads). Checking is the server's: its message is shown.
import { html } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "../api.js";
import { links, navigate } from "../router.js";
import { ErrorBox } from "./common.js";

const TEXT_TYPES = {
  STRING: "text", URI: "url", EMAIL: "email", SECRET: "password",
  INT: "number", FLOAT: "number", DATE: "date", TIME: "time", DATETIME: "datetime-local",
};

const PLACEHOLDERS = {
  DURATION: "PT1M30S", JSON: '{"key": "value"}', YAML: "key: value",
  ARRAY: "one item per line, or a JSON list", URI: "https://example.com/x",
};

const typeOf = (input) => String(input.type || "STRING").toUpperCase();
const hasDefault = (input) => input.defaults !== undefined && input.defaults !== null;
/** Kestra's inputs are required unless they say otherwise. */
const isRequired = (input) => input.required !== false;
const fieldId = (input) => `run-input-${input.id}`;
const optionsOf = (input) => (Array.isArray(input.values) ? input.values : Array.isArray(input.options) ? input.options : []);

/** A date-time as `<input type=datetime-local>` takes it, in local time. */
function localDateTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const two = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}T${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** The default as the field shows it. */
function initialText(input) {
  const d = input.defaults;
  if (!hasDefault(input)) return "";
  switch (typeOf(input)) {
    case "DATETIME": return localDateTime(d);
    case "ARRAY": return Array.isArray(d) ? d.map((x) => (typeof x === "string" ? x : JSON.stringify(x))).join("\n") : String(d);
    case "JSON": return typeof d === "string" ? d : JSON.stringify(d, null, 2);
    case "YAML": return typeof d === "string" ? d : JSON.stringify(d);
    default: return typeof d === "string" ? d : JSON.stringify(d);
  }
}

function Field({ input }) {
  const type = typeOf(input);
  const common = { id: fieldId(input), name: input.id };
  const text = initialText(input);
  switch (type) {
    case "BOOLEAN":
    case "BOOL":
      return html`<label class="check"><input type="checkbox" ...${common}
        defaultChecked=${String(input.defaults) === "true"} /> true</label>`;
    case "SELECT":
    case "ENUM":
      return input.allowCustomValue ? customSelect(input, common, text) : html`
        <select ...${common}>
          ${!hasDefault(input) && html`<option value="">Choose…</option>`}
          ${optionsOf(input).map((v) => html`<option value=${v} selected=${String(v) === text}>${v}</option>`)}
        </select>`;
    case "MULTISELECT": {
      const chosen = new Set(Array.isArray(input.defaults) ? input.defaults.map(String) : []);
      return html`<select multiple ...${common}>
        ${optionsOf(input).map((v) => html`<option value=${v} selected=${chosen.has(String(v))}>${v}</option>`)}
      </select>`;
    }
    case "FILE":
      return html`<input type="file" ...${common} />`;
    case "JSON":
    case "YAML":
    case "ARRAY":
      return html`<textarea class="mono" rows="4" ...${common} placeholder=${PLACEHOLDERS[type]} defaultValue=${text}></textarea>`;
    default:
      return html`<input type=${TEXT_TYPES[type] || "text"} ...${common} defaultValue=${text}
        step=${type === "FLOAT" ? "any" : type === "INT" ? "1" : type === "DATETIME" || type === "TIME" ? "1" : undefined}
        placeholder=${PLACEHOLDERS[type]} autocomplete=${type === "SECRET" ? "off" : undefined} />`;
  }
}

function customSelect(input, common, text) {
  const list = `${fieldId(input)}-values`;
  return html`<input type="text" list=${list} ...${common} defaultValue=${text} />
    <datalist id=${list}>${optionsOf(input).map((v) => html`<option value=${v} />`)}</datalist>`;
}

/** The field's value as a multipart part, or undefined to send none. */
function partOf(input, form) {
  const el = form.elements.namedItem(input.id);
  if (!el) return undefined;
  switch (typeOf(input)) {
    case "BOOLEAN":
    case "BOOL":
      return el.checked ? "true" : "false";
    case "MULTISELECT": {
      const chosen = [...el.selectedOptions].map((o) => o.value);
      // A JSON list: one repeated part would read as a single value.
      return chosen.length ? JSON.stringify(chosen) : undefined;
    }
    case "FILE":
      return el.files?.[0];
    case "DATETIME":
      return el.value ? new Date(el.value).toISOString() : undefined;
    case "ARRAY": {
      const text = el.value.trim();
      if (!text) return undefined;
      if (text.startsWith("[")) return text;
      return JSON.stringify(text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean));
    }
    default:
      return el.value === "" ? undefined : el.value;
  }
}

function formData(inputs, form) {
  const data = new FormData();
  for (const input of inputs) {
    const part = partOf(input, form);
    if (part instanceof File) data.append(input.id, part, part.name);
    else if (part !== undefined) data.append(input.id, part);
  }
  return data;
}

/** The server's complaint about each input, when it names them. */
function problemsByInput(error) {
  const details = Array.isArray(error?.body?.details) ? error.body.details : [];
  return new Map(details.filter((d) => d && d.input).map((d) => [d.input, d.message]));
}

function Row({ input, problem }) {
  const required = isRequired(input) && !hasDefault(input);
  return html`
    <div class="form-row" data-input=${input.id}>
      <label for=${fieldId(input)}>
        ${input.id}${required && html`<span class="req" title="required"> *</span>`}
        <span class="muted input-type"> ${typeOf(input)}</span>
      </label>
      <${Field} input=${input} />
      ${input.description && html`<span class="help">${input.description}</span>`}
      ${problem && html`<span class="field-error">${problem}</span>`}
    </div>`;
}

/** A modal with the run form of `flow`; `onClose` when dismissed. */
export function RunModal({ flow, onClose }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const formRef = useRef(null);
  const inputs = Array.isArray(flow.inputs) ? flow.inputs : [];

  useEffect(() => {
    const onKey = (e) => e.key === "Escape" && onClose();
    document.addEventListener("keydown", onKey);
    formRef.current?.querySelector("input, select, textarea, button[type=submit]")?.focus();
    return () => document.removeEventListener("keydown", onKey);
  }, [onClose]);

  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const execution = await api.trigger(flow.namespace, flow.id, formData(inputs, e.currentTarget));
      navigate(links.execution(flow.namespace, flow.id, execution.id));
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  const problems = problemsByInput(error);
  return html`
    <div class="modal-back" onClick=${(e) => e.target === e.currentTarget && onClose()}>
      <div class="modal" role="dialog" aria-modal="true" aria-labelledby="run-title" data-testid="run-modal">
        <h2 id="run-title">Execute ${flow.namespace}.${flow.id}</h2>
        <form ref=${formRef} onSubmit=${submit} noValidate>
          ${inputs.length ? inputs.map((input) => html`<${Row} key=${input.id} input=${input} problem=${problems.get(input.id)} />`)
            : html`<p class="muted">This flow has no inputs.</p>`}
          <${ErrorBox} error=${error} />
          <div class="toolbar modal-actions">
            <span class="grow"></span>
            <button type="button" onClick=${onClose}>Cancel</button>
            <button type="submit" class="primary" data-testid="run-submit" disabled=${busy}>Execute</button>
          </div>
        </form>
      </div>
    </div>`;
}

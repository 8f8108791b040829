// CodeMirror and the YAML and lint extensions: loaded on the first page
// that shows an editor, as a chunk of its own, so the other pages do not
// download it.
export { basicSetup, EditorView } from "codemirror";
export { yaml } from "@codemirror/lang-yaml";
export { linter, lintGutter } from "@codemirror/lint";

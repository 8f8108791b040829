// A line diff of two texts, as `diff -u` shows it: Myers' O((N+M)D)
// algorithm over lines, after setting aside the lines both texts start and
// end with. Its work grows with the number of differences D, so beyond
// MAX_EDITS differing lines it gives up and shows the middle as replaced.
import { html } from "htm/preact";

const MAX_EDITS = 2000;
/** Unchanged lines kept around each change when a long run is folded. */
const CONTEXT = 3;

/** `[op, text]` per line: op is " " (both), "-" (only in a), "+" (only in b). */
export function diffLines(before, after) {
  const a = splitLines(before);
  const b = splitLines(after);
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const midA = a.slice(head, a.length - tail);
  const midB = b.slice(head, b.length - tail);
  const middle = myers(midA, midB, MAX_EDITS);
  const same = (lines) => lines.map((line) => [" ", line]);
  return {
    lines: [
      ...same(a.slice(0, head)),
      ...(middle || [...midA.map((l) => ["-", l]), ...midB.map((l) => ["+", l])]),
      ...same(a.slice(a.length - tail)),
    ],
    replaced: !middle,
  };
}

function splitLines(text) {
  if (!text) return [];
  const lines = text.split(/\r?\n/);
  // A final newline ends the last line rather than starting an empty one.
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/** The shortest edit script from `a` to `b`, or null past `maxEdits`. */
function myers(a, b, maxEdits) {
  const n = a.length;
  const m = b.length;
  if (!n || !m) return [...a.map((l) => ["-", l]), ...b.map((l) => ["+", l])];
  const max = n + m;
  const off = max + 1;
  // v[off + k]: the furthest x reached on diagonal k (k = x - y).
  const v = new Int32Array(2 * max + 3);
  // trace[d]: v's diagonals -d..d as they were before step d, to walk back.
  const trace = [];
  for (let d = 0; d <= Math.min(max, maxEdits); d++) {
    trace.push(v.slice(off - d, off + d + 1));
    for (let k = -d; k <= d; k += 2) {
      const down = k === -d || (k !== d && v[off + k - 1] < v[off + k + 1]);
      let x = down ? v[off + k + 1] : v[off + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[off + k] = x;
      if (x >= n && y >= m) return backtrack(trace, a, b);
    }
  }
  return null;
}

function backtrack(trace, a, b) {
  const out = [];
  let x = a.length;
  let y = b.length;
  for (let d = trace.length - 1; d > 0; d--) {
    const v = trace[d];
    const k = x - y;
    const down = k === -d || (k !== d && v[k - 1 + d] < v[k + 1 + d]);
    const prevK = down ? k + 1 : k - 1;
    const prevX = v[prevK + d];
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      out.push([" ", a[--x]]);
      y--;
    }
    if (down) out.push(["+", b[--y]]);
    else out.push(["-", a[--x]]);
  }
  while (x > 0 && y > 0) {
    out.push([" ", a[--x]]);
    y--;
  }
  return out.reverse();
}

/** Folds runs of unchanged lines longer than twice CONTEXT into a marker. */
function fold(lines) {
  const out = [];
  let i = 0;
  while (i < lines.length) {
    if (lines[i][0] !== " ") {
      out.push(lines[i++]);
      continue;
    }
    let j = i;
    while (j < lines.length && lines[j][0] === " ") j++;
    const keepHead = i === 0 ? 0 : CONTEXT;
    const keepTail = j === lines.length ? 0 : CONTEXT;
    if (j - i > keepHead + keepTail + 1) {
      out.push(...lines.slice(i, i + keepHead));
      out.push(["@", `${j - i - keepHead - keepTail} unchanged lines`]);
      out.push(...lines.slice(j - keepTail, j));
    } else {
      out.push(...lines.slice(i, j));
    }
    i = j;
  }
  return out;
}

const CLASS = { "+": "add", "-": "del", " ": "same", "@": "fold" };

/** The diff from `before` to `after`, with a count of the changes. */
export function Diff({ before, after }) {
  const { lines, replaced } = diffLines(before, after);
  const added = lines.filter(([op]) => op === "+").length;
  const removed = lines.filter(([op]) => op === "-").length;
  const summary = added || removed ? `+${added} −${removed} lines` : "No differences.";
  return html`
    <div>
      <p class="muted diff-summary">${summary}${replaced ? " (too many differences to align: shown as replaced)" : ""}</p>
      <div class="diff" data-testid="diff">${fold(lines).map(([op, text]) =>
        html`<div class=${CLASS[op]}>${op === "@" ? `@@ ${text} @@` : `${op === " " ? "  " : `${op} `}${text}`}</div>`,
      )}</div>
    </div>`;
}

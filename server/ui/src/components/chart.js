// A small live line chart in SVG: the last samples of one or more series.
import { html } from "htm/preact";

export function LineChart({ series, samples, unit = "", label }) {
  // About the card's width in pixels, so the labels read at their size.
  const W = 300;
  const H = 110;
  const pad = { l: 36, r: 4, t: 6, b: 6 };
  const values = series.flatMap((s) => samples.map((x) => x[s.key]).filter(Number.isFinite));
  const max = Math.max(1, ...values) * 1.1;
  const n = Math.max(2, samples.length);
  const x = (i) => pad.l + (i / (n - 1)) * (W - pad.l - pad.r);
  const y = (v) => H - pad.b - (v / max) * (H - pad.t - pad.b);
  const path = (key) => {
    let d = "";
    samples.forEach((s, i) => {
      if (!Number.isFinite(s[key])) return;
      d += `${d ? "L" : "M"}${x(i).toFixed(1)},${y(s[key]).toFixed(1)}`;
    });
    return d;
  };
  const ticks = [0, max / 2, max];
  return html`<svg class="chart" viewBox=${`0 0 ${W} ${H}`} role="img" aria-label=${label}>
    ${ticks.map((t) => html`<line x1=${pad.l} x2=${W - pad.r} y1=${y(t)} y2=${y(t)} stroke="#eee" />
      <text x=${pad.l - 4} y=${y(t) + 3} text-anchor="end">${format(t)}${unit}</text>`)}
    ${series.map((s) => html`<path d=${path(s.key)} fill="none" stroke=${s.color} stroke-width="1.5" />`)}
  </svg>`;
}

export function format(v) {
  if (!Number.isFinite(v)) return "–";
  if (Math.abs(v) >= 10000) return `${(v / 1000).toFixed(1)}k`;
  if (Number.isInteger(v)) return String(v);
  if (Math.abs(v) >= 10) return v.toFixed(0);
  if (Math.abs(v) >= 1) return v.toFixed(1);
  return v.toFixed(2);
}

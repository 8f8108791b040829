// Reading the server's `/metrics` (Prometheus text) and what two scrapes
// tell: rates, and percentiles of the histograms over the interval.

/** `{name: [{labels, value}]}` of a Prometheus text exposition. */
export function parse(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const pair of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    (out[m[1]] ||= []).push({ labels, value: Number(m[3]) });
  }
  return out;
}

export const sum = (metrics, name) => (metrics[name] || []).reduce((a, s) => a + s.value, 0);
export const max = (metrics, name) => Math.max(0, ...(metrics[name] || []).map((s) => s.value));

/** The cumulative buckets of histogram `name`, `[[le, count]]`, by bound. */
export function buckets(metrics, name) {
  return (metrics[`${name}_bucket`] || [])
    .map((s) => [s.labels.le === "+Inf" ? Infinity : Number(s.labels.le), s.value])
    .sort((a, b) => a[0] - b[0]);
}

/**
 * The `q` quantile of what histogram `name` counted between two scrapes,
 * interpolated within its bucket (Prometheus's `histogram_quantile`);
 * NaN when nothing was counted.
 */
export function quantile(q, before, after, name) {
  const b = new Map(buckets(before || {}, name));
  const a = buckets(after, name).map(([le, n]) => [le, n - (b.get(le) || 0)]);
  const total = a.length ? a[a.length - 1][1] : 0;
  if (total <= 0) return NaN;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [le, n] of a) {
    if (n >= rank) {
      if (le === Infinity) return lowerBound;
      const inBucket = n - lowerCount;
      return inBucket > 0 ? lowerBound + (le - lowerBound) * ((rank - lowerCount) / inBucket) : le;
    }
    lowerBound = le;
    lowerCount = n;
  }
  return lowerBound;
}

// Dates in the user's time zone, durations as Kestra shows them.

const dateTime = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
});

export const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;

export function formatDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const ms = String(d.getMilliseconds()).padStart(3, "0");
  return `${dateTime.format(d)}.${ms}`;
}

/** Milliseconds of an ISO-8601 duration (`PT1M2.5S`). */
export function durationMs(iso) {
  if (!iso) return 0;
  const m = /^(-)?P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?$/.exec(iso);
  if (!m) return 0;
  const ms = ((+m[2] || 0) * 86400 + (+m[3] || 0) * 3600 + (+m[4] || 0) * 60 + (+m[5] || 0)) * 1000;
  return m[1] ? -ms : ms;
}

export function humanDuration(ms) {
  if (!Number.isFinite(ms)) return "";
  // Dates have millisecond precision: below that, nothing is known.
  if (ms < 1) return "< 1 ms";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.round(s - m * 60)}s`;
  const h = Math.floor(m / 60);
  return `${h}h ${m - h * 60}m`;
}

/** An execution's or task run's duration, up to now while it runs. */
export function stateDuration(state, now = Date.now()) {
  if (!state) return 0;
  const start = Date.parse(state.startDate || state.histories?.[0]?.date);
  const end = state.endDate ? Date.parse(state.endDate) : now;
  return Number.isFinite(start) ? Math.max(0, end - start) : durationMs(state.duration);
}

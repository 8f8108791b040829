// Kestra's execution and task-run states, with the colours its UI gives
// them, so a Kestra user reads a page at a glance.
export const STATES = {
  CREATED: { color: "#1761FD", running: true, killable: true },
  RESTARTED: { color: "#1761FD", running: false, killable: true },
  SUCCESS: { color: "#029E73", running: false, killable: false },
  RUNNING: { color: "#8405FF", running: true, killable: true },
  KILLING: { color: "#FCE07C", running: true, killable: true, dark: true },
  KILLED: { color: "#FCE07C", running: false, killable: false, dark: true },
  WARNING: { color: "#DD5F00", running: false, killable: false },
  FAILED: { color: "#AB0009", running: false, killable: false },
  PAUSED: { color: "#918BA9", running: true, killable: true },
  CANCELLED: { color: "#918BA9", running: false, killable: false },
  SKIPPED: { color: "#918BA9", running: false, killable: false },
  QUEUED: { color: "#918BA9", running: false, killable: false },
  RETRYING: { color: "#918BA9", running: false, killable: true },
  RETRIED: { color: "#918BA9", running: false, killable: false },
  BREAKPOINT: { color: "#918BA9", running: true, killable: true },
};

export const STATE_NAMES = Object.keys(STATES);

export const TERMINAL = new Set(["SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"]);

export const isTerminal = (state) => TERMINAL.has(state);

export const colorOf = (state) => (STATES[state] || STATES.CREATED).color;

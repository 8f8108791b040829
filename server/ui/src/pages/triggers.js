// Triggers: where each stands (its last and next fire dates), enabled or
// disabled from here.
import { html } from "htm/preact";
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { ErrorBox, useAsync } from "../components/common.js";
import { Link, links } from "../router.js";
import { formatDate } from "../time.js";

export function TriggersPage() {
  const [q, setQ] = useState("");
  const [error, setError] = useState(null);
  const triggers = useAsync(() => api.triggers({ size: 1000 }), []);
  const toggle = async (context) => {
    setError(null);
    try {
      await api.setTriggerDisabled(
        { namespace: context.namespace, flowId: context.flowId, triggerId: context.triggerId },
        !context.disabled,
      );
      triggers.reload();
    } catch (e) {
      setError(e);
    }
  };
  const all = triggers.value?.results || [];
  const shown = all.filter(({ triggerContext: c }) =>
    !q || `${c.namespace}.${c.flowId}.${c.triggerId}`.toLowerCase().includes(q.toLowerCase()));
  return html`
    <div class="toolbar"><h1 class="grow">Triggers</h1>
      <input type="search" placeholder="Search" aria-label="Search triggers" value=${q} onInput=${(e) => setQ(e.currentTarget.value)} />
    </div>
    <${ErrorBox} error=${triggers.error || error} />
    <table data-testid="triggers"><thead><tr><th>Id</th><th>Flow</th><th>Type</th><th>Last fired</th><th>Next fire date</th><th>Enabled</th></tr></thead>
    <tbody>${shown.map(({ abstractTrigger: t, triggerContext: c }) => html`
      <tr data-trigger=${`${c.namespace}.${c.flowId}.${c.triggerId}`}>
        <td>${c.triggerId}</td>
        <td><${Link} href=${links.flow(c.namespace, c.flowId)}>${c.namespace}.${c.flowId}</${Link}></td>
        <td>${(t?.type || "").split(".").pop()}${t?.cron ? html` <span class="mono muted">${t.cron}</span>` : null}</td>
        <td>${formatDate(c.date)}</td>
        <td>${c.disabled ? html`<span class="muted">disabled</span>` : formatDate(c.nextExecutionDate)}</td>
        <td><label><input type="checkbox" checked=${!c.disabled} onChange=${() => toggle(c)} aria-label="Enabled" /> ${c.disabled ? "off" : "on"}</label></td>
      </tr>`)}
    </tbody></table>
    ${triggers.value && !shown.length ? html`<p class="muted">No trigger.</p>` : null}`;
}

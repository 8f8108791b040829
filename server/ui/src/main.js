import { html } from "htm/preact";
import { render } from "preact";
import "./style.css";
import { Link, links, match, navigate, ROOT, useLocation } from "./router.js";
import { FlowsPage } from "./pages/flows.js";
import { FlowPage } from "./pages/flow.js";
import { ExecutionsPage } from "./pages/executions.js";
import { ExecutionPage } from "./pages/execution.js";
import { TriggersPage } from "./pages/triggers.js";
import { EnginePage } from "./pages/engine.js";
import { zone } from "./time.js";

const ROUTES = [
  ["/flows", FlowsPage],
  ["/flows/new", FlowPage],
  ["/flows/edit/:namespace/:id/:tab?", FlowPage],
  ["/executions", ExecutionsPage],
  ["/executions/:namespace/:flowId/:id/:tab?", ExecutionPage],
  ["/admin/triggers", TriggersPage],
  ["/engine", EnginePage],
];

const MENU = [
  ["Flows", links.flows(), "/flows"],
  ["Executions", links.executions(), "/executions"],
  ["Triggers", links.triggers(), "/admin/triggers"],
  ["Engine", links.engine(), "/engine"],
];

function App() {
  const { path } = useLocation();
  if (!path.startsWith(ROOT)) {
    queueMicrotask(() => navigate(links.executions(), { replace: true }));
    return null;
  }
  const rest = path.slice(ROOT.length) || "/";
  let page = null;
  for (const [pattern, Page] of ROUTES) {
    const params = match(pattern, rest);
    if (params) {
      page = html`<${Page} key=${pattern} params=${params} />`;
      break;
    }
  }
  return html`
    <div class="shell">
      <aside class="menu">
        <div class="brand">Peregrine</div>
        ${MENU.map(([label, href, prefix]) => html`
          <${Link} href=${href} class=${rest.startsWith(prefix) ? "active" : ""}>${label}</${Link}>`)}
        <div class="zone" title="Dates are shown in this time zone">${zone}</div>
      </aside>
      <main class="content">
        ${page || html`<h1>Not found</h1><p>No page at ${path}.</p>`}
      </main>
    </div>`;
}

render(html`<${App} />`, document.getElementById("app"));

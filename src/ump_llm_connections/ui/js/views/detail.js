// One connection: who it is, its health now and over time, what it served (by source), its
// recent errors and the pools it belongs to. Each part loads on its own; events refresh it.
import { html, useCallback, useEffect, useMemo, useState } from "../html.js";
import { api, query } from "../api.js";
import { onLive } from "../live.js";
import { Badge, Spinner, StatusBadge, TypeIcon, fmt, loadStyle, toast } from "../components.js";
import { Chart } from "../charts.js";

loadStyle("detail.css");

const INTEGRATIONS = [
  ["use_in_livekit", "LiveKit"], ["use_in_mcp", "MCP"], ["use_in_automation", "Automation"],
];
const WINDOWS = [["24h", "24 hours"], ["7d", "7 days"], ["30d", "30 days"]];
const pct = (v) => fmt.pct(v);

async function loadEditor() {
  try { return (await import("./dialog.js")).default; } catch { return null; }
}

function Header({ c, busy, onAction, canEdit }) {
  const integrations = INTEGRATIONS.filter(([key]) => c[key]);
  return html`<header class="page-head detail-head">
    <div>
      <p class="crumbs"><a href="#/connections">Connections</a> <span aria-hidden="true">/</span></p>
      <h1>${c.name} <${StatusBadge} status=${c.status} /></h1>
      <p class="detail-meta">
        <${TypeIcon} type=${c.connection_type} />
        <span class="mono">${c.model_name}</span>
        ${integrations.map(([, label]) => html`<${Badge} kind="integration">${label}<//>`)}
        ${c.tags.map((tag) => html`<${Badge} kind="tag">${tag}<//>`)}
      </p>
      ${c.description && html`<p class="muted">${c.description}</p>`}
    </div>
    <div class="actions">
      <button type="button" class="primary" disabled=${busy} onClick=${() => onAction("test")}>
        ${busy === "test" ? "Testing…" : "Test"}</button>
      <button type="button" disabled=${busy} onClick=${() => onAction(c.is_active ? "deactivate" : "activate")}>
        ${c.is_active ? "Deactivate" : "Activate"}</button>
      ${canEdit && html`<button type="button" onClick=${() => onAction("edit")}>Edit</button>`}
    </div>
  </header>`;
}

function Health({ c }) {
  const h = c.health;
  const row = (label, w) => html`<tr><th scope="row">${label}</th><td class="num">${fmt.num(w.checks)}</td>
    <td class="num">${pct(w.success_rate)}</td><td class="num">${fmt.ms(w.latency_p50_ms)}</td><td class="num">${fmt.ms(w.latency_p95_ms)}</td></tr>`;
  return html`<section class="card" aria-labelledby="h-health">
    <h2 id="h-health">Health</h2>
    <dl class="facts">
      <dt>State</dt><dd><${StatusBadge} status=${h.status} />${h.deactivated_by_health && html` <span class="muted">deactivated by the health monitor</span>`}</dd>
      <dt>Failures in a row</dt><dd>${h.consecutive_failures}</dd>
      <dt>Last tested</dt><dd>${h.last_tested_at ? html`<time datetime=${h.last_tested_at} title=${fmt.date(h.last_tested_at)}>${fmt.ago(h.last_tested_at)}</time>` : "never"}</dd>
      <dt>Last used</dt><dd>${fmt.ago(c.last_used_at)}</dd>
      <dt>Endpoint</dt><dd class="mono clip-wide">${c.base_url ?? "—"}</dd>
      <dt>API key</dt><dd class="mono">${c.api_key_mask ?? "none"}</dd>
    </dl>
    <div class="table-wrap"><table class="list data">
      <caption class="sr-only">Checks over the last hour and day</caption>
      <thead><tr><th scope="col">Checks</th><th scope="col" class="num">Count</th><th scope="col" class="num">Success</th><th scope="col" class="num">p50</th><th scope="col" class="num">p95</th></tr></thead>
      <tbody>${row("Last hour", h.last_hour)}${row("Last day", h.last_day)}</tbody>
    </table></div>
  </section>`;
}

function stat(label, value) {
  return html`<div class="stat"><span class="stat-value">${value}</span><span class="stat-label">${label}</span></div>`;
}

function summarise(buckets, key, format) {
  const values = buckets.map((b) => b[key]).filter((v) => v != null);
  if (!values.length) return "No calls in this window.";
  return `Lowest ${format(Math.min(...values))}, highest ${format(Math.max(...values))}.`;
}

function Usage({ report, win, setWin }) {
  const buckets = report?.buckets ?? [];
  const x = useMemo(() => buckets.map((b) => b.start), [report]);
  const latency = useMemo(() => [
    { label: "p50", values: buckets.map((b) => b.latency_p50_ms), format: fmt.ms },
    { label: "p95", values: buckets.map((b) => b.latency_p95_ms), format: fmt.ms },
  ], [report]);
  const success = useMemo(() => [
    { label: "Success rate", values: buckets.map((b) => b.success_rate), format: pct },
  ], [report]);
  const t = report?.totals;
  return html`<section class="card span" aria-labelledby="h-usage">
    <div class="section-head">
      <h2 id="h-usage">Traffic</h2>
      <div class="segmented" role="group" aria-label="Window">
        ${WINDOWS.map(([value, label]) => html`<button type="button" aria-pressed=${win === value} onClick=${() => setWin(value)}>${label}</button>`)}
      </div>
    </div>
    ${!report ? html`<${Spinner} label="Loading usage" />` : html`
      <div class="cards">
        ${stat("Requests", fmt.num(t.requests))}${stat("Success rate", pct(t.success_rate))}
        ${stat("Latency p50", fmt.ms(t.latency_p50_ms))}${stat("Latency p95", fmt.ms(t.latency_p95_ms))}
        ${stat("Tokens", fmt.num(t.total_tokens))}${stat("Cost", fmt.cost(t.cost))}
      </div>
      <div class="chart-grid">
        <${Chart} title="Latency (p50, p95)" x=${x} series=${latency} summary=${`p95 ${summarise(buckets, "latency_p95_ms", fmt.ms)}`} />
        <${Chart} title="Success rate" x=${x} series=${success} summary=${summarise(buckets, "success_rate", pct)} />
      </div>
      <h3>By source</h3>
      ${report.sources.length ? html`<div class="table-wrap"><table class="list data">
        <caption class="sr-only">Usage by source</caption>
        <thead><tr><th scope="col">Source</th><th scope="col" class="num">Requests</th><th scope="col" class="num">Success</th><th scope="col" class="num">p50</th><th scope="col" class="num">p95</th><th scope="col" class="num">Tokens</th><th scope="col" class="num">Cost</th></tr></thead>
        <tbody>${report.sources.map((s) => html`<tr><th scope="row">${s.source}</th><td class="num">${fmt.num(s.requests)}</td>
          <td class="num">${pct(s.success_rate)}</td><td class="num">${fmt.ms(s.latency_p50_ms)}</td><td class="num">${fmt.ms(s.latency_p95_ms)}</td>
          <td class="num">${fmt.num(s.total_tokens)}</td><td class="num">${fmt.cost(s.cost)}</td></tr>`)}</tbody>
      </table></div>` : html`<p class="muted">No gateway calls in this window.</p>`}`}
  </section>`;
}

function Checks({ c, checks }) {
  const failed = (checks ?? []).filter((k) => !k.success).slice(0, 10);
  return html`<section class="card" aria-labelledby="h-errors">
    <h2 id="h-errors">Recent errors</h2>
    ${c.last_error && html`<p class="error-box" role="note"><strong>Last error:</strong> ${c.last_error}</p>`}
    ${checks == null ? html`<${Spinner} label="Loading checks" />` : failed.length ? html`<ul class="events">
      ${failed.map((k) => html`<li><time datetime=${k.created_at}>${fmt.date(k.created_at)}</time>
        <span class="badge bad">${k.error_kind ?? "error"}${k.http_status ? ` ${k.http_status}` : ""}</span>
        <span class="muted">${k.kind}</span><div class="clip-wide">${k.error ?? ""}</div></li>`)}
    </ul>` : !c.last_error && html`<p class="muted">No failed check recently.</p>`}
  </section>`;
}

function History({ checks }) {
  return html`<section class="card" aria-labelledby="h-history">
    <h2 id="h-history">Check history</h2>
    ${checks == null ? html`<${Spinner} label="Loading checks" />` : checks.length ? html`<div class="table-wrap"><table class="list data">
      <caption class="sr-only">Latest checks, newest first</caption>
      <thead><tr><th scope="col">When</th><th scope="col">Kind</th><th scope="col">Result</th><th scope="col" class="num">Latency</th></tr></thead>
      <tbody>${checks.slice(0, 15).map((k) => html`<tr><td><time datetime=${k.created_at} title=${fmt.date(k.created_at)}>${fmt.ago(k.created_at)}</time></td>
        <td>${k.kind}</td><td>${k.success ? html`<span class="badge good">OK</span>` : html`<span class="badge bad">${k.error_kind ?? "failed"}</span>`}</td>
        <td class="num">${fmt.ms(k.latency_ms)}</td></tr>`)}</tbody>
    </table></div>` : html`<p class="muted">Never tested. Use Test to send a prompt.</p>`}
  </section>`;
}

function Pools({ pools, id }) {
  return html`<section class="card" aria-labelledby="h-pools">
    <h2 id="h-pools">Pools</h2>
    ${pools == null ? html`<${Spinner} label="Loading pools" />` : pools.length ? html`<ul class="plain">
      ${pools.map((p) => {
        const me = p.members.find((m) => m.connection_id === id);
        return html`<li><a href="#/pools">${p.name}</a> <span class="muted">${p.strategy}, priority ${me.priority}, weight ${me.weight}, ${p.members.length} members</span></li>`;
      })}
    </ul>` : html`<p class="muted">In no pool.</p>`}
  </section>`;
}

export default function Detail({ route }) {
  const ref = route.arg;
  const [c, setC] = useState(null);
  const [error, setError] = useState(null);
  const [checks, setChecks] = useState(null);
  const [pools, setPools] = useState(null);
  const [report, setReport] = useState(null);
  const [win, setWin] = useState("24h");
  const [busy, setBusy] = useState(null);
  const [Editor, setEditor] = useState(null);
  const [editing, setEditing] = useState(false);

  const load = useCallback(async () => {
    try {
      const found = await api(`/connections/${encodeURIComponent(ref)}`);
      setC(found);
      setError(null);
      api(`/connections/${found.id}/health-checks${query({ limit: 50 })}`).then((p) => setChecks(p.items)).catch(() => setChecks([]));
      api("/pools").then((p) => setPools(p.items.filter((pool) => pool.members.some((m) => m.connection_id === found.id)))).catch(() => setPools([]));
    } catch (e) {
      setError(e.status === 404 ? "This connection does not exist (any more)." : e.message);
    }
  }, [ref]);

  useEffect(() => { setC(null); load(); }, [load]);
  useEffect(() => { loadEditor().then((component) => setEditor(() => component)); }, []);
  useEffect(() => {
    if (!c) return;
    let live = true;
    api(`/connections/${c.id}/usage${query({ window: win })}`).then((r) => live && setReport(r)).catch((e) => live && setError(e.message));
    return () => { live = false; };
  }, [c?.id, win]);
  useEffect(() => {
    let timer;
    return onLive((event) => {
      const mine = event.type === "poll" || (event.data && (event.data.connection_id === c?.id || event.data.name === ref));
      if (mine || event.type.startsWith("pool.")) { clearTimeout(timer); timer = setTimeout(load, 200); }
    });
  }, [c?.id, load]);

  const onAction = async (action) => {
    if (action === "edit") { setEditing(true); return; }
    setBusy(action);
    try {
      if (action === "test") {
        const result = await api(`/connections/${c.id}/test`, { method: "POST", timeoutMs: (c.timeout ?? 60) * 1000 + 5000 });
        toast(result.success ? `Test passed in ${fmt.ms(result.latency_ms)}` : `Test failed: ${result.error ?? result.error_kind}`, result.success ? "good" : "bad");
      } else {
        await api(`/connections/${c.id}/${action}`, { method: "POST" });
        toast(action === "activate" ? "Activated" : "Deactivated");
      }
      await load();
    } catch (e) {
      toast(e.message, "bad");
    } finally {
      setBusy(null);
    }
  };

  if (error && !c) return html`<div class="page"><p class="crumbs"><a href="#/connections">Connections</a></p><h1>Connection</h1><p class="error" role="alert">${error}</p></div>`;
  if (!c) return html`<div class="page"><h1 class="sr-only">Connection</h1><${Spinner} label="Loading the connection" /></div>`;
  return html`<div class="page detail">
    <${Header} c=${c} busy=${busy} onAction=${onAction} canEdit=${!!Editor} />
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <div class="detail-grid">
      <${Health} c=${c} />
      <${Checks} c=${c} checks=${checks} />
      <${Usage} report=${report} win=${win} setWin=${(w) => { setReport(null); setWin(w); }} />
      <${History} checks=${checks} />
      <${Pools} pools=${pools} id=${c.id} />
    </div>
    ${editing && Editor && html`<${Editor} mode="edit" connection=${c}
      onSaved=${() => { setEditing(false); load(); toast("Saved"); }} onClose=${() => setEditing(false)} />`}
  </div>`;
}

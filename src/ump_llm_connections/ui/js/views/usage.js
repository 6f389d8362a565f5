// The usage and cost dashboard: totals over a window, requests and cost over time, and tables
// per connection, pool, source and day (or hour), most expensive first, each with its total.
import { html, useEffect, useMemo, useRef, useState } from "../html.js";
import { api, query } from "../api.js";
import { onLive } from "../live.js";
import { Spinner, fmt, loadStyle } from "../components.js";
import { Chart, loadCharts } from "../charts.js";

loadStyle("usage.css");
loadCharts().catch(() => {}); // the chart library loads while the report is being read

const REREAD_AFTER_MS = 5000; // a live "poll" right after a read (the stream opening) reads nothing new

const WINDOWS = [["24h", "24 hours", "1h"], ["7d", "7 days", "1d"], ["30d", "30 days", "1d"]];
const SHOWN = 25;

const byCost = (a, b) => (b.cost ?? -1) - (a.cost ?? -1) || b.requests - a.requests;

function Stat({ label, value }) {
  return html`<div class="stat"><span class="stat-value">${value}</span><span class="stat-label">${label}</span></div>`;
}

function Table({ title, rows, totals, name, label, sort = true }) {
  const [all, setAll] = useState(false);
  const sorted = useMemo(() => (sort ? [...rows].sort(byCost) : rows), [rows]);
  const shown = all ? sorted : sorted.slice(0, SHOWN);
  const id = `t-${title.replace(/\W+/g, "-").toLowerCase()}`;
  const cells = (r) => html`<td class="num">${fmt.num(r.requests)}</td><td class="num">${fmt.pct(r.success_rate)}</td>
    <td class="num">${fmt.ms(r.latency_p50_ms)}</td><td class="num">${fmt.ms(r.latency_p95_ms)}</td>
    <td class="num">${fmt.num(r.total_tokens)}</td><td class="num">${fmt.cost(r.cost)}</td>`;
  return html`<section class="card usage-table" aria-labelledby=${id}>
    <h2 id=${id}>${title}</h2>
    ${rows.length ? html`<div class="table-wrap"><table class="list data">
      <thead><tr><th scope="col">${label}</th><th scope="col" class="num">Requests</th><th scope="col" class="num">Success</th>
        <th scope="col" class="num">p50</th><th scope="col" class="num">p95</th><th scope="col" class="num">Tokens</th><th scope="col" class="num">Cost</th></tr></thead>
      <tbody>${shown.map((r) => html`<tr><th scope="row">${name(r)}</th>${cells(r)}</tr>`)}</tbody>
      <tfoot><tr><th scope="row">Total</th>${cells(totals)}</tr></tfoot>
    </table></div>
    ${sorted.length > SHOWN && html`<button type="button" class="link" onClick=${() => setAll(!all)}>
      ${all ? "Show fewer" : `Show all ${sorted.length}`}</button>`}` : html`<p class="muted">Nothing in this window.</p>`}
  </section>`;
}

function sum(rows) {
  const total = { requests: 0, successes: 0, total_tokens: 0, cost: null, success_rate: null, latency_p50_ms: null, latency_p95_ms: null };
  for (const r of rows) {
    total.requests += r.requests; total.successes += r.successes; total.total_tokens += r.total_tokens;
    if (r.cost != null) total.cost = (total.cost ?? 0) + r.cost;
  }
  total.success_rate = total.requests ? total.successes / total.requests : null;
  return total;
}

export default function Usage() {
  const [win, setWin] = useState("24h");
  const [report, setReport] = useState(null);
  const [error, setError] = useState(null);
  const [tick, setTick] = useState(0);
  const bucket = WINDOWS.find(([w]) => w === win)[2];

  const readAt = useRef(0);

  useEffect(() => {
    const controller = new AbortController();
    readAt.current = Date.now();
    api(`/usage${query({ window: win, bucket })}`, { timeoutMs: 30000, signal: controller.signal })
      .then((r) => { setReport(r); setError(null); })
      .catch((e) => { if (!controller.signal.aborted) setError(e.message); });
    return () => controller.abort(); // a read overtaken by another one is not waited for
  }, [win, tick]);
  useEffect(() => onLive((event) => {
    if (event.type === "poll" && Date.now() - readAt.current >= REREAD_AFTER_MS) setTick((t) => t + 1);
  }), []);

  const buckets = report?.buckets ?? [];
  const x = useMemo(() => buckets.map((b) => b.start), [report]);
  const requests = useMemo(() => [
    { label: "Requests", values: buckets.map((b) => b.requests), format: fmt.num },
    { label: "Failures", values: buckets.map((b) => b.failures), format: fmt.num },
  ], [report]);
  const cost = useMemo(() => [{ label: "Cost", values: buckets.map((b) => b.cost ?? 0), format: fmt.cost }], [report]);
  const t = report?.totals;
  const step = bucket === "1h" ? "Hour" : "Day";
  const when = (b) => (bucket === "1h" ? new Date(b.start).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : new Date(b.start).toLocaleDateString());

  return html`<div class="page usage">
    <div class="page-head">
      <h1>Usage & cost</h1>
      <div class="segmented" role="group" aria-label="Window">
        ${WINDOWS.map(([value, label]) => html`<button type="button" aria-pressed=${win === value} onClick=${() => { setReport(null); setWin(value); }}>${label}</button>`)}
      </div>
    </div>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${!report ? !error && html`<p><${Spinner} label="Loading usage" /> Loading usage…</p>` : html`
      <section class="cards" aria-label="Totals">
        <${Stat} label="Requests" value=${fmt.num(t.requests)} />
        <${Stat} label="Success rate" value=${fmt.pct(t.success_rate)} />
        <${Stat} label="Tokens" value=${fmt.num(t.total_tokens)} />
        <${Stat} label="Cost" value=${fmt.cost(t.cost)} />
        <${Stat} label="Latency p50" value=${fmt.ms(t.latency_p50_ms)} />
        <${Stat} label="Latency p95" value=${fmt.ms(t.latency_p95_ms)} />
      </section>
      <div class="chart-grid">
        <section class="card"><${Chart} title=${`Requests per ${step.toLowerCase()}`} x=${x} series=${requests}
          summary=${`${fmt.num(t.requests)} requests, ${fmt.num(t.failures)} failed.`} /></section>
        <section class="card"><${Chart} title=${`Cost per ${step.toLowerCase()}`} x=${x} series=${cost}
          summary=${`${fmt.cost(t.cost)} in all.`} /></section>
      </div>
      <div class="usage-grid">
        <${Table} title="By connection" label="Connection" rows=${report.connections ?? []} totals=${t}
          name=${(r) => (r.name ? html`<a href=${`#/connections/${r.connection_id}`}>${r.name}</a>` : html`<span class="muted">deleted</span>`)} />
        <${Table} title="By pool" label="Pool" rows=${report.pools ?? []} totals=${sum(report.pools ?? [])}
          name=${(r) => r.name ?? html`<span class="muted">deleted</span>`} />
        <${Table} title="By source" label="Source" rows=${report.sources} totals=${t} name=${(r) => r.source} />
        <${Table} title=${`By ${step.toLowerCase()}`} label=${step} rows=${[...buckets].reverse()} totals=${t} sort=${false} name=${when} />
      </div>`}
  </div>`;
}

// The connections page: summary cards, the filtered, sorted, paged list, and its row actions.
// It renders from the registry at once; each row's activity (latency, calls today) and every
// test load afterwards, on their own, so one slow upstream never holds the page.
import { html, useEffect, useMemo, useRef, useState } from "../html.js";
import { api, query } from "../api.js";
import { onLive } from "../live.js";
import {
  Badge, Confirm, Dialog, Spinner, StatusBadge, TYPES, TypeIcon, fmt, toast,
} from "../components.js";

const PAGE_SIZE = 50;
const INTEGRATIONS = [
  ["use_in_livekit", "LiveKit"], ["use_in_mcp", "MCP"], ["use_in_automation", "Automation"],
];
const STATUSES = ["active", "error", "testing", "inactive", "unknown"];
const SORTS = [
  ["name", "Name (A–Z)"], ["-name", "Name (Z–A)"], ["-created_at", "Newest"],
  ["-last_used_at", "Recently used"], ["status", "Status"], ["connection_type", "Type"],
];

async function loadEditor() {
  return (await import("./dialog.js")).default;
}

function Cards({ summary }) {
  const cards = [
    ["Total", summary?.total], ["Active", summary?.active], ["LiveKit-ready", summary?.livekit_ready],
    ["MCP-ready", summary?.mcp_ready], ["Automation-ready", summary?.automation_ready],
    ["In error", summary?.in_error, "bad"],
  ];
  return html`<section class="cards" aria-label="Summary">
    ${cards.map(([label, value, kind]) => html`<div class=${`stat ${kind && value ? kind : ""}`}>
      <span class="stat-value">${value ?? "—"}</span><span class="stat-label">${label}</span></div>`)}
  </section>`;
}

function Filters({ filters, setFilters }) {
  const [search, setSearch] = useState(filters.q ?? "");
  const [tag, setTag] = useState(filters.tag ?? "");
  useEffect(() => {
    const q = search || null;
    const wanted = tag.trim() || null;
    const timer = setTimeout(() => setFilters((f) => (
      f.q === q && f.tag === wanted ? f : { ...f, q, tag: wanted, offset: 0 })), 250);
    return () => clearTimeout(timer);
  }, [search, tag]);
  const set = (key) => (event) => setFilters((f) => ({ ...f, [key]: event.target.value || null, offset: 0 }));
  return html`<form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
    <div class="field grow"><label for="f-q">Search</label>
      <input id="f-q" type="search" placeholder="Name, model or description" value=${search}
        onInput=${(e) => setSearch(e.target.value)} /></div>
    <div class="field"><label for="f-type">Type</label>
      <select id="f-type" value=${filters.connection_type ?? ""} onChange=${set("connection_type")}>
        <option value="">All types</option>
        ${Object.entries(TYPES).map(([key, t]) => html`<option value=${key}>${t.label}</option>`)}
      </select></div>
    <div class="field"><label for="f-integration">Integration</label>
      <select id="f-integration" value=${filters.integration ?? ""} onChange=${set("integration")}>
        <option value="">Any</option>
        ${INTEGRATIONS.map(([key, label]) => html`<option value=${key}>${label}</option>`)}
      </select></div>
    <div class="field"><label for="f-status">Status</label>
      <select id="f-status" value=${filters.status ?? ""} onChange=${set("status")}>
        <option value="">Any</option>
        ${STATUSES.map((s) => html`<option value=${s}>${s[0].toUpperCase() + s.slice(1)}</option>`)}
      </select></div>
    <div class="field"><label for="f-tag">Tag</label>
      <input id="f-tag" value=${tag} placeholder="e.g. prod" onInput=${(e) => setTag(e.target.value)} /></div>
    <div class="field"><label for="f-sort">Sort</label>
      <select id="f-sort" value=${filters.sort} onChange=${set("sort")}>
        ${SORTS.map(([key, label]) => html`<option value=${key}>${label}</option>`)}
      </select></div>
  </form>`;
}

function TestResult({ connection, onClose }) {
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    api(`/connections/${connection.id}/test`, { method: "POST", body: {}, timeoutMs: 120000 })
      .then(setResult, (e) => setError(e.message));
  }, []);
  return html`<${Dialog} title=${`Test: ${connection.name}`} onClose=${onClose}>
    <div class="test-result" aria-live="polite">
      ${!result && !error && html`<p><${Spinner} label="Testing" /> Sending a test prompt…</p>`}
      ${error && html`<p class="error" role="alert">${error}</p>`}
      ${result && result.success && html`<dl class="facts">
        <dt>Result</dt><dd><${Badge} kind="good">Success</${Badge}></dd>
        <dt>Latency</dt><dd>${fmt.ms(result.latency_ms)}</dd>
        <dt>First token</dt><dd>${fmt.ms(result.ttft_ms)}</dd>
        <dt>Tokens</dt><dd>${fmt.num(result.tokens?.prompt)} in · ${fmt.num(result.tokens?.completion)} out</dd>
        <dt>Reply</dt><dd class="preview">${result.response_preview}</dd></dl>`}
      ${result && !result.success && html`<dl class="facts">
        <dt>Result</dt><dd><${Badge} kind="bad">${result.error_kind ?? "failed"}</${Badge}></dd>
        <dt>What to check</dt><dd class="error">${result.error}</dd>
        <dt>After</dt><dd>${fmt.ms(result.latency_ms)}</dd></dl>`}
    </div>
    <div class="actions"><button type="button" class="primary" onClick=${onClose}>Close</button></div>
  <//>`;
}

function Row({ item, activity, onAction }) {
  const integrations = INTEGRATIONS.filter(([key]) => item[key]);
  return html`<tr data-id=${item.id} data-name=${item.name}>
    <th scope="row"><a href=${`#/connections/${item.id}`}>${item.name}</a>
      ${item.description && html`<small class="muted block">${item.description}</small>`}</th>
    <td><${TypeIcon} type=${item.connection_type} /></td>
    <td class="mono">${item.model_name}</td>
    <td><${StatusBadge} status=${item.status} />
      ${item.status === "error" && item.last_error && html`<small class="muted block clip" title=${item.last_error}>${item.last_error}</small>`}</td>
    <td>${integrations.length ? integrations.map(([, label]) => html`<${Badge} kind="integration">${label}<//> `) : html`<span class="muted">—</span>`}</td>
    <td>${item.tags.map((tag) => html`<${Badge} kind="tag">${tag}<//> `)}</td>
    <td class="num">${activity ? fmt.ms(activity.last_latency_ms) : "…"}</td>
    <td>${fmt.ago(item.last_used_at)}</td>
    <td class="num">${activity ? fmt.num(activity.requests_today) : "…"}</td>
    <td class="row-actions">
      <button type="button" onClick=${() => onAction("test", item)} aria-label=${`Test ${item.name}`}>Test</button>
      <button type="button" onClick=${() => onAction(item.is_active ? "deactivate" : "activate", item)}
        aria-label=${`${item.is_active ? "Deactivate" : "Activate"} ${item.name}`}>${item.is_active ? "Deactivate" : "Activate"}</button>
      <button type="button" onClick=${() => onAction("edit", item)} aria-label=${`Edit ${item.name}`}>Edit</button>
      <button type="button" onClick=${() => onAction("duplicate", item)} aria-label=${`Duplicate ${item.name}`}>Duplicate</button>
      <button type="button" class="danger" onClick=${() => onAction("delete", item)} aria-label=${`Delete ${item.name}`}>Delete</button>
    </td>
  </tr>`;
}

function EmptyState({ onAdd, filtered }) {
  if (filtered) return html`<div class="empty"><p>No connection matches these filters.</p></div>`;
  return html`<div class="empty">
    <h2>No connections yet</h2>
    <p>A connection is one LLM endpoint: a local Ollama, a vLLM server, or an API such as OpenAI
      or Anthropic. Add one, test it, then turn on the integrations that should use it.</p>
    <div class="actions start">
      <button type="button" class="primary" onClick=${onAdd}>Add a connection</button>
      <a class="button" href="#/presets">Start from a preset</a>
    </div>
  </div>`;
}

export default function ConnectionsPage() {
  const [filters, setFilters] = useState({ sort: "name", offset: 0 });
  const [page, setPage] = useState(null);
  const [summary, setSummary] = useState(null);
  const [activity, setActivity] = useState({});
  const [error, setError] = useState(null);
  const [modal, setModal] = useState(null);
  const [Editor, setEditor] = useState(null);
  const generation = useRef(0);

  const params = useMemo(() => ({
    q: filters.q, connection_type: filters.connection_type, status: filters.status,
    tag: filters.tag, sort: filters.sort, limit: PAGE_SIZE, offset: filters.offset,
    ...(filters.integration ? { [filters.integration]: "true" } : {}),
  }), [filters]);

  const reload = async () => {
    const mine = ++generation.current;
    try {
      const [list, counts] = await Promise.all([api(`/connections${query(params)}`), api("/connections/summary")]);
      if (mine !== generation.current) return;
      setPage(list);
      setSummary(counts);
      setError(null);
      if (list.items.length) {
        api(`/connections/activity${query({ id: list.items.map((i) => i.id) })}`)
          .then((found) => {
            if (mine !== generation.current) return;
            const none = { last_latency_ms: null, requests_today: 0 }; // no call and no test yet
            const byId = Object.fromEntries(found.items.map((a) => [a.connection_id, a]));
            setActivity(Object.fromEntries(list.items.map((i) => [i.id, byId[i.id] ?? none])));
          }, () => {});
      }
    } catch (e) {
      if (mine === generation.current) setError(e);
    }
  };

  useEffect(() => { reload(); }, [params]);
  useEffect(() => {
    let timer = null;
    const stop = onLive((event) => {
      if (event.type === "poll" || event.type.startsWith("connection.")) {
        clearTimeout(timer);
        timer = setTimeout(reload, 150); // a burst of events, one reload
      }
    });
    return () => { clearTimeout(timer); stop(); };
  }, [params]);

  const openEditor = async (mode, item) => {
    const component = Editor ?? (await loadEditor());
    setEditor(() => component);
    setModal({ kind: "editor", mode, item });
  };

  const onAction = async (action, item) => {
    if (action === "test") setModal({ kind: "test", item });
    else if (action === "edit" || action === "duplicate") openEditor(action, item);
    else if (action === "delete") setModal({ kind: "delete", item });
    else {
      try {
        await api(`/connections/${item.id}/${action}`, { method: "POST" });
        toast(`${item.name} ${action}d`);
        reload();
      } catch (e) {
        toast(e.message, "bad");
      }
    }
  };

  const filtered = Boolean(filters.q || filters.connection_type || filters.status || filters.tag || filters.integration);
  const total = page?.total ?? 0;
  const close = () => setModal(null);
  return html`<div class="page">
    <div class="page-head">
      <h1>Connections</h1>
      <button type="button" class="primary" onClick=${() => openEditor("create", null)}>Add Connection</button>
    </div>
    <${Cards} summary=${summary} />
    <${Filters} filters=${filters} setFilters=${setFilters} />
    ${error && html`<p class="error" role="alert">Could not load the connections: ${error.message}
      <button type="button" onClick=${reload}>Retry</button></p>`}
    ${!page && !error && html`<p><${Spinner} /> Loading connections…</p>`}
    ${page && page.items.length === 0 && html`<${EmptyState} filtered=${filtered} onAdd=${() => openEditor("create", null)} />`}
    ${page && page.items.length > 0 && html`<div class="table-wrap">
      <table class="list">
        <caption class="sr-only">Connections, ${total} in all</caption>
        <thead><tr>
          <th scope="col">Name</th><th scope="col">Type</th><th scope="col">Model</th><th scope="col">Status</th>
          <th scope="col">Integrations</th><th scope="col">Tags</th><th scope="col" class="num">Last latency</th>
          <th scope="col">Last used</th><th scope="col" class="num">Today</th><th scope="col"><span class="sr-only">Actions</span></th>
        </tr></thead>
        <tbody>${page.items.map((item) => html`<${Row} key=${item.id} item=${item} activity=${activity[item.id]} onAction=${onAction} />`)}</tbody>
      </table></div>
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled=${filters.offset === 0}
          onClick=${() => setFilters((f) => ({ ...f, offset: Math.max(0, f.offset - PAGE_SIZE) }))}>Previous</button>
        <span>${filters.offset + 1}–${Math.min(filters.offset + PAGE_SIZE, total)} of ${total}</span>
        <button type="button" disabled=${filters.offset + PAGE_SIZE >= total}
          onClick=${() => setFilters((f) => ({ ...f, offset: f.offset + PAGE_SIZE }))}>Next</button>
      </nav>`}
    ${modal?.kind === "test" && html`<${TestResult} connection=${modal.item} onClose=${() => { close(); reload(); }} />`}
    ${modal?.kind === "delete" && html`<${Confirm} title=${`Delete ${modal.item.name}?`}
      message="The connection, its key and its health history are deleted; its usage rows stay. This cannot be undone."
      onConfirm=${async () => { await api(`/connections/${modal.item.id}`, { method: "DELETE" }); toast(`${modal.item.name} deleted`); reload(); }}
      onClose=${close} />`}
    ${modal?.kind === "editor" && Editor && html`<${Editor} mode=${modal.mode} connection=${modal.item}
      onSaved=${(saved) => { close(); toast(`${saved.name} saved`); reload(); }} onClose=${close} />`}
  </div>`;
}

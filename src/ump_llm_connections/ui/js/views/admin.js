// The admin pages, one module for three routes: #/tokens, #/audit, #/webhooks. A token or a
// webhook secret is shown once, when made; after that only its key id or mask.
import { html, useEffect, useRef, useState } from "../html.js";
import { api, query, ApiError } from "../api.js";
import { enumOf } from "../schema.js";
import { Badge, Confirm, Dialog, Field, Spinner, fmt, loadStyle, toast } from "../components.js";

loadStyle("forms.css");
loadStyle("admin.css");

const PAGE_SIZE = 50;
const SOURCES = { livekit: "LiveKit", mcp: "MCP", automation: "Automation", api: "API" };
const title = (s) => s.charAt(0).toUpperCase() + s.slice(1).replace(/_/g, " ");

function useEnum(schema, property, fallback = []) {
  const [values, setValues] = useState(fallback);
  useEffect(() => { enumOf(schema, property).then(setValues, () => {}); }, []);
  return values;
}

// A load that knows "members may not": 403 becomes a clear message, not an error toast.
function Problem({ error, what, retry }) {
  if (error instanceof ApiError && error.status === 403) {
    return html`<div class="empty" role="alert"><h2>Admins only</h2>
      <p>Your token is a member's: ${what} are managed by an admin. Ask one, or sign in with an admin token.</p></div>`;
  }
  return html`<p class="error" role="alert">Could not load ${what}: ${error.message}
    <button type="button" onClick=${retry}>Retry</button></p>`;
}

function Pager({ offset, total, onPage }) {
  if (total <= PAGE_SIZE) return null;
  return html`<nav class="pager" aria-label="Pages">
    <button type="button" disabled=${offset === 0} onClick=${() => onPage(Math.max(0, offset - PAGE_SIZE))}>Previous</button>
    <span>${offset + 1}–${Math.min(offset + PAGE_SIZE, total)} of ${total}</span>
    <button type="button" disabled=${offset + PAGE_SIZE >= total} onClick=${() => onPage(offset + PAGE_SIZE)}>Next</button>
  </nav>`;
}

// The one time a secret is visible: read-only, selectable, copyable.
function ShownOnce({ label, value, kept, onClose }) {
  const ref = useRef(null);
  useEffect(() => { ref.current?.select(); }, []);
  const copy = async () => {
    try { await navigator.clipboard.writeText(value); toast("Copied"); } catch { ref.current.select(); toast("Press Ctrl+C to copy", "bad"); }
  };
  return html`<div class="shown-once">
    <p class="warning" role="alert"><strong>Copy it now: you will not see it again.</strong> ${kept}</p>
    <div class="field"><label for="secret-once">${label}</label>
      <div class="copy-row"><input id="secret-once" ref=${ref} class="mono" readonly value=${value} />
        <button type="button" class="primary" onClick=${copy}>Copy</button></div></div>
    <div class="actions"><button type="button" onClick=${onClose}>Done</button></div>
  </div>`;
}

// A form whose API error lands beside its field, or below the form when it names none of them.
function useSubmit(send) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try { await send(); } catch (e) { setError(e); }
    setBusy(false);
  };
  const at = (name) => (error?.field === name || error?.field?.startsWith(`${name}.`) ? error.message : null);
  return { submit, busy, error, at };
}

function Checks({ legend, options, chosen, onChange, error, name }) {
  const toggle = (value, on) => onChange(on ? [...chosen, value] : chosen.filter((v) => v !== value));
  return html`<fieldset class=${error ? "checks invalid" : "checks"} aria-describedby=${error ? `${name}-error` : undefined}>
    <legend>${legend}</legend>
    ${options.map(([value, label, disabled]) => html`<label key=${value}><input type="checkbox" checked=${chosen.includes(value)}
      disabled=${disabled} onChange=${(e) => toggle(value, e.target.checked)} /> ${label}</label>`)}
    ${error && html`<small id=${`${name}-error`} class="field-error">${error}</small>`}
  </fieldset>`;
}

function NewToken({ onCreated, onClose }) {
  const roles = useEnum("Role", null, ["member", "admin"]);
  const sources = useEnum("Source", null, Object.keys(SOURCES));
  const [form, setForm] = useState({ name: "", role: "member", team: "", sources: [], expires: "", rpm: "", budget: "" });
  const [created, setCreated] = useState(null);
  const set = (key) => (e) => setForm((f) => ({ ...f, [key]: e.target.value }));
  const { submit, busy, error, at } = useSubmit(async () => {
    const body = { name: form.name.trim(), role: form.role, sources: form.sources };
    if (form.team.trim()) body.team = form.team.trim();
    if (form.expires) body.expires_at = new Date(form.expires).toISOString();
    if (form.rpm !== "") body.rpm_limit = Number(form.rpm);
    if (form.budget !== "") body.monthly_budget = Number(form.budget);
    const token = await api("/tokens", { method: "POST", body });
    setCreated(token);
    onCreated(token);
  });
  const known = ["name", "role", "team", "sources", "expires_at", "rpm_limit", "monthly_budget"];
  return html`<${Dialog} title=${created ? `Token for ${created.name}` : "New token"} onClose=${onClose} labelledBy="token-dialog-title">
    ${created ? html`<${ShownOnce} label="Token" value=${created.token} onClose=${onClose}
      kept="Only its hash is kept: if it is lost, revoke it and make a new one." />` : html`
    <form class="stack" onSubmit=${submit} novalidate>
      <div class="grid-2">
        <${Field} label="Name" name="t-name" error=${at("name")} hint="Who or what uses it">
          ${(a) => html`<input ...${a} required maxlength="200" value=${form.name} onInput=${set("name")} />`}<//>
        <${Field} label="Role" name="t-role" error=${at("role")} hint=${form.role === "admin" ? "Everything, tokens included" : "Its team's connections"}>
          ${(a) => html`<select ...${a} value=${form.role} onChange=${set("role")}>${roles.map((r) => html`<option value=${r}>${title(r)}</option>`)}</select>`}<//>
        <${Field} label="Team" name="t-team" error=${at("team")} hint="Members see their team's connections">
          ${(a) => html`<input ...${a} maxlength="200" value=${form.team} onInput=${set("team")} />`}<//>
        <${Field} label="Expires (optional)" name="t-expires" error=${at("expires_at")} hint="Never, when empty">
          ${(a) => html`<input ...${a} type="datetime-local" value=${form.expires} onInput=${set("expires")} />`}<//>
        <${Field} label="Requests per minute (optional)" name="t-rpm" error=${at("rpm_limit")}>
          ${(a) => html`<input ...${a} type="number" min="1" inputmode="numeric" value=${form.rpm} onInput=${set("rpm")} />`}<//>
        <${Field} label="Monthly budget, $ (optional)" name="t-budget" error=${at("monthly_budget")}>
          ${(a) => html`<input ...${a} type="number" min="0" step="0.01" inputmode="decimal" value=${form.budget} onInput=${set("budget")} />`}<//>
      </div>
      <${Checks} legend="May call the gateway as (none ticked: any source)" name="t-sources" error=${at("sources")}
        options=${sources.map((s) => [s, SOURCES[s] ?? s])} chosen=${form.sources} onChange=${(v) => setForm((f) => ({ ...f, sources: v }))} />
      ${error && !known.some((k) => at(k)) && html`<p class="error" role="alert">${error.message}</p>`}
      <div class="actions"><button type="button" onClick=${onClose}>Cancel</button>
        <button class="primary" disabled=${busy}>Create token</button></div>
    </form>`}
  <//>`;
}

function tokenState(t) {
  if (t.revoked_at) return html`<${Badge} kind="bad" title=${fmt.date(t.revoked_at)}>Revoked<//>`;
  if (!t.active) return html`<${Badge}>Expired<//>`;
  return html`<${Badge} kind="good">Active<//>`;
}

function Tokens() {
  const [tokens, setTokens] = useState(null);
  const [error, setError] = useState(null);
  const [modal, setModal] = useState(null);
  const load = () => api("/tokens").then((t) => { setTokens(t.items); setError(null); }, setError);
  useEffect(() => { load(); }, []);
  return html`<div class="page">
    <div class="page-head"><h1>Tokens</h1>
      ${!(error instanceof ApiError && error.status === 403) && html`<button type="button" class="primary"
        onClick=${() => setModal({ kind: "new" })}>New token</button>`}</div>
    <p class="muted lead">Who may call this server: the REST API, the gateway, this page. A member sees its team's connections; an admin sees everything.</p>
    ${error && html`<${Problem} error=${error} what="tokens" retry=${load} />`}
    ${!tokens && !error && html`<p><${Spinner} /> Loading tokens…</p>`}
    ${tokens && !tokens.length && html`<div class="empty"><p>No tokens yet: the server is open to anyone who can reach it. Make an admin token first.</p></div>`}
    ${tokens?.length > 0 && html`<div class="table-wrap"><table class="list">
      <caption class="sr-only">Tokens, ${tokens.length} in all</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Key id</th><th scope="col">Role</th><th scope="col">Team</th>
        <th scope="col">Sources</th><th scope="col">Expires</th><th scope="col" class="num">RPM</th><th scope="col" class="num">Budget</th>
        <th scope="col">Last used</th><th scope="col">State</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${tokens.map((t) => html`<tr key=${t.id} class=${t.active ? "" : "inactive"}>
        <th scope="row">${t.name}${t.created_by && html`<small class="muted block">by ${tokens.find((x) => x.id === t.created_by)?.name ?? t.created_by}</small>`}</th>
        <td class="mono" data-label="Key id">${t.key_id}</td>
        <td data-label="Role">${t.role === "admin" ? html`<${Badge} kind="integration">Admin<//>` : "Member"}</td>
        <td data-label="Team">${t.team ?? html`<span class="muted">—</span>`}</td>
        <td data-label="Sources">${t.sources.length ? t.sources.map((s) => html`<${Badge} kind="tag">${SOURCES[s] ?? s}<//> `) : html`<span class="muted">Any</span>`}</td>
        <td data-label="Expires">${t.expires_at ? fmt.date(t.expires_at) : html`<span class="muted">Never</span>`}</td>
        <td class="num" data-label="RPM">${fmt.num(t.rpm_limit)}</td><td class="num" data-label="Budget">${fmt.cost(t.monthly_budget)}</td>
        <td data-label="Last used">${fmt.ago(t.last_used_at)}</td><td data-label="State">${tokenState(t)}</td>
        <td class="row-actions">${!t.revoked_at && html`<button type="button" class="danger"
          onClick=${() => setModal({ kind: "revoke", token: t })} aria-label=${`Revoke ${t.name}`}>Revoke</button>`}</td>
      </tr>`)}</tbody></table></div>`}
    ${modal?.kind === "new" && html`<${NewToken} onCreated=${load} onClose=${() => setModal(null)} />`}
    ${modal?.kind === "revoke" && html`<${Confirm} title=${`Revoke ${modal.token.name}?`} action="Revoke"
      message=${`Every call with the token ${modal.token.key_id}… is refused from now on. This cannot be undone.`}
      onConfirm=${async () => { await api(`/tokens/${modal.token.id}`, { method: "DELETE" }); toast(`${modal.token.name} revoked`); load(); }}
      onClose=${() => setModal(null)} />`}
  </div>`;
}

function Audit() {
  const targets = useEnum("TargetType");
  const outcomes = useEnum("AuditOutcome");
  const [filters, setFilters] = useState({ offset: 0 });
  const [draft, setDraft] = useState({ action: "", target_type: "", target_id: "", outcome: "", token_id: "", since: "", until: "" });
  const [tokens, setTokens] = useState([]);
  const [page, setPage] = useState(null);
  const [error, setError] = useState(null);
  const load = () => {
    const iso = (v) => (v ? new Date(v).toISOString() : null);
    api(`/audit${query({ ...filters, since: iso(filters.since), until: iso(filters.until), limit: PAGE_SIZE })}`)
      .then((p) => { setPage(p); setError(null); }, setError);
  };
  useEffect(() => { load(); }, [filters]);
  useEffect(() => { api("/tokens").then((t) => setTokens(t.items), () => {}); }, []);
  const set = (key) => (e) => setDraft((d) => ({ ...d, [key]: e.target.value }));
  const apply = (e) => { e.preventDefault(); setFilters({ ...draft, offset: 0 }); };
  const fieldError = error instanceof ApiError && error.status === 422 ? error : null;
  const at = (name) => (fieldError?.field === name ? fieldError.message : null);
  const input = (label, name, props = {}) => html`<${Field} label=${label} name=${`a-${name}`} error=${at(name)}>
    ${(a) => html`<input ...${a} ...${props} value=${draft[name]} onInput=${set(name)} />`}<//>`;
  const select = (label, name, options) => html`<${Field} label=${label} name=${`a-${name}`} error=${at(name)}>
    ${(a) => html`<select ...${a} value=${draft[name]} onChange=${set(name)}><option value="">Any</option>
      ${options.map(([value, text]) => html`<option value=${value}>${text}</option>`)}</select>`}<//>`;
  return html`<div class="page">
    <div class="page-head"><h1>Audit log</h1></div>
    <form class="filters" role="search" aria-label="Filter the audit log" onSubmit=${apply}>
      ${input("Action", "action", { placeholder: "connection. or pool.update", class: "mono" })}
      ${select("Target", "target_type", targets.map((t) => [t, title(t)]))}
      ${input("Target id", "target_id")}
      ${select("Outcome", "outcome", outcomes.map((o) => [o, title(o)]))}
      ${select("Token", "token_id", tokens.map((t) => [t.id, `${t.name} (${t.key_id})`]))}
      ${input("From", "since", { type: "datetime-local" })}
      ${input("Until", "until", { type: "datetime-local" })}
      <button class="primary">Filter</button>
    </form>
    ${error && !fieldError && html`<${Problem} error=${error} what="the audit log" retry=${load} />`}
    ${fieldError && !["action", "target_type", "target_id", "outcome", "token_id", "since", "until"].includes(fieldError.field)
      && html`<p class="error" role="alert">${fieldError.message}</p>`}
    ${!page && !error && html`<p><${Spinner} /> Loading the audit log…</p>`}
    ${page && !page.items.length && html`<div class="empty"><p>Nothing recorded${filters.action || filters.outcome ? " that matches" : " yet"}.</p></div>`}
    ${page?.items.length > 0 && html`<div class="table-wrap"><table class="list">
      <caption class="sr-only">Audit log, newest first, ${page.total} entries</caption>
      <thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">Action</th><th scope="col">Target</th>
        <th scope="col">Fields</th><th scope="col">Outcome</th></tr></thead>
      <tbody>${page.items.map((e) => html`<tr key=${e.id}>
        <td title=${e.created_at}>${fmt.date(e.created_at)}</td>
        <td data-label="Who">${e.token_name ?? html`<span class="muted">open server</span>`}${e.client && html`<small class="muted block mono">${e.client}</small>`}</td>
        <td class="mono" data-label="Action">${e.action}</td>
        <td data-label="Target">${e.target_type && html`<span class="muted">${e.target_type} </span>`}${e.target_name ?? html`<span class="mono">${e.target_id ?? "—"}</span>`}</td>
        <td data-label="Fields">${e.fields.length ? html`<span class="mono">${e.fields.join(", ")}</span>` : html`<span class="muted">—</span>`}</td>
        <td data-label="Outcome"><${Badge} kind=${e.outcome === "ok" ? "good" : "bad"}>${e.outcome}<//></td>
      </tr>`)}</tbody></table></div>
      <${Pager} offset=${filters.offset} total=${page.total} onPage=${(offset) => setFilters((f) => ({ ...f, offset }))} />`}
  </div>`;
}

function NewWebhook({ onCreated, onClose }) {
  const events = useEnum("WebhookCreate", "events");
  const [form, setForm] = useState({ url: "", description: "", events: [] });
  const [created, setCreated] = useState(null);
  const { submit, busy, error, at } = useSubmit(async () => {
    const hook = await api("/webhooks", { method: "POST", body: { url: form.url.trim(), events: form.events, description: form.description } });
    setCreated(hook);
    onCreated(hook);
  });
  const all = form.events.includes("*");
  const options = events.map((e) => (e === "*" ? ["*", "All events, present and future", false] : [e, e, all]));
  return html`<${Dialog} title=${created ? "Webhook created" : "New webhook"} onClose=${onClose} labelledBy="webhook-dialog-title">
    ${created ? html`<p>Deliveries to <span class="mono">${created.url}</span> are signed with this secret (header <code>X-UMP-Signature</code>).</p>
      <${ShownOnce} label="Signing secret" value=${created.secret} onClose=${onClose}
        kept="It is stored encrypted and shown from now on only as a mask." />` : html`
    <form class="stack" onSubmit=${submit} novalidate>
      <${Field} label="URL" name="w-url" error=${at("url")} hint="Where events are POSTed, as JSON">
        ${(a) => html`<input ...${a} type="url" required class="mono" placeholder="https://" value=${form.url}
          onInput=${(e) => setForm((f) => ({ ...f, url: e.target.value }))} />`}<//>
      <${Checks} legend="Events" name="w-events" error=${at("events")} chosen=${form.events}
        options=${options} onChange=${(v) => setForm((f) => ({ ...f, events: v.includes("*") ? ["*"] : v }))} />
      <${Field} label="Description (optional)" name="w-description" error=${at("description")}>
        ${(a) => html`<input ...${a} maxlength="2000" value=${form.description} onInput=${(e) => setForm((f) => ({ ...f, description: e.target.value }))} />`}<//>
      ${error && !["url", "events", "description"].some((k) => at(k)) && html`<p class="error" role="alert">${error.message}</p>`}
      <div class="actions"><button type="button" onClick=${onClose}>Cancel</button>
        <button class="primary" disabled=${busy}>Create webhook</button></div>
    </form>`}
  <//>`;
}

function Deliveries({ hook, onClose }) {
  const [offset, setOffset] = useState(0);
  const [page, setPage] = useState(null);
  const [error, setError] = useState(null);
  const load = () => api(`/webhooks/${hook.id}/deliveries${query({ limit: PAGE_SIZE, offset })}`).then((p) => { setPage(p); setError(null); }, setError);
  useEffect(() => { load(); }, [offset]);
  return html`<${Dialog} title="Deliveries" onClose=${onClose} wide labelledBy="deliveries-title">
    <p class="mono clip-url">${hook.url}</p>
    ${error && html`<${Problem} error=${error} what="the deliveries" retry=${load} />`}
    ${!page && !error && html`<p><${Spinner} /> Loading…</p>`}
    ${page && !page.items.length && html`<p class="muted">No deliveries yet: they appear when a subscribed event happens.</p>`}
    ${page?.items.length > 0 && html`<div class="table-wrap"><table class="list">
      <caption class="sr-only">Delivery attempts, newest first</caption>
      <thead><tr><th scope="col">When</th><th scope="col">Event</th><th scope="col" class="num">Attempt</th><th scope="col">Status</th>
        <th scope="col" class="num">Response</th><th scope="col" class="num">Took</th></tr></thead>
      <tbody>${page.items.map((d) => html`<tr key=${d.id}>
        <td>${fmt.date(d.created_at)}</td><td class="mono" data-label="Event">${d.event_type}</td><td class="num" data-label="Attempt">${d.attempt}</td>
        <td><${Badge} kind=${d.success ? "good" : "bad"}>${d.success ? "Delivered" : "Failed"}<//>
          ${d.error && html`<small class="muted block">${d.error}</small>`}</td>
        <td class="num" data-label="Response">${d.status_code ?? "—"}</td><td class="num" data-label="Took">${fmt.ms(d.duration_ms)}</td></tr>`)}</tbody></table></div>
      <${Pager} offset=${offset} total=${page.total} onPage=${setOffset} />`}
    <div class="actions"><button type="button" onClick=${load}>Refresh</button><button type="button" class="primary" onClick=${onClose}>Close</button></div>
  <//>`;
}

function Webhooks() {
  const [hooks, setHooks] = useState(null);
  const [error, setError] = useState(null);
  const [modal, setModal] = useState(null);
  const load = () => api("/webhooks").then((w) => { setHooks(w.items); setError(null); }, setError);
  useEffect(() => { load(); }, []);
  const close = () => setModal(null);
  return html`<div class="page">
    <div class="page-head"><h1>Webhooks</h1>
      <button type="button" class="primary" onClick=${() => setModal({ kind: "new" })}>New webhook</button></div>
    <p class="muted lead">Connection and pool events POSTed as signed JSON to your URLs: alerts, CI, automations.</p>
    ${error && html`<${Problem} error=${error} what="webhooks" retry=${load} />`}
    ${!hooks && !error && html`<p><${Spinner} /> Loading webhooks…</p>`}
    ${hooks && !hooks.length && html`<div class="empty"><p>No webhooks yet. Add one to hear when a connection fails, recovers or goes over budget.</p></div>`}
    ${hooks?.length > 0 && html`<div class="table-wrap"><table class="list">
      <caption class="sr-only">Webhooks</caption>
      <thead><tr><th scope="col">URL</th><th scope="col">Events</th><th scope="col">Secret</th><th scope="col">State</th>
        <th scope="col">Created</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${hooks.map((w) => html`<tr key=${w.id}>
        <th scope="row"><span class="mono clip-url">${w.url}</span>${w.description && html`<small class="muted block">${w.description}</small>`}</th>
        <td data-label="Events">${w.events.map((e) => html`<${Badge} kind="tag">${e === "*" ? "all events" : e}<//> `)}</td>
        <td class="mono" data-label="Secret">${w.has_secret ? w.secret_mask : "—"}</td>
        <td data-label="State">${w.is_active ? html`<${Badge} kind="good">Active<//>` : html`<${Badge}>Paused<//>`}</td>
        <td data-label="Created">${fmt.ago(w.created_at)}</td>
        <td class="row-actions">
          <button type="button" onClick=${() => setModal({ kind: "deliveries", hook: w })} aria-label=${`Deliveries to ${w.url}`}>Deliveries</button>
          <button type="button" class="danger" onClick=${() => setModal({ kind: "delete", hook: w })} aria-label=${`Delete the webhook to ${w.url}`}>Delete</button>
        </td></tr>`)}</tbody></table></div>`}
    ${modal?.kind === "new" && html`<${NewWebhook} onCreated=${load} onClose=${close} />`}
    ${modal?.kind === "deliveries" && html`<${Deliveries} hook=${modal.hook} onClose=${close} />`}
    ${modal?.kind === "delete" && html`<${Confirm} title="Delete this webhook?"
      message=${`Events stop going to ${modal.hook.url}, and its delivery history is deleted.`}
      onConfirm=${async () => { await api(`/webhooks/${modal.hook.id}`, { method: "DELETE" }); toast("Webhook deleted"); load(); }}
      onClose=${close} />`}
  </div>`;
}

const PAGES = { tokens: Tokens, audit: Audit, webhooks: Webhooks };

export default function AdminPage({ route }) {
  const Page = PAGES[route.page];
  return html`<${Page} key=${route.page} />`;
}

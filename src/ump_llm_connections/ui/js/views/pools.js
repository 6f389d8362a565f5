// Pools: one name in front of several connections, routed by a strategy. Each pool is a card
// whose members table carries their numbers over a window (requests, success, p50/p95, tokens,
// cost), so an A/B split or a fallback chain reads at a glance. Stats load per pool, after.
import { html, useEffect, useRef, useState } from "../html.js";
import { api, query } from "../api.js";
import { onLive } from "../live.js";
import { enumOf } from "../schema.js";
import { Badge, Confirm, Dialog, Field, Spinner, fmt, loadStyle, toast } from "../components.js";

loadStyle("forms.css");
loadStyle("pools.css");

export const STRATEGIES = {
  priority: ["Priority", "The first healthy member by priority; the next when it fails."],
  weighted: ["Weighted", "Requests spread by weight."],
  ab: ["A/B split", "Traffic split by weight, each member's results compared below."],
  least_latency: ["Least latency", "The member that has answered fastest lately."],
};
const WINDOWS = [["1h", "Last hour"], ["24h", "Last 24 hours"], ["7d", "Last 7 days"], ["31d", "Last 31 days"]];
const strategyLabel = (s) => STRATEGIES[s]?.[0] ?? s;

function Stats({ pool, stats }) {
  const by = Object.fromEntries((stats?.members ?? []).map((m) => [m.connection_id, m]));
  const cell = (id, pick) => (stats ? pick(by[id] ?? {}) : "…");
  return html`<div class="table-wrap"><table class="list pool-members">
    <caption class="sr-only">Members of ${pool.name} and their results</caption>
    <thead><tr><th scope="col">Member</th><th scope="col" class="num">Priority</th><th scope="col" class="num">Weight</th>
      <th scope="col" class="num">Requests</th><th scope="col" class="num">Success</th><th scope="col" class="num">p50</th>
      <th scope="col" class="num">p95</th><th scope="col" class="num">Tokens</th><th scope="col" class="num">Cost</th></tr></thead>
    <tbody>${pool.members.map((m) => html`<tr key=${m.connection_id}>
      <th scope="row"><a href=${`#/connections/${m.connection_id}`}>${m.connection_name}</a></th>
      <td class="num" data-label="Priority">${m.priority}</td><td class="num" data-label="Weight">${m.weight}</td>
      <td class="num" data-label="Requests">${cell(m.connection_id, (s) => fmt.num(s.requests ?? 0))}</td>
      <td class="num" data-label="Success">${cell(m.connection_id, (s) => fmt.pct(s.success_rate))}</td>
      <td class="num" data-label="p50">${cell(m.connection_id, (s) => fmt.ms(s.latency_p50_ms))}</td>
      <td class="num" data-label="p95">${cell(m.connection_id, (s) => fmt.ms(s.latency_p95_ms))}</td>
      <td class="num" data-label="Tokens">${cell(m.connection_id, (s) => fmt.num(s.total_tokens ?? 0))}</td>
      <td class="num" data-label="Cost">${cell(m.connection_id, (s) => fmt.cost(s.cost))}</td>
    </tr>`)}</tbody>
    ${stats && html`<tfoot><tr><th scope="row">All members</th><td></td><td></td>
      <td class="num" data-label="Requests">${fmt.num(stats.totals.requests)}</td>
      <td class="num" data-label="Success">${fmt.pct(stats.totals.success_rate)}</td>
      <td class="num" data-label="p50">${fmt.ms(stats.totals.latency_p50_ms)}</td>
      <td class="num" data-label="p95">${fmt.ms(stats.totals.latency_p95_ms)}</td>
      <td class="num" data-label="Tokens">${fmt.num(stats.totals.total_tokens)}</td>
      <td class="num" data-label="Cost">${fmt.cost(stats.totals.cost)}</td></tr></tfoot>`}
  </table></div>`;
}

function PoolCard({ pool, range, version, onEdit, onDelete }) {
  const [stats, setStats] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let current = true;
    api(`/pools/${pool.id}/stats${query({ window: range })}`)
      .then((s) => { if (current) { setStats(s); setError(null); } }, (e) => { if (current) setError(e.message); });
    return () => { current = false; };
  }, [pool.id, pool.updated_at, range, version]);
  const titleId = `pool-${pool.id}`;
  return html`<article class="card pool" aria-labelledby=${titleId} data-pool=${pool.name}>
    <header class="pool-head">
      <div>
        <h2 id=${titleId}>${pool.name} <${Badge} kind="integration" title=${STRATEGIES[pool.strategy]?.[1]}>${strategyLabel(pool.strategy)}<//></h2>
        ${pool.description && html`<p class="muted">${pool.description}</p>`}
        ${pool.team && html`<p class="muted">Team ${pool.team}</p>`}
      </div>
      <div class="row-actions">
        <button type="button" onClick=${() => onEdit(pool)} aria-label=${`Edit ${pool.name}`}>Edit</button>
        <button type="button" class="danger" onClick=${() => onDelete(pool)} aria-label=${`Delete ${pool.name}`}>Delete</button>
      </div>
    </header>
    <${Stats} pool=${pool} stats=${stats} />
    ${error && html`<p class="error">Stats unavailable: ${error}</p>`}
  </article>`;
}

// Field errors from the API: "members.2.weight" shows beside member 3's weight.
function errorsOf(error) {
  return error?.field ? { [error.field]: error.message } : {};
}

function MemberSearch({ chosen, onAdd }) {
  const [q, setQ] = useState("");
  const [found, setFound] = useState(null);
  useEffect(() => {
    let current = true;
    const timer = setTimeout(() => {
      api(`/connections${query({ q, limit: 8, sort: "name" })}`)
        .then((page) => { if (current) setFound(page.items); }, () => { if (current) setFound([]); });
    }, 200);
    return () => { current = false; clearTimeout(timer); };
  }, [q]);
  const offered = (found ?? []).filter((c) => !chosen.has(c.id));
  return html`<div class="member-search">
    <${Field} label="Add a connection" name="pool-search" hint="Search by name or model">
      ${(a) => html`<input ...${a} type="search" value=${q} onInput=${(e) => setQ(e.target.value)} />`}
    <//>
    <ul class="picker" aria-label="Matching connections">
      ${found === null && html`<li><${Spinner} /></li>`}
      ${found && !offered.length && html`<li class="muted">No other connection matches.</li>`}
      ${offered.map((c) => html`<li key=${c.id}>
        <button type="button" class="link" onClick=${() => onAdd(c)} aria-label=${`Add ${c.name}`}>+ ${c.name}</button>
        <span class="muted mono">${c.model_name}</span></li>`)}
    </ul>
  </div>`;
}

function PoolEditor({ pool, onSaved, onClose }) {
  const [form, setForm] = useState({
    name: pool?.name ?? "", description: pool?.description ?? "", strategy: pool?.strategy ?? "priority",
  });
  const [members, setMembers] = useState(pool?.members.map((m) => ({ ...m })) ?? []);
  const [strategies, setStrategies] = useState(Object.keys(STRATEGIES));
  const [errors, setErrors] = useState({});
  const [message, setMessage] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => { enumOf("PoolStrategy").then(setStrategies, () => {}); }, []);

  const set = (key) => (e) => setForm((f) => ({ ...f, [key]: e.target.value }));
  const setMember = (i, key, value) => setMembers((ms) => ms.map((m, j) => (j === i ? { ...m, [key]: value } : m)));
  const move = (i, by) => setMembers((ms) => {
    const next = [...ms];
    [next[i], next[i + by]] = [next[i + by], next[i]];
    return next.map((m, j) => ({ ...m, priority: j + 1 })); // the order is the fallback order
  });
  const add = (c) => setMembers((ms) => [...ms, { connection_id: c.id, connection_name: c.name, priority: ms.length + 1, weight: 1 }]);

  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setErrors({});
    setMessage(null);
    const body = {
      ...form,
      members: members.map((m) => ({ connection_id: m.connection_id, priority: Number(m.priority), weight: Number(m.weight) })),
    };
    try {
      const saved = await api(pool ? `/pools/${pool.id}` : "/pools", { method: pool ? "PATCH" : "POST", body });
      onSaved(saved);
    } catch (e) {
      const known = ["name", "description", "strategy", "members"].includes(e.field) || /^members\.\d+\./.test(e.field ?? "");
      setErrors(known ? errorsOf(e) : {});
      setMessage(e.message);
      setBusy(false);
    }
  };
  const memberError = (i, key) => errors[`members.${i}.${key}`] ?? errors[`members.${i}`];
  return html`<${Dialog} title=${pool ? `Edit ${pool.name}` : "New pool"} onClose=${onClose} wide labelledBy="pool-editor-title">
    <form class="stack" onSubmit=${submit} novalidate>
      <div class="grid-2">
        <${Field} label="Name" name="pool-name" error=${errors.name} hint="What clients ask the gateway for, as a model">
          ${(a) => html`<input ...${a} required maxlength="200" value=${form.name} onInput=${set("name")} />`}<//>
        <${Field} label="Strategy" name="pool-strategy" error=${errors.strategy} hint=${STRATEGIES[form.strategy]?.[1]}>
          ${(a) => html`<select ...${a} value=${form.strategy} onChange=${set("strategy")}>
            ${strategies.map((s) => html`<option value=${s}>${strategyLabel(s)}</option>`)}</select>`}<//>
      </div>
      <${Field} label="Description" name="pool-description" error=${errors.description}>
        ${(a) => html`<input ...${a} maxlength="2000" value=${form.description} onInput=${set("description")} />`}<//>
      <fieldset class="members" aria-describedby=${errors.members ? "pool-members-error" : undefined}>
        <legend>Members, in fallback order</legend>
        ${errors.members && html`<small id="pool-members-error" class="field-error">${errors.members}</small>`}
        ${!members.length && html`<p class="muted">No members yet: add connections below.</p>`}
        <ol class="member-list">${members.map((m, i) => html`<li key=${m.connection_id}>
          <span class="member-name">${m.connection_name}</span>
          <${Field} label="Priority" name=${`m-${i}-priority`} error=${memberError(i, "priority")}>
            ${(a) => html`<input ...${a} type="number" min="-1000" max="1000" value=${m.priority}
              aria-label=${`Priority of ${m.connection_name}`} onInput=${(e) => setMember(i, "priority", e.target.value)} />`}<//>
          <${Field} label="Weight" name=${`m-${i}-weight`} error=${memberError(i, "weight")}>
            ${(a) => html`<input ...${a} type="number" min="0" max="10000" value=${m.weight}
              aria-label=${`Weight of ${m.connection_name}`} onInput=${(e) => setMember(i, "weight", e.target.value)} />`}<//>
          <span class="member-moves">
            <button type="button" disabled=${i === 0} onClick=${() => move(i, -1)} aria-label=${`Move ${m.connection_name} up`}>↑</button>
            <button type="button" disabled=${i === members.length - 1} onClick=${() => move(i, 1)} aria-label=${`Move ${m.connection_name} down`}>↓</button>
            <button type="button" class="danger" onClick=${() => setMembers((ms) => ms.filter((_, j) => j !== i))}
              aria-label=${`Remove ${m.connection_name}`}>Remove</button>
          </span>
        </li>`)}</ol>
        <${MemberSearch} chosen=${new Set(members.map((m) => m.connection_id))} onAdd=${add} />
      </fieldset>
      ${message && html`<p class=${Object.keys(errors).length ? "sr-only" : "error"} role="alert">${message}</p>`}
      <div class="actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button class="primary" disabled=${busy}>${pool ? "Save" : "Create pool"}</button>
      </div>
    </form>
  <//>`;
}

export default function PoolsPage() {
  const [pools, setPools] = useState(null);
  const [error, setError] = useState(null);
  const [range, setRange] = useState("24h");
  const [modal, setModal] = useState(null);
  const [version, setVersion] = useState(0);
  const generation = useRef(0);
  const reload = async () => {
    const mine = ++generation.current;
    try {
      const list = await api("/pools");
      if (mine !== generation.current) return;
      setPools(list.items);
      setVersion((v) => v + 1);
      setError(null);
    } catch (e) {
      if (mine === generation.current) setError(e);
    }
  };
  useEffect(() => { reload(); }, []);
  useEffect(() => {
    let timer = null;
    return onLive((event) => {
      if (event.type === "poll" || event.type.startsWith("pool.")) {
        clearTimeout(timer);
        timer = setTimeout(reload, 150);
      }
    });
  }, []);
  const close = () => setModal(null);
  return html`<div class="page">
    <div class="page-head">
      <h1>Pools</h1>
      <div class="head-tools">
        <div class="field"><label for="pool-window">Results over</label>
          <select id="pool-window" value=${range} onChange=${(e) => setRange(e.target.value)}>
            ${WINDOWS.map(([key, label]) => html`<option value=${key}>${label}</option>`)}</select></div>
        <button type="button" class="primary" onClick=${() => setModal({ kind: "edit", pool: null })}>New pool</button>
      </div>
    </div>
    ${error && html`<p class="error" role="alert">Could not load the pools: ${error.message}
      <button type="button" onClick=${reload}>Retry</button></p>`}
    ${!pools && !error && html`<p><${Spinner} /> Loading pools…</p>`}
    ${pools && !pools.length && html`<div class="empty">
      <h2>No pools yet</h2>
      <p>A pool puts one name in front of several connections: a fallback chain (priority), a load
        balance (weighted), an A/B test, or the fastest member. Clients call it by name like any model.</p>
      <div class="actions start">
        <button type="button" class="primary" onClick=${() => setModal({ kind: "edit", pool: null })}>New pool</button>
        <a class="button" href="#/presets">Start from a preset</a>
      </div></div>`}
    ${pools && pools.map((pool) => html`<${PoolCard} key=${pool.id} pool=${pool} range=${range} version=${version}
      onEdit=${(p) => setModal({ kind: "edit", pool: p })} onDelete=${(p) => setModal({ kind: "delete", pool: p })} />`)}
    ${modal?.kind === "edit" && html`<${PoolEditor} pool=${modal.pool} onClose=${close}
      onSaved=${(saved) => { close(); toast(`${saved.name} saved`); reload(); }} />`}
    ${modal?.kind === "delete" && html`<${Confirm} title=${`Delete ${modal.pool.name}?`}
      message="The pool goes; its member connections stay. Clients calling it by name get 404 from then on."
      onConfirm=${async () => { await api(`/pools/${modal.pool.id}`, { method: "DELETE" }); toast(`${modal.pool.name} deleted`); reload(); }}
      onClose=${close} />`}
  </div>`;
}

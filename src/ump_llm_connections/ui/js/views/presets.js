// Presets: the guide's ready-made stacks. Each card shows what it would create (connections
// and a pool); "Apply" asks only for the keys it needs (never echoed) and an optional prefix.
import { html, useEffect, useState } from "../html.js";
import { api } from "../api.js";
import { Badge, Dialog, Field, Spinner, TypeIcon, toast } from "../components.js";
import { STRATEGIES } from "./pools.js";

const INTEGRATIONS = [["use_in_livekit", "LiveKit"], ["use_in_mcp", "MCP"], ["use_in_automation", "Automation"]];

function Apply({ preset, onApplied, onClose }) {
  const needs = preset.connections.filter((c) => c.needs_api_key);
  const aws = preset.connections.filter((c) => c.needs_aws_region); // Bedrock: region, optional keys
  const [keys, setKeys] = useState({});
  const [form, setForm] = useState({ prefix: "", pool_name: "", aws_region: "", aws_access_key_id: "" });
  const [flags, setFlags] = useState({});
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const body = { api_keys: keys, prefix: form.prefix.trim(), ...flags };
    if (form.pool_name.trim()) body.pool_name = form.pool_name.trim();
    for (const name of ["aws_region", "aws_access_key_id"]) if (form[name].trim()) body[name] = form[name].trim();
    body.api_keys = Object.fromEntries(Object.entries(keys).filter(([, v]) => v)); // an empty AWS secret: the chain
    try {
      onApplied(await api(`/presets/${encodeURIComponent(preset.slug)}/apply`, { method: "POST", body, timeoutMs: 60000 }));
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  const fieldError = (name) => (error?.field === name ? error.message : null);
  const shownBeside = error?.field && (error.field.startsWith("api_keys.") || ["prefix", "pool_name", "aws_region", "aws_access_key_id"].includes(error.field));
  const setField = (name) => (e) => setForm((f) => ({ ...f, [name]: e.target.value }));
  return html`<${Dialog} title=${`Apply ${preset.name}`} onClose=${onClose} labelledBy="preset-apply-title">
    <form class="stack" onSubmit=${submit} novalidate>
      <p class="muted">${preset.connections.length} connections and a pool. Keys are sent once, stored
        encrypted, and never shown again.</p>
      ${needs.map((c) => html`<${Field} key=${c.key} label=${`API key for ${c.name}`} name=${`key-${c.key}`}
          error=${fieldError(`api_keys.${c.key}`)} hint=${`${c.connection_type} · ${c.model_name}`}>
        ${(a) => html`<input ...${a} type="password" autocomplete="off" spellcheck="false" required
          value=${keys[c.key] ?? ""} onInput=${(e) => setKeys((k) => ({ ...k, [c.key]: e.target.value }))} />`}<//>`)}
      ${!needs.length && !aws.length && html`<p>No keys needed: these connections run on this machine.</p>`}
      ${aws.map((c) => html`<fieldset key=${c.key} class="stack"><legend>${c.name}</legend>
        <${Field} label="AWS region" name="preset-aws_region" error=${fieldError("aws_region")} hint=${c.model_name}>
          ${(a) => html`<input ...${a} required placeholder="us-east-1" value=${form.aws_region} onInput=${setField("aws_region")} />`}<//>
        <${Field} label="AWS access key ID (optional)" name="preset-aws_access_key_id" error=${fieldError("aws_access_key_id")}
            hint="Leave it and the secret empty to use the server's AWS credentials">
          ${(a) => html`<input ...${a} class="mono" autocomplete="off" spellcheck="false" value=${form.aws_access_key_id} onInput=${setField("aws_access_key_id")} />`}<//>
        <${Field} label="AWS secret access key (optional)" name=${`key-${c.key}`} error=${fieldError(`api_keys.${c.key}`)}>
          ${(a) => html`<input ...${a} type="password" autocomplete="off" spellcheck="false"
            value=${keys[c.key] ?? ""} onInput=${(e) => setKeys((k) => ({ ...k, [c.key]: e.target.value }))} />`}<//>
      </fieldset>`)}
      <${Field} label="Name prefix (optional)" name="preset-prefix" error=${fieldError("prefix")}
          hint="Put before every name, to apply a preset more than once, e.g. “staging ”">
        ${(a) => html`<input ...${a} maxlength="50" value=${form.prefix} onInput=${(e) => setForm((f) => ({ ...f, prefix: e.target.value }))} />`}<//>
      <${Field} label="Pool name (optional)" name="preset-pool" error=${fieldError("pool_name")} hint=${`Default: ${preset.name}`}>
        ${(a) => html`<input ...${a} maxlength="200" value=${form.pool_name} onInput=${(e) => setForm((f) => ({ ...f, pool_name: e.target.value }))} />`}<//>
      <fieldset class="checks"><legend>Use the connections in</legend>
        ${INTEGRATIONS.map(([key, label]) => html`<label key=${key}><input type="checkbox" checked=${Boolean(flags[key])}
          onChange=${(e) => setFlags((f) => ({ ...f, [key]: e.target.checked }))} /> ${label}</label>`)}
      </fieldset>
      ${error && !shownBeside && html`<p class="error" role="alert">${error.message}</p>`}
      ${error && shownBeside && html`<p class="sr-only" role="alert">${error.message}</p>`}
      <div class="actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button class="primary" disabled=${busy}>${busy ? "Applying…" : "Apply preset"}</button>
      </div>
    </form>
  <//>`;
}

function Preset({ preset, onApply }) {
  const id = `preset-${preset.slug}`;
  return html`<article class="card preset" aria-labelledby=${id}>
    <h2 id=${id}>${preset.name}</h2>
    <p>${preset.description}</p>
    <p><${Badge} kind="integration">${STRATEGIES[preset.strategy]?.[0] ?? preset.strategy}<//>
      <span class="muted"> pool of ${preset.connections.length}</span></p>
    <ol class="preset-connections">${preset.connections.map((c) => html`<li key=${c.key}>
      <${TypeIcon} type=${c.connection_type} /> <strong>${c.name}</strong>
      <span class="mono muted">${c.model_name}</span>${c.needs_api_key && html` <${Badge} kind="tag">needs key<//>`}
    </li>`)}</ol>
    ${preset.skipped.length > 0 && html`<p class="muted">Not created: ${preset.skipped.map((s) => `${s.name} (${s.reason})`).join("; ")}</p>`}
    <div class="actions start">
      <button type="button" class="primary" onClick=${() => onApply(preset)} aria-label=${`Apply ${preset.name}`}>Apply</button>
    </div>
  </article>`;
}

export default function PresetsPage() {
  const [presets, setPresets] = useState(null);
  const [error, setError] = useState(null);
  const [applying, setApplying] = useState(null);
  const [applied, setApplied] = useState(null);
  const load = () => api("/presets").then((p) => { setPresets(p); setError(null); }, setError);
  useEffect(() => { load(); }, []);
  const done = (result) => {
    setApplying(null);
    setApplied(result);
    toast(`${result.connections.length} connections and the pool ${result.pool.name} created`);
  };
  return html`<div class="page">
    <div class="page-head"><h1>Presets</h1></div>
    <p class="muted lead">Ready-made stacks from the guide: each creates its connections and a pool over them in one step.</p>
    ${applied && html`<div class="card notice" role="status">
      <p>Created ${applied.connections.map((c) => c.name).join(", ")} and the pool <strong>${applied.pool.name}</strong>.
        Test them before turning on their integrations.</p>
      <div class="actions start"><a class="button primary" href="#/connections">Go to connections</a>
        <a class="button" href="#/pools">See the pool</a></div></div>`}
    ${error && html`<p class="error" role="alert">Could not load the presets: ${error.message}
      <button type="button" onClick=${load}>Retry</button></p>`}
    ${!presets && !error && html`<p><${Spinner} /> Loading presets…</p>`}
    <div class="presets">${presets?.map((p) => html`<${Preset} key=${p.slug} preset=${p} onApply=${setApplying} />`)}</div>
    ${applying && html`<${Apply} preset=${applying} onApplied=${done} onClose=${() => setApplying(null)} />`}
  </div>`;
}

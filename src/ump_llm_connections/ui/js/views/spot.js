// Spot instances: AWS spot GPU instances that serve a model and register themselves as aws_spot
// connections. A table with each one's state, price and cost so far; Launch and Terminate.
import { html, useEffect, useRef, useState } from "../html.js";
import { api } from "../api.js";
import { onLive } from "../live.js";
import { Badge, Confirm, Dialog, Field, Spinner, fmt, loadStyle, toast } from "../components.js";

loadStyle("forms.css");
loadStyle("spot.css");

const REFRESH_MS = 15000;
// state -> [label, badge kind]
const STATES = {
  pending: ["Pending", "warn"], starting: ["Starting", "warn"], ready: ["Ready", "good"],
  interrupted: ["Interrupted", "bad"], stopping: ["Stopping", "plain"], stopped: ["Stopped", "plain"],
  "shutting-down": ["Shutting down", "plain"], terminated: ["Terminated", "plain"], expired: ["Expired", "bad"],
};
const ENDED = new Set(["terminated", "shutting-down"]);

function StateBadge({ state }) {
  const [label, kind] = STATES[state] ?? [state, "plain"];
  return html`<span class=${`badge ${kind}`} data-state=${state}>${label}</span>`;
}

const price = (value) => (value == null ? "—" : `$${value.toFixed(4)}`);

function Row({ item, onTerminate }) {
  return html`<tr data-spot=${item.name}>
    <th scope="row">${item.connection_id
      ? html`<a href=${`#/connections/${item.connection_id}`}>${item.name}</a>` : item.name}
      <div class="muted mono">${item.aws_instance_id}</div></th>
    <td data-label="State"><${StateBadge} state=${item.state} /></td>
    <td data-label="Region" class="nowrap">${item.region}</td>
    <td data-label="Type"><span class="mono">${item.instance_type}</span></td>
    <td data-label="Model"><span class="mono">${item.model_name}</span></td>
    <td class="num" data-label="Price/h">${price(item.spot_price)}</td>
    <td class="num" data-label="Hours">${item.hours.toFixed(2)}</td>
    <td class="num" data-label="Cost so far">${fmt.cost(item.cost_so_far)}</td>
    <td class="num" data-label="Tokens">${fmt.num(item.tokens_served)}</td>
    <td class="num" data-label="Per 1M tokens">${fmt.cost(item.cost_per_million_tokens)}</td>
    <td data-label="Last reason" class="reason">${item.state_reason ?? "—"}</td>
    <td class="row-actions">${!ENDED.has(item.state) && html`<button type="button" class="danger"
      onClick=${() => onTerminate(item)} aria-label=${`Terminate ${item.name}`}>Terminate</button>`}</td>
  </tr>`;
}

const EMPTY_FORM = {
  name: "", region: "us-east-1", instance_type: "g5.xlarge", image_id: "", launch_template: "",
  model_name: "", port: "8000", max_price: "", subnet_id: "", security_group_ids: "", key_name: "",
  use_in_livekit: false, use_in_mcp: false, use_in_automation: false,
};
const FIELDS = Object.keys(EMPTY_FORM);

// Form values to the API's body: empty fields left out for its defaults; a number typo stays
// text, so the server names the field.
export function launchBody(form) {
  const body = {};
  for (const [key, raw] of Object.entries(form)) {
    if (typeof raw === "boolean") { body[key] = raw; continue; }
    const text = raw.trim();
    if (!text) continue;
    if (key === "security_group_ids") body[key] = text.split(",").map((s) => s.trim()).filter(Boolean);
    else if (key === "port" || key === "max_price") body[key] = Number.isFinite(Number(text)) ? Number(text) : text;
    else body[key] = text;
  }
  return body;
}

function LaunchDialog({ onLaunched, onClose }) {
  const [form, setForm] = useState({ ...EMPTY_FORM });
  const [error, setError] = useState(null); // {field, message}
  const [busy, setBusy] = useState(false);
  const set = (key) => (e) => setForm((f) => ({ ...f, [key]: e.target.type === "checkbox" ? e.target.checked : e.target.value }));
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onLaunched(await api("/compute/spot-instances", { method: "POST", body: launchBody(form), timeoutMs: 60000 }));
    } catch (e) {
      const field = (e.field ?? "").split(".")[0]; // "security_group_ids.1" -> its field
      setError({ field: FIELDS.includes(field) ? field : null, message: e.message, type: e.type });
      setBusy(false);
    }
  };
  const errorOf = (key) => (error?.field === key ? error.message : undefined);
  const text = (key, label, extra = {}) => {
    const { hint, ...attrs } = extra;
    return html`<${Field} label=${label} name=${`spot-${key}`} error=${errorOf(key)} hint=${hint}>
      ${(a) => html`<input ...${a} ...${attrs} value=${form[key]} onInput=${set(key)} />`}<//>`;
  };
  return html`<${Dialog} title="Launch a spot instance" onClose=${onClose} wide labelledBy="spot-launch-title">
    <form class="stack" onSubmit=${submit} novalidate>
      ${error && !error.field && html`<p class="spot-error" role="alert">${error.type === "aws_credentials_missing"
        ? "The server has no AWS credentials: " : ""}${error.message}</p>`}
      ${error?.field && html`<p class="sr-only" role="alert">${error.message}</p>`}
      <div class="grid-2">
        ${text("name", "Name", { required: true, maxlength: 200, hint: "Also its connection's name" })}
        ${text("model_name", "Model", { required: true, class: "mono", hint: "What vLLM serves, e.g. a Hugging Face id" })}
        ${text("region", "Region", { required: true, placeholder: "us-east-1" })}
        ${text("instance_type", "Instance type", { required: true, class: "mono", hint: "A GPU type, e.g. g5.xlarge" })}
        ${text("image_id", "Image id (AMI)", { class: "mono", placeholder: "ami-…", hint: "Or a launch template: one of the two" })}
        ${text("launch_template", "Launch template", { class: "mono", placeholder: "lt-…" })}
        ${text("port", "Port", { type: "number", min: 1, max: 65535, inputmode: "numeric" })}
        ${text("max_price", "Max price ($/h)", { type: "number", min: 0, step: "any", hint: "Empty: up to the on-demand price" })}
        ${text("subnet_id", "Subnet", { class: "mono", placeholder: "subnet-…" })}
        ${text("security_group_ids", "Security groups", { class: "mono", placeholder: "sg-…, sg-…", hint: "Comma-separated" })}
        ${text("key_name", "Key pair name", { autocomplete: "off" })}
      </div>
      <fieldset class="checks">
        <legend>Integrations</legend>
        ${[["use_in_livekit", "Use in LiveKit"], ["use_in_mcp", "Use in MCP"], ["use_in_automation", "Use in Automation"]].map(
          ([key, label]) => html`<label><input type="checkbox" id=${`spot-${key}`} checked=${form[key]} onChange=${set(key)} /> ${label}</label>`)}
      </fieldset>
      <div class="actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button class="primary" disabled=${busy}>${busy ? "Launching…" : "Launch"}</button>
      </div>
    </form>
  <//>`;
}

export default function SpotPage() {
  const [items, setItems] = useState(null);
  const [error, setError] = useState(null);
  const [modal, setModal] = useState(null);
  const generation = useRef(0);
  const reload = async () => {
    const mine = ++generation.current;
    try {
      const list = await api("/compute/spot-instances");
      if (mine !== generation.current) return;
      setItems(list.items);
      setError(null);
    } catch (e) {
      if (mine === generation.current) setError(e);
    }
  };
  useEffect(() => {
    reload();
    const every = setInterval(reload, REFRESH_MS);
    let timer = null;
    const stop = onLive((event) => {
      if (event.type === "poll" || event.type.startsWith("connection.")) {
        clearTimeout(timer);
        timer = setTimeout(reload, 150);
      }
    });
    return () => { clearInterval(every); clearTimeout(timer); stop(); };
  }, []);
  const close = () => setModal(null);
  const launch = () => setModal({ kind: "launch" });
  return html`<div class="page">
    <div class="page-head">
      <h1>Spot instances</h1>
      <button type="button" class="primary" onClick=${launch}>Launch</button>
    </div>
    ${error && html`<p class="error" role="alert">Could not load the spot instances: ${error.message}
      <button type="button" onClick=${reload}>Retry</button></p>`}
    ${!items && !error && html`<p><${Spinner} /> Loading spot instances…</p>`}
    ${items && !items.length && html`<div class="empty">
      <h2>No spot instances yet</h2>
      <p>A spot instance is an AWS EC2 GPU machine rented at the spot price, often far below
        on-demand, that AWS may take back at short notice. Launched from here it starts vLLM with
        your model and becomes an <code>aws_spot</code> connection, active once the model answers
        and out of rotation when AWS interrupts it.</p>
      <p class="muted">The server needs AWS credentials (its environment, profile or instance role)
        allowed to run and terminate EC2 instances.</p>
      <div class="actions start"><button type="button" class="primary" onClick=${launch}>Launch</button></div>
    </div>`}
    ${items && items.length > 0 && html`<div class="table-wrap"><table class="list spot-list">
      <caption class="sr-only">Spot instances, their state and cost</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">State</th><th scope="col">Region</th>
        <th scope="col">Type</th><th scope="col">Model</th><th scope="col" class="num">Price/h</th>
        <th scope="col" class="num">Hours</th><th scope="col" class="num">Cost so far</th>
        <th scope="col" class="num">Tokens</th><th scope="col" class="num">Per 1M tokens</th>
        <th scope="col">Last reason</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${items.map((item) => html`<${Row} key=${item.id} item=${item}
        onTerminate=${(it) => setModal({ kind: "terminate", item: it })} />`)}</tbody>
    </table></div>`}
    ${modal?.kind === "launch" && html`<${LaunchDialog} onClose=${close}
      onLaunched=${(it) => { close(); toast(`${it.name} launched`); reload(); }} />`}
    ${modal?.kind === "terminate" && html`<${Confirm} title=${`Terminate ${modal.item.name}?`} action="Terminate"
      message="AWS ends the instance and its connection is deactivated. Its cost and history stay here."
      onConfirm=${async () => { await api(`/compute/spot-instances/${modal.item.id}`, { method: "DELETE", timeoutMs: 60000 }); toast(`${modal.item.name} terminating`); reload(); }}
      onClose=${close} />`}
  </div>`;
}

// The Add/Edit connection dialog: create, edit and duplicate. The model list and the test run
// on their own, with their own timeouts: the form never waits on an upstream.
import { html, useEffect, useRef, useState } from "../html.js";
import { api } from "../api.js";
import { Dialog, Field, Spinner, TYPES, fmt, loadStyle } from "../components.js";
import {
  DEFAULT_BASE_URLS, NUMBERS, TYPE_FIELDS, changes, createBody, formFrom, parseTags, reachKey,
} from "./dialog-form.js";

loadStyle("dialog.css");

const MODELS_TIMEOUT_MS = 10000;
const TEST_TIMEOUT_MS = 90000;
const KEYLESS = new Set(["local", "remote", "aws_spot", "bedrock"]); // bedrock: the server's AWS chain
const ADVANCED = new Set([...Object.keys(NUMBERS), "probe_mode", "is_active"]);

// Enums from the API's own schema (probe modes, wire formats), read once.
let schema = null;
function enums() {
  schema ??= fetch("/openapi.json").then((r) => r.json()).then((doc) => ({
    probe_mode: doc.components.schemas.ProbeMode?.enum ?? [],
    api_format: doc.components.schemas.ApiFormat?.enum ?? [],
  })).catch(() => { schema = null; return { probe_mode: [], api_format: [] }; });
  return schema;
}

export default function ConnectionEditor({ mode, connection, onSaved, onClose }) {
  const editing = mode === "edit";
  const initial = useRef(formFrom(connection, mode));
  const [form, setForm] = useState(initial.current);
  const [key, setKey] = useState("");
  const [keyAction, setKeyAction] = useState(editing ? "keep" : "replace");
  const [errors, setErrors] = useState({});
  const [problem, setProblem] = useState(null);
  const [saving, setSaving] = useState(false);
  const [options, setOptions] = useState({ probe_mode: [], api_format: [] });
  const formRef = useRef(null);
  const advanced = useRef(null);

  useEffect(() => { enums().then(setOptions); }, []);

  const set = (field) => (event) => {
    const target = event.currentTarget;
    const v = target.type === "checkbox" ? target.checked : target.value;
    setForm((f) => ({ ...f, [field]: v }));
    setErrors((e) => (e[field] ? { ...e, [field]: null } : e));
  };
  const setType = (event) => {
    const type = event.currentTarget.value;
    setForm((f) => {
      const usual = !f.base_url || Object.values(DEFAULT_BASE_URLS).includes(f.base_url);
      return { ...f, connection_type: type, base_url: usual ? DEFAULT_BASE_URLS[type] ?? "" : f.base_url };
    });
  };
  const sendKey = keyAction === "replace" ? key : "";

  // An API error beside its field (the tests and model lists say "connection.<field>" or
  // "changes.<field>"), focused.
  const showError = (error) => {
    const field = (error.field ?? "").replace(/^(connection|changes)\./, "").split(".")[0];
    const target = field && formRef.current?.querySelector(`#cf-${field}`);
    if (target) {
      if (ADVANCED.has(field) && advanced.current) advanced.current.open = true;
      setErrors({ [field]: error.message });
      setProblem(null);
      requestAnimationFrame(() => target.focus());
    } else {
      setProblem(error.message);
    }
  };

  const submit = async (event) => {
    event.preventDefault();
    setSaving(true);
    setErrors({});
    setProblem(null);
    try {
      let saved;
      if (editing) {
        const body = changes(form, initial.current, keyAction, key);
        saved = Object.keys(body).length
          ? await api(`/connections/${connection.id}`, { method: "PATCH", body })
          : connection;
      } else {
        saved = await api("/connections", { method: "POST", body: createBody(form, sendKey) });
      }
      onSaved(saved);
    } catch (error) {
      showError(error);
      setSaving(false);
    }
  };

  const id = (name) => ({ id: `cf-${name}` });
  const field = (name, label, input, hint) => html`<${Field} label=${label} name=${`cf-${name}`}
    error=${errors[name]} hint=${hint}>${(props) => input(props)}<//>`;
  const text = (name, label, { hint, ...attrs } = {}) => field(name, label, (props) => html`<input
    ...${props} ...${attrs} value=${form[name]} onInput=${set(name)} />`, hint);
  const number = (name) => field(name, NUMBERS[name], (props) => html`<input ...${props}
    type="number" step="any" inputmode="decimal" value=${form[name]} onInput=${set(name)} />`);
  const uses = TYPE_FIELDS[form.connection_type] ?? [];
  const title = editing ? `Edit ${connection.name}` : mode === "duplicate" ? `Duplicate ${connection.name}` : "Add Connection";

  return html`<${Dialog} title=${title} onClose=${onClose} wide labelledBy="cf-title">
    <form ref=${formRef} class="editor" onSubmit=${submit} novalidate>
      <div class="editor-grid">
        ${text("name", "Name", { required: true, autocomplete: "off", autofocus: true })}
        ${field("connection_type", "Type", (props) => html`<select ...${props} value=${form.connection_type} onChange=${setType}>
          ${Object.entries(TYPES).map(([value, type]) => html`<option value=${value}>${type.label}</option>`)}
        </select>`)}
        ${text("base_url", "Base URL", { type: "url", placeholder: DEFAULT_BASE_URLS[form.connection_type] ?? "https://…", class: "mono" })}
        <${ModelPicker} form=${form} sendKey=${sendKey} editing=${editing} connection=${connection}
          initial=${initial.current} keyAction=${keyAction} error=${errors.model_name} onInput=${set("model_name")} />
        <${KeyField} editing=${editing} connection=${connection} mode=${mode} action=${keyAction}
          setAction=${setKeyAction} value=${key} setValue=${setKey} error=${errors.api_key}
          aws=${form.connection_type === "bedrock"} />
        ${uses.includes("deployment") && text("deployment", "Deployment", { required: true })}
        ${uses.includes("api_version") && text("api_version", "API version", { placeholder: "2024-10-21", required: true })}
        ${uses.includes("organization_id") && text("organization_id", "Organisation", { hint: "Optional: your OpenAI organisation id" })}
        ${uses.includes("api_format") && field("api_format", "API format", (props) => html`<select ...${props}
          value=${form.api_format} onChange=${set("api_format")}>
          <option value="">Automatic (Ollama on port 11434, else OpenAI)</option>
          ${options.api_format.map((v) => html`<option value=${v}>${v}</option>`)}
        </select>`)}
        ${uses.includes("aws_instance_id") && text("aws_instance_id", "AWS instance ID", { class: "mono" })}
        ${uses.includes("aws_region") && text("aws_region", "AWS region", { placeholder: "us-east-1", required: form.connection_type === "bedrock" })}
        ${uses.includes("aws_access_key_id") && text("aws_access_key_id", "AWS access key ID", {
          class: "mono", autocomplete: "off", spellcheck: "false",
          hint: "With the secret access key in the key field; leave both empty to use the server's AWS credentials" })}
      </div>
      <fieldset class="integrations">
        <legend>Integrations</legend>
        ${[["use_in_livekit", "Use in LiveKit"], ["use_in_mcp", "Use in MCP"], ["use_in_automation", "Use in Automation"]].map(
          ([name, label]) => html`<label class="check"><input type="checkbox" ...${id(name)} checked=${form[name]} onChange=${set(name)} /> ${label}</label>`)}
      </fieldset>
      <div class="editor-grid">
        ${text("tags", "Tags", { hint: "Comma-separated", autocomplete: "off" })}
        ${field("description", "Description", (props) => html`<textarea ...${props} rows="2" value=${form.description} onInput=${set("description")}></textarea>`)}
      </div>
      ${parseTags(form.tags).length > 0 && html`<p class="chips" aria-hidden="true">${parseTags(form.tags).map((t) => html`<span class="badge tag">${t}</span>`)}</p>`}
      <details ref=${advanced} class="advanced">
        <summary>Advanced options</summary>
        <div class="editor-grid narrow">
          ${Object.keys(NUMBERS).map(number)}
          ${field("probe_mode", "Health probe", (props) => html`<select ...${props} value=${form.probe_mode} onChange=${set("probe_mode")}>
            ${(options.probe_mode.length ? options.probe_mode : [form.probe_mode]).map((v) => html`<option value=${v}>${v}</option>`)}
          </select>`, "cheap lists the models; generate sends a tiny prompt")}
          <label class="check"><input type="checkbox" ...${id("is_active")} checked=${form.is_active} onChange=${set("is_active")} /> Active</label>
        </div>
      </details>
      ${problem && html`<p class="error" role="alert">${problem}</p>`}
      <${TestPanel} form=${form} editing=${editing} connection=${connection} sendKey=${sendKey}
        keyAction=${keyAction} initial=${initial.current} showError=${showError} />
      <div class="actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="primary" disabled=${saving}>
          ${saving ? "Saving…" : editing ? "Save changes" : "Create Connection"}
        </button>
      </div>
    </form>
  <//>`;
}

// The key: a password input on create; on edit the mask, with Replace and Clear.
function KeyField({ editing, connection, mode, action, setAction, value, setValue, error, aws }) {
  const label = aws ? "AWS secret access key" : "API Key";
  const input = (props) => html`<input ...${props} type="password" autocomplete="new-password"
    spellcheck="false" class="mono" value=${value} onInput=${(e) => setValue(e.currentTarget.value)} />`;
  if (!editing || action === "replace") {
    const hint = mode === "duplicate" ? "The key is not copied: enter it again."
      : editing ? "The new key replaces the stored one when you save." : "Stored encrypted; never shown again.";
    return html`<div class="key-field">
      <${Field} label=${label} name="cf-api_key" error=${error} hint=${hint}>${input}<//>
      ${editing && html`<button type="button" class="link" onClick=${() => { setValue(""); setAction("keep"); }}>Keep the stored key</button>`}
    </div>`;
  }
  return html`<div class=${error ? "field invalid" : "field"}>
    <span class="label" id="cf-key-label">${label}</span>
    <div class="key-row" role="group" aria-labelledby="cf-key-label">
      <span class="mono key-mask" id="cf-api_key" tabindex="-1">
        ${action === "clear" ? "No key (cleared when you save)" : connection.api_key_mask ?? "No key stored"}
      </span>
      <button type="button" onClick=${() => setAction("replace")}>Replace</button>
      ${action === "clear"
        ? html`<button type="button" onClick=${() => setAction("keep")}>Undo</button>`
        : connection.has_api_key && html`<button type="button" class="danger" onClick=${() => setAction("clear")}>Clear</button>`}
    </div>
    ${error && html`<small class="field-error">${error}</small>`}
  </div>`;
}

// The model input, with the upstream's list as suggestions once it answers (on an edit that
// changes where requests go, the list of the changed settings, asked with the stored key).
function ModelPicker({ form, sendKey, editing, connection, initial, keyAction, error, onInput }) {
  const [list, setList] = useState({ state: "idle", models: [] });
  const reach = reachKey(form, sendKey);
  const saved = editing && keyAction === "keep" && reach === reachKey(initial, "");
  const waitsForKey = !sendKey && !KEYLESS.has(form.connection_type); // no call bound to fail
  const [tries, setTries] = useState(0);
  useEffect(() => {
    const region = form.connection_type === "bedrock" && form.aws_region; // bedrock's URL follows it
    if (!editing && (waitsForKey || (!form.base_url && !DEFAULT_BASE_URLS[form.connection_type] && !region))) {
      setList({ state: "idle", models: [] });
      return undefined;
    }
    const controller = new AbortController();
    const timer = setTimeout(async () => {
      setList((l) => ({ ...l, state: "loading" }));
      try {
        const found = saved
          ? await api(`/connections/${connection.id}/models`, { timeoutMs: MODELS_TIMEOUT_MS, signal: controller.signal })
          : editing ? await api(`/connections/${connection.id}/models`, {
            method: "POST", body: { changes: changes(form, initial, keyAction, sendKey) },
            timeoutMs: MODELS_TIMEOUT_MS, signal: controller.signal,
          })
          : await api("/connections/models", {
            method: "POST", body: { connection: createBody({ ...form, name: "", model_name: "" }, sendKey) },
            timeoutMs: MODELS_TIMEOUT_MS, signal: controller.signal,
          });
        setList({ state: "ok", models: found.models });
      } catch (e) {
        if (!controller.signal.aborted) setList({ state: "error", models: [], message: e.message });
      }
    }, saved ? 0 : 600);
    return () => { clearTimeout(timer); controller.abort(); };
  }, [reach, keyAction, tries]);

  const hint = {
    idle: !editing && waitsForKey ? "The models offered show here once the key is in." : "", loading: html`<${Spinner} label="Loading models" /> Asking the upstream for its models…`,
    ok: list.models.length ? `${list.models.length} models offered${saved ? " (saved settings)" : ""}: type to pick` : "The upstream listed no models",
    error: html`Model list unavailable: ${(list.message ?? "").replace(/\.$/, "")}. <button type="button" class="link" onClick=${() => setTries((t) => t + 1)}>Retry</button>`,
  }[list.state];
  return html`<div class=${error ? "field invalid" : "field"}>
    <label for="cf-model_name">Model</label>
    <input id="cf-model_name" list="cf-models" required autocomplete="off" value=${form.model_name}
      onInput=${onInput} aria-invalid=${error ? "true" : undefined}
      aria-describedby=${error ? "cf-model_name-error cf-model_name-hint" : "cf-model_name-hint"} />
    <datalist id="cf-models">${list.models.map((m) => html`<option value=${m}></option>`)}</datalist>
    <small id="cf-model_name-hint" class="hint" aria-live="polite">${hint}</small>
    ${error && html`<small id="cf-model_name-error" class="field-error">${error}</small>`}
  </div>`;
}

// "Test": the form's configuration before saving. An edit with no change tests the saved
// connection and records the result; one with changes tests them, with the stored key while
// the host stays the same, and records nothing.
function TestPanel({ form, editing, connection, sendKey, keyAction, initial, showError }) {
  const [result, setResult] = useState(null);
  const [running, setRunning] = useState(false);
  const shown = useRef(null);
  useEffect(() => { if (result) shown.current?.scrollIntoView({ block: "nearest" }); }, [result]);
  const edits = editing ? changes(form, initial, keyAction, sendKey) : {};
  const changed = Object.keys(edits).length > 0;
  const run = async () => {
    setRunning(true);
    setResult(null);
    try {
      const found = editing
        ? await api(`/connections/${connection.id}/test`, { method: "POST", body: changed ? { changes: edits } : {}, timeoutMs: TEST_TIMEOUT_MS })
        : await api("/connections/test", { method: "POST", body: { connection: createBody(form, sendKey) }, timeoutMs: TEST_TIMEOUT_MS });
      setResult(found);
    } catch (e) {
      if (e.field) showError(e);
      setResult({ success: false, error: e.message, error_kind: e.type });
    } finally {
      setRunning(false);
    }
  };
  return html`<section class="test-panel" aria-label="Test">
    <div class="test-row">
      <button type="button" onClick=${run} disabled=${running}>${running ? "Testing…" : "Test"}</button>
      <span class="muted">${running ? html`<${Spinner} label="Testing" /> Sending a test prompt…`
        : editing && !changed ? "Tests the saved connection and records the result."
        : editing ? "Tests your changes before saving; nothing is saved or recorded." : "Sends a short prompt; nothing is saved."}</span>
    </div>
    <div aria-live="polite" ref=${shown} class="test-out">
      ${result && (result.success
        ? html`<div class="test-result good">
            <strong>Works.</strong>
            <dl class="facts"><dt>Latency</dt><dd>${fmt.ms(result.latency_ms)}</dd>
              <dt>Time to first token</dt><dd>${fmt.ms(result.ttft_ms)}</dd>
              <dt>Reply</dt><dd class="preview">${result.response_preview || "—"}</dd></dl>
          </div>`
        : html`<div class="test-result bad" role="alert">
            <strong>Test failed${result.error_kind ? ` (${result.error_kind}${result.http_status ? `, HTTP ${result.http_status}` : ""})` : ""}.</strong>
            <p>${result.error}</p>
          </div>`)}
    </div>
  </section>`;
}

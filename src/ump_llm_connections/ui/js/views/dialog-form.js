// The Add/Edit dialog's form as data: a connection to form values, form values to an API body,
// and what an edit changed. No DOM here.

// The usual endpoint of each type, as the server fills it in when base_url is left out
// (domain/connections.py DEFAULT_BASE_URLS; bedrock's follows its region); the rest need one.
export const DEFAULT_BASE_URLS = {
  local: "http://localhost:11434",
  openai: "https://api.openai.com/v1",
  anthropic: "https://api.anthropic.com/v1",
  google: "https://generativelanguage.googleapis.com/v1",
  groq: "https://api.groq.com/openai/v1",
  together: "https://api.together.xyz/v1",
};

// The fields only some types use.
export const TYPE_FIELDS = {
  azure: ["deployment", "api_version"],
  openai: ["organization_id"],
  local: ["api_format"],
  remote: ["api_format"],
  aws_spot: ["api_format", "aws_instance_id", "aws_region"],
  bedrock: ["aws_region", "aws_access_key_id"],
};
const TYPE_ONLY = [...new Set(Object.values(TYPE_FIELDS).flat())];

const TEXT = ["name", "description", "connection_type", "base_url", "model_name",
  "organization_id", "api_version", "deployment", "api_format", "aws_instance_id", "aws_region",
  "aws_access_key_id", "probe_mode"];
export const NUMBERS = {
  timeout: "Timeout (s)", max_retries: "Max retries", temperature: "Temperature",
  max_tokens: "Max tokens", priority: "Priority", weight: "Weight", rpm_limit: "Requests per minute",
  tpm_limit: "Tokens per minute", input_cost_per_million: "Input cost per 1M tokens ($)",
  output_cost_per_million: "Output cost per 1M tokens ($)", monthly_budget: "Monthly budget ($)",
};
export const FLAGS = ["use_in_livekit", "use_in_mcp", "use_in_automation", "is_active"];

const EMPTY = {
  name: "", description: "", connection_type: "openai", base_url: DEFAULT_BASE_URLS.openai,
  model_name: "", organization_id: "", api_version: "", deployment: "", api_format: "",
  aws_instance_id: "", aws_region: "", aws_access_key_id: "", probe_mode: "cheap", tags: "",
  timeout: "60", max_retries: "2", temperature: "", max_tokens: "", priority: "0", weight: "1",
  rpm_limit: "", tpm_limit: "", input_cost_per_million: "", output_cost_per_million: "",
  monthly_budget: "", use_in_livekit: false, use_in_mcp: false, use_in_automation: false,
  is_active: true,
};

// Form values (strings and booleans) from a connection, or the empty form.
export function formFrom(connection, mode) {
  if (!connection) return { ...EMPTY };
  const form = { ...EMPTY };
  for (const key of [...TEXT, ...Object.keys(NUMBERS)]) {
    form[key] = connection[key] == null ? "" : String(connection[key]);
  }
  for (const key of FLAGS) form[key] = Boolean(connection[key]);
  form.tags = (connection.tags ?? []).join(", ");
  if (mode === "duplicate") form.name = `${connection.name} (copy)`;
  return form;
}

export function parseTags(text) {
  return [...new Set(text.split(",").map((t) => t.trim()).filter(Boolean))];
}

// One field's value as the API takes it: "" is null; numbers are numbers (a typo stays text,
// so the server names the field).
function value(form, key) {
  if (key === "tags") return parseTags(form.tags);
  if (FLAGS.includes(key)) return form[key];
  const text = typeof form[key] === "string" ? form[key].trim() : form[key];
  if (text === "") return null;
  if (key in NUMBERS) return Number.isFinite(Number(text)) ? Number(text) : text;
  return text;
}

const ALL = [...TEXT, ...Object.keys(NUMBERS), ...FLAGS, "tags"];

function applies(form, key) {
  return !TYPE_ONLY.includes(key) || (TYPE_FIELDS[form.connection_type] ?? []).includes(key);
}

// The whole body (create, test, model list): empty fields left out for the server's defaults.
export function createBody(form, key) {
  const body = {};
  for (const field of ALL) {
    const v = value(form, field);
    if (v !== null && applies(form, field)) body[field] = v;
  }
  if (key) body.api_key = key;
  return body;
}

// An edit: only the fields that changed. A field the type does not use is left alone, or
// cleared when the type changes (the server then fills in the new type's defaults).
export function changes(form, initial, keyAction, key) {
  const body = {};
  const retyped = form.connection_type !== initial.connection_type;
  for (const field of ALL) {
    if (!applies(form, field) && !retyped) continue;
    const now = applies(form, field) ? value(form, field) : null;
    const before = value(initial, field);
    if (JSON.stringify(now) !== JSON.stringify(before)) body[field] = now;
  }
  if (keyAction === "replace" && key) body.api_key = key;
  if (keyAction === "clear") body.api_key = null;
  return body;
}

// The settings that decide where a request goes: when they change, the model list is stale.
export function reachKey(form, key) {
  const { connection_type, base_url, api_format, deployment, api_version, organization_id } = form;
  const { aws_region, aws_access_key_id } = form;
  return JSON.stringify([connection_type, base_url, api_format, deployment, api_version,
    organization_id, aws_region, aws_access_key_id, key]);
}

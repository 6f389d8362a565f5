// The API's own enums, read from its OpenAPI document (fetched once), so the UI never keeps
// a copy that could drift: enumOf("PoolStrategy"), enumOf("WebhookCreate", "events").
import { headers } from "./api.js";

let loaded = null;

async function spec() {
  loaded ??= fetch("/openapi.json", { headers: headers() })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
    .catch((error) => { loaded = null; throw error; });
  return loaded;
}

export async function enumOf(schema, property) {
  const schemas = (await spec()).components.schemas;
  let node = schemas[schema];
  if (property) node = node.properties[property];
  if (node.items) node = node.items;
  const ref = node.$ref ?? node.anyOf?.find((x) => x.$ref)?.$ref;
  if (ref) node = schemas[ref.split("/").pop()];
  return node.enum ?? [];
}

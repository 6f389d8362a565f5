// The REST API, as every view calls it: one error shape, the tab's token, a timeout per call.
const TOKEN_KEY = "ump.token";

export class ApiError extends Error {
  constructor(status, type, message, field) {
    super(message);
    this.status = status; // 0: no answer
    this.type = type;
    this.field = field ?? null;
  }
}

// The token lives in sessionStorage: this tab only, gone when it closes; never in a URL.
export const auth = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set(token) { sessionStorage.setItem(TOKEN_KEY, token); },
  clear() { sessionStorage.removeItem(TOKEN_KEY); },
};

export function headers(extra = {}) {
  const all = { Accept: "application/json", ...extra };
  if (auth.token) all.Authorization = `Bearer ${auth.token}`;
  return all;
}

// "?a=1&tag=x&tag=y": null, undefined and "" are left out; arrays repeat the key.
export function query(params = {}) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const one of Array.isArray(value) ? value : [value]) {
      if (one !== null && one !== undefined && one !== "") search.append(key, String(one));
    }
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export async function api(path, { method = "GET", body, timeoutMs = 15000, signal } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException("timeout", "TimeoutError")), timeoutMs);
  signal?.addEventListener("abort", () => controller.abort(signal.reason), { once: true });
  let response;
  try {
    response = await fetch(`/api${path}`, {
      method,
      headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: controller.signal,
    });
  } catch (error) {
    if (signal?.aborted) throw error;
    const timedOut = controller.signal.reason?.name === "TimeoutError";
    throw new ApiError(0, timedOut ? "timeout" : "unreachable",
      timedOut ? `no answer within ${Math.round(timeoutMs / 1000)} s` : "the server did not answer");
  } finally {
    clearTimeout(timer);
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data?.error ?? {};
    if (response.status === 401) window.dispatchEvent(new CustomEvent("ump:unauthorized"));
    throw new ApiError(response.status, error.type ?? "http_error",
      error.message ?? `HTTP ${response.status}`, error.field);
  }
  return data;
}

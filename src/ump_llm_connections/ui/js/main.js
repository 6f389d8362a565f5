// The app shell: sign-in when the API asks for a token, navigation, and the page for the hash.
import { html, render, useEffect, useState } from "./html.js";
import { api, auth, ApiError } from "./api.js";
import { Toasts, Spinner } from "./components.js";

// Each page is loaded when first opened, so the connections page ships alone.
const PAGES = {
  connections: { title: "Connections", load: () => import("./views/connections.js") },
  connection: { title: "Connection", load: () => import("./views/detail.js"), hidden: true },
  pools: { title: "Pools", load: () => import("./views/pools.js") },
  spot: { title: "Spot instances", load: () => import("./views/spot.js") },
  usage: { title: "Usage & cost", load: () => import("./views/usage.js") },
  presets: { title: "Presets", load: () => import("./views/presets.js") },
  tokens: { title: "Tokens", load: () => import("./views/admin.js"), admin: true },
  audit: { title: "Audit log", load: () => import("./views/admin.js"), admin: true },
  webhooks: { title: "Webhooks", load: () => import("./views/admin.js") }, // members keep their own
};

// "#/connections/<id>" -> {page: "connection", arg: "<id>"}
export function parseRoute(hash) {
  const [first = "connections", ...rest] = hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  if (first === "connections" && rest.length) return { page: "connection", arg: decodeURIComponent(rest.join("/")) };
  return { page: PAGES[first] ? first : "connections", arg: null };
}

export function navigate(path) { window.location.hash = path; }

function useRoute() {
  const [route, setRoute] = useState(parseRoute(window.location.hash));
  useEffect(() => {
    const changed = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return route;
}

function SignIn({ onSignedIn, failed }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState(failed ? "That token was refused: check it, or ask an admin for a new one." : null);
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    auth.set(token.trim());
    try {
      await api("/connections/summary");
      onSignedIn();
    } catch (e) {
      auth.clear();
      setError(e instanceof ApiError && e.status === 401 ? "That token was refused: check it, or ask an admin for a new one." : e.message);
      setBusy(false);
    }
  };
  return html`<main class="signin" id="main">
    <form class="card" onSubmit=${submit}>
      <h1>LLM Connections</h1>
      <p>This server needs a token. It is kept for this tab only and sent with each request.</p>
      <div class=${error ? "field invalid" : "field"}>
        <label for="token">API token</label>
        <input id="token" type="password" autocomplete="off" required value=${token}
          aria-invalid=${error ? "true" : undefined} aria-describedby=${error ? "token-error" : undefined}
          onInput=${(e) => setToken(e.target.value)} />
        ${error && html`<small id="token-error" class="field-error">${error}</small>`}
      </div>
      <p class="hint">Make one with <code>ump-llm tokens create --name me --role member --team yours</code>.</p>
      <button class="primary" disabled=${busy || !token.trim()}>Sign in</button>
    </form>
  </main>`;
}

function App() {
  const route = useRoute();
  const [session, setSession] = useState({ state: "checking" }); // checking | open | signed-in | signin
  const [Page, setPage] = useState(null);

  const check = async () => {
    try {
      await api("/connections/summary");
      let admin = true;
      try { await api("/tokens"); } catch (e) { admin = !(e instanceof ApiError && e.status === 403); }
      setSession({ state: auth.token ? "signed-in" : "open", admin });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) setSession({ state: "signin", failed: Boolean(auth.token) });
      else setSession({ state: "down", error: e.message });
    }
  };
  useEffect(() => {
    check();
    const refused = () => setSession((now) => (now.state === "signin" ? now : { state: "signin", failed: Boolean(auth.token) }));
    window.addEventListener("ump:unauthorized", refused);
    return () => window.removeEventListener("ump:unauthorized", refused);
  }, []);
  useEffect(() => {
    let current = true;
    setPage(null);
    PAGES[route.page].load().then((module) => { if (current) setPage(() => module.default); });
    document.title = `${PAGES[route.page].title} · LLM Connections`;
    return () => { current = false; };
  }, [route.page]);

  if (session.state === "checking") return html`<p class="boot"><${Spinner} /> Loading…</p>`;
  if (session.state === "signin") return html`<${SignIn} failed=${session.failed} onSignedIn=${check} />`;
  if (session.state === "down") {
    return html`<main class="signin" id="main"><div class="card" role="alert"><h1>LLM Connections</h1>
      <p>The server did not answer: ${session.error}.</p><button class="primary" onClick=${check}>Try again</button></div></main>`;
  }
  const signOut = () => { auth.clear(); setSession({ state: "signin", failed: false }); };
  const links = Object.entries(PAGES).filter(([, p]) => !p.hidden && (!p.admin || session.admin));
  const active = route.page === "connection" ? "connections" : route.page;
  return html`
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/connections">LLM Connections</a>
      <nav aria-label="Sections">
        ${links.map(([key, p]) => html`<a href=${`#/${key}`} aria-current=${key === active ? "page" : undefined}>${p.title}</a>`)}
      </nav>
      ${session.state === "signed-in" && html`<button type="button" class="link" onClick=${signOut}>Sign out</button>`}
    </header>
    <main id="main" tabindex="-1">
      ${Page ? html`<${Page} route=${route} admin=${session.admin} />` : html`<p><${Spinner} /> Loading…</p>`}
    </main>
    <${Toasts} />`;
}

render(html`<${App} />`, document.getElementById("app"));

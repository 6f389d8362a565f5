// Shared pieces: dialogs, badges, fields, toasts, formatting.
import { html, useEffect, useRef, useState } from "./html.js";

// A modal on the native <dialog>: focus moves in and stays (showModal makes the rest inert),
// Escape closes it, and focus goes back where it was.
export function Dialog({ title, onClose, children, wide = false, labelledBy }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    const before = document.activeElement;
    dialog.showModal();
    const cancel = (event) => { event.preventDefault(); onClose(); };
    dialog.addEventListener("cancel", cancel);
    return () => {
      dialog.removeEventListener("cancel", cancel);
      if (dialog.open) dialog.close();
      before?.focus?.();
    };
  }, []);
  const id = labelledBy ?? `dlg-${title.replace(/\W+/g, "-").toLowerCase()}`;
  return html`<dialog ref=${ref} class=${wide ? "dialog wide" : "dialog"} aria-labelledby=${id}>
    <header class="dialog-head">
      <h2 id=${id}>${title}</h2>
      <button type="button" class="icon-button" aria-label="Close" onClick=${onClose}>✕</button>
    </header>
    ${children}
  </dialog>`;
}

export function Confirm({ title, message, action = "Delete", danger = true, onConfirm, onClose }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const go = async () => {
    setBusy(true);
    try { await onConfirm(); onClose(); } catch (e) { setError(e.message); setBusy(false); }
  };
  return html`<${Dialog} title=${title} onClose=${onClose}>
    <p>${message}</p>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <div class="actions">
      <button type="button" onClick=${onClose}>Cancel</button>
      <button type="button" class=${danger ? "danger" : "primary"} disabled=${busy} onClick=${go}>${action}</button>
    </div>
  <//>`;
}

const STATUS = {
  active: "Active", error: "Error", testing: "Testing", inactive: "Inactive", unknown: "Unknown",
};

export function StatusBadge({ status }) {
  return html`<span class="badge status-${status}" data-status=${status}>${STATUS[status] ?? status}</span>`;
}

export function Badge({ children, kind = "plain", title }) {
  return html`<span class=${`badge ${kind}`} title=${title}>${children}</span>`;
}

export const TYPES = {
  local: { label: "Local", icon: "⌂" },
  remote: { label: "Remote", icon: "⇄" },
  aws_spot: { label: "AWS Spot", icon: "☁" },
  openai: { label: "OpenAI", icon: "◎" },
  anthropic: { label: "Anthropic", icon: "✳" },
  google: { label: "Google", icon: "◆" },
  groq: { label: "Groq", icon: "⚡" },
  together: { label: "Together AI", icon: "⊕" },
  azure: { label: "Azure OpenAI", icon: "▲" },
  bedrock: { label: "AWS Bedrock", icon: "◈" },
};

export function TypeIcon({ type }) {
  const known = TYPES[type] ?? { label: type, icon: "•" };
  return html`<span class="type"><span class=${`type-icon t-${type}`} aria-hidden="true">${known.icon}</span>${known.label}</span>`;
}

// A labelled input whose API error shows beside it (aria-invalid, aria-describedby).
export function Field({ label, name, error, hint, children }) {
  const describedBy = [error && `${name}-error`, hint && `${name}-hint`].filter(Boolean).join(" ") || undefined;
  return html`<div class=${error ? "field invalid" : "field"}>
    <label for=${name}>${label}</label>
    ${typeof children === "function" ? children({ id: name, "aria-invalid": error ? "true" : undefined, "aria-describedby": describedBy }) : children}
    ${hint && html`<small id=${`${name}-hint`} class="hint">${hint}</small>`}
    ${error && html`<small id=${`${name}-error`} class="field-error">${error}</small>`}
  </div>`;
}

// Toasts: toast("Saved") from anywhere; read out by screen readers.
const toastListeners = new Set();
export function toast(message, kind = "info") {
  for (const listener of toastListeners) listener({ message, kind, id: Math.random() });
}
export function Toasts() {
  const [items, setItems] = useState([]);
  useEffect(() => {
    const add = (item) => {
      setItems((now) => [...now, item]);
      setTimeout(() => setItems((now) => now.filter((x) => x.id !== item.id)), 5000);
    };
    toastListeners.add(add);
    return () => toastListeners.delete(add);
  }, []);
  return html`<div class="toasts" role="status" aria-live="polite">
    ${items.map((item) => html`<div key=${item.id} class=${`toast ${item.kind}`}>${item.message}</div>`)}
  </div>`;
}

export function Spinner({ label = "Loading" }) {
  return html`<span class="spinner" role="status" aria-label=${label}></span>`;
}

// Formatting.
export const fmt = {
  ms(value) { return value == null ? "—" : value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(1)} s`; },
  num(value) { return value == null ? "—" : new Intl.NumberFormat().format(value); },
  cost(value) { return value == null ? "—" : `$${value < 1 ? value.toFixed(4) : value.toFixed(2)}`; },
  pct(value) { return value == null ? "—" : `${(value * 100).toFixed(1)}%`; },
  ago(iso) {
    if (!iso) return "never";
    const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
    if (seconds < 60) return "just now";
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return `${Math.floor(seconds / 86400)} d ago`;
  },
  date(iso) { return iso ? new Date(iso).toLocaleString() : "—"; },
};

// A page's own stylesheet, loaded with its module: loadStyle("detail.css").
export function loadStyle(name) {
  const href = `/ai-compute/connections/assets/${name}`;
  if (!document.querySelector(`link[href="${href}"]`)) {
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = href;
    document.head.append(link);
  }
}

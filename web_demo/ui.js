// ui.js — small DOM helpers shared by the demo's modules: element builder,
// formatting, toasts and the modal dialogs (one <dialog>, keyboard friendly).

/** document.getElementById shorthand. */
export const $ = (id) => document.getElementById(id);

/**
 * Build an element: el("button", {class: "x", onclick: fn, "aria-label": "y"}, "text", child).
 * Attributes starting with "on" become listeners; `false`/`null` attributes are skipped.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "style" && typeof v === "object") {
      for (const [prop, val] of Object.entries(v)) {
        if (prop.startsWith("--")) node.style.setProperty(prop, val);
        else node.style[prop] = val;
      }
    }
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

/** 1536 -> "1.5 KB". */
export function formatSize(n) {
  if (n === null || n === undefined) return "";
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** Seconds since the epoch -> "just now", "5 min ago", "3 h ago", or a date. */
export function formatAgo(seconds, now = Date.now() / 1000) {
  const d = Math.max(0, now - seconds);
  if (d < 10) return "just now";
  if (d < 60) return `${Math.floor(d)} s ago`;
  if (d < 3600) return `${Math.floor(d / 60)} min ago`;
  if (d < 86400) return `${Math.floor(d / 3600)} h ago`;
  return new Date(seconds * 1000).toLocaleDateString();
}

/** Full local date and time, for tooltips. */
export function formatTime(seconds) {
  return new Date(seconds * 1000).toLocaleString();
}

/** "#e91e63" + alpha 0..1 -> "#e91e6340"-style colour (other CSS colours unchanged). */
export function withAlpha(color, alpha) {
  if (/^#[0-9a-f]{6}$/i.test(color)) {
    return color + Math.round(alpha * 255).toString(16).padStart(2, "0");
  }
  return color;
}

/** Show a short message at the bottom of the page (role=status, announced). */
export function toast(message, kind = "info", ms = 4000) {
  const box = $("toasts");
  const item = el("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  box.append(item);
  setTimeout(() => item.remove(), ms);
}

/** Report a failed action to the user (never to the console: a handled error is not a bug). */
export function reportError(what, err) {
  const detail = err?.code && err.code !== "EHTTP" ? `${err.message} (${err.code})` : (err?.message || String(err));
  toast(`${what}: ${detail}`, "error", 6000);
}

/**
 * Run an async UI action; failures become a toast, so no promise rejection
 * escapes into the console.
 */
export function guard(what, fn) {
  return async (...args) => {
    try {
      return await fn(...args);
    } catch (err) {
      reportError(what, err);
      return undefined;
    }
  };
}

/**
 * The modal dialog: resolves to the entered string (prompt), true (confirm),
 * or null when cancelled (Escape, Cancel).
 */
function openDialog({ title, message, input, okLabel = "OK", danger = false }) {
  const dialog = $("dialog");
  const form = el("form", { method: "dialog", class: "dialog-form" });
  form.append(el("h2", { id: "dialog-title" }, title));
  if (message) form.append(el("p", {}, message));
  let field = null;
  if (input) {
    field = el("input", {
      id: "dialog-input", type: "text", value: input.value || "", "aria-label": input.label,
      autocomplete: "off", spellcheck: "false", required: true,
    });
    form.append(el("label", { for: "dialog-input" }, input.label), field);
  }
  const ok = el("button", { type: "submit", value: "ok", class: danger ? "danger" : "primary", id: "dialog-ok" }, okLabel);
  const cancel = el("button", { type: "button", value: "cancel", id: "dialog-cancel" }, "Cancel");
  form.append(el("div", { class: "dialog-buttons" }, cancel, ok));
  dialog.replaceChildren(form);
  dialog.setAttribute("aria-labelledby", "dialog-title");
  return new Promise((resolve) => {
    let result = null;
    cancel.addEventListener("click", () => dialog.close());
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (field && !field.value.trim()) return;
      result = field ? field.value.trim() : true;
      dialog.close();
    });
    dialog.addEventListener("close", () => resolve(result), { once: true });
    dialog.showModal();
    if (field) {
      field.focus();
      const dot = input.selectStem ? field.value.lastIndexOf(".") : -1;
      field.setSelectionRange(0, dot > 0 ? dot : field.value.length);
    } else {
      ok.focus();
    }
  });
}

/** Ask for a line of text. */
export function promptDialog(title, label, value = "", { okLabel = "OK", message, selectStem = false } = {}) {
  return openDialog({ title, message, okLabel, input: { label, value, selectStem } });
}

/** Ask yes/no. */
export function confirmDialog(title, message, { okLabel = "OK", danger = false } = {}) {
  return openDialog({ title, message, okLabel, danger });
}

/** Save bytes or a Blob as a download named `name`. */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// search.js — the search box above the tree: file names matched locally (the
// tree model holds every path), text matched by the server's grep route.

import { basename } from "./wsfs.js";
import { el, reportError } from "./ui.js";

const MAX_NAMES = 50;
const MAX_LINES = 200;

export class SearchPanel {
  /**
   * @param {HTMLInputElement} input
   * @param {HTMLElement} results  shown instead of the tree while searching
   * @param {HTMLElement} tree     the tree container (hidden while searching)
   * @param {object} deps {client, model, open(path, line)}
   */
  constructor(input, results, tree, { client, model, open }) {
    this.input = input;
    this.results = results;
    this.tree = tree;
    this.client = client;
    this.model = model;
    this.open = open;
    this._timer = 0;
    this._seq = 0;
    input.addEventListener("input", () => {
      clearTimeout(this._timer);
      this._timer = setTimeout(() => this.run(), 250);
    });
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") { this.clear(); ev.preventDefault(); }
      if (ev.key === "Enter") { clearTimeout(this._timer); this.run(); ev.preventDefault(); }
      if (ev.key === "ArrowDown") { this.results.querySelector("button")?.focus(); ev.preventDefault(); }
    });
    results.addEventListener("keydown", (ev) => this._onKey(ev));
  }

  clear() {
    this.input.value = "";
    this._seq++;
    this._show(false);
  }

  _show(searching) {
    this.results.hidden = !searching;
    this.tree.hidden = searching;
  }

  async run() {
    const q = this.input.value.trim();
    const seq = ++this._seq;
    if (!q) { this._show(false); return; }
    const lower = q.toLowerCase();
    const names = [...this.model.entries.values()]
      .filter((e) => e.kind === "file" && basename(e.path).toLowerCase().includes(lower))
      .map((e) => e.path).sort().slice(0, MAX_NAMES);
    let matches = [];
    try {
      matches = await this.client.grep(q, { ignoreCase: true, limit: MAX_LINES });
    } catch (err) {
      reportError("Search failed", err);
    }
    if (seq !== this._seq) return; // a newer search started meanwhile
    this._render(q, names, matches);
    this._show(true);
  }

  _render(q, names, matches) {
    const byPath = new Map();
    for (const m of matches) {
      if (!byPath.has(m.path)) byPath.set(m.path, []);
      byPath.get(m.path).push(m);
    }
    const parts = [el("h3", {}, `Files named “${q}” (${names.length})`)];
    parts.push(names.length
      ? el("ul", {}, names.map((p) => el("li", {}, el("button", { type: "button", class: "result", onclick: () => this.open(p) }, p))))
      : el("p", { class: "muted" }, "None."));
    parts.push(el("h3", {}, `Text matches (${matches.length}${matches.length >= MAX_LINES ? "+" : ""})`));
    if (!matches.length) parts.push(el("p", { class: "muted" }, "None."));
    for (const [path, lines] of byPath) {
      parts.push(el("div", { class: "result-file" }, path));
      parts.push(el("ul", {}, lines.map((m) => el("li", {},
        el("button", { type: "button", class: "result line", onclick: () => this.open(m.path, m.line_number),
          title: `${m.path}:${m.line_number}` },
        el("span", { class: "line-no" }, m.line_number), highlight(m.line.trim(), q))))));
    }
    this.results.replaceChildren(...parts);
  }

  _onKey(ev) {
    const buttons = [...this.results.querySelectorAll("button")];
    const i = buttons.indexOf(document.activeElement);
    if (ev.key === "ArrowDown" && i >= 0) { buttons[i + 1]?.focus(); ev.preventDefault(); }
    if (ev.key === "ArrowUp" && i >= 0) { (i === 0 ? this.input : buttons[i - 1]).focus(); ev.preventDefault(); }
    if (ev.key === "Escape") { this.clear(); this.input.focus(); ev.preventDefault(); }
  }
}

/** The line with each case-insensitive occurrence of `q` in a <mark>. */
function highlight(line, q) {
  const out = [];
  const lower = line.toLowerCase(), needle = q.toLowerCase();
  let at = 0;
  for (let i = lower.indexOf(needle); i >= 0 && needle; i = lower.indexOf(needle, at)) {
    out.push(line.slice(at, i), el("mark", {}, line.slice(i, i + needle.length)));
    at = i + needle.length;
  }
  out.push(line.slice(at));
  return el("span", { class: "line-text" }, out);
}

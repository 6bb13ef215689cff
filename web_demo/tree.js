// tree.js — the live file tree: a model fed by the change stream and an
// accessible view (ARIA tree, roving focus, arrow keys) that flashes what changed.

import { basename, dirname } from "./wsfs.js";
import { el, formatSize } from "./ui.js";

/** Every live path of the workspace, indexed by parent directory. */
export class TreeModel {
  constructor() {
    this.reset();
  }

  reset() {
    this.entries = new Map(); // path -> change entry (file/dir/symlink)
    this.kids = new Map(); // dir path -> Set of child paths
    this.tombstones = new Map(); // path -> its latest delete entry (the last 1000), to say who deleted it
  }

  get(path) { return this.entries.get(path); }

  /** A path is a directory if its entry says so, or if anything lives under it. */
  isDir(path) {
    return path === "/" || this.entries.get(path)?.kind === "dir" || (this.kids.get(path)?.size ?? 0) > 0;
  }

  /** Children of a directory: directories first, then by name. */
  childrenOf(dir) {
    const kids = [...(this.kids.get(dir) || [])];
    return kids.sort((a, b) => {
      const da = this.isDir(a), db = this.isDir(b);
      if (da !== db) return da ? -1 : 1;
      const na = basename(a), nb = basename(b);
      return na < nb ? -1 : na > nb ? 1 : 0;
    });
  }

  _link(path) {
    // Register the path under its parent, and the parent under its own (a
    // parent may arrive later than its child in a coalesced stream).
    while (path !== "/") {
      const parent = dirname(path);
      let set = this.kids.get(parent);
      if (!set) this.kids.set(parent, (set = new Set()));
      if (set.has(path)) return;
      set.add(path);
      path = parent;
    }
  }

  _unlink(path) {
    for (const child of this.kids.get(path) || []) this._unlink(child);
    this.kids.delete(path);
    this.entries.delete(path);
    this.kids.get(dirname(path))?.delete(path);
  }

  /**
   * Apply change entries; returns what happened to each path:
   * [{path, action: "created"|"modified"|"deleted", entry, old}].
   */
  apply(entries) {
    const out = [];
    for (const e of entries) {
      const old = this.entries.get(e.path);
      if (e.kind === "delete") {
        if (!old && !this.kids.has(e.path)) continue;
        this._unlink(e.path);
        this.tombstones.delete(e.path);
        this.tombstones.set(e.path, e);
        if (this.tombstones.size > 1000) this.tombstones.delete(this.tombstones.keys().next().value);
        out.push({ path: e.path, action: "deleted", entry: e, old });
      } else {
        this.entries.set(e.path, e);
        this._link(e.path);
        const same = old && old.kind === e.kind && old.hash === e.hash && old.target === e.target;
        if (!same) out.push({ path: e.path, action: old ? "modified" : "created", entry: e, old });
      }
    }
    return out;
  }
}

const FLASH_MS = 2000; // keep in step with the .flash animation in style.css

// Inline SVG icons (emoji fonts are not everywhere, e.g. headless Linux).
const SVG = {
  dir: '<path d="M1.5 3.5h4.2l1.4 1.5h7.4v8.5h-13z" fill="#54aeff" stroke="#218bff" stroke-width="1"/>',
  open: '<path d="M1.5 3.5h4.2l1.4 1.5h6.4v2H4.2l-2.7 6.5z" fill="#54aeff" stroke="#218bff"/><path d="M4 7h11l-2.6 6.5H1.4z" fill="#80ccff" stroke="#218bff"/>',
  file: '<path d="M3.5 1.5h6l3 3v10h-9z" fill="#fff" stroke="#8c959f"/><path d="M9.5 1.5v3h3" fill="none" stroke="#8c959f"/>',
  symlink: '<path d="M3.5 1.5h6l3 3v10h-9z" fill="#fff" stroke="#8c959f"/><path d="M5.5 10.5l4-4m-3 0h3v3" fill="none" stroke="#0969da" stroke-width="1.3"/>',
};

// A conflict copy, as client_py/conflicts.py names it: NAME.conflict-HOST-YYYYmmdd-HHMMSS.EXT
const CONFLICT_COPY = /^(.+?)\.conflict-(.+)-(\d{8})-(\d{6})(\.[^.]*)?$/s;

/** {original, host, when} of a conflict copy's name, or null for any other name. */
export function parseConflictName(path) {
  const m = CONFLICT_COPY.exec(basename(path));
  if (!m) return null;
  const [, stem, host, day, time, ext = ""] = m;
  const dir = dirname(path);
  const when = `${day.slice(0, 4)}-${day.slice(4, 6)}-${day.slice(6)} ${time.slice(0, 2)}:${time.slice(2, 4)}`;
  return { original: `${dir === "/" ? "" : dir}/${stem}${ext}`, host, when };
}

function icon(kind) {
  const span = el("span", { class: "icon", "aria-hidden": "true" });
  span.innerHTML = `<svg viewBox="0 0 16 16" width="16" height="16">${SVG[kind]}</svg>`;
  return span;
}

/** The ARIA tree view of a TreeModel. */
export class TreeView {
  /**
   * @param {HTMLElement} root   the role=tree container
   * @param {TreeModel} model
   * @param {object} actions     {open(path), rename(path), remove(path), select(path)}
   * @param {string} storageKey  where the expanded folders are remembered
   */
  constructor(root, model, actions, storageKey) {
    this.root = root;
    this.model = model;
    this.actions = actions;
    this.storageKey = storageKey;
    this.expanded = new Set(JSON.parse(sessionStorage.getItem(storageKey) || "[]"));
    this.selected = null;
    this.openPath = null;
    this.peersByFile = new Map(); // path -> [peer]
    this._flash = new Map(); // path -> when its highlight started (ms)
    this._frame = 0;
    root.addEventListener("click", (ev) => this._onClick(ev));
    root.addEventListener("keydown", (ev) => this._onKey(ev));
    root.addEventListener("focus", () => this._focusRow(this.selected ?? this._rows()[0]?.dataset.path));
  }

  /** Re-render soon (once per frame), flashing `paths`. */
  update(paths = []) {
    const now = performance.now();
    for (const p of paths) this._flash.set(p, now);
    if (!this._frame) this._frame = requestAnimationFrame(() => { this._frame = 0; this.render(); });
  }

  /** Expand every folder above `path` so that it is visible. */
  reveal(path) {
    for (let d = dirname(path); d !== "/"; d = dirname(d)) this.expanded.add(d);
    this._saveExpanded();
  }

  select(path, { focus = false } = {}) {
    this.selected = path;
    this.actions.select?.(path);
    this.render();
    if (focus) this._focusRow(path);
  }

  _saveExpanded() {
    sessionStorage.setItem(this.storageKey, JSON.stringify([...this.expanded]));
  }

  _visibleAncestor(path) {
    // The row that shows `path`: itself, or the nearest collapsed folder above it.
    let shown = path;
    for (let d = dirname(path); d !== "/"; d = dirname(d)) {
      if (!this.expanded.has(d)) shown = d;
    }
    return shown;
  }

  render() {
    const hadFocus = this.root.contains(document.activeElement);
    // A re-render must not restart or drop a running highlight: each row gets
    // the time its highlight has already run as a negative animation delay.
    const now = performance.now();
    const flash = new Map();
    for (const [p, start] of this._flash) {
      if (now - start > FLASH_MS) { this._flash.delete(p); continue; }
      const shown = this._visibleAncestor(p);
      flash.set(shown, Math.max(flash.get(shown) ?? 0, start));
    }
    if (this.selected && !this.model.get(this.selected) && !this.model.isDir(this.selected)) {
      this.selected = null;
    }
    const rows = [];
    const walk = (dir, level) => {
      const kids = this.model.childrenOf(dir);
      kids.forEach((path, i) => {
        rows.push(this._row(path, level, i + 1, kids.length, flash.has(path) ? now - flash.get(path) : null));
        if (this.model.isDir(path) && this.expanded.has(path)) walk(path, level + 1);
      });
    };
    walk("/", 1);
    if (!rows.length) rows.push(el("div", { class: "tree-empty" }, "This workspace is empty. Create a file or drop one here."));
    this.root.replaceChildren(...rows);
    const tabbable = this.selected ?? rows[0]?.dataset?.path;
    for (const r of this._rows()) r.tabIndex = r.dataset.path === tabbable ? 0 : -1;
    this.root.tabIndex = this._rows().length ? -1 : 0;
    if (hadFocus) this._focusRow(tabbable);
  }

  _row(path, level, pos, size, flashedFor) {
    const isDir = this.model.isDir(path);
    const entry = this.model.get(path);
    const open = isDir && this.expanded.has(path);
    const peers = this.peersByFile.get(path) || [];
    const kind = isDir ? "dir" : entry?.kind === "symlink" ? "symlink" : "file";
    const row = el("div", {
      role: "treeitem", class: `tree-row${flashedFor !== null ? " flash" : ""}${path === this.openPath ? " is-open" : ""}`,
      "aria-level": level, "aria-posinset": pos, "aria-setsize": size,
      "aria-selected": String(path === this.selected), "aria-expanded": isDir ? String(open) : null,
      "data-path": path, "data-kind": kind, title: path,
      style: flashedFor !== null ? `--level: ${level - 1}; animation-delay: -${Math.round(flashedFor)}ms` : `--level: ${level - 1}`,
    },
    el("span", { class: "twisty", "aria-hidden": "true" }, isDir ? (open ? "▾" : "▸") : ""),
    icon(isDir ? (open ? "open" : "dir") : kind),
    ...this._nameOf(path, kind),
    peers.length ? el("span", { class: "peer-dots", "aria-label": `open by ${peers.map((p) => p.name).join(", ")}` },
      peers.map((p) => el("span", { class: "peer-dot", style: { background: p.color || "#888" }, title: `${p.name} has this open` }))) : null,
    kind === "file" ? el("span", { class: "size" }, formatSize(entry?.size ?? 0)) : null,
    );
    return row;
  }

  /**
   * The name, or for a conflict copy the name it is a copy of and a marker
   * (the long `.conflict-HOST-STAMP` suffix would be cut off in a narrow tree).
   */
  _nameOf(path, kind) {
    const copy = kind === "file" ? parseConflictName(path) : null;
    if (!copy) return [el("span", { class: "name" }, basename(path))];
    const explain = `Conflict copy of ${copy.original}: the edit made on ${copy.host} at ${copy.when} that lost ` +
      `the race. Open both to compare; keep one with: wsfs conflicts resolve ${path} --keep mine|theirs|both`;
    return [
      el("span", { class: "name", title: explain }, basename(copy.original)),
      el("span", { class: "badge conflict-badge", "data-conflict-of": copy.original, title: explain,
        style: { flex: "none", background: "var(--conflict-bg)", color: "var(--warn)" } }, `conflict · ${copy.host}`),
    ];
  }

  _rows() { return [...this.root.querySelectorAll('[role="treeitem"]')]; }

  _focusRow(path) {
    const row = this._rows().find((r) => r.dataset.path === path);
    if (!row) return;
    for (const r of this._rows()) r.tabIndex = r === row ? 0 : -1;
    row.focus();
  }

  _toggle(path, open = !this.expanded.has(path)) {
    if (open) this.expanded.add(path); else this.expanded.delete(path);
    this._saveExpanded();
    this.render();
  }

  _activate(path) {
    if (this.model.isDir(path)) this._toggle(path);
    else this.actions.open(path);
  }

  _onClick(ev) {
    const row = ev.target.closest('[role="treeitem"]');
    if (!row) return;
    const path = row.dataset.path;
    this.selected = path;
    this.actions.select?.(path);
    this._activate(path);
    this._focusRow(path);
  }

  _onKey(ev) {
    const row = ev.target.closest('[role="treeitem"]');
    if (!row) return;
    const rows = this._rows();
    const i = rows.indexOf(row);
    const path = row.dataset.path;
    const isDir = this.model.isDir(path);
    const go = (r) => { if (r) { this.select(r.dataset.path, { focus: true }); } };
    const keys = {
      ArrowDown: () => go(rows[i + 1]),
      ArrowUp: () => go(rows[i - 1]),
      Home: () => go(rows[0]),
      End: () => go(rows[rows.length - 1]),
      ArrowRight: () => {
        if (isDir && !this.expanded.has(path)) { this._toggle(path, true); this._focusRow(path); }
        else if (isDir) go(rows[i + 1]);
      },
      ArrowLeft: () => {
        if (isDir && this.expanded.has(path)) { this._toggle(path, false); this._focusRow(path); }
        else if (dirname(path) !== "/") this.select(dirname(path), { focus: true });
      },
      Enter: () => this._activate(path),
      " ": () => this._activate(path),
      F2: () => this.actions.rename(path),
      Delete: () => this.actions.remove(path),
    };
    const fn = keys[ev.key];
    if (fn) {
      ev.preventDefault();
      this.selected = path;
      fn();
    }
  }
}

// feed.js — "Recent changes": who did what, when, from the live change stream.
// One revision's entries are grouped, and a delete plus a create of the same
// kind in one revision reads as a rename (the stream has no rename event).

import { el, formatAgo, formatTime } from "./ui.js";

const MAX_ITEMS = 60;
const MAX_PER_REV = 6;

const depth = (p) => p.split("/").length;
const under = (p, root) => p === root || p.startsWith(root === "/" ? "/" : root + "/");

/** Tree changes grouped by revision, oldest first: [[change, ...], ...]. */
export function groupByRev(changes) {
  const byRev = new Map();
  for (const c of changes) {
    const rev = c.entry.rev;
    if (!byRev.has(rev)) byRev.set(rev, []);
    byRev.get(rev).push(c);
  }
  return [...byRev].sort((a, b) => a[0] - b[0]).map(([, group]) => group);
}

/** Feed items for one revision's tree changes ([{path, action, entry, old}]). */
export function describeRevision(changes) {
  const deleted = changes.filter((c) => c.action === "deleted");
  const created = changes.filter((c) => c.action === "created");
  const items = [];
  let rest = changes;
  if (deleted.length && created.length) {
    const from = deleted.reduce((a, b) => (depth(b.path) < depth(a.path) ? b : a));
    const to = created.reduce((a, b) => (depth(b.path) < depth(a.path) ? b : a));
    if (from.old && from.old.kind === to.entry.kind && (to.entry.kind !== "file" || from.old.hash === to.entry.hash)) {
      items.push({ verb: "renamed", path: from.path, to: to.path, entry: to.entry, kind: to.entry.kind });
      rest = changes.filter((c) => !(c.action === "deleted" && under(c.path, from.path)) &&
        !(c.action === "created" && under(c.path, to.path)));
    }
  }
  // `mkdir -p a/b && write a/b/f` reads as "created a/b/f", not three lines.
  const createdPaths = rest.filter((c) => c.action === "created").map((c) => c.path);
  rest = rest.filter((c) => !(c.action === "created" && c.entry.kind === "dir" &&
    createdPaths.some((p) => p !== c.path && under(p, c.path))));
  // `rm -r dir` reads as "deleted dir", not one line per file in it.
  const deletedPaths = rest.filter((c) => c.action === "deleted").map((c) => c.path);
  rest = rest.filter((c) => !(c.action === "deleted" &&
    deletedPaths.some((p) => p !== c.path && under(c.path, p))));
  for (const c of rest) {
    const kind = c.action === "deleted" ? c.old?.kind : c.entry.kind;
    const verb = c.action === "deleted" ? "deleted"
      : c.action === "created" ? (kind === "dir" ? "created folder" : "created") : "edited";
    if (kind === "dir" && c.action === "modified") continue; // a folder's mtime moved: noise
    items.push({ verb, path: c.path, entry: c.entry, kind });
  }
  if (items.length > MAX_PER_REV) {
    const more = items.length - (MAX_PER_REV - 1);
    items.splice(MAX_PER_REV - 1, items.length, { verb: `and ${more} more changes`, path: null, entry: items[0].entry });
  }
  return items;
}

export class Feed {
  /**
   * @param {HTMLElement} root  the <ol>
   * @param {object} hooks {open(path), isFile(path), whoOf(entry, path) -> {name, color}}
   */
  constructor(root, hooks) {
    this.root = root;
    this.hooks = hooks;
    this.items = []; // newest first
    this._seq = 0;
    setInterval(() => this.render(), 30000); // keep "n min ago" fresh
    this.render();
  }

  /** Start from the most recent entries of the snapshot (what happened before we came). */
  seed(model) {
    const recent = [...model.entries.values()].filter((e) => e.kind !== "dir")
      .sort((a, b) => b.rev - a.rev).slice(0, 10).reverse();
    for (const e of recent) this._push({ verb: "changed", path: e.path, entry: e, kind: e.kind }, e.mtime);
    this.render();
  }

  /** Add one live batch of tree changes. */
  add(changes) {
    const now = Date.now() / 1000;
    for (const group of groupByRev(changes)) {
      for (const item of describeRevision(group)) this._push(item, now);
    }
    this.render();
  }

  _push(item, when) {
    const who = this.hooks.whoOf(item.entry, item.to ?? item.path);
    this.items.unshift({ ...item, who, when, id: ++this._seq });
    this.items.length = Math.min(this.items.length, MAX_ITEMS);
  }

  render() {
    if (!this.items.length) {
      this.root.replaceChildren(el("li", { class: "feed-empty" }, "No changes yet."));
      return;
    }
    this.root.replaceChildren(...this.items.map((it) => el("li", { class: "feed-item", "data-verb": it.verb.split(" ")[0] },
      el("span", { class: "avatar small", style: { background: it.who.color }, "aria-hidden": "true" }, initial(it.who.name)),
      el("span", { class: "feed-text" },
        el("strong", {}, it.who.name), ` ${it.verb} `,
        it.path ? this._link(it.path, it.kind) : null,
        it.to ? [" → ", this._link(it.to, it.kind)] : null),
      el("time", { datetime: new Date(it.when * 1000).toISOString(), title: formatTime(it.when) }, formatAgo(it.when)))));
  }

  _link(path, kind) {
    if (kind === "dir" || !this.hooks.isFile(path)) return el("code", {}, path);
    return el("button", { type: "button", class: "link", onclick: () => this.hooks.open(path), title: `Open ${path}` }, path);
  }
}

/** First letter of a name, for avatars. */
export function initial(name) {
  return (name || "?").trim().charAt(0).toUpperCase() || "?";
}

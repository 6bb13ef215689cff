// history.js — the open file's retained versions (newest first), each with
// its author when the server keeps one, "View" (side by side with the
// current text) and "Restore".

import { el, formatAgo, formatSize, formatTime, guard, toast } from "./ui.js";

export class HistoryPanel {
  /**
   * @param {HTMLElement} section  the panel (hidden until shown)
   * @param {HTMLElement} list     its <ol>
   * @param {Wsfs} client
   * @param {FileView} fileView
   */
  constructor(section, list, client, fileView, toggle) {
    this.section = section;
    this.list = list;
    this.client = client;
    this.fileView = fileView;
    this.toggleButton = toggle;
    this.visible = false;
    this._timer = 0;
    this._seq = 0;
    toggle.addEventListener("click", () => this.toggle());
  }

  toggle(show = !this.visible) {
    this.visible = show && !!this.fileView.path;
    this.section.hidden = !this.visible;
    this.toggleButton.setAttribute("aria-expanded", String(this.visible));
    if (this.visible) {
      this.refresh();
      this.section.querySelector("h2")?.scrollIntoView({ block: "nearest" });
    }
  }

  /** Reload soon (several changes in a burst cost one request). */
  refreshSoon() {
    if (!this.visible) return;
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this.refresh(), 250);
  }

  async refresh() {
    const path = this.fileView.path;
    if (!this.visible || !path) {
      if (!path) this.toggle(false);
      return;
    }
    const seq = ++this._seq;
    this.section.querySelector(".history-path").textContent = path;
    let versions;
    try {
      versions = await this.client.history(path);
    } catch (err) {
      if (seq === this._seq) this.list.replaceChildren(el("li", { class: "muted" }, `No history: ${err.message}`));
      return;
    }
    if (seq !== this._seq) return;
    if (!versions.length) {
      this.list.replaceChildren(el("li", { class: "muted" }, "No earlier versions are kept."));
      return;
    }
    const current = versions[0];
    this.list.replaceChildren(...versions.map((v) => this._row(path, v, v === current)));
  }

  _row(path, v, isCurrent) {
    const canWrite = this.fileView.hooks.canWrite();
    const restore = async () => {
      await this.client.restore(path, v.rev);
      toast(`Restored ${path} to revision ${v.rev}`, "ok", 2500);
    };
    const label = versionLabel(path, v);
    // One line per version, cut with an ellipsis rather than wrapped; the whole text is in the tooltip.
    const author = v.author ? ` · ${v.author}` : "";
    const summary = `rev ${v.rev}${isCurrent ? " (current)" : ""} · ${label}${author} · ${formatTime(v.mtime)}`;
    return el("li", { class: "version", "data-rev": v.rev },
      el("span", { class: "version-text", title: summary,
        style: { flex: "1 1 0", whiteSpace: "nowrap", overflow: "hidden", textOverflow: "ellipsis", minWidth: "0" } },
        el("strong", {}, `rev ${v.rev}`), isCurrent ? el("span", { class: "badge" }, "current") : null,
        el("span", { class: "muted" }, ` · ${label} · `),
        v.author ? el("span", { class: "version-author" }, `${v.author} · `) : null,
        el("time", { title: formatTime(v.mtime), datetime: new Date(v.mtime * 1000).toISOString() }, formatAgo(v.mtime))),
      el("span", { class: "version-buttons" },
        v.kind === "file" && !isCurrent
          ? el("button", { type: "button", class: "small", onclick: guard("Preview failed", () => this.fileView.previewVersion(v, restore)) }, "View")
          : null,
        v.kind === "file" && !isCurrent && canWrite
          ? el("button", { type: "button", class: "small", onclick: guard("Restore failed", restore) }, "Restore")
          : null));
  }
}

/** What a version row says besides its revision: a rename or move names the other path (it holds no content). */
export function versionLabel(path, v) {
  if (v.kind === "delete") return "deleted";
  if (v.kind === "move") return `moved to ${v.origin}`;
  const size = formatSize(v.size);
  if (v.origin && v.origin !== v.path) return `${size} · renamed from ${v.origin}`;
  if (v.path !== path) return `${size} · as ${v.path}`;
  return size;
}

// fileview.js — the open file: a CodeMirror editor (or an image / file info
// card). A text file up to COEDIT_MAX_BYTES is co-edited live (coedit.js:
// everyone's typing merges, the server saves it). Larger text files keep
// conditional saves with If-Match, live updates that keep the cursor, the
// conflict banner (reload / overwrite / compare side by side) and the other
// people's cursors.

import {
  EditorView, EditorState, basicSetup, keymap, languageFor, MergeView, Transaction, oneDark,
} from "./vendor/codemirror.js";
import { peerCursorField, peerCursorsEffect } from "./cursors.js";
import { COEDIT_MAX_BYTES, SharedText } from "./coedit.js";
import { basename } from "./wsfs.js";
import { $, el, formatSize, formatAgo, formatTime, toast, reportError, guard, saveBlob, confirmDialog } from "./ui.js";

// Above this a file is shown as an info card, not edited. It is twice the co-editing limit, so
// text files between the two are still edited here, saved with If-Match as the help text says.
const LARGE = 2 * COEDIT_MAX_BYTES;

/** Shown as a picture (SVG is text: it opens in the editor). */
function isImage(type) {
  return type.startsWith("image/") && !type.startsWith("image/svg");
}

/** Bytes -> string when they are UTF-8 text without NUL bytes, else null. */
export function decodeText(bytes) {
  if (bytes.includes(0)) return null;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

// ------------------------------------------------------------ the view

export class FileView {
  /**
   * @param {Wsfs} client
   * @param {TreeModel} model
   * @param {object} hooks {canWrite(), authorOf(entry), opened(path|null), asMine(marks, write), onSaved(path)}
   */
  constructor(client, model, hooks) {
    this.client = client;
    this.model = model;
    this.hooks = hooks;
    this.path = null;
    this.mode = "none"; // none | loading | text | image | info
    this.view = null;
    this.merge = null;
    this._comparing = null; // what the side-by-side view shows: null | "conflict" | "history"
    this.baseHash = null; // content id the editor text is based on
    this.baseDoc = null; // that text, as a CodeMirror Text
    this.remote = null; // {hash, author, refused} when the server copy moved away from base
    this.shared = null; // the SharedText when the open file is co-edited live
    // `?coedit=off` keeps every text file on If-Match saves (to try or test that flow)
    this.live = new URLSearchParams(globalThis.location?.search || "").get("coedit") !== "off";
    this.deleted = false;
    this.saving = false;
    this._reconciling = false;
    this._recheck = false;
    this._seq = 0;
    this._peers = [];
    this._cursorTimer = 0;
    this._objectUrl = null;
    this.el = {
      body: $("file-body"), banner: $("banner"), path: $("file-path"), viewers: $("file-viewers"),
      status: $("file-status"), save: $("save-btn"), history: $("history-btn"),
      download: $("download-btn"), close: $("close-btn"), actions: $("file-actions"),
    };
    this.el.save.addEventListener("click", guard("Save failed", () => this.save()));
    this.el.download.addEventListener("click", guard("Download failed", () => this.download()));
    this.el.close.addEventListener("click", guard("Close failed", () => this.close()));
    this.el.body.replaceChildren(emptyPlaceholder());
    this.updateHeader();
  }

  // ------------------------------------------------------------ state

  isDirty() {
    if (this.shared && !this.shared.closedError) return false; // the server saves it
    return this.mode === "text" && !!this.view && (this.deleted || !this.view.state.doc.eq(this.baseDoc));
  }

  /** The text in the editor (the "mine" side while comparing). */
  text() {
    if (this._comparing === "conflict") return this.merge.a.state.doc.toString();
    return this.view ? this.view.state.doc.toString() : null;
  }

  // ----------------------------------------------------------- opening

  /** Open `path` (asks first when there are unsaved edits). Resolves to false if the user declined. */
  async open(path, { force = false } = {}) {
    if (path === this.path && !force) return true;
    const question = `${this.path} has unsaved changes. Open ${path} anyway and lose them?`;
    if (path !== this.path && !await this._mayDiscard(question)) return false;
    const seq = this._show(path, "loading", el("div", { class: "placeholder" }, "Loading…"));
    try {
      await this._load(path, seq);
    } catch (err) {
      if (seq !== this._seq) return true;
      this.mode = "info";
      this.el.body.replaceChildren(el("div", { class: "placeholder error" }, `Could not open ${path}: ${err.message}`));
      this.updateHeader();
    }
    return true;
  }

  async _load(path, seq) {
    const entry = this.model.get(path);
    if (entry && entry.size > LARGE) {
      const head = await this.client.headFile(path);
      if (seq !== this._seq) return;
      this._showInfo(path, head, null, "This file is too large to edit in the browser.");
      return;
    }
    const file = await this.client.readFile(path);
    if (seq !== this._seq) return;
    if (isImage(file.type)) {
      this._showImage(path, file);
      return;
    }
    const text = decodeText(file.bytes);
    if (text === null) this._showInfo(path, file, file.bytes, "Binary file: not shown as text.");
    else if (this.live && file.bytes.length <= COEDIT_MAX_BYTES) await this._showShared(path, text, file.hash, seq);
    else this._showText(path, text, file.hash, "Too large to edit together live: save with Ctrl+S (⌘S).");
  }

  /** Join the file's shared document and edit it live; falls back to If-Match saves if the server refuses. */
  async _showShared(path, text, hash, seq) {
    const shared = new SharedText(this.client, path, {
      user: this.client.presence || {},
      onStatus: () => { if (this.shared === shared) this.updateHeader(); },
      onClosed: (err) => { if (this.shared === shared) this._sharedEnded(err); },
    });
    this.shared = shared;
    try {
      await shared.ready;
    } catch (err) {
      if (seq !== this._seq) return;
      this.shared = null;
      shared.close();
      this._showText(path, text, hash, `Not edited live: ${err.message}`);
      return;
    }
    if (seq !== this._seq || this.shared !== shared) return;
    this._showText(path, shared.ytext.toString(), hash);
  }

  /** The live document ended (deleted, renamed, grown too large, now binary): show what the file is now. */
  _sharedEnded(err) {
    if (err.code === "ENOENT" && this.model.get(this.path) === undefined) {
      this.reconcile(); // deleted: the usual banner offers to save this copy or restore
      return;
    }
    this.open(this.path, { force: true }).catch((e) => reportError(`Could not reopen ${this.path}`, e));
  }

  _teardown() {
    clearTimeout(this._cursorTimer);
    this.shared?.close();
    this.shared = null;
    this._exitCompare(false);
    this.view?.destroy();
    this.view = null;
    if (this._objectUrl) URL.revokeObjectURL(this._objectUrl);
    this._objectUrl = null;
  }

  /** Close the open file (asks first when there are unsaved edits, unless `ask` is false). */
  async close({ ask = true } = {}) {
    if (ask && !await this._mayDiscard(`Close ${this.path} and lose your changes?`)) return;
    this._show(null, "none", emptyPlaceholder());
  }

  /** True when nothing unsaved would be lost, or the user agreed to lose it (`question` says what is at stake). */
  async _mayDiscard(question) {
    if (!this.isDirty()) return true;
    return confirmDialog("Discard unsaved changes?", question, { okLabel: "Discard", danger: true });
  }

  /** Drop the shown file and show `path` (null: none) in `mode` with `body`; returns the new load sequence
   *  number (a load started for an earlier one finds it stale and stops). */
  _show(path, mode, body) {
    const seq = ++this._seq;
    this._teardown();
    this.path = path;
    this.mode = mode;
    this.deleted = false;
    this.remote = null;
    this._hideBanner();
    this.el.body.replaceChildren(body);
    this.updateHeader();
    this.hooks.opened(path);
    return seq;
  }

  _extensions(path, { readOnly = false } = {}) {
    return [
      basicSetup,
      matchMedia("(prefers-color-scheme: dark)").matches ? oneDark : [],
      languageFor(basename(path)),
      EditorView.contentAttributes.of({ "aria-label": `Contents of ${path}` }),
      EditorState.readOnly.of(readOnly),
      EditorView.editable.of(!readOnly),
    ];
  }

  _showText(path, text, hash, note = null) {
    this.mode = "text";
    this.baseHash = hash;
    const readOnly = !this.hooks.canWrite();
    const state = EditorState.create({
      doc: text,
      extensions: [
        keymap.of([{ key: "Mod-s", preventDefault: true, run: () => { this.save().catch((e) => reportError("Save failed", e)); return true; } }]),
        this._extensions(path, { readOnly }),
        this.shared ? this.shared.extension() : peerCursorField,
        EditorView.updateListener.of((u) => this._onUpdate(u)),
      ],
    });
    this.baseDoc = state.doc;
    const host = el("div", { class: "editor-host" });
    this.el.body.replaceChildren(host);
    this.view = new EditorView({ state, parent: host });
    this._applyPeerCursors();
    this.updateHeader();
    if (note) this._notice(note);
  }

  _showImage(path, file) {
    this.mode = "image";
    this.baseHash = file.hash;
    this._objectUrl = URL.createObjectURL(new Blob([file.bytes], { type: file.type }));
    const meta = el("p", { class: "meta" }, `${file.type} · ${formatSize(file.size)}`);
    const img = el("img", { src: this._objectUrl, alt: `Image ${basename(path)}`, class: "preview-image" });
    img.addEventListener("load", () => {
      meta.textContent += ` · ${img.naturalWidth}×${img.naturalHeight}`;
      const zoom = Math.floor(160 / Math.max(img.naturalWidth, img.naturalHeight, 1));
      if (zoom > 1) { // an icon-sized image: show it bigger, with crisp pixels
        img.style.width = `${img.naturalWidth * zoom}px`;
        img.classList.add("pixelated");
        meta.textContent += ` (shown ×${zoom})`;
      }
    });
    this.el.body.replaceChildren(el("div", { class: "image-view" }, img, meta));
    this.updateHeader();
  }

  _showInfo(path, file, bytes, why) {
    this.mode = "info";
    this.baseHash = file.hash;
    const entry = this.model.get(path);
    const rows = [
      ["Size", `${formatSize(file.size)} (${file.size.toLocaleString()} bytes)`],
      ["Type", file.type],
      ["Content id", file.hash || "—"],
      ["Modified", entry ? formatTime(entry.mtime) : "—"],
    ];
    const card = el("div", { class: "info-card" },
      el("h2", {}, basename(path)),
      el("p", {}, why),
      el("dl", {}, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
      el("button", { class: "primary", onclick: guard("Download failed", () => this.download()) }, "Download"));
    if (bytes && bytes.length) card.append(el("pre", { class: "hexdump", "aria-label": "First bytes" }, hexdump(bytes.subarray(0, 256))));
    this.el.body.replaceChildren(card);
    this.updateHeader();
  }

  // ------------------------------------------------------------- editing

  _onUpdate(u) {
    if (u.docChanged) {
      this.updateHeader();
      // Back at the server's version with a conflict pending: nothing is lost
      // by taking the new version now.
      if (this.remote && !this.isDirty()) this.reconcile();
    }
    if (u.selectionSet && u.view.hasFocus && !this.shared) this._scheduleCursor(); // shared: awareness carries it
  }

  _scheduleCursor() {
    clearTimeout(this._cursorTimer);
    this._cursorTimer = setTimeout(() => {
      if (!this.view) return;
      const { anchor, head } = this.view.state.selection.main;
      this.client.setPresence({ cursor: { anchor, head } });
    }, 120);
  }

  /** Replace the editor text with `text` as one minimal change, so cursor and scroll stay put. */
  _setText(view, text, { history = false } = {}) {
    const old = view.state.doc.toString();
    if (old === text) return;
    let start = 0;
    const max = Math.min(old.length, text.length);
    while (start < max && old.charCodeAt(start) === text.charCodeAt(start)) start++;
    let end = 0;
    while (end < max - start && old.charCodeAt(old.length - 1 - end) === text.charCodeAt(text.length - 1 - end)) end++;
    view.dispatch({
      changes: { from: start, to: old.length - end, insert: text.slice(start, text.length - end) },
      annotations: [Transaction.remote.of(true), Transaction.addToHistory.of(history)],
    });
  }

  /** Save with If-Match (the content id this text is based on). */
  async save() {
    if (this.mode !== "text" || !this.hooks.canWrite() || !this.isDirty() && this.shared) return; // live: saved by the server
    if (this.saving) { this._saveAgain = true; return; } // once this one is done
    if (this._comparing === "conflict") return this.overwrite(); // "Save my version"
    if (this._comparing === "history") { // a preview of an old version: save the editor's text
      this._exitCompare(false);
      this._hideBanner();
    }
    if (!this.isDirty() && !this.remote) return; // nothing to save
    await this._write(this.baseHash, "Saved");
  }

  /** Write the editor text if the server still has `expected` (null: must not exist). */
  async _write(expected, doneMessage) {
    if (this.saving) return;
    this.saving = true;
    this.updateHeader();
    const path = this.path;
    const doc = this._comparing === "conflict" ? this.merge.a.state.doc : this.view.state.doc;
    try {
      const opts = expected ? { ifMatch: expected } : { ifNoneMatch: true, parents: true };
      const stat = await this.hooks.asMine({ [path]: "stat" }, () => this.client.writeFile(path, doc.toString(), opts));
      if (path !== this.path) return;
      if (this._comparing === "conflict") this._exitCompare(true);
      this.baseHash = stat.hash;
      this.baseDoc = doc;
      this.remote = null;
      this.deleted = false;
      this._hideBanner();
      toast(`${doneMessage} ${path}`, "ok", 2500);
      this.hooks.onSaved?.(path);
    } catch (err) {
      if (err.code === "EPRECONDITION" && path === this.path) {
        const entry = this.model.get(path);
        const author = entry && entry.hash === err.current ? this.hooks.authorOf(entry) : "Someone";
        this._conflict({ hash: err.current ?? null, author, refused: true });
      } else {
        throw err;
      }
    } finally {
      this.saving = false;
      this.updateHeader();
      if (this._saveAgain) {
        this._saveAgain = false;
        if (!this.remote) this.save().catch((e) => reportError("Save failed", e));
      }
      this.reconcile();
    }
  }

  /** Save "mine" over whatever the server has now (conditional on the new ETag). */
  async overwrite() {
    if (!this.remote) return this._write(this.baseHash, "Saved");
    await this._write(this.remote.hash, "Overwrote");
  }

  /** Throw away local edits and load the server's version. */
  async reload() {
    const server = await this._serverText(this.path);
    if (!server) return;
    this._exitCompare(false);
    this._adopt(server, { history: true });
  }

  /** The server's current text of the open `path` as {text, hash}, or null: when another file was opened
   *  meanwhile, or when the content is no longer text (then it is opened anew, as whatever it now is). */
  async _serverText(path) {
    const file = await this.client.readFile(path);
    if (path !== this.path) return null;
    const text = decodeText(file.bytes);
    if (text === null || isImage(file.type)) {
      await this.open(path, { force: true });
      return null;
    }
    return { text, hash: file.hash };
  }

  /** Put the server's text in the editor as its new base: afterwards nothing is unsaved and no banner is up. */
  _adopt({ text, hash }, setOptions = {}) {
    this._setText(this.view, text, setOptions);
    this.baseHash = hash;
    this.baseDoc = this.view.state.doc;
    this.remote = null;
    this.deleted = false;
    this._hideBanner();
    this.updateHeader();
  }

  // ------------------------------------------------------ live updates

  /**
   * Bring the view in line with the tree model's entry for the open file:
   * update in place when there are no local edits, else raise the banner.
   * Serialised: a call during a save or a fetch runs again afterwards.
   */
  async reconcile() {
    if (!this.path || this.mode === "none" || this.mode === "loading") return;
    if (this.saving || this._reconciling) { this._recheck = true; return; }
    this._reconciling = true;
    try {
      await this._reconcileOnce();
    } catch (err) {
      reportError(`Could not refresh ${this.path}`, err);
    } finally {
      this._reconciling = false;
      if (this._recheck) { this._recheck = false; this.reconcile(); }
    }
  }

  async _reconcileOnce() {
    const path = this.path;
    const entry = this.model.get(path);
    if (!entry) {
      if (!this.deleted) this._onDeleted();
      return;
    }
    if (entry.kind !== "file") return;
    if (this.shared && !this.shared.closedError) { // the live document merges every write itself
      this.baseHash = entry.hash;
      return;
    }
    if (this.deleted) { // it is back (restored or recreated): compare with what we have
      this.deleted = false;
      this.remote = null;
      this._hideBanner();
      this.updateHeader();
    }
    if (entry.hash === this.baseHash) {
      if (this.remote) { this.remote = null; this._hideBanner(); this.updateHeader(); }
      return;
    }
    const author = this.hooks.authorOf(entry);
    if (this.mode !== "text") {
      await this.open(path, { force: true });
      this._notice(author === "Someone" ? "Updated just now" : `Updated by ${author}`);
      return;
    }
    if (this.isDirty() || this._comparing === "conflict") {
      if (this.remote?.hash !== entry.hash) this._conflict({ hash: entry.hash, author, refused: false });
      return;
    }
    const server = await this._serverText(path);
    if (!server) return;
    if (this.isDirty()) { // typed while we fetched
      this._conflict({ hash: server.hash, author, refused: false });
      return;
    }
    this._adopt(server);
    this._notice(author === "Someone" ? "Updated just now" : `Updated by ${author}`);
  }

  _onDeleted() {
    this.deleted = true;
    // the delete of this path, or of a folder above it
    let tomb = null;
    for (let p = this.path; p !== "/" && !tomb; p = p.slice(0, p.lastIndexOf("/")) || "/") tomb = this.model.tombstones.get(p);
    const author = tomb ? this.hooks.authorOf(tomb) : "Someone";
    this.remote = { hash: null, author, refused: false };
    const write = this.hooks.canWrite() && this.mode === "text";
    this._showBanner(`${author} deleted ${this.path}.`, [
      write ? ["Save my copy", () => this._write(null, "Recreated"), "primary"] : null,
      this.hooks.canWrite() ? ["Restore last version", () => this._restoreLatest()] : null,
      ["Close", () => this.close()],
    ]);
    this.updateHeader();
  }

  async _restoreLatest() {
    const versions = await this.client.history(this.path);
    const last = versions.find((v) => v.kind === "file");
    if (!last) throw new Error("no earlier version is kept");
    await this.client.restore(this.path, last.rev);
  }

  _conflict({ hash, author, refused }) {
    this.remote = { hash, author, refused };
    if (hash === null) { this._onDeleted(); return; }
    const msg = refused
      ? `Not saved: ${author} saved ${basename(this.path)} after you opened it.`
      : `${author} changed ${basename(this.path)} while you were editing.`;
    const buttons = this._comparing === "conflict"
      ? [["Save my version", () => this.overwrite(), "primary"], ["Take theirs", () => this.reload()],
         ["Back to editor", () => { this._exitCompare(true); this._conflict(this.remote); }]]
      : [["Reload theirs", () => this.reload()], ["Overwrite with mine", () => this.overwrite(), "danger"],
         ["Compare side by side", () => this.compare(), "primary"]];
    this._showBanner(msg, buttons, "conflict");
    this.updateHeader();
  }

  // ----------------------------------------------------------- compare

  /** Show mine (editable) next to the server's version, with per-chunk "take theirs" arrows. */
  async compare() {
    if (!this.remote || this.mode !== "text") return;
    const path = this.path;
    const file = await this.client.readFile(path);
    if (path !== this.path) return;
    const theirs = decodeText(file.bytes) ?? "";
    this.remote.hash = file.hash;
    this._enterCompare({
      left: { title: "Your version (unsaved)", doc: this.view.state.doc.toString(), editable: true },
      right: { title: `Saved version — ${this.remote.author}`, doc: theirs },
      revert: "b-to-a", kind: "conflict",
    });
    this._conflict(this.remote);
  }

  /** Side-by-side view; `left` becomes MergeView side a, `right` side b. */
  _enterCompare({ left, right, revert, kind }) {
    this._exitCompare(false);
    const host = el("div", { class: "merge-host" });
    const titles = el("div", { class: "merge-titles" },
      el("div", { class: "merge-title mine" }, left.title), el("div", { class: "merge-title theirs" }, right.title));
    const wrap = el("div", { class: "merge-wrap" }, titles, host);
    this.view.dom.parentElement.hidden = true;
    this.el.body.append(wrap);
    this.merge = new MergeView({
      a: { doc: left.doc, extensions: this._extensions(this.path, { readOnly: !left.editable }) },
      b: { doc: right.doc, extensions: this._extensions(this.path, { readOnly: true }) },
      parent: host,
      revertControls: revert,
      highlightChanges: true,
      gutter: true,
    });
    this._mergeEditable = !!left.editable;
    this._comparing = kind; // "conflict": mine vs theirs; "history": an old version vs the editor
    this.updateHeader();
  }

  /** Leave the side-by-side view; `keep`: copy the edited left side back into the editor. */
  _exitCompare(keep) {
    if (!this.merge) return;
    const text = this.merge.a.state.doc.toString();
    this.merge.destroy();
    this.merge = null;
    this._comparing = null;
    this.el.body.querySelector(".merge-wrap")?.remove();
    if (this.view) {
      this.view.dom.parentElement.hidden = false;
      if (keep && this._mergeEditable) this._setText(this.view, text, { history: true });
    }
    this.updateHeader();
  }

  /** Preview an old version next to the current text (from the history panel). */
  async previewVersion(version, restore) {
    const file = await this.client.readFile(this.path, { rev: version.rev });
    const text = decodeText(file.bytes);
    if (text === null || this.mode !== "text") {
      saveBlob(new Blob([file.bytes]), `${basename(this.path)}@${version.rev}`);
      return;
    }
    this._enterCompare({
      left: { title: `Version at revision ${version.rev} (${formatAgo(version.mtime)})`, doc: text },
      right: { title: "Current text", doc: this.view.state.doc.toString() },
      revert: undefined, kind: "history",
    });
    this._showBanner(`Viewing revision ${version.rev} of ${basename(this.path)}.`, [
      this.hooks.canWrite() ? ["Restore this version", async () => { this._exitCompare(false); this._hideBanner(); await restore(); }, "primary"] : null,
      ["Back to editor", () => { this._exitCompare(false); this._hideBanner(); if (this.remote) this._conflict(this.remote); }],
    ], "info");
  }

  /** Select line `n` (1-based) of the open text and bring it into view. */
  goToLine(n) {
    if (this.mode !== "text" || !this.view) return;
    const line = this.view.state.doc.line(Math.max(1, Math.min(n, this.view.state.doc.lines)));
    this.view.dispatch({ selection: { anchor: line.from, head: line.to }, scrollIntoView: true });
    this.view.focus();
  }

  // ----------------------------------------------------------- presence

  /** Peers that have this file open: chips in the header, carets in the editor. */
  setPeers(peers) {
    this._peers = peers;
    this.shared?.setUser(this.client.presence || {}); // presence changes include our own rename
    this.el.viewers.replaceChildren(...peers.map((p) =>
      el("span", { class: "chip", style: { "--peer": p.color || "#888" }, title: `${p.name} has this file open` },
        el("span", { class: "dot", "aria-hidden": "true" }), p.name || "?")));
    this.el.viewers.setAttribute("aria-label", peers.length ? `Also here: ${peers.map((p) => p.name).join(", ")}` : "");
    this._applyPeerCursors();
  }

  _applyPeerCursors() {
    if (!this.view || this.shared) return; // shared: yCollab draws the carets from awareness
    this.view.dispatch({ effects: peerCursorsEffect(this._peers, this.view.state.doc.length) });
  }

  // ------------------------------------------------------------- chrome

  async download() {
    if (!this.path) return;
    const file = await this.client.readFile(this.path);
    saveBlob(new Blob([file.bytes], { type: file.type }), basename(this.path));
  }

  _notice(text) {
    this.el.status.textContent = text;
    this.el.status.dataset.state = "updated";
    clearTimeout(this._noticeTimer);
    this._noticeTimer = setTimeout(() => this.updateHeader(), 3000);
  }

  updateHeader() {
    const open = !!this.path;
    this.el.path.textContent = open ? this.path : "No file open";
    this.el.actions.hidden = !open;
    const text = this.mode === "text";
    const write = this.hooks.canWrite();
    let status = "", state = "";
    if (this.saving) { status = "Saving…"; state = "saving"; }
    else if (this.deleted) { status = "Deleted on the server"; state = "conflict"; }
    else if (this.remote) { status = "Conflict"; state = "conflict"; }
    else if (text && !write) { status = "Read only"; state = "readonly"; }
    else if (text && this.shared && !this.shared.closedError) {
      [status, state] = {
        saving: ["Saving…", "saving"], offline: ["Offline · your edits merge on reconnect", "dirty"],
        saved: ["Saved", "saved"],
      }[this.shared.status];
    }
    else if (this.isDirty()) { status = "Unsaved changes"; state = "dirty"; }
    else if (text) { status = "Saved"; state = "saved"; }
    this.el.status.textContent = status;
    this.el.status.dataset.state = state;
    this.el.save.hidden = !(text && write) || !!(this.shared && !this.shared.closedError);
    this.el.save.disabled = this.saving || !(this.isDirty() || this.remote);
    this.el.history.disabled = !open;
  }

  _showBanner(message, buttons, kind = "conflict") {
    const b = this.el.banner;
    b.dataset.kind = kind;
    b.replaceChildren(el("span", { class: "banner-text" }, message),
      el("span", { class: "banner-buttons" }, buttons.filter(Boolean).map(([label, fn, cls]) =>
        el("button", { type: "button", class: cls || "", onclick: guard(label, fn) }, label))));
    b.hidden = false;
  }

  _hideBanner() {
    this.el.banner.hidden = true;
    this.el.banner.replaceChildren();
  }
}

/** What the file pane shows when no file is open. */
function emptyPlaceholder() {
  return el("div", { class: "placeholder" },
    el("p", { class: "big" }, "Open a file from the tree."),
    el("p", {}, "Everyone here edits text files together, live: typing merges and the server saves it. Files over 4 MiB are saved with Ctrl+S (⌘S); if someone saved first, you choose what wins."),
    el("p", { class: "muted" }, "Try it: open this page in a second window (Invite gives the link) and edit the same file."));
}

/** Classic 16-bytes-per-line hex dump. */
function hexdump(bytes) {
  const lines = [];
  for (let off = 0; off < bytes.length; off += 16) {
    const row = bytes.subarray(off, off + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = [...row].map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${off.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`);
  }
  return lines.join("\n");
}

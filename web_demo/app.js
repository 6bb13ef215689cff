// app.js — the wsfs browser demo: wires the client library (wsfs.js) to the
// tree, the editor, presence, the feed and the history panel.

import { Wsfs, WsfsError, joinPath, dirname, basename } from "./wsfs.js";
import { TreeModel, TreeView } from "./tree.js";
import { FileView } from "./fileview.js";
import { Feed, describeRevision, groupByRev } from "./feed.js";
import { People, loadIdentity, saveIdentity, COLORS } from "./people.js";
import { HistoryPanel } from "./history.js";
import { SearchPanel } from "./search.js";
import { bindDropUpload } from "./upload.js";
import { $, el, toast, guard, reportError, promptDialog, confirmDialog, saveBlob } from "./ui.js";

const TOKEN_KEY = "wsfs.token";
const MINE_MS = 60000; // how long a write of ours is recognised in the stream as "You"

/** The token: from ?token= (then kept in sessionStorage and removed from the address bar). */
function takeToken() {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    url.searchParams.delete("token");
    history.replaceState(history.state, "", url);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

/** A stable colour for an author name we have no presence for. */
function colorFor(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return COLORS[h % COLORS.length];
}

const isUnder = (path, root) => path === root || path.startsWith(root === "/" ? "/" : root + "/");

class App {
  constructor(client, whoami, workspaces, identity) {
    this.client = client;
    this.whoami = whoami;
    this.workspaces = workspaces;
    this.identity = identity;
    this.caughtUp = false;
    this.mine = new Map(); // path -> {hash, at}: our own recent writes
    this.model = new TreeModel();
    this.tree = new TreeView($("tree"), this.model, {
      open: (p) => this.openFile(p),
      rename: guard("Rename failed", (p) => this.rename(p)),
      remove: guard("Delete failed", (p) => this.remove(p)),
      select: () => this.updateToolbar(),
    }, `wsfs.expanded.${client.workspace}`);
    this.fileView = new FileView(client, this.model, {
      canWrite: () => this.canWrite(),
      authorOf: (entry) => this.whoOf(entry, entry.path).name,
      opened: (path) => this.onOpened(path),
      asMine: (marks, write) => this.asMine(marks, write),
      onSaved: () => this.history.refreshSoon(),
    });
    this.feed = new Feed($("feed"), {
      open: (p) => this.openFile(p),
      isFile: (p) => this.model.get(p)?.kind === "file",
      whoOf: (entry, path) => this.whoOf(entry, path),
    });
    this.people = new People($("people"), $("people-strip"), {
      me: () => ({ ...this.identity, file: this.fileView.path }),
      open: (p) => this.openFile(p),
      editName: guard("Rename failed", () => this.editName()),
    });
    this.history = new HistoryPanel($("history-section"), $("history"), client, this.fileView, $("history-btn"));
    this.search = new SearchPanel($("search"), $("search-results"), $("tree"), {
      client, model: this.model, open: (p, line) => this.openFile(p, line),
    });
  }

  canWrite() {
    if (this.client.state === "closed") return false; // for good: token revoked, workspace gone
    const scope = this.client.hello?.scope ?? this.whoami.scope;
    return scope === "write" || scope === "admin";
  }

  start() {
    const c = this.client;
    c.addEventListener("state", (ev) => this.onState(ev.detail));
    c.addEventListener("presence", () => this.onPresence());
    c.addEventListener("hello", () => { this.updateToolbar(); this.fileView.updateHeader(); });
    c.addEventListener("error", (ev) => reportError("Server", ev.detail));
    this.sub = c.subscribe({
      after: null,
      onChanges: (entries) => this.onChanges(entries),
      onCaughtUp: () => this.onCaughtUp(),
      onReset: () => { this.model.reset(); this.caughtUp = false; this.tree.update(); },
    });
    c.connect();
    this.bindChrome();
    this.renderWorkspacePicker();
    this.people.render(c.peers);
    this.updateToolbar();
  }

  // ---------------------------------------------------------- the stream

  onChanges(entries) {
    const changes = this.model.apply(entries);
    if (!this.caughtUp) { this.tree.update(); return; } // the initial snapshot: no flashing
    if (!changes.length) return;
    this.followRenames(changes);
    this.tree.update(changes.map((c) => c.path));
    this.feed.add(changes);
    const open = this.fileView.path;
    if (open && changes.some((c) => isUnder(open, c.path))) {
      this.fileView.reconcile();
      this.history.refreshSoon();
    }
    this.updateToolbar();
  }

  onCaughtUp() {
    this.caughtUp = true;
    this.tree.update();
    if (!this.seeded) this.feed.seed(this.model); // not again after a resync
    this.seeded = true;
    if (this.fileView.path) this.fileView.reconcile();
    else this.openFromHash();
    document.body.dataset.ready = "true"; // the first snapshot is shown (tests wait for this)
  }

  /** The open file (or a folder above it) was renamed: follow it. */
  followRenames(changes) {
    const open = this.fileView.path;
    if (!open) return;
    for (const group of groupByRev(changes)) {
      for (const item of describeRevision(group)) {
        if (item.verb === "renamed" && isUnder(this.fileView.path, item.path)) {
          const moved = item.to + this.fileView.path.slice(item.path.length);
          this.fileView.path = moved;
          this.onOpened(moved);
          this.fileView.updateHeader();
        }
      }
    }
  }

  /**
   * Remember a write of ours, so the stream's echo of it reads "You". Called
   * with `pending` before the request (the echo can overtake the HTTP reply),
   * then with the content id the server returned.
   */
  markMine(path, hash, pending = false) {
    const now = Date.now();
    for (const [p, m] of this.mine) if (now - m.at > MINE_MS) this.mine.delete(p);
    if (hash === undefined) this.mine.delete(path); // the write failed
    else this.mine.set(path, { hash, pending, at: now });
  }

  /**
   * Run a write of ours: `marks` maps each path it touches to its final
   * content id (null: gone or a folder; "stat": the hash in the result).
   */
  async asMine(marks, write) {
    for (const path of Object.keys(marks)) this.markMine(path, null, true);
    let result;
    try {
      result = await write();
    } catch (err) {
      for (const path of Object.keys(marks)) this.markMine(path, undefined);
      throw err;
    }
    for (const [path, hash] of Object.entries(marks)) this.markMine(path, hash === "stat" ? result?.hash ?? null : hash);
    return result;
  }

  /** {name, color} of whoever made the change `entry` to `path`. */
  whoOf(entry, path) {
    const m = this.mine.get(path);
    const hash = (entry?.kind === "file" ? entry.hash : null) ?? null;
    if (m && Date.now() - m.at < MINE_MS && (m.pending || m.hash === hash)) {
      return { name: "You", color: this.identity.color };
    }
    const author = entry?.author;
    // The name of our own (shared) token says nothing about which person wrote.
    if (author && author !== this.whoami.name) {
      const peer = [...this.client.peers.values()].find((p) => p.name === author);
      return { name: author, color: peer?.color || colorFor(author) };
    }
    return { name: "Someone", color: "#9e9e9e" };
  }

  // ---------------------------------------------------------- presence

  onPresence() {
    const peers = [...this.client.peers.values()].filter((p) => p.name);
    const byFile = new Map();
    for (const p of peers) {
      if (!p.file) continue;
      if (!byFile.has(p.file)) byFile.set(p.file, []);
      byFile.get(p.file).push(p);
    }
    this.tree.peersByFile = byFile;
    this.tree.update();
    this.fileView.setPeers(byFile.get(this.fileView.path) || []);
    this.people.render(this.client.peers);
  }

  onOpened(path) {
    this.client.setPresence({ file: path, cursor: null });
    this.tree.openPath = path;
    if (path) {
      this.tree.reveal(path);
      this.tree.selected = path;
    }
    this.tree.update();
    this.fileView.setPeers(path ? [...this.client.peers.values()].filter((p) => p.file === path && p.name) : []);
    this.people.render(this.client.peers);
    const url = new URL(location.href);
    url.hash = path ? encodeURI(path) : "";
    history.replaceState(history.state, "", url);
    document.title = `${path ? basename(path) + " — " : ""}${this.client.workspace} · wsfs`;
    if (this.history.visible) this.history.refreshSoon();
    if (!path) this.history.toggle(false);
    this.updateToolbar();
    if (document.body.classList.contains("sidebar-open")) {
      this.setSidebar(false); // narrow window: the editor gets the screen and the focus
      $("file-body").focus();
    }
  }

  /** Show (and copy) the link that brings someone else into this workspace. */
  async invite() {
    const url = new URL(location.origin + location.pathname);
    url.searchParams.set("token", this.client.token);
    url.searchParams.set("ws", this.client.workspace);
    const copy = await promptDialog("Invite someone", "Link (it carries the access token: share it only with people you trust)",
      url.toString(), { okLabel: "Copy link" });
    if (!copy) return;
    try {
      await navigator.clipboard.writeText(copy);
      toast("Link copied", "ok", 2500);
    } catch {
      toast("Copy it from the field: the clipboard is not available here", "info", 4000);
    }
  }

  async editName() {
    const name = await promptDialog("Your name", "Name shown to the others", this.identity.name, { okLabel: "Save" });
    if (!name) return;
    this.identity.name = name.slice(0, 64);
    saveIdentity(this.identity, { chosen: true });
    this.client.setPresence({ name: this.identity.name });
    this.people.render(this.client.peers);
  }

  // ----------------------------------------------------------- actions

  /** Open a file (and, from a search result, go to a line). */
  async openFile(path, line) {
    try {
      if (await this.fileView.open(path) && line) this.fileView.goToLine(line);
    } catch (err) {
      reportError(`Could not open ${path}`, err);
    }
  }

  openFromHash() {
    const path = decodeURI(location.hash.slice(1));
    if (path.startsWith("/") && this.model.get(path)?.kind === "file") this.openFile(path);
  }

  /** The folder new things go into: the selected folder, or the selected file's folder. */
  targetDir() {
    const sel = this.tree.selected;
    if (!sel) return "/";
    return this.model.isDir(sel) ? sel : dirname(sel);
  }

  async newFile() {
    const dir = this.targetDir();
    const name = await promptDialog("New file", `File name (in ${dir})`, "untitled.md", { okLabel: "Create", selectStem: true });
    if (!name) return;
    const path = name.startsWith("/") ? name : joinPath(dir, name);
    try {
      await this.asMine({ [path]: "stat" }, () => this.client.writeFile(path, "", { ifNoneMatch: true, parents: true }));
    } catch (err) {
      if (err.code === "EPRECONDITION") throw new WsfsError("EEXIST", `${path} already exists`);
      throw err;
    }
    this.tree.reveal(path);
    await this.openFile(path);
  }

  async newFolder() {
    const dir = this.targetDir();
    const name = await promptDialog("New folder", `Folder name (in ${dir})`, "new-folder", { okLabel: "Create" });
    if (!name) return;
    const path = name.startsWith("/") ? name : joinPath(dir, name);
    await this.asMine({ [path]: null }, () => this.client.mkdir(path, { parents: true }));
    this.tree.reveal(joinPath(path, "x"));
    this.tree.select(path, { focus: true });
  }

  async rename(path = this.tree.selected) {
    if (!path) return;
    const name = await promptDialog(`Rename ${basename(path)}`, "New name (or a full path to move it)", basename(path),
      { okLabel: "Rename", selectStem: !this.model.isDir(path) });
    if (!name || name === basename(path)) return;
    const dst = name.startsWith("/") ? name : joinPath(dirname(path), name);
    const hash = this.model.get(path)?.kind === "file" ? this.model.get(path).hash : null;
    await this.asMine({ [path]: null, [dst]: hash }, () => this.client.rename(path, dst));
    this.tree.reveal(dst);
    this.tree.selected = dst;
  }

  async remove(path = this.tree.selected) {
    if (!path) return;
    const isDir = this.model.isDir(path);
    const ok = await confirmDialog(`Delete ${basename(path)}?`,
      isDir ? `The folder ${path} and everything in it will be deleted.` : `${path} will be deleted. Its history is kept for a while.`,
      { okLabel: "Delete", danger: true });
    if (!ok) return;
    const open = this.fileView.path;
    await this.asMine({ [path]: null }, () => this.client.remove(path, { recursive: isDir }));
    if (open && isUnder(open, path)) await this.fileView.close({ ask: false }); // the user just confirmed
    toast(`Deleted ${path}`, "ok", 2500);
  }

  async download(path = this.tree.selected) {
    if (!path || this.model.isDir(path)) return;
    const file = await this.client.readFile(path);
    saveBlob(new Blob([file.bytes], { type: file.type }), basename(path));
  }

  /** Upload [{file, rel}] into `dir`, creating folders as needed. */
  async upload(items, dir) {
    if (!items.length) return;
    let done = 0;
    for (const { file, rel } of items) {
      const path = joinPath(dir, rel);
      await this.asMine({ [path]: "stat" },
        () => this.client.writeFile(path, file, { parents: true, mtime: file.lastModified / 1000 }));
      done++;
      if (items.length > 3 && done % 10 === 0) toast(`Uploaded ${done} of ${items.length}…`, "info", 1500);
    }
    if (items.length === 1) this.tree.reveal(joinPath(dir, items[0].rel));
    else if (dir !== "/") this.tree.reveal(joinPath(dir, "x"));
    toast(`Uploaded ${done} file${done === 1 ? "" : "s"} to ${dir}`, "ok", 3000);
  }

  // ----------------------------------------------------------- chrome

  onState({ state, attempt, delay, reason }) {
    const conn = $("conn");
    conn.dataset.state = state;
    const text = {
      connecting: "Connecting…",
      open: "Live",
      reconnecting: navigator.onLine === false ? "Offline: waiting for the network"
        : delay ? `Reconnecting (try ${attempt})…` : "Reconnecting…",
      closed: `Disconnected${reason ? `: ${reason}` : ""}`,
    }[state];
    conn.querySelector(".conn-text").textContent = text;
    conn.title = state === "open" ? `Connected, session ${this.client.hello?.session}` : text;
    document.body.dataset.conn = state;
    if (state === "open" && this._wasOpen) toast("Reconnected: caught up with every change", "ok", 2500);
    if (state === "open") this._wasOpen = true;
    $("retry-btn").hidden = state !== "closed";
    if (state === "closed") { this.updateToolbar(); this.fileView.updateHeader(); }
  }

  updateToolbar() {
    const write = this.canWrite();
    const sel = this.tree.selected;
    const has = !!sel && (this.model.get(sel) || this.model.isDir(sel));
    for (const id of ["new-file-btn", "new-folder-btn", "upload-btn"]) $(id).disabled = !write;
    $("rename-btn").disabled = !write || !has;
    $("delete-btn").disabled = !write || !has;
    $("dl-btn").disabled = !has || this.model.isDir(sel);
  }

  bindChrome() {
    $("new-file-btn").addEventListener("click", guard("New file failed", () => this.newFile()));
    $("new-folder-btn").addEventListener("click", guard("New folder failed", () => this.newFolder()));
    $("rename-btn").addEventListener("click", guard("Rename failed", () => this.rename()));
    $("delete-btn").addEventListener("click", guard("Delete failed", () => this.remove()));
    $("dl-btn").addEventListener("click", guard("Download failed", () => this.download()));
    $("upload-btn").addEventListener("click", () => $("upload-input").click());
    $("upload-input").addEventListener("change", guard("Upload failed", async (ev) => {
      const files = [...ev.target.files].map((file) => ({ file, rel: file.name }));
      ev.target.value = "";
      await this.upload(files, this.targetDir());
    }));
    $("retry-btn").addEventListener("click", () => location.reload());
    // Only a workspace token is shared this way: an admin token must not end up in a link.
    $("invite-btn").hidden = this.whoami.kind !== "workspace";
    $("invite-btn").addEventListener("click", guard("Invite", () => this.invite()));
    const toggle = $("toggle-sidebar");
    const setSidebar = (open) => {
      document.body.classList.toggle("sidebar-open", open);
      toggle.setAttribute("aria-expanded", String(open));
      if (open) requestAnimationFrame(() => $("tree").querySelector('[tabindex="0"]')?.focus() ?? $("tree").focus());
    };
    this.setSidebar = setSidebar;
    toggle.addEventListener("click", () => setSidebar(!document.body.classList.contains("sidebar-open")));
    // The narrow-window drawer closes on Escape and on a click beside it.
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape" && document.body.classList.contains("sidebar-open") && !$("dialog").open) {
        setSidebar(false);
        toggle.focus();
      }
    });
    document.querySelector(".layout").addEventListener("click", (ev) => {
      if (document.body.classList.contains("sidebar-open") && !$("sidebar").contains(ev.target)) setSidebar(false);
    });
    document.addEventListener("keydown", (ev) => {
      if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === "s") {
        const handled = ev.defaultPrevented; // the editor's own Mod-s already saved
        ev.preventDefault(); // never the browser's "save page"
        if (!handled) this.fileView.save().catch((e) => reportError("Save failed", e));
      }
    });
    window.addEventListener("beforeunload", (ev) => {
      if (this.fileView.isDirty() && !this.leaving) { ev.preventDefault(); ev.returnValue = ""; }
    });
    bindDropUpload({
      dirAt: (row) => (!row ? this.targetDir() : this.model.isDir(row.dataset.path) ? row.dataset.path : dirname(row.dataset.path)),
      canWrite: () => this.canWrite(),
      upload: (items, dir) => this.upload(items, dir),
    });
  }

  renderWorkspacePicker() {
    const select = $("workspace-select");
    const names = this.workspaces.map((w) => w.name);
    if (!names.includes(this.client.workspace)) names.push(this.client.workspace);
    select.replaceChildren(...names.map((n) => el("option", { value: n, selected: n === this.client.workspace }, n)));
    if (this.whoami.scope === "admin") select.append(el("option", { value: "" }, "+ New workspace…"));
    select.addEventListener("change", guard("Workspace", async () => {
      let name = select.value;
      if (!name) {
        select.value = this.client.workspace;
        name = await promptDialog("New workspace", "Name (letters, digits, . _ -)", "", { okLabel: "Create" });
        if (!name) return;
        await this.client.createWorkspace(name);
      }
      if (name === this.client.workspace) return;
      if (this.fileView.isDirty() && !(await confirmDialog("Discard unsaved changes?",
        "Switching workspace loses the unsaved changes of the open file.", { okLabel: "Discard", danger: true }))) {
        select.value = this.client.workspace;
        return;
      }
      this.leaving = true; // already confirmed: no second "leave page?" prompt
      const url = new URL(location.href);
      url.searchParams.set("ws", name);
      url.hash = "";
      location.assign(url);
    }));
  }
}

// -------------------------------------------------------------- start-up

function showLogin(message) {
  document.body.dataset.view = "login";
  $("login").hidden = false;
  $("app").hidden = true;
  if (message) $("login-error").textContent = message;
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = $("login-token").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    location.reload();
  }, { once: true });
  $("login-token").focus();
}

function pickWorkspace(list) {
  const wanted = new URL(location.href).searchParams.get("ws");
  const names = list.map((w) => w.name);
  if (wanted && (names.includes(wanted) || !names.length)) return wanted;
  if (names.includes("demo")) return "demo";
  return names[0] || "demo";
}

async function main() {
  const token = takeToken();
  if (!token) { showLogin(); return; }
  const probe = new Wsfs({ token, workspace: "-" });
  let whoami, workspaces;
  try {
    [whoami, workspaces] = await Promise.all([probe.whoami(), probe.workspaces()]);
  } catch (err) {
    if (err.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin("That token was refused. Paste the token from the URL that wsfs serve printed.");
    } else {
      showLogin(`Cannot reach the server: ${err.message}`);
    }
    return;
  }
  const identity = loadIdentity();
  saveIdentity(identity);
  const workspace = pickWorkspace(workspaces);
  const client = new Wsfs({
    token, workspace, client: "wsfs-web-demo/0.1",
    presence: { name: identity.name, color: identity.color, file: null, cursor: null },
  });
  $("login").hidden = true;
  $("app").hidden = false;
  document.body.dataset.view = "app";
  document.title = `${workspace} · wsfs`;
  const app = new App(client, whoami, workspaces, identity);
  window.wsfsDemo = app; // for poking around in the devtools
  app.start();
}

main().catch((err) => {
  document.body.append(el("p", { class: "fatal", role: "alert" }, `The demo failed to start: ${err.message}`));
});

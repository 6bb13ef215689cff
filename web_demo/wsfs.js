// wsfs.js — a browser client for the wsfs wire protocol, version 1 (docs/protocol.md).
//
// One `Wsfs` object talks to one workspace of one server: HTTP for files and
// operations, one WebSocket for live change streams and presence. The socket
// reconnects by itself (exponential backoff with jitter) and resumes every
// subscription from the last cursor it delivered, so a caller sees each change
// once, in order, across server restarts and network drops.
//
// No dependencies, no build step: `import { Wsfs } from "./wsfs.js"`.
// Documented in docs/web_demo.md.

export const PROTOCOL = 1;

/** An error from the server (HTTP error body or WebSocket `error` frame), or a local one. */
export class WsfsError extends Error {
  constructor(code, message, { status = 0, ...extra } = {}) {
    super(message || code);
    this.name = "WsfsError";
    this.code = code; // "ENOENT", "EPRECONDITION", ... (docs/protocol.md section 2)
    this.status = status; // HTTP status, 0 for WebSocket / local errors
    Object.assign(this, extra); // path, expected, current, missing, field, ...
  }
}

/** "/notes/a b.md" -> "notes/a%20b.md": a workspace path as the URL tail of the files routes. */
export function encodePath(path) {
  return path.split("/").filter((s) => s !== "").map(encodeSegment).join("/");
}

/** One path segment percent-encoded whole, exactly as the server's route table does. */
export function encodeSegment(text) {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

/**
 * The paths of the HTTP API and the WebSocket this library uses, spelled as
 * in the one route table, `vfs/wire/routes.py` (tests/test_web_demo_wsfs_js.py
 * checks that they agree). `{ws}` is one percent-encoded segment, `{path:path}`
 * a workspace path encoded segment by segment (`encodePath`).
 */
export const ROUTES = Object.freeze({
  WHOAMI: "/api/whoami",
  WORKSPACES: "/api/workspaces",
  WORKSPACE: "/api/workspaces/{ws}",
  FILES: "/api/workspaces/{ws}/files/{path:path}",
  OPS: "/api/workspaces/{ws}/ops",
  STAT: "/api/workspaces/{ws}/stat/{path:path}",
  READDIR: "/api/workspaces/{ws}/readdir/{path:path}",
  HISTORY: "/api/workspaces/{ws}/history/{path:path}",
  GREP: "/api/workspaces/{ws}/grep",
  FIND: "/api/workspaces/{ws}/find",
  CHANGES: "/api/workspaces/{ws}/changes",
  WEBSOCKET: "/api/workspaces/{ws}/ws",
});

/** The path of a `ROUTES` template with its parameters filled in. */
export function route(template, params = {}) {
  return template.replace(/\{(\w+)(:path)?\}/g, (_, name, isPath) =>
    isPath ? encodePath(params[name]) : encodeSegment(params[name]));
}

/** Decode a change entry's base64 `data` to bytes. */
export function decodeBase64(data) {
  const bin = atob(data);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Bytes to base64 (the `y` field of co-editing frames). */
export function encodeBase64(bytes) {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

/** The parent directory of a path ("/a/b" -> "/a", "/a" -> "/"). */
export function dirname(path) {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

/** The last segment of a path. */
export function basename(path) {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** Join a directory and a name into a normalised absolute path. */
export function joinPath(dir, name) {
  return (dir === "/" ? "" : dir) + "/" + name.replace(/^\/+/, "");
}

// Close codes after which reconnecting cannot help (docs/protocol.md 5.10).
const FATAL_CLOSE = new Map([
  [1008, "token revoked or too many bad frames"],
  [4000, "protocol version not supported"],
  [4404, "the workspace was deleted"],
]);

/**
 * A client of one workspace.
 *
 * Events (an EventTarget; `event.detail` holds the payload):
 * - `state`    {state, attempt, delay, reason}: "connecting" | "open" | "reconnecting" | "closed"
 * - `hello`    the server's hello message (new session id after every reconnect)
 * - `presence` {op, peer, peers}: op is "sync" | "join" | "update" | "leave"; `peers` is the current Map
 * - `error`    a WsfsError the server sent without a request id
 */
export class Wsfs extends EventTarget {
  /**
   * @param {object} o
   * @param {string} o.token      bearer token (admin or workspace token)
   * @param {string} o.workspace  workspace name
   * @param {string} [o.baseUrl]  server origin, default the page's origin
   * @param {object} [o.presence] {name, color, file, cursor}: joined at every (re)connect
   * @param {string} [o.client]   client name sent in hello
   */
  constructor({ token, workspace, baseUrl = globalThis.location?.origin, presence = null,
                client = "wsfs.js/1", reconnectMin = 300, reconnectMax = 8000,
                pingEvery = 20000, pingTimeout = 10000 }) {
    super();
    this.token = token;
    this.workspace = workspace;
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.client = client;
    this.presence = presence ? { ...presence } : null;
    this.peers = new Map(); // session -> peer
    this.hello = null;
    this.state = "closed";
    this._opts = { reconnectMin, reconnectMax, pingEvery, pingTimeout };
    this._ws = null;
    this._want = false; // the caller wants a connection
    this._attempt = 0;
    this._timer = null;
    this._pinger = null;
    this._nextId = 1;
    this._pending = new Map(); // request id -> {resolve, reject, timer}
    this._subs = new Map(); // sub id -> Subscription
    this._docs = new Map(); // path -> SharedDocument (co-editing, protocol 5.11)
    this._onOnline = () => this._reconnectNow();
    // The browser knows the network is gone long before a ping times out.
    this._onOffline = () => {
      if (!this._want || !this._ws) return;
      this._dropSocket(new WsfsError("ENETDOWN", "the network is offline"));
      this._scheduleReconnect(0);
    };
  }

  // ---------------------------------------------------------------- HTTP

  /** Base URL of this workspace's API. */
  get apiBase() {
    return this._url(ROUTES.WORKSPACE);
  }

  /** The absolute URL of a `ROUTES` template for this workspace. */
  _url(template, path) {
    return this.baseUrl + route(template, { ws: this.workspace, path });
  }

  /**
   * One HTTP request with the token. Resolves to the Response for 2xx/304;
   * rejects with WsfsError (code from the JSON error body) otherwise.
   */
  async fetch(url, { method = "GET", headers = {}, body, query, signal } = {}) {
    const u = new URL(url.startsWith("http") ? url : this.baseUrl + url);
    for (const [k, v] of Object.entries(query || {})) {
      if (v === undefined || v === null || v === false) continue;
      u.searchParams.set(k, v === true ? "1" : String(v));
    }
    const all = { Authorization: `Bearer ${this.token}`, ...headers };
    // Lets the server name this session's presence as the author of a write.
    if (method !== "GET" && method !== "HEAD" && this.hello) all["X-Wsfs-Session"] = this.hello.session;
    const res = await fetch(u, { method, body, signal, cache: "no-store", headers: all });
    if (res.ok || res.status === 304) return res;
    let err = { code: "EHTTP", message: `HTTP ${res.status}` };
    try {
      err = (await res.json()).error || err;
    } catch { /* not JSON: keep the generic error */ }
    const { code, message, ...extra } = err;
    throw new WsfsError(code, message, { status: res.status, ...extra });
  }

  async _json(url, opts) {
    const res = await this.fetch(url, opts);
    return res.status === 204 ? null : res.json();
  }

  _postJson(url, data, method = "POST") {
    return this._json(url, {
      method, body: JSON.stringify(data), headers: { "Content-Type": "application/json" },
    });
  }

  /** GET /api/whoami. */
  whoami() { return this._json(ROUTES.WHOAMI); }

  /** The workspaces this token can see: [{name}, ...]. */
  async workspaces() { return (await this._json(ROUTES.WORKSPACES)).workspaces; }

  /** Create a workspace (admin token). */
  createWorkspace(name) {
    return this._json(route(ROUTES.WORKSPACE, { ws: name }), { method: "PUT" });
  }

  /** {name, rev, cursor} of this workspace. */
  info() { return this._json(this.apiBase); }

  _files(path) { return this._url(ROUTES.FILES, path); }

  /**
   * Read a file. Resolves to {status, bytes, hash, type, size, rev, mode};
   * status 304 (bytes null) when `ifNoneMatch` is the current content id.
   */
  async readFile(path, { rev, ifNoneMatch, signal } = {}) {
    const headers = ifNoneMatch ? { "If-None-Match": `"${ifNoneMatch}"` } : {};
    const res = await this.fetch(this._files(path), { headers, query: { rev }, signal });
    const hash = (res.headers.get("ETag") || "").replace(/^W\//, "").replace(/"/g, "") || null;
    const bytes = res.status === 304 ? null : new Uint8Array(await res.arrayBuffer());
    return {
      status: res.status, bytes, hash,
      type: res.headers.get("Content-Type") || "application/octet-stream",
      size: bytes ? bytes.length : Number(res.headers.get("Content-Length") || 0),
      rev: Number(res.headers.get("X-Wsfs-Rev") || 0),
      mode: Number(res.headers.get("X-Wsfs-Mode") || 0),
    };
  }

  /** HEAD a file: {hash, type, size, rev} without the content. */
  async headFile(path) {
    const res = await this.fetch(this._files(path), { method: "HEAD" });
    return {
      hash: (res.headers.get("ETag") || "").replace(/"/g, "") || null,
      type: res.headers.get("Content-Type") || "application/octet-stream",
      size: Number(res.headers.get("Content-Length") || 0),
      rev: Number(res.headers.get("X-Wsfs-Rev") || 0),
    };
  }

  /**
   * Create or replace a file with `data` (string, Blob, ArrayBuffer, typed array).
   * `ifMatch`: a content id; the write happens only if the file still has it
   * (else WsfsError EPRECONDITION with `.current`). `ifNoneMatch: true`: create only.
   * Resolves to the new Stat.
   */
  writeFile(path, data, { ifMatch, ifNoneMatch, parents = false, mode, mtime } = {}) {
    const headers = { "Content-Type": "application/octet-stream" };
    if (ifMatch) headers["If-Match"] = `"${ifMatch}"`;
    if (ifNoneMatch) headers["If-None-Match"] = "*";
    return this._json(this._files(path), {
      method: "PUT", body: data, headers, query: { parents, mode, mtime },
    });
  }

  /** Remove a file, or a directory with `recursive`. Resolves to {rev}. */
  remove(path, { recursive = false, force = false } = {}) {
    return this._json(this._files(path), { method: "DELETE", query: { recursive, force } });
  }

  /** One metadata operation (docs/protocol.md 4.4): resolves to {rev, stat}. */
  op(op, fields) { return this._postJson(this._url(ROUTES.OPS), { op, ...fields }); }

  mkdir(path, { parents = false, existOk = false } = {}) {
    return this.op("mkdir", { path, parents, exist_ok: existOk });
  }
  rename(src, dst) { return this.op("rename", { src, dst }); }
  copy(src, dst) { return this.op("copy", { src, dst }); }
  restore(path, rev) { return this.op("restore", { path, rev }); }

  stat(path, { follow = true } = {}) {
    return this._json(this._url(ROUTES.STAT, path), { query: { follow: follow ? 1 : 0 } });
  }
  async readdir(path) {
    return (await this._json(this._url(ROUTES.READDIR, path))).entries;
  }
  /** Retained versions of a path, newest first: [{path, rev, kind, size, hash, mtime}]. */
  async history(path) {
    return (await this._json(this._url(ROUTES.HISTORY, path))).versions;
  }
  /** Lines containing `pattern` in text files: [{path, line_number, line, context}]. */
  async grep(pattern, { path, regex = false, ignoreCase = false, include, context, limit } = {}) {
    const query = { pattern, path, regex, ignore_case: ignoreCase, include, context, limit };
    return (await this._json(this._url(ROUTES.GREP), { query })).matches;
  }
  /** Paths below `path` whose relative path matches the glob `pattern`. */
  async find({ path, pattern, kind, limit } = {}) {
    return (await this._json(this._url(ROUTES.FIND), { query: { path, pattern, kind, limit } })).paths;
  }
  /** One page of the change log over HTTP: {entries, cursor, more}. */
  changes({ after, prefix, limit } = {}) {
    return this._json(this._url(ROUTES.CHANGES), { query: { after, prefix, limit } });
  }

  // ----------------------------------------------------------- WebSocket

  /** Open the WebSocket (and keep it open, reconnecting, until close()). */
  connect() {
    this._want = true;
    globalThis.addEventListener?.("online", this._onOnline);
    globalThis.addEventListener?.("offline", this._onOffline);
    if (!this._ws) this._open();
    return this;
  }

  /** Close the WebSocket for good (subscriptions end, pending requests fail). */
  close() {
    this._want = false;
    globalThis.removeEventListener?.("online", this._onOnline);
    globalThis.removeEventListener?.("offline", this._onOffline);
    clearTimeout(this._timer);
    this._dropSocket(new WsfsError("ECLOSED", "client closed"));
    this._setState("closed", { reason: "closed" });
  }

  _wsUrl() {
    const u = new URL(this._url(ROUTES.WEBSOCKET));
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    u.searchParams.set("token", this.token); // browsers cannot set headers on a WebSocket
    return u.toString();
  }

  _open() {
    clearTimeout(this._timer);
    this._setState(this._attempt ? "reconnecting" : "connecting", { attempt: this._attempt });
    const ws = new WebSocket(this._wsUrl());
    ws.binaryType = "arraybuffer";
    this._ws = ws;
    ws.onopen = () => {
      const hello = { type: "hello", protocol: PROTOCOL, client: this.client };
      if (this.presence) hello.presence = this.presence;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (ev) => {
      if (ws !== this._ws || typeof ev.data !== "string") return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      this._onMessage(msg);
    };
    ws.onclose = (ev) => {
      if (ws !== this._ws) return;
      const opened = !!this.hello;
      this._dropSocket(new WsfsError("ECONNRESET", `connection closed (${ev.code})`));
      const fatal = FATAL_CLOSE.get(ev.code);
      if (fatal) {
        this._want = false;
        this._setState("closed", { reason: fatal, code: ev.code });
      } else if (this._want && !opened && this._attempt >= 2) {
        this._probeThenReconnect(ev.code);
      } else if (this._want) {
        this._scheduleReconnect(ev.code);
      }
    };
    ws.onerror = () => { /* onclose follows and decides */ };
  }

  _dropSocket(err) {
    clearInterval(this._pinger);
    this._pinger = null;
    if (this._ws) {
      this._ws.onopen = this._ws.onmessage = this._ws.onclose = this._ws.onerror = null;
      if (this._ws.readyState <= 1) this._ws.close(1000);
    }
    this._ws = null;
    this.hello = null;
    for (const [, p] of this._pending) { clearTimeout(p.timer); p.reject(err); }
    this._pending.clear();
    for (const sub of this._subs.values()) sub._active = false;
    for (const doc of this._docs.values()) doc.joined = false;
    if (this.peers.size) {
      this.peers.clear();
      this._emit("presence", { op: "sync", peers: this.peers });
    }
  }

  /**
   * The upgrade keeps failing: a refused upgrade (401/403/404) looks like a
   * network error to a browser WebSocket, so ask over HTTP whether retrying
   * can ever work (token revoked, workspace gone) before trying again.
   */
  async _probeThenReconnect(code) {
    this._setState("reconnecting", { attempt: this._attempt, code });
    try {
      await this.info();
    } catch (err) {
      if (err instanceof WsfsError && [401, 403, 404].includes(err.status)) {
        this._want = false;
        this._setState("closed", { reason: err.message, code: err.status });
        return;
      }
    }
    if (this._want && !this._ws) this._scheduleReconnect(code);
  }

  _scheduleReconnect(code) {
    const { reconnectMin, reconnectMax } = this._opts;
    const base = Math.min(reconnectMax, reconnectMin * 2 ** this._attempt);
    const delay = Math.round(base / 2 + Math.random() * base / 2);
    this._attempt += 1;
    this._setState("reconnecting", { attempt: this._attempt, delay, code });
    this._timer = setTimeout(() => {
      // Offline: wait for the "online" event instead of failing attempts.
      if (globalThis.navigator?.onLine === false) return;
      this._open();
    }, delay);
  }

  /** Skip the backoff wait (e.g. the browser came back online). */
  _reconnectNow() {
    if (this._want && !this._ws) this._open();
  }

  _setState(state, extra = {}) {
    this.state = state;
    this._emit("state", { state, ...extra });
  }

  _emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  _send(msg) {
    if (!this._ws || this._ws.readyState !== 1 || !this.hello) return false;
    this._ws.send(JSON.stringify(msg));
    return true;
  }

  /**
   * Send a request and resolve with its `ok` reply (rejects with WsfsError on
   * `error`, on timeout, or when the connection drops first).
   */
  request(msg, { timeout = 30000 } = {}) {
    const id = msg.id ?? this._nextId++;
    return new Promise((resolve, reject) => {
      if (!this._send({ ...msg, id })) {
        reject(new WsfsError("ENOTCONN", "not connected"));
        return;
      }
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new WsfsError("ETIMEDOUT", `no reply to ${msg.type} within ${timeout} ms`));
      }, timeout);
      this._pending.set(id, { resolve, reject, timer });
    });
  }

  /** A round trip to the server. */
  ping(opts) { return this.request({ type: "ping" }, opts); }

  _onMessage(msg) {
    switch (msg.type) {
      case "hello":
        this.hello = msg;
        this._attempt = 0;
        this._setState("open", { session: msg.session });
        this._emit("hello", msg);
        this._startPinger();
        for (const sub of this._subs.values()) sub._start();
        for (const doc of this._docs.values()) doc._join();
        return;
      case "ok":
      case "error": {
        const p = this._pending.get(msg.id);
        if (!p) {
          // An error naming a live subscription: the server ended it (e.g. a cursor gone too old).
          const sub = msg.type === "error" ? this._subs.get(msg.id) : undefined;
          if (sub) sub._ended(this._error(msg));
          else if (msg.type === "error") this._emit("error", this._error(msg));
          return;
        }
        this._pending.delete(msg.id);
        clearTimeout(p.timer);
        if (msg.type === "ok") p.resolve(msg);
        else p.reject(this._error(msg));
        return;
      }
      case "changes":
        this._subs.get(msg.sub)?._changes(msg);
        return;
      case "caught_up":
        this._subs.get(msg.sub)?._caughtUp(msg);
        return;
      case "presence":
        this._onPresence(msg);
        return;
      case "coedit":
      case "coedit_closed":
        this._docs.get(msg.path)?._receive(msg);
        return;
      default:
        return; // unknown events are ignored (protocol section 8)
    }
  }

  _error(msg) {
    const { type, id, code, message, ...extra } = msg;
    return new WsfsError(code, message, extra);
  }

  _startPinger() {
    clearInterval(this._pinger);
    const { pingEvery, pingTimeout } = this._opts;
    // A dropped network can leave a socket that looks open for minutes: a
    // ping that is not answered in time closes it so the reconnect starts.
    this._pinger = setInterval(() => {
      const ws = this._ws;
      this.ping({ timeout: pingTimeout }).catch((e) => {
        if (e.code === "ETIMEDOUT" && ws === this._ws && ws) ws.close(4001, "ping timeout");
      });
    }, pingEvery);
  }

  // ------------------------------------------------------------ presence

  _onPresence(msg) {
    if (msg.op === "sync") {
      this.peers = new Map((msg.peers || []).map((p) => [p.session, p]));
    } else if (msg.op === "leave") {
      this.peers.delete(msg.peer?.session);
    } else if (msg.peer?.session) {
      const old = this.peers.get(msg.peer.session) || {};
      this.peers.set(msg.peer.session, { ...old, ...msg.peer });
    }
    this._emit("presence", { op: msg.op, peer: msg.peer, peers: this.peers });
  }

  /**
   * Update this session's presence ({name, color, file, cursor}; fields not
   * given keep their value). Remembered and re-sent after a reconnect.
   */
  setPresence(fields) {
    this.presence = { ...(this.presence || {}), ...fields };
    this._send({ type: "presence", op: "update", ...fields });
  }

  // ------------------------------------------------------- subscriptions

  /**
   * Subscribe to the change stream. Options as in docs/protocol.md 5.3
   * (`prefix`, `globs`, `ignore`, `after`, `inlineMax`, `batchMax`) plus handlers:
   * - onChanges(entries, msg): each batch, in order, exactly once across reconnects
   * - onCaughtUp(msg): the first time the stream reaches the end of the log
   * - onReset(): the resume cursor was too old; a fresh snapshot follows, so
   *   drop local state and rebuild it from the next batches
   * Returns a Subscription ({id, cursor, caughtUp, close()}).
   */
  subscribe(opts) {
    const sub = new Subscription(this, `sub${this._nextId++}`, opts);
    this._subs.set(sub.id, sub);
    if (this.hello) sub._start();
    return sub;
  }

  // ----------------------------------------------------------- co-editing

  /**
   * Join the shared document of text file `path` (protocol 5.11): the transport only,
   * for a Yjs binding (the demo's is coedit.js). Rejoined after every reconnect.
   * Handlers:
   * - step1(): bytes of a y-protocols sync step 1 to join with (called at every join)
   * - onJoined(): the server accepted the join (its sync messages follow)
   * - onMessage(bytes): a y-protocols message from the server
   * - onClosed(err): the document ended for good (WsfsError: ENOENT, EFBIG, EINVAL ...)
   * Returns a SharedDocument ({send(bytes, {ack}), close()}).
   */
  openDocument(path, handlers) {
    const doc = new SharedDocument(this, path, handlers);
    this._docs.get(path)?.close();
    this._docs.set(path, doc);
    if (this.hello) doc._join();
    return doc;
  }
}

/** One co-edited document's traffic on the workspace socket. */
export class SharedDocument {
  constructor(client, path, { step1, onJoined = () => {}, onMessage = () => {}, onClosed = () => {} }) {
    this.client = client;
    this.path = path;
    this.handlers = { step1, onJoined, onMessage, onClosed };
    this.joined = false;
    this._closed = false;
  }

  async _join() {
    if (this._closed) return;
    this.joined = false;
    try {
      await this.client.request({ type: "coedit_open", path: this.path, y: encodeBase64(this.handlers.step1()) });
      if (this._closed) return;
      this.joined = true;
      this.handlers.onJoined();
    } catch (e) {
      if (!["ECONNRESET", "ENOTCONN", "ECLOSED", "ETIMEDOUT"].includes(e.code)) this._end(e);
    }
  }

  _receive(msg) {
    if (this._closed) return;
    if (msg.type === "coedit_closed") this._end(new WsfsError(msg.code, msg.message, { path: msg.path }));
    else if (this.joined) this.handlers.onMessage(decodeBase64(msg.y));
  }

  _end(err) {
    this.joined = false;
    this._closed = true;
    if (this.client._docs.get(this.path) === this) this.client._docs.delete(this.path);
    this.handlers.onClosed(err);
  }

  /**
   * Send one y-protocols message. With `ack`, resolves once the server stored it
   * (rejects if the connection dropped first: the next join's sync carries it again).
   * Without, returns whether it was sent.
   */
  send(bytes, { ack = false } = {}) {
    const msg = { type: "coedit", path: this.path, y: encodeBase64(bytes) };
    if (ack) {
      if (!this.joined) return Promise.reject(new WsfsError("ENOTCONN", "not joined"));
      return this.client.request(msg);
    }
    return this.joined && this.client._send(msg);
  }

  /** Leave the document. */
  async close() {
    if (this._closed) return;
    this._closed = true;
    if (this.client._docs.get(this.path) === this) this.client._docs.delete(this.path);
    if (this.joined) {
      this.joined = false;
      try { await this.client.request({ type: "coedit_close", path: this.path }); } catch { /* gone */ }
    }
  }
}

/** One live subscription; survives reconnects, resuming from `cursor`. */
export class Subscription {
  constructor(client, id, { prefix = "/", globs, ignore, after = null, inlineMax = 0, batchMax,
                            onChanges = () => {}, onCaughtUp = () => {}, onReset = () => {} }) {
    this.client = client;
    this.id = id;
    this.filter = { prefix, globs, ignore };
    this.cursor = after; // where to resume: the last cursor delivered
    this.inlineMax = inlineMax;
    this.batchMax = batchMax;
    this.caughtUp = false;
    this.handlers = { onChanges, onCaughtUp, onReset };
    this._active = false;
    this._closed = false;
  }

  async _start() {
    if (this._closed) return;
    this._active = true;
    const msg = {
      type: "subscribe", id: this.id, ...this.filter, after: this.cursor,
      inline_max: this.inlineMax, batch_max: this.batchMax,
    };
    for (const k of Object.keys(msg)) if (msg[k] === undefined) delete msg[k];
    try {
      const ok = await this.client.request(msg);
      if (this.cursor === "now") this.cursor = ok.cursor; // resume from here, not from "now" again
    } catch (e) {
      if (e.code !== "ECONNRESET" && e.code !== "ENOTCONN" && e.code !== "ECLOSED") this._ended(e);
    }
  }

  /** The server refused or ended this subscription: a too-old cursor starts a fresh snapshot. */
  _ended(e) {
    if (this._closed) return;
    if (e.code === "ECURSORTOOOLD") {
      this.cursor = null;
      this.caughtUp = false;
      this.handlers.onReset();
      this._start();
    } else {
      this._active = false;
      this.client._emit("error", e);
    }
  }

  _changes(msg) {
    if (!this._active) return;
    this.handlers.onChanges(msg.entries || [], msg);
    this.cursor = msg.cursor;
  }

  _caughtUp(msg) {
    if (!this._active) return;
    this.cursor = msg.cursor;
    if (!this.caughtUp) {
      this.caughtUp = true;
      this.handlers.onCaughtUp(msg);
    }
  }

  /** Stop receiving changes. */
  async close() {
    this._closed = true;
    this._active = false;
    this.client._subs.delete(this.id);
    if (this.client.hello) {
      try { await this.client.request({ type: "unsubscribe", sub: this.id }); } catch { /* gone */ }
    }
  }
}

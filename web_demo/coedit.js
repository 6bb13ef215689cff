// coedit.js — a text file edited together, live: a Yjs document bound to
// CodeMirror (y-codemirror.next) and carried by wsfs.js's `openDocument`
// (docs/protocol.md 5.11). Everyone's keystrokes merge; the server writes the
// text to the file, so there is nothing to save. Undo is per person (a Yjs
// UndoManager that tracks only this editor's changes). Edits made while the
// connection is down stay in the local document and merge when it is back:
// every (re)join sends the local state vector, the server answers with what
// we lack and asks for what it lacks.

import {
  Y, yCollab, yUndoManagerKeymap, ySync, yAwareness, lib0Encoding as encoding, lib0Decoding as decoding,
  keymap, Prec,
} from "./vendor/codemirror.js";
import { withAlpha } from "./ui.js";

/** Files up to this size are co-edited (the server's COEDIT_MAX_BYTES); larger ones are saved with If-Match. */
export const COEDIT_MAX_BYTES = 4 * 1024 * 1024;

const MESSAGE_SYNC = 0;
const MESSAGE_AWARENESS = 1;
const REMOTE = "wsfs-remote"; // the origin of changes that came from the server: not sent back

export class SharedText {
  /**
   * @param {Wsfs} client
   * @param {string} path
   * @param {object} o {user: {name, color}, onStatus(), onClosed(err)}
   */
  constructor(client, path, { user, onStatus = () => {}, onClosed = () => {} }) {
    this.path = path;
    this.ydoc = new Y.Doc();
    this.ytext = this.ydoc.getText("text");
    this.undoManager = new Y.UndoManager(this.ytext);
    this.awareness = new yAwareness.Awareness(this.ydoc);
    this.setUser(user);
    this.unacked = 0; // local updates sent and not yet stored
    this.offline = false; // edits were made that only the next join's sync can deliver
    this.closedError = null;
    this._onStatus = onStatus;
    this._onClosed = onClosed;
    this.ready = new Promise((resolve, reject) => { this._ready = resolve; this._notReady = reject; });
    this._onUpdate = (update, origin) => { if (origin !== REMOTE) this._sendUpdate(update); };
    this._client = client;
    this._onAwareness = ({ added, updated, removed }, origin) => {
      if (origin !== "local") return;
      this.setUser(client.presence || {}); // a rename since: the caret label follows (sends once more)
      const mine = [...added, ...updated, ...removed].filter((c) => c === this.ydoc.clientID);
      if (mine.length) this._sendAwareness(mine);
    };
    this.ydoc.on("update", this._onUpdate);
    this.awareness.on("update", this._onAwareness);
    this.channel = client.openDocument(path, {
      step1: () => this._message(MESSAGE_SYNC, (e) => ySync.writeSyncStep1(e, this.ydoc)),
      onJoined: () => this._sendAwareness([this.ydoc.clientID]),
      onMessage: (bytes) => this._receive(bytes),
      onClosed: (err) => this._closed(err),
    });
  }

  /** The name and colour on this editor's caret for the others (sent only when they change). */
  setUser({ name, color }) {
    const now = this.awareness.getLocalState()?.user;
    const user = { name: name || "someone", color: color || "#888", colorLight: withAlpha(color || "#888", 0.25) };
    if (now?.name !== user.name || now?.color !== user.color) this.awareness.setLocalStateField("user", user);
  }

  /** The editor extensions: the binding, the others' carets and names, per-person undo. */
  extension() {
    return [
      Prec.highest(keymap.of(yUndoManagerKeymap)),
      yCollab(this.ytext, this.awareness, { undoManager: this.undoManager }),
    ];
  }

  /** "saving" while edits are on their way, "offline" when only a reconnect can deliver them, else "saved". */
  get status() {
    if (this.offline) return "offline";
    return this.unacked ? "saving" : "saved";
  }

  _message(type, write) {
    const e = encoding.createEncoder();
    encoding.writeVarUint(e, type);
    write(e);
    return encoding.toUint8Array(e);
  }

  _sendUpdate(update) {
    this._ackable(this._message(MESSAGE_SYNC, (e) => ySync.writeUpdate(e, update)));
  }

  /** Send a message carrying our edits; the status follows its acknowledgement. */
  _ackable(bytes) {
    this.unacked += 1;
    this._onStatus();
    this.channel.send(bytes, { ack: true }).then(
      () => { this.unacked -= 1; this._onStatus(); },
      () => { this.unacked -= 1; this.offline = !this.closedError; this._onStatus(); },
    );
  }

  _sendAwareness(clients) {
    this.channel.send(this._message(MESSAGE_AWARENESS, (e) =>
      encoding.writeVarUint8Array(e, yAwareness.encodeAwarenessUpdate(this.awareness, clients))));
  }

  _receive(bytes) {
    const decoder = decoding.createDecoder(bytes);
    const type = decoding.readVarUint(decoder);
    if (type === MESSAGE_AWARENESS) {
      yAwareness.applyAwarenessUpdate(this.awareness, decoding.readVarUint8Array(decoder), REMOTE);
      return;
    }
    if (type !== MESSAGE_SYNC) return;
    const reply = encoding.createEncoder();
    encoding.writeVarUint(reply, MESSAGE_SYNC);
    const kind = ySync.readSyncMessage(decoder, reply, this.ydoc, REMOTE);
    if (kind === ySync.messageYjsSyncStep1) {
      // the server asks for what it lacks: our offline edits, if any (acknowledged once stored)
      this.offline = false;
      this._ackable(encoding.toUint8Array(reply));
    } else if (kind === ySync.messageYjsSyncStep2) {
      this._ready();
    }
  }

  _closed(err) {
    this.closedError = err;
    this._notReady(err);
    this._onClosed(err);
  }

  /** Leave the document (our caret disappears for the others). */
  close() {
    this.ydoc.off("update", this._onUpdate);
    yAwareness.removeAwarenessStates(this.awareness, [this.ydoc.clientID], "local");
    this.awareness.off("update", this._onAwareness);
    this.channel.close();
    this.awareness.destroy();
    this.ydoc.destroy();
  }
}

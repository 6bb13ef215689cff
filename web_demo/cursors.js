// cursors.js — the other people's cursors and selections in the editor: a
// caret with their name (fading after a while) and a tinted selection, at the
// character offsets their presence reports.

import { EditorView, StateEffect, StateField, Decoration, WidgetType } from "./vendor/codemirror.js";
import { el, withAlpha } from "./ui.js";

const setPeerCursors = StateEffect.define();

class CaretWidget extends WidgetType {
  // `stamp` changes on every move, so the name label is shown afresh (it fades after a while)
  constructor(name, color, stamp) { super(); this.name = name; this.color = color; this.stamp = stamp; }
  eq(other) { return other.name === this.name && other.color === this.color && other.stamp === this.stamp; }
  toDOM() {
    return el("span", { class: "remote-caret", style: { borderColor: this.color }, "aria-hidden": "true" },
      el("span", { class: "remote-caret-label", style: { background: this.color } }, this.name));
  }
  ignoreEvent() { return true; }
}

/** The editor extension that holds the decorations. */
export const peerCursorField = StateField.define({
  create: () => Decoration.none,
  update(deco, tr) {
    deco = deco.map(tr.changes);
    for (const e of tr.effects) if (e.is(setPeerCursors)) deco = e.value;
    return deco;
  },
  provide: (f) => EditorView.decorations.from(f),
});

function peerDecorations(peers, docLength) {
  const ranges = [];
  const clamp = (n) => Math.max(0, Math.min(docLength, Number(n) || 0));
  for (const p of peers) {
    if (!p.cursor || typeof p.cursor !== "object") continue;
    const anchor = clamp(p.cursor.anchor), head = clamp(p.cursor.head);
    const color = p.color || "#888";
    if (anchor !== head) {
      ranges.push(Decoration.mark({ attributes: { style: `background-color: ${withAlpha(color, 0.25)}` } })
        .range(Math.min(anchor, head), Math.max(anchor, head)));
    }
    const stamp = `${anchor}:${head}`;
    ranges.push(Decoration.widget({ widget: new CaretWidget(p.name || "?", color, stamp), side: 1 }).range(head));
  }
  return Decoration.set(ranges, true);
}

/** The effect that shows `peers` ([{name, color, cursor: {anchor, head}}]) in a document of `docLength`. */
export function peerCursorsEffect(peers, docLength) {
  return setPeerCursors.of(peerDecorations(peers, docLength));
}

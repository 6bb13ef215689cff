"""A write from outside, turned into an edit of a shared document.

When a co-edited file changes from outside (HTTP PUT, a replica's push, the
mount, a restore), the new text is diffed against the text the file held
when the document last matched it (the document's *base* state), and the
diff is applied as CRDT operations to a copy of that base state under a
fresh client id. The result is an update *concurrent* with everything the
editors typed since the base, so applying it to the live document merges
both sides the way two editors' keystrokes merge: nothing typed and nothing
written from outside is lost.
"""

from __future__ import annotations

import difflib

from pycrdt import Doc, Text

from vfs.wire import COEDIT_TEXT

CHAR_DIFF_MAX = 20_000  # characters of a changed block below which it is refined character by character


def new_document(text: str) -> Doc:
    """A document whose text is `text` (a fresh client id)."""
    doc = Doc()
    doc.get(COEDIT_TEXT, type=Text).insert(0, text)
    return doc


def text_of(doc: Doc) -> str:
    return str(doc.get(COEDIT_TEXT, type=Text))


def outside_edit(base_state: bytes, new_text: str) -> tuple[bytes, bytes]:
    """(update, new base state): the edit taking the base's text to `new_text`.

    `update` applies to any document that contains `base_state`; the new base
    is the state whose text is exactly `new_text`.
    """
    doc = Doc()
    if base_state:
        doc.apply_update(base_state)
    before = doc.get_state()
    text = doc.get(COEDIT_TEXT, type=Text)
    apply_diff(text, str(text), new_text)
    return doc.get_update(before), doc.get_update()


def apply_diff(text: Text, old: str, new: str) -> None:
    """Edit `text` (now `old`) into `new` with the fewest inserts and deletes a line diff finds.

    pycrdt indexes text by UTF-8 byte, so positions are converted; edits are
    applied from the end so earlier positions stay valid.
    """
    for start, end, replacement in reversed(list(_edits(old, new))):
        offset = len(old[:start].encode("utf-8"))
        length = len(old[start:end].encode("utf-8"))
        if length:
            del text[offset : offset + length]
        if replacement:
            text.insert(offset, replacement)


def _edits(old: str, new: str) -> list[tuple[int, int, str]]:
    """(start, end, replacement) character ranges of `old`, in order, not overlapping."""
    old_lines = old.splitlines(keepends=True)
    new_lines = new.splitlines(keepends=True)
    old_starts = _starts(old_lines)
    new_starts = _starts(new_lines)
    edits: list[tuple[int, int, str]] = []
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        a0, a1 = old_starts[i1], old_starts[i2]
        b0, b1 = new_starts[j1], new_starts[j2]
        if tag == "replace" and (a1 - a0) + (b1 - b0) <= CHAR_DIFF_MAX:
            edits += _char_edits(old[a0:a1], new[b0:b1], a0)
        else:
            edits.append((a0, a1, new[b0:b1]))
    return edits


def _char_edits(old: str, new: str, shift: int) -> list[tuple[int, int, str]]:
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    return [(shift + i1, shift + i2, new[j1:j2])
            for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def _starts(lines: list[str]) -> list[int]:
    """Character offset of each line's start, plus the end."""
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    return starts

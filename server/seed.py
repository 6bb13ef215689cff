"""What a brand-new `demo` workspace contains, so a first visitor has something to look at.

The server writes these files into the `demo` workspace at startup only if
nothing was ever committed to it (a fresh data dir): a workspace that was
written to, by the seed or anyone, is never touched again. The PNG is generated here (zlib + struct) so
the package ships no binary data file.
"""

from __future__ import annotations

import struct
import zlib

import vfs

README = """\
# Welcome to wsfs

You are looking at **demo**, a live workspace: a small filesystem kept in one
SQLite file by the `wsfs serve` you just started. Every browser, script,
replica and mount connected to it sees the same files, and sees changes as
they happen.

## Try it

1. Open **this same URL in a second window** (or another browser). Each
   window is a person: both appear under *People here*.
2. Open `notes/todo.md` in both windows. Edit it in one and save (Ctrl+S or
   *Save*): the other window updates at once, and its feed says who saved.
3. Edit in both windows, then save in one: the other gets a banner instead
   of losing its edits. Nothing is ever silently overwritten.
4. Create, rename, upload (drop files on the page) or delete files: the tree
   updates everywhere. *History* brings back earlier versions.

## From a terminal

```sh
wsfs token create demo --write               # a token of your own
wsfs sync http://127.0.0.1:8765 demo ./demo  # a live two-way local copy
```

Edit a file in `./demo` with any editor and watch the browsers update.
"""

TODO = """\
# Todo

- [x] start `wsfs serve`
- [ ] open this page in a second window
- [ ] edit this list in one window, save, and watch the other one
- [ ] edit it in both windows at once and see who wins (nobody loses)
"""

HELLO = '''\
"""A tiny script living in the demo workspace; edit it in the browser."""


def greet(name: str) -> str:
    return f"Hello, {name}! This file lives in a wsfs workspace."


if __name__ == "__main__":
    print(greet("world"))
'''


def png(width: int = 64, height: int = 64) -> bytes:
    """A valid RGB PNG: a diagonal colour gradient (about 8 KiB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 255 // width, y * 255 // height, 160))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def files() -> dict[str, bytes]:
    """Path -> content of every seeded file."""
    return {
        "/README.md": README.encode(),
        "/notes/todo.md": TODO.encode(),
        "/src/hello.py": HELLO.encode(),
        "/img/gradient.png": png(),
    }


def seed(ws: vfs.Workspace) -> bool:
    """Write the demo files into a workspace nothing was ever committed to (revision 0).

    The check and the writes are one transaction (one revision), so no
    write, even from another process, can slip in between. Returns False,
    writing nothing, otherwise: once anyone (the seed included) has written,
    it is never seeded again.
    """
    with ws.transaction():
        if ws.rev != 0:
            return False
        for path, data in files().items():
            ws.write_file(path, data, parents=True)
    return True

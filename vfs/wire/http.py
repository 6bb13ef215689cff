"""HTTP request bodies and query values: `POST .../ops` bodies, `?mode=`, flags.

Validation raises `ProtocolError` (EPROTO / EBADMSG / EINVAL) naming the field,
as the WebSocket messages do, so an HTTP client gets the same answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from vfs.wire.errors import EBADMSG, EPROTO, ProtocolError
from vfs.wire.fields import _Fields

OPS: dict[str, tuple[str, ...]] = {
    # op -> required fields (optional ones are read in parse_op)
    "mkdir": ("path",),
    "rename": ("src", "dst"),
    "copy": ("src", "dst"),
    "symlink": ("target", "path"),
    "link": ("src", "dst"),
    "chmod": ("path", "mode"),
    "utime": ("path", "mtime"),
    "truncate": ("path", "size"),
    "restore": ("path", "rev"),
    "rm": ("path",),
    "unlink": ("path",),
    "rmdir": ("path",),
}


@dataclass(frozen=True, slots=True)
class Op:
    """A validated `POST .../ops` body; `args` are the store method's keyword arguments."""

    op: str
    args: dict[str, Any]
    if_match: str | None = None


def parse_op(d: Any) -> Op:
    if not isinstance(d, dict):
        raise ProtocolError(EBADMSG, "body must be a JSON object")
    f = _Fields(d)
    op = f.str("op", max_len=32)
    if op not in OPS:
        raise ProtocolError(EPROTO, f"unknown op {op!r}; expected one of {', '.join(OPS)}", field="op")
    args: dict[str, Any] = {}
    if op == "mkdir":
        args = {
            "path": f.path("path"),
            "parents": f.bool("parents"),
            "exist_ok": f.bool("exist_ok"),
            "mode": f.int("mode", required=False, default=0o755, hi=0o7777),
        }
    elif op in ("rename", "copy", "link"):
        args = {"src": f.path("src"), "dst": f.path("dst")}
    elif op == "symlink":
        args = {"target": f.str("target", max_len=4096), "path": f.path("path")}
    elif op == "chmod":
        args = {"path": f.path("path"), "mode": f.int("mode", hi=0o7777)}
    elif op == "utime":
        args = {"path": f.path("path"), "mtime": f.float("mtime")}
    elif op == "truncate":
        args = {"path": f.path("path"), "size": f.int("size")}
    elif op == "restore":
        args = {"path": f.path("path"), "rev": f.int("rev")}
    elif op == "rm":
        args = {"path": f.path("path"), "recursive": f.bool("recursive"), "force": f.bool("force")}
    else:  # unlink, rmdir
        args = {"path": f.path("path")}
    if_match = f.str("if_match", required=False, max_len=64)
    return Op(op=op, args=args, if_match=if_match)


def parse_mode(text: str | None) -> int | None:
    """`?mode=644` (octal digits, optional `0o`/`0` prefix) -> 0o644."""
    if text is None or text == "":
        return None
    t = text.lower().removeprefix("0o")
    if not re.fullmatch(r"[0-7]{1,4}", t):
        raise ProtocolError("EINVAL", f"mode {text!r}: expected octal permission digits such as 644")
    return int(t, 8)


def parse_flag(text: str | None) -> bool:
    """Query flags: `1`, `true`, `yes` are true; absent, `0`, `false`, `no` are false."""
    if text is None:
        return False
    t = text.lower()
    if t in ("1", "true", "yes", ""):
        return True
    if t in ("0", "false", "no"):
        return False
    raise ProtocolError("EINVAL", f"flag value {text!r}: expected 1 or 0")

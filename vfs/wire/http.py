"""HTTP request bodies, query values and headers, sans I/O.

What an HTTP handler reads from a request, validated here so the server only
calls the store: the `POST .../ops` bodies (one table, `OPS`), the other JSON
bodies (`POST /api/tokens`, `POST .../objects/has`, `POST .../push`), query
values (`?mode=`, flags, integers), and the `Range` / `If-Match` headers.

Validation raises `ProtocolError` (EPROTO / EBADMSG / EINVAL / ERANGE) naming
the field, as the WebSocket messages do, so an HTTP client gets the same answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from vfs.types import Change, Cursor
from vfs.wire.errors import EBADMSG, EPROTO, ERANGE, ProtocolError
from vfs.wire.fields import _Fields, is_hash
from vfs.wire.limits import MAX_PUSH_ENTRIES
from vfs.wire.values import change_from_wire, parse_base

# ---------------------------------------------------------------- POST .../ops


@dataclass(frozen=True, slots=True)
class OpField:
    """One field of an op body and how it is checked.

    `kind` is the JSON type: `path` (an absolute path string), `str`, `int`
    (0..`hi`), `float` (any number) or `bool` (absent means false). A field
    that is not `required` takes `default` when absent or null.
    """

    name: str
    kind: Literal["path", "str", "int", "float", "bool"]
    required: bool = True
    default: Any = None
    hi: int = 2**63 - 1
    max_len: int = 4096

    def read(self, fields: _Fields) -> Any:
        """The validated value of this field in `fields` (raises EPROTO naming it)."""
        if self.kind == "path":
            return fields.path(self.name)
        if self.kind == "str":
            return fields.str(self.name, max_len=self.max_len)
        if self.kind == "int":
            return fields.int(self.name, required=self.required, default=self.default, hi=self.hi)
        if self.kind == "float":
            return fields.float(self.name)
        return fields.bool(self.name)


_PATH = OpField("path", "path")
_SRC_DST = (OpField("src", "path"), OpField("dst", "path"))

OPS: dict[str, tuple[OpField, ...]] = {
    # op -> its fields, checked in this order (the first bad one is the one reported)
    "mkdir": (_PATH, OpField("parents", "bool"), OpField("exist_ok", "bool"),
              OpField("mode", "int", required=False, default=0o755, hi=0o7777)),
    "rename": _SRC_DST,
    "copy": _SRC_DST,
    "symlink": (OpField("target", "str", max_len=4096), _PATH),
    "link": _SRC_DST,
    "chmod": (_PATH, OpField("mode", "int", hi=0o7777)),
    "utime": (_PATH, OpField("mtime", "float")),
    "truncate": (_PATH, OpField("size", "int")),
    "restore": (_PATH, OpField("rev", "int")),
    "rm": (_PATH, OpField("recursive", "bool"), OpField("force", "bool")),
    "unlink": (_PATH,),
    "rmdir": (_PATH,),
}
"""Every `POST .../ops` op with its fields; besides them every op takes `if_match`."""


@dataclass(frozen=True, slots=True)
class Op:
    """A validated `POST .../ops` body: `args` maps each field of `OPS[op]` to its value."""

    op: str
    args: dict[str, Any]
    if_match: str | None = None

    @property
    def subject(self) -> str:
        """The path `if_match` is checked against: `path`, or `src` for two-path ops."""
        return self.args.get("path") or self.args["src"]

    @property
    def result_path(self) -> str:
        """The path whose stat the reply carries: `dst` for two-path ops, else `path`."""
        return self.args.get("dst") or self.args["path"]


def parse_op(d: Any) -> Op:
    f = _fields_of(d)
    op = f.str("op", max_len=32)
    if op not in OPS:
        raise ProtocolError(EPROTO, f"unknown op {op!r}; expected one of {', '.join(OPS)}", field="op")
    args = {spec.name: spec.read(f) for spec in OPS[op]}
    if_match = f.str("if_match", required=False, max_len=64)
    return Op(op=op, args=args, if_match=if_match)


# ---------------------------------------------------------------- other JSON bodies


def _fields_of(body: Any) -> _Fields:
    if not isinstance(body, dict):
        raise ProtocolError(EBADMSG, "body must be a JSON object")
    return _Fields(body)


def parse_token_grant(body: Any) -> tuple[str, str]:
    """`POST /api/tokens`: the `(workspace, scope)` the new token is for.

    Its optional `name` is read with `parse_token_name`, once the server knows
    the workspace exists (a missing workspace is reported first).
    """
    f = _fields_of(body)
    workspace = f.str("workspace", max_len=64)
    scope = f.str("scope", max_len=16)
    if scope not in ("read", "write"):
        raise ProtocolError(EPROTO, "field 'scope': must be 'read' or 'write'", field="scope")
    return workspace, scope


def parse_token_name(body: Any) -> str:
    """`POST /api/tokens`: the new token's display name ("" if none)."""
    return _fields_of(body).str("name", required=False, default="", max_len=128)


def parse_hashes(body: Any) -> list[str]:
    """`POST .../objects/has`: the `hashes` asked about."""
    return _fields_of(body).hashes("hashes")


def parse_push(body: Any) -> tuple[list[Change], Cursor | dict[str, int] | None]:
    """`POST .../push`: the entries to apply and the `base` they were made against."""
    if not isinstance(body, dict):
        raise ProtocolError(EBADMSG, "body must be a JSON object")
    raw = body.get("changes")
    if not isinstance(raw, list) or len(raw) > MAX_PUSH_ENTRIES:
        raise ProtocolError(EPROTO, f"field 'changes': a list of at most {MAX_PUSH_ENTRIES} entries", field="changes")
    changes = [change_from_wire(c) for c in raw]
    return changes, parse_base(body.get("base"))


def check_object_hash(text: str) -> str:
    """The `{hash}` of `.../objects/{hash}`: a content hash, else EINVAL."""
    if not is_hash(text):
        raise ProtocolError("EINVAL", f"{text!r} is not a 64-char lowercase hex BLAKE3 hash")
    return text


# ---------------------------------------------------------------- query values


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


def parse_query_int(name: str, raw: str | None, default: int | None = None,
                    lo: int = 0, hi: int = 2**63 - 1) -> int | None:
    """`?name=raw` as an integer in [lo, hi]; `default` when absent or empty."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ProtocolError("EINVAL", f"query {name}={raw!r}: expected an integer") from None
    if not lo <= value <= hi:
        raise ProtocolError("EINVAL", f"query {name}={raw!r}: out of range [{lo}, {hi}]")
    return value


def parse_mtime(raw: str | None) -> float | None:
    """`?mtime=` of a PUT: seconds since the epoch, None when absent or empty."""
    try:
        return float(raw) if raw else None
    except ValueError:
        raise ProtocolError("EINVAL", f"query mtime={raw!r}: expected seconds") from None


# ---------------------------------------------------------------- headers


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One `bytes=` range of a file of `size` bytes -> (start, length); None: serve everything.

    Raises ERANGE (416) when the range is not satisfiable.
    """
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m:
        return None  # several ranges or another unit: RFC 9110 lets us ignore Range
    first, last = m.groups()
    if first == "" and last == "":
        return None
    if first == "":
        length = min(int(last), size)
        if length == 0:
            raise ProtocolError(ERANGE, f"range {header!r} not satisfiable for size {size}", size=size)
        return size - length, length
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ProtocolError(ERANGE, f"range {header!r} not satisfiable for size {size}", size=size)
    return start, end - start + 1


def parse_if_match(if_match: str | None, if_none_match: str | None) -> str | None:
    """The precondition of a write: `If-Match: "<id>"` -> id; `If-None-Match: *` -> ""
    (the path must not exist); neither -> None."""
    if if_match is not None:
        return if_match.strip().removeprefix("W/").strip('"')
    if (if_none_match or "").strip() == "*":
        return ""
    return None


def etag_matches(if_none_match: str | None, content_id: str | None) -> bool:
    """Does a GET's `If-None-Match` list name `content_id` (so the answer is 304)?"""
    if not if_none_match or not content_id:
        return False
    return content_id in [t.strip().removeprefix("W/").strip('"') for t in if_none_match.split(",")]

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
from typing import Any, Literal, Mapping

from vfs.types import Change, Cursor
from vfs.wire.errors import EBADMSG, EPROTO, ERANGE, ProtocolError
from vfs.wire.fields import _Fields, check_cursor, check_mtime, is_hash
from vfs.wire.globs import check_glob, check_ignore, user_regex
from vfs.wire.limits import INT64_MAX, MAX_GLOBS, MAX_GREP_CONTEXT, MAX_IGNORE_PATTERN, MAX_PUSH_ENTRIES
from vfs.wire.values import change_from_wire, parse_base

# ---------------------------------------------------------------- POST .../ops


@dataclass(frozen=True, slots=True)
class OpField:
    """One field of an op body and how it is checked.

    `kind` is the JSON type: `path` (an absolute path string), `str`, `int`
    (0..`hi`), `mtime` (finite seconds within +-MTIME_MAX) or `bool` (absent means false). A field
    that is not `required` takes `default` when absent or null.
    """

    name: str
    kind: Literal["path", "str", "int", "mtime", "bool"]
    required: bool = True
    default: Any = None
    hi: int = INT64_MAX
    max_len: int = 4096

    def read(self, fields: _Fields) -> Any:
        """The validated value of this field in `fields` (raises EPROTO naming it)."""
        if self.kind == "path":
            return fields.path(self.name)
        if self.kind == "str":
            return fields.str(self.name, max_len=self.max_len)
        if self.kind == "int":
            return fields.int(self.name, required=self.required, default=self.default, hi=self.hi)
        if self.kind == "mtime":
            return fields.mtime(self.name)
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
    "utime": (_PATH, OpField("mtime", "mtime")),
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
                    lo: int = 0, hi: int = INT64_MAX) -> int | None:
    """`?name=raw` as an integer in [lo, hi]; `default` when absent or empty."""
    if raw is None or raw == "":
        return default
    if len(raw) > 32 or not re.fullmatch(r"[+-]?[0-9]+", raw.strip()):
        raise ProtocolError("EINVAL", f"query {name}={raw[:40]!r}: expected an integer in [{lo}, {hi}]", field=name)
    value = int(raw)
    if not lo <= value <= hi:
        raise ProtocolError("EINVAL", f"query {name}={raw!r}: out of range [{lo}, {hi}]", field=name)
    return value


def parse_mtime(raw: str | None) -> float | None:
    """`?mtime=` of a PUT: seconds since the epoch, None when absent or empty."""
    if not raw:
        return None
    try:
        seconds = float(raw) if len(raw) <= 64 else float("nan")
    except ValueError:
        seconds = float("nan")
    try:
        return check_mtime("mtime", seconds)
    except ProtocolError as e:
        raise ProtocolError("EINVAL", f"query mtime={raw[:40]!r}: {e.message.split(': ', 1)[1]}", field="mtime") from None


def _query_error(name: str, message: str) -> ProtocolError:
    return ProtocolError(EPROTO, f"query {name}: {message}", field=name)


def parse_changes_query(after: str | None, ignore: list[str]) -> tuple[Cursor, list[str]]:
    """`GET .../changes?after=&ignore=...`: the cursor (int64 revision) and gitignore lines pathspec takes."""
    try:
        cursor = check_cursor("after", after) if after else Cursor(0)
    except ProtocolError as e:  # a bad query value is EINVAL, as for every other query value
        raise ProtocolError("EINVAL", f"query after: {e.message.split(': ', 1)[1]}", field="after") from None
    if len(ignore) > MAX_GLOBS:
        raise _query_error("ignore", f"more than {MAX_GLOBS} patterns")
    for pattern in ignore:
        if len(pattern) > MAX_IGNORE_PATTERN:
            raise _query_error("ignore", f"pattern longer than {MAX_IGNORE_PATTERN} characters")
        try:
            check_ignore(pattern)
        except ValueError as e:
            raise _query_error("ignore", str(e)) from None
    return cursor, list(ignore)


def parse_glob_query(name: str, raw: str | None) -> str | None:
    """A glob in a query (`find?pattern=`, `grep?include=`): None when absent or empty."""
    if not raw:
        return None
    try:
        return check_glob(raw)
    except ValueError as e:
        raise _query_error(name, str(e)) from None


@dataclass(frozen=True, slots=True)
class GrepQuery:
    """A validated `GET .../grep`: the pattern, where, and the store's keyword arguments."""

    pattern: str
    path: str
    kwargs: dict[str, Any]


def parse_grep_query(query: Mapping[str, str]) -> GrepQuery:
    """`GET .../grep?pattern=&regex=&ignore_case=&include=&context=&limit=&path=`.

    The pattern must compile with RE2 (linear-time matching: no lookaround,
    no backreferences), so a search can never stall a reader thread.
    """
    pattern = query.get("pattern") or ""
    regex, ignore_case = parse_flag(query.get("regex")), parse_flag(query.get("ignore_case"))
    if not pattern:
        raise ProtocolError("EINVAL", "query pattern is required", field="pattern")
    try:
        user_regex(pattern, regex=regex, ignore_case=ignore_case)
    except ValueError as e:
        raise _query_error("pattern", str(e)) from None
    kwargs = {
        "regex": regex,
        "ignore_case": ignore_case,
        "include": parse_glob_query("include", query.get("include")),
        "context": parse_query_int("context", query.get("context"), 0, hi=MAX_GREP_CONTEXT),
        "limit": parse_query_int("limit", query.get("limit")),
    }
    return GrepQuery(pattern=pattern, path=query.get("path", "/"), kwargs=kwargs)


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


IF_MATCH_ANY = "*"
"""`parse_if_match` for `If-Match: *`: the path must exist, whatever its content."""


def parse_if_match(if_match: str | None, if_none_match: str | None) -> str | None:
    """The precondition of a write: `If-Match: "<id>"` -> id; `If-Match: *` -> `IF_MATCH_ANY`;
    `If-None-Match: *` -> "" (the path must not exist); neither -> None.

    `If-Match: ""` names an entity tag no content has: it is returned as `'""'`,
    so the write fails with 412 whether or not the path exists (never a create).
    """
    if if_match is not None:
        tag = if_match.strip()
        if tag == "*":
            return IF_MATCH_ANY
        tag = tag.removeprefix("W/").strip('"')
        return tag or '""'
    if (if_none_match or "").strip() == "*":
        return ""
    return None


def etag_matches(if_none_match: str | None, content_id: str | None) -> bool:
    """Does a GET's `If-None-Match` list name `content_id` (so the answer is 304)?"""
    if not if_none_match or not content_id:
        return False
    return content_id in [t.strip().removeprefix("W/").strip('"') for t in if_none_match.split(",")]

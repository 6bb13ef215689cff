"""Field validation for decoded JSON objects: each bad field raises EPROTO naming it.

Shared by the WebSocket messages, the value codecs and the HTTP bodies, so every
entry point rejects the same things with the same words.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

from vfs.types import Cursor
from vfs.wire.errors import EPROTO, ProtocolError
from vfs.wire.globs import check_glob, check_ignore
from vfs.wire.limits import INT64_MAX, MAX_HASHES, MAX_ID_LEN, MTIME_MAX

# ---------------------------------------------------------------- field validation

RequestId = str | int
"""A request id: a string of at most `MAX_ID_LEN` characters, or an integer."""

HASH_RE = re.compile(r"[0-9a-f]{64}\Z")
"""A content hash on the wire: 64 lowercase hex digits of BLAKE3."""


def is_hash(text: str) -> bool:
    """Is `text` a content hash as the wire writes it (64 lowercase hex digits)?"""
    return bool(HASH_RE.match(text))

_WORKSPACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def valid_workspace_name(name: str) -> bool:
    """Workspace names: 1-64 of `[A-Za-z0-9._-]`, not starting with `.`, `_` or `-`."""
    return bool(_WORKSPACE_RE.match(name))


def _fail(field_name: str, what: str, id: RequestId | None = None) -> ProtocolError:
    return ProtocolError(EPROTO, f"field {field_name!r}: {what}", id=id, field=field_name)


class _Fields:
    """Typed access to one decoded JSON object, raising EPROTO naming the field."""

    __slots__ = ("d", "id")

    def __init__(self, d: Mapping[str, Any], id: RequestId | None = None):
        self.d = d
        self.id = id

    def _get(self, name: str, required: bool) -> Any:
        if name not in self.d or self.d[name] is None:
            if required:
                raise _fail(name, "required", self.id)
            return None
        return self.d[name]

    def str(self, name: str, *, required: bool = True, default: str | None = None, max_len: int = 4096) -> Any:
        v = self._get(name, required)
        if v is None:
            return default
        if not isinstance(v, str):
            raise _fail(name, "expected a string", self.id)
        if len(v) * 4 > max_len and len(v.encode("utf-8", "surrogatepass")) > max_len:  # 4: UTF-8's widest
            raise _fail(name, f"longer than {max_len} bytes", self.id)
        return v

    def int(self, name: str, *, required: bool = True, default: int | None = None, lo: int = 0, hi: int = INT64_MAX) -> Any:
        v = self._get(name, required)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, int):
            raise _fail(name, "expected an integer", self.id)
        if not lo <= v <= hi:
            raise _fail(name, f"out of range [{lo}, {hi}]", self.id)
        return v

    def mtime(self, name: str, *, required: bool = True, default: float | None = None) -> Any:
        """Seconds since the epoch: a finite number within [-MTIME_MAX, MTIME_MAX]."""
        v = self._get(name, required)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(name, "expected a number of seconds", self.id)
        return check_mtime(name, v, self.id)

    def bool(self, name: str, *, default: bool = False) -> bool:
        v = self._get(name, False)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise _fail(name, "expected true or false", self.id)
        return v

    def str_list(self, name: str, *, required: bool = True, max_items: int = MAX_HASHES, max_len: int = 4096) -> Any:
        v = self._get(name, required)
        if v is None:
            return None
        if not isinstance(v, list):
            raise _fail(name, "expected a list of strings", self.id)
        if len(v) > max_items:
            raise _fail(name, f"more than {max_items} items", self.id)
        for item in v:
            if not isinstance(item, str) or len(item) > max_len:
                raise _fail(name, "expected a list of strings", self.id)
        return list(v)

    def hashes(self, name: str) -> list[str]:
        v = self.str_list(name, max_len=64)
        for h in v:
            if not HASH_RE.match(h):
                raise _fail(name, f"{h!r} is not a 64-char lowercase hex BLAKE3 hash", self.id)
        return v

    def path(self, name: str, *, required: bool = True, default: str | None = None) -> Any:
        """An absolute path; full normalisation is the store's job (it raises EINVAL)."""
        v = self.str(name, required=required, default=default, max_len=8192)
        if v is not None and not v.startswith("/"):
            raise _fail(name, "expected an absolute path starting with '/'", self.id)
        return v

    def cursor(self, name: str, *, allow_now: bool = False) -> Any:
        """A cursor string, `null` (the very beginning) or, where allowed, "now"."""
        v = self._get(name, False)
        if v is None:
            return None
        if allow_now and v == "now":
            return "now"
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise _fail(name, "expected a cursor string" + (' or "now"' if allow_now else ""), self.id)
        return check_cursor(name, v, self.id)

    def patterns(self, name: str, *, max_items: int, max_len: int, kind: str) -> Any:
        """A list of globs (`kind="glob"`) or gitignore lines (`kind="ignore"`), each one the matcher takes."""
        v = self.str_list(name, required=False, max_items=max_items, max_len=max_len)
        if v is not None:
            check = check_glob if kind == "glob" else check_ignore
            for pattern in v:
                try:
                    check(pattern)
                except ValueError as e:
                    raise _fail(name, str(e), self.id) from None
        return v

    def obj(self, name: str, *, required: bool = True) -> Any:
        v = self._get(name, required)
        if v is None:
            return None
        if not isinstance(v, dict):
            raise _fail(name, "expected an object", self.id)
        return v


def check_mtime(name: str, value: int | float, id: RequestId | None = None) -> float:
    """The one rule for times: finite seconds within [-MTIME_MAX, MTIME_MAX] (int64 nanoseconds, os.utime)."""
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or not -MTIME_MAX <= seconds <= MTIME_MAX:
        raise _fail(name, f"expected finite seconds within [-{MTIME_MAX}, {MTIME_MAX}]", id)
    return seconds


def check_cursor(name: str, value: str | int, id: RequestId | None = None) -> Cursor:
    """The one rule for cursors: `REV`, `REV:/PATH` or `REV~FLOOR:/PATH` with 0 <= REV, FLOOR <= INT64_MAX."""
    if isinstance(value, str) and len(value) > 8192 + 32:
        raise _fail(name, "cursor longer than a revision and a path", id)
    try:
        cursor = Cursor.parse(value)
    except ValueError as e:
        raise _fail(name, str(e), id) from None
    if not 0 <= cursor.rev <= INT64_MAX or not 0 <= (cursor.floor or 0) <= INT64_MAX:
        raise _fail(name, f"cursor revision out of range [0, {INT64_MAX}]", id)
    return cursor


def _request_id(d: Mapping[str, Any], *, required: bool = True) -> RequestId | None:
    v = d.get("id")
    if v is None:
        if required:
            raise _fail("id", "required")
        return None
    if isinstance(v, bool) or not isinstance(v, (str, int)) or (isinstance(v, str) and len(v) > MAX_ID_LEN):
        raise _fail("id", f"expected a string (at most {MAX_ID_LEN} chars) or an integer")
    return v

"""Wire error codes, their HTTP statuses, and the mapping to and from exceptions.

The server turns whatever the store raises into a `ProtocolError` (a code the
client can act on, never leaked internals); the client turns that code back
into what `vfs` would have raised, so remote and local workspaces fail alike.
"""

from __future__ import annotations

import errno as _errno
from typing import TYPE_CHECKING, Any, Mapping

from vfs.errors import (
    BadObject,
    CursorTooOld,
    MissingObjects,
    PreconditionFailed,
    StoreBusy,
    errno_from_name,
    errno_name,
)

if TYPE_CHECKING:
    from vfs.wire.fields import RequestId
    from vfs.wire.messages import Error

# ---------------------------------------------------------------- error codes

# Codes that are not errno names. Everything else on the wire is an errno name
# ("ENOENT", ...) produced by `vfs.errors.errno_name`.
EAUTH = "EAUTH"  # 401: missing, wrong or revoked token
EACCES = "EACCES"  # 403: valid token, wrong workspace or scope
EPRECONDITION = "EPRECONDITION"  # 412: If-Match / If-None-Match / if_match failed
ECURSORTOOOLD = "ECURSORTOOOLD"  # 410: cursor older than the tombstone horizon
EMISSINGOBJECTS = "EMISSINGOBJECTS"  # 422: push references chunks the server lacks
EBADOBJECT = "EBADOBJECT"  # 422: chunk bytes do not hash to the claimed id
EPROTO = "EPROTO"  # 422 / WS: well-formed JSON, wrong message (type, field, value)
EBADMSG = "EBADMSG"  # 400 / WS: not JSON, not an object, binary frame out of place
EMSGSIZE = "EMSGSIZE"  # 413 / WS: frame or body too large
EPROTONOSUPPORT = "EPROTONOSUPPORT"  # WS hello: unsupported protocol version
ERANGE = "ERANGE"  # 416: unsatisfiable Range
EINTERNAL = "EINTERNAL"  # 500
ESHUTDOWN = "ESHUTDOWN"  # 503: server is stopping

STATUS_BY_CODE: dict[str, int] = {
    "ENOENT": 404,
    "EEXIST": 409,
    "ENOTEMPTY": 409,
    "ENOTDIR": 409,
    "EISDIR": 409,
    "EXDEV": 409,
    "EBUSY": 409,
    "EINVAL": 400,
    "ENAMETOOLONG": 400,
    "ELOOP": 400,
    EBADMSG: 400,
    EPROTONOSUPPORT: 400,
    "EPERM": 403,
    EACCES: 403,
    "EROFS": 403,
    EAUTH: 401,
    ECURSORTOOOLD: 410,
    EPRECONDITION: 412,
    "EFBIG": 413,  # a file would exceed the server's maximum file size
    EMSGSIZE: 413,
    ERANGE: 416,
    EPROTO: 422,
    EBADOBJECT: 422,
    EMISSINGOBJECTS: 422,
    "EDQUOT": 507,  # the workspace would exceed its quota
    EINTERNAL: 500,
    ESHUTDOWN: 503,
    "EAGAIN": 503,  # cluster: committed but not acknowledged (not replicated, or no longer the owner); retry
}


def status_for(code: str) -> int:
    """HTTP status for a wire error code (500 for anything unknown)."""
    return STATUS_BY_CODE.get(code, 500)


class ProtocolError(Exception):
    """A request or frame that cannot be served, with its wire code.

    `extra` holds additional fields of the error object (`missing`, `horizon`,
    `supported`, `current`, `field`, ...).
    """

    def __init__(self, code: str, message: str, *, id: RequestId | None = None, **extra: Any):
        super().__init__(message)
        self.code = code
        self.message = message
        self.id = id
        self.extra = extra

    @property
    def status(self) -> int:
        return status_for(self.code)

    def to_message(self) -> Error:
        from vfs.wire.messages import Error  # messages import this module

        return Error(code=self.code, message=self.message, id=self.id, extra=dict(self.extra))


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The HTTP error body: `{"error": {"code", "message", ...extra}}`."""
    return {"error": {"code": code, "message": message, **extra}}


def exception_to_error(exc: BaseException) -> ProtocolError:
    """Map anything the store (or validation) raises to a wire error.

    Unknown exceptions become EINTERNAL without leaking their text.
    """
    if isinstance(exc, ProtocolError):
        return exc
    if isinstance(exc, PreconditionFailed):
        return ProtocolError(
            EPRECONDITION, _precondition_message(exc), path=exc.path, expected=exc.expected, current=exc.current
        )
    if isinstance(exc, CursorTooOld):
        return ProtocolError(ECURSORTOOOLD, str(exc), cursor=str(exc.cursor), horizon=exc.horizon)
    if isinstance(exc, MissingObjects):
        return ProtocolError(EMISSINGOBJECTS, str(exc), missing=list(exc.missing))
    if isinstance(exc, BadObject):
        return ProtocolError(EBADOBJECT, str(exc))
    if isinstance(exc, StoreBusy):  # its filename is the server's store file: not the client's business
        return ProtocolError(errno_name(exc.errno), exc.strerror)
    if isinstance(exc, OSError) and exc.errno is not None:
        message = exc.strerror or str(exc)
        if exc.filename is not None:
            return ProtocolError(errno_name(exc.errno), message, path=str(exc.filename))
        return ProtocolError(errno_name(exc.errno), message)
    return ProtocolError(EINTERNAL, "internal server error")


def _precondition_message(exc: PreconditionFailed) -> str:
    """Say what the condition was and what was found, in words (an empty `expected` is 'must not exist')."""
    if exc.expected == "":
        return f"{exc.path}: already exists (content {exc.current}), and the write required that it did not"
    if exc.current is None:
        return f"{exc.path}: does not exist, and the write required content {exc.expected}"
    return f"{exc.path}: content is {exc.current}, not {exc.expected}"


def error_to_exception(code: str, message: str, extra: Mapping[str, Any] | None = None) -> Exception:
    """The inverse of `exception_to_error`, for clients: rebuild what vfs would raise.

    errno codes become the matching `OSError` subclass (FileNotFoundError, ...),
    so code written against `vfs.Workspace` handles a remote workspace the same way.
    Codes with no local equivalent become `ProtocolError`.
    """
    extra = {k: v for k, v in (extra or {}).items() if k not in ("code", "message", "id")}
    if code == EPRECONDITION:
        return PreconditionFailed(extra.get("path", ""), extra.get("expected", ""), extra.get("current"))
    if code == ECURSORTOOOLD:
        return CursorTooOld(extra.get("cursor"), int(extra.get("horizon", 0)))
    if code == EMISSINGOBJECTS:
        return MissingObjects(list(extra.get("missing", [])))
    if code == EBADOBJECT:
        return BadObject(message)
    if code == EACCES:
        return PermissionError(_errno.EACCES, message, extra.get("path"))
    number = errno_from_name(code)
    if number is not None and code.startswith("E"):
        return OSError(number, message, extra.get("path"))
    return ProtocolError(code, message, **extra)

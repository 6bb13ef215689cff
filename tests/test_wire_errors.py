"""vfs.wire.errors: exceptions map to wire codes and statuses and back; every code is documented."""

from __future__ import annotations

import errno

import orjson
import pytest

import vfs
from vfs import wire as p

HASH = "ab" * 32


@pytest.mark.parametrize(
    ("exc", "code", "status"),
    [
        (FileNotFoundError(errno.ENOENT, "x", "/a"), "ENOENT", 404),
        (FileExistsError(errno.EEXIST, "x", "/a"), "EEXIST", 409),
        (OSError(errno.ENOTEMPTY, "x", "/a"), "ENOTEMPTY", 409),
        (NotADirectoryError(errno.ENOTDIR, "x", "/a"), "ENOTDIR", 409),
        (IsADirectoryError(errno.EISDIR, "x", "/a"), "EISDIR", 409),
        (OSError(errno.EINVAL, "x", "/a"), "EINVAL", 400),
        (OSError(errno.ENAMETOOLONG, "x", "/a"), "ENAMETOOLONG", 400),
        (OSError(errno.ELOOP, "x", "/a"), "ELOOP", 400),
        (PermissionError(errno.EPERM, "x", "/"), "EPERM", 403),
        (OSError(errno.EROFS, "x", "/"), "EROFS", 403),
        (OSError(errno.EFBIG, "x", "/"), "EFBIG", 413),
        (vfs.PreconditionFailed("/a", HASH, None), "EPRECONDITION", 412),
        (vfs.CursorTooOld(vfs.Cursor(3), 9), "ECURSORTOOOLD", 410),
        (vfs.MissingObjects([HASH]), "EMISSINGOBJECTS", 422),
        (vfs.BadObject("bad"), "EBADOBJECT", 422),
        (RuntimeError("secret details"), "EINTERNAL", 500),
    ],
)
def test_errors_map_to_codes_and_back(exc: BaseException, code: str, status: int) -> None:
    err = p.exception_to_error(exc)
    assert (err.code, err.status) == (code, status)
    assert "secret details" not in err.message
    body = orjson.loads(orjson.dumps(p.error_body(err.code, err.message, **err.extra)))
    back = p.error_to_exception(body["error"]["code"], body["error"]["message"], body["error"])
    if code == "EINTERNAL":
        assert isinstance(back, p.ProtocolError)
    else:
        assert type(back) is type(exc)
    if isinstance(exc, OSError):
        assert back.errno == exc.errno and back.filename == exc.filename
    if isinstance(exc, vfs.MissingObjects):
        assert back.missing == [HASH]
    if isinstance(exc, vfs.CursorTooOld):
        assert back.horizon == 9




def test_every_documented_code_has_a_status() -> None:
    text = (__import__("pathlib").Path(__file__).parent.parent / "docs" / "protocol.md").read_text()
    for code, status in p.STATUS_BY_CODE.items():
        assert f"`{code}`" in text, code
        assert status in (400, 401, 403, 404, 409, 410, 412, 413, 416, 422, 500, 503, 507)

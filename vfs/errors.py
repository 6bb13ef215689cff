"""Errors the store raises.

Filesystem errors are Python's own `OSError` subclasses with `errno` and
`filename` set, exactly what `os` would raise for the same call, so code
written against the local disk handles a workspace the same way. The few
errors with no POSIX equivalent are listed below.
"""

from __future__ import annotations

import errno as _errno
import os


def fs_error(code: int, path: str | None = None, message: str | None = None) -> OSError:
    """Build the OSError subclass Python itself would raise for `code`.

    `OSError(code, msg, filename)` picks FileNotFoundError, FileExistsError,
    ... from the errno, the same mapping the interpreter uses.
    """
    return OSError(code, message or os.strerror(code), path)


def errno_name(code: int) -> str:
    """`errno.ENOENT` -> `"ENOENT"`: the code that travels on the wire."""
    return _errno.errorcode.get(code, f"E{code}")


def errno_from_name(name: str) -> int | None:
    value = getattr(_errno, name, None)
    return value if isinstance(value, int) else None


class MissingObjects(Exception):
    """`apply_changes` was given entries whose chunks are not in the store.

    Nothing was applied; send the listed chunks (`put_object`) and retry.
    """

    def __init__(self, missing: list[str]):
        self.missing = sorted(set(missing))
        shown = ", ".join(self.missing[:5]) + (" ..." if len(self.missing) > 5 else "")
        super().__init__(f"{len(self.missing)} chunk(s) missing: {shown}")


class CursorTooOld(Exception):
    """The reader's cursor is older than the tombstone horizon.

    Deletions before `horizon` have been compacted away, so an incremental
    stream could silently miss them: the reader must resync from a snapshot
    (`changes(after=None)` lists every live path) and delete whatever it
    holds that is not in it.
    """

    def __init__(self, cursor: object, horizon: int):
        self.cursor = cursor
        self.horizon = horizon
        super().__init__(
            f"cursor {cursor} is older than the tombstone horizon {horizon}; resync from a snapshot"
        )


class BadObject(ValueError):
    """`put_object` was given bytes that do not hash to the claimed id."""


class PreconditionFailed(Exception):
    """A conditional write (`if_match=`) found different content at the path.

    `current` is the content id now at the path (None if it does not exist),
    so the caller can show the user what changed.
    """

    def __init__(self, path: str, expected: str, current: str | None):
        self.path = path
        self.expected = expected
        self.current = current
        super().__init__(f"{path}: content is {current}, not {expected}")


class StoreBusy(OSError):
    """The store is locked against this kind of open (see `vfs.storelock`):
    a local FUSE mount holds it exclusively, or a mount was asked for a store
    another process is writing. errno is EBUSY."""

    def __init__(self, path: str, message: str):
        super().__init__(_errno.EBUSY, message, path)

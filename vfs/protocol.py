"""Temporary shim: the wire protocol now lives in the `vfs.wire` package.

Every public name of the old module is re-exported from there (plus the few
private helpers other modules still import), so `from vfs.protocol import X`
keeps working until the imports are rewritten; then this module goes.
"""

from __future__ import annotations

from vfs.wire import *  # noqa: F403
from vfs.wire import __all__  # noqa: F401
from vfs.wire.codec import _decode, _load_object, _safe_id  # noqa: F401
from vfs.wire.fields import HASH_RE as _HASH_RE  # noqa: F401
from vfs.wire.fields import _fail, _Fields, _request_id  # noqa: F401
from vfs.wire.messages import _CLIENT_TYPES, _SERVER_TYPES  # noqa: F401

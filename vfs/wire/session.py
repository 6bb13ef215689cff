"""What both ends of a WebSocket session share: its states and how it ends.

A session is a state machine fed with decoded frames, apart from any I/O
(as h11 keeps its `_state.py` apart from sockets): `ServerSession`
(`vfs.wire.server_session`) and `ClientSession` (`vfs.wire.client_session`)
say which frame is legal when, keep the request-id and subscription
bookkeeping, and tell their I/O adapter (`server/ws_api.py`,
`client_py/session.py`) what to send and what to close. They never read a
socket, await, or sleep, so every rule can be tested frame by frame.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SessionState(enum.Enum):
    """Where a session is.

    AWAITING_HELLO: the connection is up, the hellos are not both exchanged.
    OPEN: requests, replies and events flow.
    CLOSED: nothing more is sent or accepted (closing or closed: the adapter
    may still be flushing the close frame, but the protocol is over).
    """

    AWAITING_HELLO = "awaiting_hello"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with this WebSocket close code and reason."""

    code: int
    reason: str = ""


class WrongState(RuntimeError):
    """The adapter fed a session something its state does not allow: a bug on this side,
    not a bad frame from the peer (those raise `ProtocolError`)."""


def require_state(actual: SessionState, expected: SessionState, action: str) -> None:
    """Raise `WrongState` unless the session is in the `expected` state for `action`."""
    if actual is not expected:
        raise WrongState(f"cannot {action} in state {actual.value} (expected {expected.value})")

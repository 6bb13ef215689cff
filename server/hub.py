"""Change notification and presence fan-out, behind one small interface.

Handlers never talk to each other directly: a commit or a presence change is
published to the `Hub`, which calls back every `Listener` of that workspace.
`LocalHub` does it in-process. A multi-node deployment would implement the
same four publishing methods over a broker (Redis pub/sub, NATS) and call the
same listener callbacks on receipt, without touching the handlers.

Listener callbacks are synchronous and must not block: they run on the event
loop and only record state and wake a task. That is what keeps fan-out
O(listeners) cheap calls, with no `await` per subscriber, so one slow client
cannot stall the others.
"""

from __future__ import annotations

from typing import Any, Protocol


class Listener(Protocol):
    session: str

    def on_commit(self, rev: int) -> None:
        """The workspace reached revision `rev` (latest wins; intermediate calls may be skipped)."""

    def on_presence(self, op: str, peer: dict[str, Any]) -> None:
        """Another session joined, updated or left (`op` in join/update/leave)."""

    def on_close(self, code: int, reason: str) -> None:
        """The server wants this session gone (workspace deleted, token revoked, shutdown)."""


class Hub(Protocol):
    def listen(self, workspace: str, listener: Listener) -> None: ...
    def unlisten(self, workspace: str, listener: Listener) -> None: ...
    def head(self, workspace: str) -> int: ...
    def publish_commit(self, workspace: str, rev: int) -> None: ...
    def publish_presence(self, workspace: str, session: str, op: str, peer: dict[str, Any]) -> None: ...
    def presence(self, workspace: str) -> list[dict[str, Any]]: ...
    def close_sessions(self, workspace: str | None, code: int, reason: str, *, token_id: str | None = None) -> None: ...


class LocalHub:
    """In-process hub: dictionaries and direct callbacks on the event loop."""

    def __init__(self) -> None:
        self._listeners: dict[str, dict[str, Listener]] = {}
        self._heads: dict[str, int] = {}
        self._presence: dict[str, dict[str, dict[str, Any]]] = {}

    def listen(self, workspace: str, listener: Listener) -> None:
        self._listeners.setdefault(workspace, {})[listener.session] = listener

    def unlisten(self, workspace: str, listener: Listener) -> None:
        group = self._listeners.get(workspace)
        if group is not None:
            group.pop(listener.session, None)
            if not group:
                del self._listeners[workspace]

    def listeners(self, workspace: str | None = None) -> list[Listener]:
        if workspace is not None:
            return list(self._listeners.get(workspace, {}).values())
        return [lst for group in self._listeners.values() for lst in group.values()]

    def head(self, workspace: str) -> int:
        return self._heads.get(workspace, 0)

    def set_head(self, workspace: str, rev: int) -> None:
        """Record a revision without waking anyone (a store just opened)."""
        if rev > self._heads.get(workspace, -1):
            self._heads[workspace] = rev

    def forget(self, workspace: str) -> None:
        self._heads.pop(workspace, None)
        self._presence.pop(workspace, None)

    def publish_commit(self, workspace: str, rev: int) -> None:
        if rev <= self._heads.get(workspace, -1):
            return
        self._heads[workspace] = rev
        for listener in self.listeners(workspace):
            listener.on_commit(rev)

    def publish_presence(self, workspace: str, session: str, op: str, peer: dict[str, Any]) -> None:
        table = self._presence.setdefault(workspace, {})
        if op == "leave":
            if table.pop(session, None) is None:
                return
        else:
            table[session] = peer
        for listener in self.listeners(workspace):
            if listener.session != session:
                listener.on_presence(op, peer)

    def presence(self, workspace: str) -> list[dict[str, Any]]:
        return list(self._presence.get(workspace, {}).values())

    def close_sessions(self, workspace: str | None, code: int, reason: str, *, token_id: str | None = None) -> None:
        """Ask matching sessions to close: one workspace, every workspace (None), or one token's."""
        for listener in self.listeners(workspace):
            if token_id is None or getattr(listener, "token_id", None) == token_id:
                listener.on_close(code, reason)

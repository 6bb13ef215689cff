"""`DurableHub`: a `Hub` that announces only revisions a cluster node has acknowledged.

On one node a commit is announced as soon as SQLite made it. In a cluster a
commit is not safe until it is in S3 and the node is still the owner
(`ClusterPlacement.durable`); a subscriber shown a revision that then dies
with its owner would later see a *different* revision under the same number
from the next owner. So this wrapper swallows `publish_commit` (the store's
commit callback, the external-commit poll) and passes on only
`publish_durable`, which the placement calls once a revision is
acknowledged. `head` is therefore the durable head: subscribers catch up to
it and no further, and after a takeover the restored store holds at least
every revision any subscriber was told about.

Everything else (listeners, presence, closes, `set_head` at open) goes to the
wrapped hub unchanged: a `RedisHub` in a cluster, a `LocalHub` in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.hub import Hub, Listener


class DurableHub:
    """Wraps a hub; commits reach it only once durable."""

    def __init__(self, inner: Hub, on_known: Callable[[str], None] | None = None):
        self.inner = inner
        self.on_known = on_known  # called with a workspace name when a store of it opened here

    def __getattr__(self, name: str) -> Any:  # connected, sent, listeners, start, stop...
        return getattr(self.inner, name)

    def listen(self, workspace: str, listener: Listener) -> None:
        self.inner.listen(workspace, listener)

    def unlisten(self, workspace: str, listener: Listener) -> None:
        self.inner.unlisten(workspace, listener)

    def head(self, workspace: str) -> int:
        return self.inner.head(workspace)

    def set_head(self, workspace: str, rev: int) -> None:
        self.inner.set_head(workspace, rev)
        if self.on_known is not None:
            self.on_known(workspace)

    def forget(self, workspace: str) -> None:
        self.inner.forget(workspace)

    def publish_commit(self, workspace: str, rev: int) -> None:
        """Committed, not yet durable: announced later by `publish_durable` (or never, if refused)."""

    def publish_durable(self, workspace: str, rev: int) -> None:
        self.inner.publish_commit(workspace, rev)

    def publish_presence(self, workspace: str, session: str, op: str, peer: dict[str, Any]) -> None:
        self.inner.publish_presence(workspace, session, op, peer)

    def presence(self, workspace: str) -> list[dict[str, Any]]:
        return self.inner.presence(workspace)

    def close_local(self, workspace: str, code: int, reason: str) -> None:
        """Close this node's sessions of `workspace` only (it moved away from this node: the new
        owner's sessions, reached through Redis by `close_sessions`, must stay open)."""
        for listener in self.inner.listeners(workspace):  # type: ignore[attr-defined]
            listener.on_close(code, reason)

    def close_sessions(self, workspace: str | None, code: int, reason: str, *, token_id: str | None = None) -> None:
        self.inner.close_sessions(workspace, code, reason, token_id=token_id)

"""Change notification and presence fan-out, behind one small interface.

Handlers never talk to each other directly: a commit or a presence change is
published to the `Hub`, which calls back every `Listener` of that workspace.
`LocalHub` does it in-process. A multi-node deployment implements the same
`Hub` protocol over a broker (Redis pub/sub, NATS) and calls the same
listener callbacks on receipt, without touching the handlers: the rest of
the server (stores, state, app, the WebSocket and HTTP handlers) knows only
the protocol below.

Listener callbacks are synchronous and must not block: they run on the event
loop and only record state and wake a task. That is what keeps fan-out
O(listeners) cheap calls, with no `await` per subscriber, so one slow client
cannot stall the others. For the same reason every `Hub` method is
synchronous and returns at once: a broker-backed hub answers `head` and
`presence` from its local mirror and publishes in the background.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol


class Listener(Protocol):
    """One WebSocket session as the hub sees it."""

    session: str  # unique among every node's sessions: presence and echo suppression key on it
    token_id: str  # the token it authenticated with (revoking it closes the session)

    def on_commit(self, rev: int) -> None:
        """The workspace reached revision `rev` (latest wins; intermediate calls may be skipped)."""

    def on_presence(self, op: str, peer: dict[str, Any]) -> None:
        """Another session joined, updated or left (`op` in join/update/leave)."""

    def on_close(self, code: int, reason: str) -> None:
        """The server wants this session gone (workspace deleted, token revoked, shutdown)."""


class Hub(Protocol):
    """What the server needs from a notification and presence hub.

    Guarantees every implementation gives, per workspace:

    - **Heads only grow** (until `forget`). `head` is the highest revision the
      hub has heard of (`set_head` or `publish_commit`), 0 for a workspace it
      never heard of or forgot. A lower or equal revision never lowers it and
      wakes nobody.
    - **Commits in order, latest wins.** A listener's `on_commit` calls for one
      workspace come with increasing revisions, and by the time one arrives
      `head` already returns at least that revision. Calls may be coalesced
      (only the newest delivered): a listener reads the store from its own
      cursor up to `head`, so a skipped revision loses nothing.
    - **Presence is current state.** `presence` lists the peers that joined
      or updated and have not left, across every node; a listener never hears
      its own session's presence events.
    """

    def listen(self, workspace: str, listener: Listener) -> None:
        """Deliver `workspace`'s commits, presence and close requests to `listener` from now on."""

    def unlisten(self, workspace: str, listener: Listener) -> None:
        """Stop delivering to `listener` (a no-op if it is not listening)."""

    def head(self, workspace: str) -> int:
        """The latest revision known for `workspace` (0 if none): what a subscriber catches up to."""

    def set_head(self, workspace: str, rev: int) -> None:
        """Record `rev` as known without waking anyone.

        Called when a store is opened, with the revision found in it: the
        baseline a later `publish_commit` is compared with. Never lowers the head.
        """

    def forget(self, workspace: str) -> None:
        """Drop everything known about `workspace` (head, presence).

        Called once its store files are deleted, after its sessions were asked
        to close, so a workspace created later under the same name starts at 0;
        and, for a `LocalHub`, when its store closes (`Stores._close`): its next
        open sets the head from the store.
        """

    def publish_commit(self, workspace: str, rev: int) -> None:
        """`workspace` reached `rev`: raise the head and call every listener's `on_commit`
        (for a listener handed over with `stand_in`, its stand-in's, once per commit).

        Ignored if `rev` is not above the current head (already announced).
        """

    def stand_in(self, workspace: str, listener: Listener, stand_in: Callable[[int], None] | None) -> None:
        """From now on, `workspace`'s commits call `stand_in(rev)` instead of `listener.on_commit`:
        once per commit for every listener it stands in for (None: `on_commit` again).

        Optional (a hub without it calls every `on_commit`, which is always correct): the
        fan-out (`server/fanout.py`) serves every subscription of a session that is parked
        with it, so its one call per commit replaces thousands of per-session calls that would
        each only have kicked it. No-op for a listener that is not listening.
        """

    def publish_presence(self, workspace: str, session: str, op: str, peer: dict[str, Any]) -> None:
        """Session `session` joined, updated (`peer` is its new state) or left.

        Every other listener of `workspace` hears it; a `leave` of a session
        that never joined is dropped.
        """

    def presence(self, workspace: str) -> list[dict[str, Any]]:
        """The current peers of `workspace` (each the `peer` it last published)."""

    def close_sessions(self, workspace: str | None, code: int, reason: str, *, token_id: str | None = None) -> None:
        """Ask listeners to close: those of one workspace, or of every workspace (None);
        with `token_id`, only the sessions authenticated with that token."""


class LocalHub:
    """In-process hub: dictionaries and direct callbacks on the event loop."""

    def __init__(self) -> None:
        self._listeners: dict[str, dict[str, Listener]] = {}
        self._heads: dict[str, int] = {}
        self._presence: dict[str, dict[str, dict[str, Any]]] = {}
        self._loud: dict[str, dict[str, Listener]] = {}  # those whose own on_commit is called
        self._held: dict[str, dict[str, Callable[[int], None]]] = {}  # session -> its stand-in
        self._stand_ins: dict[str, dict[Callable[[int], None], int]] = {}  # stand-in -> sessions held

    def listen(self, workspace: str, listener: Listener) -> None:
        self._release(workspace, listener.session)  # (listening again: loud, as anyone new)
        self._listeners.setdefault(workspace, {})[listener.session] = listener
        self._loud.setdefault(workspace, {})[listener.session] = listener

    def unlisten(self, workspace: str, listener: Listener) -> None:
        group = self._listeners.get(workspace)
        if group is not None:
            self._release(workspace, listener.session)
            group.pop(listener.session, None)
            self._loud[workspace].pop(listener.session, None)
            if not group:
                del self._listeners[workspace], self._loud[workspace]

    def stand_in(self, workspace: str, listener: Listener, stand_in: Callable[[int], None] | None) -> None:
        group = self._listeners.get(workspace)
        if group is None or group.get(listener.session) is not listener:
            return  # not listening (gone already): nothing to hand over
        self._release(workspace, listener.session)  # (now loud)
        if stand_in is None:
            return
        del self._loud[workspace][listener.session]
        self._held.setdefault(workspace, {})[listener.session] = stand_in
        counts = self._stand_ins.setdefault(workspace, {})
        counts[stand_in] = counts.get(stand_in, 0) + 1

    def _release(self, workspace: str, session: str) -> None:
        """`session`'s stand-in, if any, no longer stands in for it (the listener is loud again)."""
        held = self._held.get(workspace)
        stand_in = None if held is None else held.pop(session, None)
        if stand_in is None:
            return
        self._loud[workspace][session] = self._listeners[workspace][session]
        counts = self._stand_ins[workspace]
        counts[stand_in] -= 1
        if not counts[stand_in]:
            del counts[stand_in]
        if not held:  # nothing kept for a workspace nobody holds
            del self._held[workspace], self._stand_ins[workspace]

    def listeners(self, workspace: str | None = None) -> list[Listener]:
        """The listeners of one workspace, or of every workspace (None)."""
        if workspace is not None:
            return list(self._listeners.get(workspace, {}).values())
        return [lst for group in self._listeners.values() for lst in group.values()]

    def head(self, workspace: str) -> int:
        return self._heads.get(workspace, 0)

    def set_head(self, workspace: str, rev: int) -> None:
        if rev > self._heads.get(workspace, -1):
            self._heads[workspace] = rev

    def forget(self, workspace: str) -> None:
        self._heads.pop(workspace, None)
        self._presence.pop(workspace, None)

    def publish_commit(self, workspace: str, rev: int) -> None:
        if rev <= self._heads.get(workspace, -1):
            return
        self._heads[workspace] = rev
        loud = self._loud.get(workspace)
        if loud:  # a copy: a callback may (un)listen; a tuple, the cheapest (once per commit, 5,000 long)
            for listener in tuple(loud.values()):
                listener.on_commit(rev)
        stand_ins = self._stand_ins.get(workspace)
        if stand_ins:
            for stand_in in tuple(stand_ins):
                stand_in(rev)

    def publish_presence(self, workspace: str, session: str, op: str, peer: dict[str, Any]) -> None:
        table = self._presence.setdefault(workspace, {})
        if op == "leave":
            if table.pop(session, None) is None:
                return
            if not table:  # no empty table kept per workspace that ever had someone present
                del self._presence[workspace]
        else:
            table[session] = peer
        for listener in self.listeners(workspace):
            if listener.session != session:
                listener.on_presence(op, peer)

    def presence(self, workspace: str) -> list[dict[str, Any]]:
        return list(self._presence.get(workspace, {}).values())

    def close_sessions(self, workspace: str | None, code: int, reason: str, *, token_id: str | None = None) -> None:
        for listener in self.listeners(workspace):
            if token_id is None or listener.token_id == token_id:
                listener.on_close(code, reason)

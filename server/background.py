"""The server's background tasks: idle close, commits by other processes, revocations.

Each is one timer for the whole server, started by the app's lifespan
(`start_background`) and cancelled when it ends.
"""

from __future__ import annotations

import asyncio

from vfs.wire import CLOSE_POLICY

from server.state import ServerState, log

SWEEP_EVERY = 10.0  # seconds between idle-store sweeps
EXTERNAL_POLL = 0.25  # seconds between checks for commits made by other processes
REVOCATION_POLL = 0.25  # seconds between checks for tokens revoked by other processes


def start_background(state: ServerState) -> list[asyncio.Future[None]]:
    """Start every background task of the server; the caller cancels them at shutdown."""
    return [asyncio.ensure_future(_sweep(state)), asyncio.ensure_future(_watch_external(state)),
            asyncio.ensure_future(_watch_revocations(state))]


async def _watch_external(state: ServerState) -> None:
    """Notice commits made by other processes (an admin tool, another server on the same files).

    Commits through this server are published as they happen; this poll only
    covers writers that bypass it, for workspaces someone is subscribed to.
    """
    while True:
        await asyncio.sleep(EXTERNAL_POLL)
        for handle in state.stores.open_handles():
            if handle.closed or handle.live_inline is None:
                continue
            try:
                rev = await handle.read(lambda ws: ws.rev, op="poll")
            except Exception:  # noqa: BLE001 - closed meanwhile; next round
                continue
            if rev > state.hub.head(handle.name):
                state.hub.publish_commit(handle.name, rev)


async def _watch_revocations(state: ServerState) -> None:
    """Close the sockets of tokens revoked by another process (`wsfs token revoke`, another node).

    One timer for the whole server: each round is one `PRAGMA data_version`
    (a few microseconds); only after another connection committed to the
    token store are the live ids read and compared with the open sessions.
    Revocations through this server's own route close at once, not here.
    """
    state.tokens.changed()  # the baseline: what exists now is what the sessions were opened with
    while True:
        await asyncio.sleep(REVOCATION_POLL)
        try:
            if not state.tokens.changed() or not state.sessions:
                continue
            live = state.tokens.ids()
            for token_id in {s.token_id for s in state.sessions.values()} - live:
                state.hub.close_sessions(None, CLOSE_POLICY, "token revoked", token_id=token_id)
        except Exception:  # noqa: BLE001 - a failed round must not end the watch
            log.exception("revocation watch failed")


async def _sweep(state: ServerState) -> None:
    while True:
        await asyncio.sleep(SWEEP_EVERY)
        try:
            await state.stores.sweep()
        except Exception:  # noqa: BLE001 - a failed sweep must not end the server
            log.exception("idle sweep failed")

"""The server's background tasks: idle close, commits by other processes, revocations.

Each is one timer for the whole server, started by the app's lifespan
(`start_background`) and cancelled when it ends.
"""

from __future__ import annotations

import asyncio
import gc

from vfs.wire import CLOSE_POLICY

from server import gcpolicy
from server.inotify import DirWatch
from server.state import ServerState, log
from server.stores import WorkspaceHandle

_frozen = False
SWEEP_EVERY = 10.0  # seconds between idle-store sweeps
PRESSURE_CHECK = 1.0  # seconds between looks at how many stores are awake (for the descriptor limit)
PRESSURE_QUIET = 5.0  # ... while the number of open stores stays the same and no pressure was seen
EXTERNAL_POLL = 0.25  # without inotify only: seconds between checks for commits made by other processes
RECHECK_AFTER = 0.05  # seconds before a store written while our own write ran is looked at again
REVOCATION_POLL = 0.25  # seconds between checks for tokens revoked by other processes


def start_background(state: ServerState) -> list[asyncio.Future[None]]:
    """Start every background task of the server; the caller cancels them at shutdown.

    Also moves everything allocated at startup (modules, the app, the routes) out of the
    garbage collector's reach (`gc.freeze`): full collections then walk only what the
    server allocated since, which keeps their pauses short with many open workspaces."""
    global _frozen
    if not _frozen:  # once per process (tests start many servers in one)
        _frozen = True
        gc.collect()
        gc.freeze()
    return [asyncio.ensure_future(_sweep(state)), asyncio.ensure_future(_watch_external(state)),
            asyncio.ensure_future(_watch_revocations(state))]


async def _watch_external(state: ServerState) -> None:
    """Notice commits made by other processes (the CLI, a script, another server on the same files).

    Commits through this server are published as they happen; this covers
    writers that bypass it, for workspaces someone is subscribed to. One
    inotify watch on `DATA/workspaces` (`server/inotify.py`) says which stores'
    files were written; only those are checked (their revision read with an
    idle reader, no thread hop), so an idle server does nothing at all. Without
    inotify (not Linux), a poll of every subscribed workspace is the fallback.
    """
    dirty: set[str] = set()
    wake = asyncio.Event()

    def on_names(names: set[str]) -> None:
        for name in names:
            stem = name[:-7] if name.endswith(".db-wal") else name[:-3] if name.endswith(".db") else None
            if stem:
                dirty.add(stem)
        if dirty:
            wake.set()

    try:
        watch = DirWatch(str(state.stores.dir), on_names)
    except (OSError, AttributeError) as e:
        log.warning("no inotify (%s): polling subscribed workspaces every %.2f s for outside commits", e,
                    EXTERNAL_POLL)
        await _poll_external(state)
        return
    try:
        while True:
            await wake.wait()
            wake.clear()
            names = list(dirty)
            dirty.clear()
            for name in names:
                handle = state.stores.open_handle(name)
                if handle is not None and handle.live_inline is not None:
                    if not await _check_external(state, handle):  # maybe our own commit: look again soon
                        asyncio.get_running_loop().call_later(RECHECK_AFTER, on_names, {f"{name}.db"})
    finally:
        watch.close()


async def _check_external(state: ServerState, handle: WorkspaceHandle) -> bool:
    """Publish the store's revision if someone else committed it; False when undecided.

    Our own commits are published by the store handle once their writer has its
    answer (with their authors): the watch sees their WAL writes first, so it skips
    revisions our writer committed, and while a write job runs (its COMMIT may not
    be counted yet) it answers False for the caller to look again shortly. A store
    that is asleep (no connection open) is looked at only if its files changed since
    it closed them, so its own closing checkpoint does not wake it.
    """
    if handle.falling_asleep:
        return False  # look again once it closed its files (it publishes what it finds as it closes)
    stamp = handle.sleep_stamp
    if stamp is not None and handle.files_stamp() == stamp:
        return True  # asleep and its files unchanged since it closed them (its own checkpoint): nothing new
    own = handle.own_stamp
    if stamp is None and own is not None and not handle.writing and handle.own_mark() == own:
        return True  # the store is as our writer's last commit left it: the event was ours
    try:
        rev = handle.peek_rev()
        if rev is None:
            rev = await handle.read(lambda ws: ws.rev, op="poll")
    except Exception:  # noqa: BLE001 - closed meanwhile: nobody to tell
        return True
    if rev <= max(state.hub.head(handle.name), handle.own_rev):
        return True
    if handle.writing:
        return False
    state.hub.publish_commit(handle.name, rev)
    return True


async def _poll_external(state: ServerState) -> None:
    while True:
        await asyncio.sleep(EXTERNAL_POLL)
        for handle in state.stores.open_handles():
            if not handle.closed and handle.live_inline is not None:
                await _check_external(state, handle)


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
    """Idle close and sleep every `every` seconds; every second instead while too many stores are
    awake for the open-file limit (`Stores.pressed`: a count over the open handles, no syscall).
    That count walks every handle (~7 ms at 10,000), so it runs each second only while the number
    of open stores changes or pressure was seen, else every `PRESSURE_QUIET` seconds."""
    options = state.stores.options
    every = max(0.1, min(SWEEP_EVERY, options.idle_readers / 2, options.idle_close / 2))
    tick = min(every, PRESSURE_CHECK)
    since = since_count = 0.0
    pressed, seen = False, -1
    while True:
        await asyncio.sleep(tick)
        since += tick
        since_count += tick
        gcpolicy.tick(state.metrics.work())  # a full garbage collection, if one is due and the server quiet
        try:
            count = state.stores.open_count()
            if pressed or count != seen or since_count >= PRESSURE_QUIET:
                pressed, seen, since_count = state.stores.pressed(), count, 0.0
            if pressed or since >= every:
                since = 0.0
                await state.stores.sweep(pressed)
        except Exception:  # noqa: BLE001 - a failed sweep must not end the server
            log.exception("idle sweep failed")

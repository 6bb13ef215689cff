"""Durable acknowledgements with group commit: one sync and one fence check cover a batch.

A write to a cluster workspace may be acknowledged only once (1) Litestream
has its commit in S3 and (2) the manifest still names this node's epoch
(`docs/cluster.md`). Doing both per write would cap a workspace at one write
per round trip, so writers share *rounds*: a round is one
`Litestream.sync`, then `Ownership.covers` (the fence: a manifest HEAD sent
no earlier than the fence window before the sync returned; the round starts
one beside its sync when the last is getting old, so the HEAD is usually
off the critical path), and it covers every commit made before its sync
started. A writer calls `wait_durable(ws, db)` after its commit:

- no round running, or one created but not yet started: it joins that round;
- a round already syncing (which may have missed its commit): it joins the
  next round, which starts as soon as the current one ends.

So at most two rounds are ever in play per workspace, and under load one
round serves every writer that arrived during the previous one. A round
that fails (sync error or timeout, S3 unreachable, manifest moved) fails
every writer in it with `NotAcknowledged`, which the server answers with a
503: never a silent acknowledgement.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

from server.cluster.objectstore import ObjectStoreError
from server.cluster.ownership import Ownership, fence_clock
from server.cluster.replication import Litestream, ReplicationError


class NotAcknowledged(Exception):
    """The write is committed locally but cannot be acknowledged: not replicated, or not ours any more."""


@dataclass
class _Rounds:
    current: asyncio.Future[None] | None = None
    started: bool = False  # has the current round's sync begun (so later commits may be missed)?
    next: asyncio.Future[None] | None = None


@dataclass
class DurableAcks:
    """Group-commit acknowledgements for the workspaces one node owns."""

    litestream: Litestream
    ownership: Ownership
    timeout: float = 5.0
    rounds: int = 0  # rounds run so far (what a batch saves shows here)
    _state: dict[str, _Rounds] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)  # the loop keeps only weak references

    def _start(self, workspace: str, db_path: str | os.PathLike[str], state: _Rounds,
               done: asyncio.Future[None]) -> None:
        task = asyncio.get_running_loop().create_task(self._run(workspace, db_path, state, done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_durable(self, workspace: str, db_path: str | os.PathLike[str]) -> None:
        """Return once every commit made to `db_path` before this call is in S3 and still ours."""
        state = self._state.setdefault(workspace, _Rounds())
        loop = asyncio.get_running_loop()
        if state.current is None:
            state.current, state.started = loop.create_future(), False
            self._start(workspace, db_path, state, state.current)
            waiter = state.current
        elif not state.started:
            waiter = state.current
        else:
            if state.next is None:
                state.next = loop.create_future()
            waiter = state.next
        await asyncio.shield(waiter)

    async def _run(self, workspace: str, db_path: str | os.PathLike[str], state: _Rounds,
                   done: asyncio.Future[None]) -> None:
        state.started = True  # from here on a new commit may miss this round's sync
        self.rounds += 1
        try:
            async with asyncio.timeout(self.timeout):
                self.ownership.refresh_fence(workspace)  # a HEAD beside the sync, when the last is aging
                await self.litestream.sync(db_path, timeout=self.timeout)
                ours = await self.ownership.covers(workspace, fence_clock())
            if not ours:
                raise NotAcknowledged(f"workspace {workspace!r} is no longer owned by node {self.ownership.node}")
        except (ReplicationError, ObjectStoreError) as exc:
            _settle(done, NotAcknowledged(f"not replicated: {exc}"))
        except TimeoutError:
            _settle(done, NotAcknowledged(f"replication did not finish within {self.timeout:.1f} s"))
        except NotAcknowledged as exc:
            _settle(done, exc)
        except BaseException as exc:  # a bug or a cancellation must not leave writers waiting forever
            _settle(done, NotAcknowledged(f"acknowledgement failed: {exc!r}"))
            raise
        else:
            _settle(done, None)
        finally:
            following, state.next = state.next, None
            if following is None:
                state.current = None
            else:
                state.current, state.started = following, False
                self._start(workspace, db_path, state, following)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
        future.exception()  # mark it retrieved: a round whose writers all left must not log a warning

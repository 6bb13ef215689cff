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

- a round launched but whose sync has not begun: it joins that round;
- otherwise (no round, or rounds already syncing, which may have missed its
  commit): it joins the next round, started at once if fewer than
  `in_flight` rounds are syncing, else as soon as one ends.

With `in_flight` = 1 (the default) at most two rounds are in play per
workspace (one syncing, one gathering writers) and under load one round
serves every writer that arrived during the previous one; so a writer
arriving just after a sync began waits for the rest of it and a whole next
round. `in_flight` = 2 overlaps the next round's WAL-to-LTX conversion with
the previous upload (Litestream serialises each of the two, not both
together), for more syncs: measured without a clear win (docs/cluster.md,
"Fourth pass"). A round
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
    running: int = 0  # rounds launched and not finished
    next: asyncio.Future[None] | None = None  # the round new writers join: its sync has not begun
    launched: bool = False  # is `next` launched already (its task about to begin its sync)?


@dataclass
class DurableAcks:
    """Group-commit acknowledgements for the workspaces one node owns."""

    litestream: Litestream
    ownership: Ownership
    timeout: float = 5.0
    # rounds whose syncs may run at once per workspace (module docstring): 1 waits for a round to
    # end before the next starts; 2 starts the next at once
    in_flight: int = 1
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
        if state.next is None:
            state.next, state.launched = asyncio.get_running_loop().create_future(), False
        waiter = state.next
        if not state.launched and state.running < self.in_flight:
            self._launch(workspace, db_path, state)
        await asyncio.shield(waiter)

    def _launch(self, workspace: str, db_path: str | os.PathLike[str], state: _Rounds) -> None:
        """Start the round writers are joining; they may still join until its sync begins."""
        assert state.next is not None
        state.running, state.launched = state.running + 1, True
        self._start(workspace, db_path, state, state.next)

    async def _run(self, workspace: str, db_path: str | os.PathLike[str], state: _Rounds,
                   done: asyncio.Future[None]) -> None:
        if state.next is done:  # from here on a new commit may miss this round's sync: it joins a later one
            state.next, state.launched = None, False
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
            state.running -= 1
            if state.next is not None and not state.launched and state.running < self.in_flight:
                self._launch(workspace, db_path, state)
            elif state.running == 0 and state.next is None:
                self._state.pop(workspace, None)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
        future.exception()  # mark it retrieved: a round whose writers all left must not log a warning

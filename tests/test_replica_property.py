"""Property: two replicas and the server, random edits everywhere, random restarts and interrupted syncs.

At the end (everyone synced twice) the three trees are identical, and every
local edit that a sync carried is on the server right after that sync,
either at its path or as a conflict copy of that path: nothing is lost.

Each example runs a real server (restarted at random) and real directories,
so the example count is small (hypothesis_profiles.scaled).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile

from hypothesis import given
from hypothesis import strategies as st

from client_fixtures import RestartableServer, remote_tree, tree_of
from client_py import Backoff, Client, Replica
from hypothesis_profiles import scaled

NAMES = ["a.txt", "b.txt", "d/c.txt", "d/e/f.txt"]

op = st.one_of(
    st.tuples(st.just("server_write"), st.sampled_from(NAMES)),
    st.tuples(st.just("server_delete"), st.sampled_from(NAMES + ["d"])),
    st.tuples(st.just("local_write"), st.integers(0, 1), st.sampled_from(NAMES)),
    st.tuples(st.just("local_delete"), st.integers(0, 1), st.sampled_from(NAMES + ["d"])),
    st.tuples(st.just("sync"), st.integers(0, 1)),
    st.tuples(st.just("interrupted_sync"), st.integers(0, 1), st.integers(0, 40)),
    st.tuples(st.just("restart_server"),),
)


class World:
    def __init__(self, root: str):
        self.root = root
        self.server = RestartableServer(os.path.join(root, "data"))
        self.dirs = [os.path.join(root, "r0"), os.path.join(root, "r1")]
        self.counter = 0
        self.unsynced: list[dict[str, bytes]] = [{}, {}]  # per replica: path -> content written, not yet synced

    def content(self, who: str) -> bytes:
        self.counter += 1
        return f"{who} edit #{self.counter}\n".encode()

    def replica(self, i: int) -> Replica:
        return Replica(self.server.url, "demo", self.dirs[i], token=self.server.admin, host=f"r{i}",
                       backoff=Backoff(base=0.05, cap=0.2, retries=None))

    async def sync(self, i: int) -> None:
        async with self.replica(i) as r:
            await r.sync_once()
        await self.check_delivered(i, complete=True)

    async def interrupted_sync(self, i: int, ms: int) -> None:
        r = self.replica(i)
        task = asyncio.ensure_future(r.sync_once())
        await asyncio.sleep(ms / 1000)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await r.close()
        await self.check_delivered(i, complete=False)

    async def check_delivered(self, i: int, complete: bool) -> None:
        """Edits on the server (at their path or as a conflict copy) are delivered; after a
        complete sync every edit must be; after an interrupted one the rest must still be on disk."""
        async with Client(self.server.url, token=self.server.admin) as c:
            tree = await remote_tree(c.workspace("demo"))
        local = tree_of(self.dirs[i])
        for path, data in list(self.unsynced[i].items()):
            if _present(tree, path, data):
                del self.unsynced[i][path]
            elif complete:
                raise AssertionError(f"edit of {path} by r{i} lost: {data!r} not in {sorted(tree)}")
            else:
                assert _present(local, path, data), f"interrupted sync lost r{i}'s edit of {path}"

    async def run(self, step) -> None:
        kind = step[0]
        if kind == "server_write":
            async with Client(self.server.url, token=self.server.admin) as c:
                ws = c.workspace("demo")
                with contextlib.suppress(OSError):  # a file in the way of a directory, ...
                    await ws.write_file("/" + step[1], self.content("server"), parents=True)
        elif kind == "server_delete":
            async with Client(self.server.url, token=self.server.admin) as c:
                await c.workspace("demo").rm("/" + step[1], recursive=True, force=True)
        elif kind == "local_write":
            i, name = step[1], step[2]
            path = os.path.join(self.dirs[i], name)
            with contextlib.suppress(OSError):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                data = self.content(f"r{i}")
                with open(path, "wb") as f:
                    f.write(data)
                self.unsynced[i]["/" + name] = data
        elif kind == "local_delete":
            i, name = step[1], step[2]
            path = os.path.join(self.dirs[i], name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.unlink(path)
            for p in list(self.unsynced[i]):
                if p == "/" + name or p.startswith("/" + name + "/"):
                    del self.unsynced[i][p]
        elif kind == "sync":
            await self.sync(step[1])
        elif kind == "interrupted_sync":
            await self.interrupted_sync(step[1], step[2])
        elif kind == "restart_server":
            await self.server.arestart()


def _present(tree: dict, path: str, data: bytes) -> bool:
    """`data` at `path`, or in a conflict copy of `path`."""
    rel = path.lstrip("/")
    head, _, name = rel.rpartition("/")
    stem, ext = os.path.splitext(name)
    prefix = (head + "/" if head else "") + stem + ".conflict-"
    return tree.get(rel) == data or any(
        k.startswith(prefix) and k.endswith(ext) and v == data for k, v in tree.items()
    )


@scaled(10 / 150)
@given(st.lists(op, min_size=3, max_size=14))
def test_replicas_and_server_converge_without_losing_edits(steps):
    async def scenario():
        root = tempfile.mkdtemp(prefix="wsfs-prop-")
        world = World(root)
        try:
            for step in steps:
                await world.run(step)
            for i in (0, 1, 0, 1):
                await world.sync(i)
            async with Client(world.server.url, token=world.server.admin) as c:
                remote = await remote_tree(c.workspace("demo"))
            t0, t1 = tree_of(world.dirs[0]), tree_of(world.dirs[1])
            assert t0 == remote, (sorted(t0), sorted(remote))
            assert t1 == remote, (sorted(t1), sorted(remote))
        finally:
            world.server.stop()
            shutil.rmtree(root, ignore_errors=True)

    asyncio.run(scenario())

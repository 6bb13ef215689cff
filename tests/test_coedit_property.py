"""Property: random interleavings of two editors' inserts and deletes, writes from outside and
reconnects converge, and nothing is lost.

The text is a run of unique one-line tokens (`[a3]\n`, `[b7]\n`, `[o2]\n`);
editors insert whole tokens at token boundaries and delete whole tokens they
see, and the outside writer inserts a token into what it read (If-Match,
retried), so every token stays contiguous whatever interleaves. Tokens are
lines because the server turns an outside write into edits with a line diff
(refined per character inside changed lines): a token inserted inside a line
could be aligned as an insertion that straddles two tokens, which is a
faithful diff but not the writer's token. The end state must be
the same in both editors and in the file, and hold exactly the tokens
inserted and not deleted, each once.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import time

from hypothesis import given
from hypothesis import strategies as st

from client_fixtures import RestartableServer
from client_py import Client
from hypothesis_profiles import scaled
from vfs.errors import PreconditionFailed

PATH = "/shared.txt"
TOKEN = re.compile(r"\[[abo]\d+\]\n|\[init\]\n")

editor = st.integers(0, 1)
where = st.floats(0, 1)
op = st.one_of(
    st.tuples(st.just("insert"), editor, where),
    st.tuples(st.just("delete"), editor, where),
    st.tuples(st.just("outside"), where),
    st.tuples(st.just("reconnect"), editor),
    st.tuples(st.just("pause"), st.sampled_from([0.0, 0.01, 0.05])),
)


def boundaries(text: str) -> list[int]:
    """Character offsets between tokens (and the two ends)."""
    return [0] + [m.end() for m in TOKEN.finditer(text)]


class World:
    def __init__(self, docs, outside_ws):
        self.docs = docs
        self.outside = outside_ws
        self.counter = 0
        self.inserted: set[str] = {"[init]\n"}
        self.deleted: set[str] = set()

    def token(self, who: str) -> str:
        self.counter += 1
        return f"[{who}{self.counter}]\n"

    async def run(self, step) -> None:
        kind = step[0]
        if kind == "insert":
            doc = self.docs[step[1]]
            text = str(doc.text)
            spots = boundaries(text)
            at = spots[min(int(step[2] * len(spots)), len(spots) - 1)]
            token = self.token("ab"[step[1]])
            doc.text.insert(at, token)  # ASCII: byte offset == character offset
            self.inserted.add(token)
        elif kind == "delete":
            doc = self.docs[step[1]]
            found = list(TOKEN.finditer(str(doc.text)))
            if found:
                m = found[min(int(step[2] * len(found)), len(found) - 1)]
                del doc.text[m.start() : m.end()]
                self.deleted.add(m.group())
        elif kind == "outside":
            await self.write_outside(step[1])
        elif kind == "reconnect":
            await self.docs[step[1]].reconnect()
        else:
            await asyncio.sleep(step[1])
        await asyncio.sleep(0)

    async def write_outside(self, frac: float) -> None:
        token = self.token("o")
        for _attempt in range(50):
            seen = await self.outside.stat(PATH)
            text = (await self.outside.read_file(PATH)).decode()
            spots = boundaries(text)
            at = spots[min(int(frac * len(spots)), len(spots) - 1)]
            try:
                await self.outside.write_file(PATH, (text[:at] + token + text[at:]).encode(), if_match=seen.hash)
            except PreconditionFailed:
                await asyncio.sleep(0.01)
                continue
            self.inserted.add(token)
            return
        raise AssertionError("the outside write never got its turn")


@scaled(12 / 150)
@given(st.lists(op, min_size=4, max_size=24))
def test_editors_outside_writes_and_reconnects_converge_losing_nothing(steps):
    async def scenario():
        root = tempfile.mkdtemp(prefix="wsfs-coedit-prop-")
        server = RestartableServer(root)
        try:
            async with Client(server.url, token=server.admin, name="a") as ca, \
                    Client(server.url, token=server.admin, name="b") as cb, \
                    Client(server.url, token=server.admin, name="o") as co:
                outside = co.workspace("demo")
                await outside.write_file(PATH, b"[init]\n")
                a = await ca.workspace("demo").coedit(PATH)
                b = await cb.workspace("demo").coedit(PATH)
                try:
                    world = World([a, b], outside)
                    for step in steps:
                        await world.run(step)
                    await asyncio.wait_for(asyncio.gather(a.synced(), b.synced()), 30)
                    deadline = time.monotonic() + 15
                    while True:
                        file = (await outside.read_file(PATH)).decode()
                        if str(a.text) == str(b.text) == file:
                            break
                        assert time.monotonic() < deadline, (str(a.text), str(b.text), file)
                        await asyncio.sleep(0.05)
                    tokens = TOKEN.findall(file)
                    assert "".join(tokens) == file  # nothing but whole tokens: none was torn
                    assert sorted(tokens) == sorted(world.inserted - world.deleted)
                finally:
                    await a.close()
                    await b.close()
        finally:
            server.stop()
            shutil.rmtree(root, ignore_errors=True)

    asyncio.run(scenario())

"""Co-editing in a cluster: what `synced()` acknowledged survives the owner's death.

The document lives on the workspace's owner; an editor on another node reaches it through
that node's proxy. An update is acknowledged only once the update log holding it is
replicated (Litestream's sync returned, the manifest still ours), like any write, so
`kill -9` of the owner right after `synced()` loses none of it.
"""

from __future__ import annotations

import asyncio

import httpx

from client_py import Backoff, Client
from tests.cluster_fixtures import RedisServer, admin_token, get_until

PATH = "/notes.md"


async def test_owner_killed_right_after_synced_loses_no_keystroke(cluster_nodes, redis_server: RedisServer) -> None:
    token = admin_token(redis_server.url)
    a, b = cluster_nodes(2)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        assert (await http.put(f"{a.url}/api/workspaces/co")).status_code == 201
        assert (await http.put(f"{a.url}/api/workspaces/co/files{PATH}", content=b"start\n")).status_code in (200, 201)
        async with Client(b.url, token=token, name="dana", backoff=Backoff(base=0.1, cap=0.5, retries=3)) as c:
            doc = await c.workspace("co").coedit(PATH)  # through B's proxy, to the owner A
            for i in range(5):
                doc.text.insert(len(doc.text), f"typed {i}\n")
            await doc.synced()
            a.kill()  # at once: Litestream's own interval would not have shipped the log yet
            try:
                await asyncio.wait_for(doc.close(), 10)
            except Exception:  # noqa: BLE001 - its node is gone; the close may fail
                pass
        expected = "start\n" + "".join(f"typed {i}\n" for i in range(5))
        # B takes over: restore, then the log is folded into the file as the store opens
        got = await get_until(http, f"{b.url}/api/workspaces/co/files{PATH}", lambda r: r.text == expected)
        assert got.status_code == 200 and got.text == expected, (got.status_code, got.text)

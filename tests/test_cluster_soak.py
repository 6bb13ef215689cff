"""Soak (behind `-m slow`): three `wsfs serve --cluster` nodes, random kills and pauses under a
stream of acknowledged writes; at the end every acknowledged write is present with its content.

    .venv/bin/python -m pytest -m slow tests/test_cluster_soak.py
"""

from __future__ import annotations

import asyncio
import random
import signal
import time

import httpx
import pytest

from tests.cluster_fixtures import RedisServer, ServeNode, admin_token, get_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROUNDS = 6
WRITES_PER_ROUND = 30


async def test_random_kills_and_pauses_lose_nothing_acknowledged(cluster_nodes, redis_server: RedisServer,
                                                                 s3_location, tmp_path) -> None:
    rng = random.Random(1234)
    token = admin_token(redis_server.url)
    nodes: list[ServeNode] = cluster_nodes(3)
    acked: dict[str, bytes] = {}
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=15) as http:
        assert (await http.put(f"{nodes[0].url}/api/workspaces/soak")).status_code == 201
        for round_no in range(ROUNDS):
            victim = rng.choice(nodes)
            action = rng.choice(["kill", "pause"])
            for i in range(WRITES_PER_ROUND):
                path = f"/r{round_no}-{i}.txt"
                body = rng.randbytes(rng.randint(1, 4096))
                if i == WRITES_PER_ROUND // 3:
                    if action == "kill":
                        victim.kill()
                    else:
                        victim.signal(signal.SIGSTOP)
                via = rng.choice([n for n in nodes if n is not victim])
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    try:
                        reply = await http.put(f"{via.url}/api/workspaces/soak/files{path}", content=body)
                        if reply.status_code in (200, 201):
                            acked[path] = body
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError(f"{path} never acknowledged")
            if action == "pause":
                victim.signal(signal.SIGCONT)
            else:  # a new node joins in the dead one's place
                index = nodes.index(victim)
                (fresh,) = cluster_nodes(1)
                nodes[index] = fresh
        reader = nodes[0]
        for path, body in acked.items():
            got = await get_until(http, f"{reader.url}/api/workspaces/soak/files{path}")
            assert got.status_code == 200 and got.content == body, (path, got.status_code)

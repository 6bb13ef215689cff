"""`FdGuard`'s descriptor count and its refusal near the limit (issue 18), in process.

The whole server held at a low limit is `tests/test_scale.py`; this checks the
count the guard relies on (one `stat` of /proc/self/fd since Linux 6.2, the
listing before) follows descriptors opened and closed, and that a guard whose
limit is near refuses a request once descriptors are opened past it.
"""

from __future__ import annotations

import os
import time
from typing import Any

from server.runner import FdGuard, count_fds

PIPES = 100
# Even at refresh=0 the guard's recounts are LISTING_SHARE times a recount's own time apart (~40 us
# here, ~1 ms where the kernel makes it list /proc/self/fd): opening or closing 40 pipes can be
# quicker than that on a quiet machine, and the next call would still see the old count.
RECOUNT_GAP = 0.05


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def test_the_count_follows_descriptors_opened_and_closed() -> None:
    before = count_fds()
    assert before >= 3  # at least stdin, stdout, stderr
    fds: list[int] = []
    try:
        for _ in range(PIPES):
            fds.extend(os.pipe())
        assert count_fds() - before == 2 * PIPES
    finally:
        _close_all(fds)
    assert count_fds() == before


async def _call(guard: FdGuard) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await guard({"type": "http", "method": "GET", "path": "/healthz"}, receive, send)
    return sent


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_the_guard_refuses_once_descriptors_pass_its_line_and_serves_again_after() -> None:
    reserve = 10
    # the line (limit - reserve) is 50 descriptors above what is open now
    guard = FdGuard(_ok, limit=count_fds() + 50 + reserve, reserve=reserve, refresh=0.0, max_age=0.0)
    assert (await _call(guard))[0]["status"] == 200
    fds: list[int] = []
    try:
        for _ in range(40):  # 80 more descriptors: past the line
            fds.extend(os.pipe())
        time.sleep(RECOUNT_GAP)
        sent = await _call(guard)
        assert sent[0]["status"] == 503, sent
        assert b"EAGAIN" in sent[1]["body"]
    finally:
        _close_all(fds)
    time.sleep(RECOUNT_GAP)
    assert (await _call(guard))[0]["status"] == 200

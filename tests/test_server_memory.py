"""Memory that comes back after stores close (issue 18): what a closed workspace leaves behind.

RSS after 1,000 workspaces closed is set by the allocator's fragmentation
(bench/bench_scale.py --wait-close measures it; docs/server.md, sixth pass);
this checks that a closed workspace leaves no per-name state behind (the
collection of its cycles: tests/test_server_gcpolicy.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from server_fixtures import LiveServer

def test_closed_workspaces_leave_no_per_name_lock(tmp_path: Path) -> None:
    """Every name ever opened kept its open/close lock: 2,000 objects per 1,000 workspaces, allocated
    amid the peak, each pinning a block of the allocator's memory after everything else was freed."""
    server = LiveServer(tmp_path / "data", idle_close=0.5).start()
    try:
        names = [f"m{i}" for i in range(20)]
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.admin}"},
                          timeout=30) as http:
            for name in names:
                assert http.put(f"/api/workspaces/{name}").status_code in (200, 201)
                assert http.put(f"/api/workspaces/{name}/files/a", content=b"x").status_code < 300
        stores = server.state.stores
        deadline = time.monotonic() + 30
        while stores.open_count() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stores.open_count() == 0, "the idle sweep did not close the workspaces"
        assert len(stores._locks) == 0, sorted(stores._locks)
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.admin}"},
                          timeout=30) as http:  # and a closed workspace opens again as before
            assert http.get(f"/api/workspaces/{names[0]}/files/a").content == b"x"
    finally:
        server.stop()

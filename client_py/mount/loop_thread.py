"""An asyncio event loop in a helper thread, for synchronous callers.

FUSE calls the remote mount from its own (synchronous) threads, while the
client that talks to the server is async. `LoopThread` runs one event loop
in a daemon thread for the mount's lifetime; a FUSE thread hands it a
coroutine with `run()` and blocks for the result.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

REQUEST_TIMEOUT = 60.0


class LoopThread:
    """An asyncio loop in a daemon thread; `run(coro)` from any other thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="wsfs-remote", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = REQUEST_TIMEOUT) -> T:
        """Run `coro` on the loop and wait for its result (its exception is raised here)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()  # its self-pipe sockets too

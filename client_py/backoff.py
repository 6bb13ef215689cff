"""Retry delays: exponential, capped, with jitter.

Jitter matters when a server restarts: without it every replica that lost
its connection at the same moment reconnects at the same moment, again and
again. "Equal jitter" keeps at least half of each delay so retries never
degenerate into a tight loop.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True)
class Backoff:
    base: float = 0.1  # first delay, seconds
    cap: float = 5.0  # no delay is longer than this
    retries: int | None = 8  # attempts after the first failure; None retries forever

    def delays(self) -> Iterator[float]:
        """The delay before each retry; ends after `retries` values."""
        n = 0
        while self.retries is None or n < self.retries:
            step = min(self.cap, self.base * (2 ** min(n, 30)))
            yield step / 2 + random.uniform(0, step / 2)
            n += 1

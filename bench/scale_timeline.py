"""Per-window figures of a write load (`bench_scale.py --timeline`): what made the tail, second by second.

A p99 over a 60-s load says how long the slowest writes took, not why. A `Timeline` samples, once per
window, what could have held a write: the server's event loop waiting for a CPU (`/proc/PID/schedstat`),
the server's CPU, its collector's pauses (`/metrics`, `wsfs_gc_*`: one scrape per window), and the same
for this client process (its own loop's wait for a CPU, its CPU, its own collections, and how late its
loop ran a 10-ms ticker: a client stall delays the receipt of a reply it then blames on the server).
Each write is put in the window it was sent in; `report` prints, per window, the write and delivery
p99 beside those figures, and which windows hold the writes over a bound.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from pathlib import Path
from typing import Any, Callable

SLOW_MS = 50.0  # the goal's bound: a write or delivery above it is "slow"


def _schedstat_wait(pid: int | str) -> float:
    """Seconds the process's main thread spent runnable, waiting for a CPU."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def _cpu(pid: int | str) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


class _ClientGc:
    """This process's own collections (wall ms per generation), from `gc.callbacks`."""

    def __init__(self) -> None:
        self.ms = [0.0, 0.0, 0.0]
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.ms[info["generation"]] += 1000 * (time.perf_counter() - self._t0)


class Timeline:
    """Samples every `window` seconds from `start()` until `stop()`; writes are added with `write`."""

    def __init__(self, pid: int, window: float, server_gc: Callable[[], dict[tuple[str, int, str], float]]):
        self.pid, self.window, self._server_gc = pid, window, server_gc
        self.samples: list[dict[str, float]] = []
        self.writes: list[tuple[float, float, float | None]] = []  # (sent at, write ms, delivery ms or None)
        self._gc = _ClientGc()
        self._lag = 0.0  # the ticker's largest lateness in the current window
        self._task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.t0 = 0.0

    def _sample(self) -> dict[str, float]:
        g = self._server_gc()
        return {"t": time.perf_counter(), "wait": _schedstat_wait(self.pid), "cpu": _cpu(self.pid),
                "cwait": _schedstat_wait("self"), "ccpu": _cpu("self"), "cgc": sum(self._gc.ms),
                "gc0": 1000 * g.get(("sum", 0, ""), 0), "gc1": 1000 * g.get(("sum", 1, ""), 0),
                "gc2": 1000 * g.get(("sum", 2, ""), 0), "n2": g.get(("count", 2, ""), 0),
                "gcpu2": 1000 * g.get(("cpu", 2, ""), 0), "lag": self._lag}

    async def _run(self) -> None:
        k = 1
        while True:
            await asyncio.sleep(max(0.0, self.t0 + k * self.window - time.perf_counter()))
            self.samples.append(await asyncio.to_thread(self._sample))
            self._lag = 0.0
            k += 1

    async def _tick(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            self._lag = max(self._lag, 1000 * (time.perf_counter() - t - 0.01))

    def start(self) -> None:
        gc.callbacks.append(self._gc)
        self.t0 = time.perf_counter()
        self.samples = [self._sample()]
        self._task = asyncio.ensure_future(self._run())
        self._ticker = asyncio.ensure_future(self._tick())

    def stop(self) -> None:
        for task in (self._task, self._ticker):
            if task is not None:
                task.cancel()
        gc.callbacks.remove(self._gc)

    def write(self, sent: float, write_ms: float, delivery_ms: float | None) -> None:
        self.writes.append((sent, write_ms, delivery_ms))

    def rows(self) -> list[dict[str, float]]:
        """One row per window: its writes' p99s and maxima, slow counts, and the sampled deltas (ms)."""
        rows = []
        for a, b in zip(self.samples, self.samples[1:]):
            inside = [w for w in self.writes if a["t"] <= w[0] < b["t"]]
            wms = sorted(w[1] for w in inside)
            dms = sorted(w[2] for w in inside if w[2] is not None)
            span = 1000 * (b["t"] - a["t"])
            rows.append({
                "at": a["t"] - self.t0, "span": span, "n": len(inside),
                "w99": _pct(wms, 99), "wmax": wms[-1] if wms else float("nan"),
                "d99": _pct(dms, 99), "dmax": dms[-1] if dms else float("nan"),
                "wslow": sum(1 for x in wms if x > SLOW_MS), "dslow": sum(1 for x in dms if x > SLOW_MS),
                "wait": 100 * 1000 * (b["wait"] - a["wait"]) / span, "cpu": 100 * 1000 * (b["cpu"] - a["cpu"]) / span,
                "gc01": b["gc0"] - a["gc0"] + b["gc1"] - a["gc1"], "gc2": b["gc2"] - a["gc2"],
                "gcpu2": b["gcpu2"] - a["gcpu2"], "n2": b["n2"] - a["n2"],
                "cwait": 100 * 1000 * (b["cwait"] - a["cwait"]) / span,
                "ccpu": 100 * 1000 * (b["ccpu"] - a["ccpu"]) / span, "cgc": b["cgc"] - a["cgc"], "lag": b["lag"],
            })
        return rows

    def report(self, load_avg: tuple[float, float, float]) -> str:
        rows = [r for r in self.rows() if r["n"]]
        if not rows:
            return "        timeline: no windows"
        head = (f"        timeline ({self.window:g}-s windows by send time, load {load_avg[0]:.1f}): "
                "at s, span ms | writes | write p99/max ms | delivery p99/max ms | slow (> 50 ms) w/d | server: loop "
                "wait % CPU % gen0+1 ms gen2 ms (CPU) | client: loop wait % CPU % GC ms ticker lag ms")
        lines = [head]
        for r in rows:
            lines.append(
                f"          {r['at']:5.1f} {r['span']:5.0f} {r['n']:5d} | {r['w99']:7.1f} {r['wmax']:7.1f} | {r['d99']:7.1f} "
                f"{r['dmax']:7.1f} | {r['wslow']:4d} {r['dslow']:4d} | {r['wait']:4.0f} {r['cpu']:4.0f} "
                f"{r['gc01']:6.1f} {r['gc2']:6.1f} ({r['gcpu2']:.0f}) | {r['cwait']:4.0f} {r['ccpu']:4.0f} "
                f"{r['cgc']:6.1f} {r['lag']:6.1f}")
        lines.append("        " + summary(rows))
        return "\n".join(lines)


def summary(rows: list[dict[str, Any]]) -> str:
    """The windows in three groups by how long the server's loop waited for a CPU in them: each group's
    wait, its writes, how many were slow, and the medians of its windows' p99s; then the windows where
    the client itself stalled (its own collections, or its loop late by more than 50 ms)."""
    by_wait = sorted(rows, key=lambda r: r["wait"])
    k = len(by_wait)
    parts = []
    for name, sel in (("least", by_wait[:k // 3]), ("middle", by_wait[k // 3:2 * k // 3]), ("most", by_wait[2 * k // 3:])):
        if not sel:
            continue
        parts.append(
            f"{name} waiting ({len(sel)} windows, loop wait {sel[0]['wait']:.0f}-{sel[-1]['wait']:.0f} %, server CPU "
            f"median {_pct(sorted(r['cpu'] for r in sel), 50):.0f} %): {sum(r['n'] for r in sel)} writes, slow "
            f"{sum(r['wslow'] for r in sel)} w / {sum(r['dslow'] for r in sel)} d, window p99 medians write "
            f"{_pct(sorted(r['w99'] for r in sel), 50):.1f} / delivery {_pct(sorted(r['d99'] for r in sel), 50):.1f} ms")
    stalled = [r for r in rows if r["cgc"] > 50 or r["lag"] > 50]
    full = [r for r in rows if r["n2"] > 0]
    return ("by the server loop's wait for a CPU: " + "; ".join(parts)
            + f". Windows with a server full collection: {len(full)} ({sum(r['wslow'] for r in full)} slow writes)"
            + f"; with the client stalled > 50 ms: {len(stalled)} ({sum(r['wslow'] for r in stalled)} slow writes)")


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(p / 100 * len(values)))]

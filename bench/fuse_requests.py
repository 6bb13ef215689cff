"""FUSE requests the kernel sends to each mount, counted by opcode (`bench_mount.py --count-requests`).

Counted where they start, in the kernel (the `fuse:fuse_request_send`
tracepoint, in a tracefs instance of its own with a filter on the mounts'
connections), so the same count holds for any daemon: a request libfuse
answers in C (OPENDIR and RELEASEDIR under mfusepy) counts as much as one
that reaches Python. What a daemon's handlers see is another matter: the
path API also calls getattr internally after create, mkdir and setattr.

The tracepoint costs the calling program a little per request, which ext4
does not pay: time with counting off, count in a run of its own. Needs root
and tracefs (mounted at /sys/kernel/tracing; `mount -t tracefs nodev
/sys/kernel/tracing` if it is not).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

TRACEFS = Path("/sys/kernel/tracing")
_LINE = re.compile(r"connection (\d+) req \d+ opcode \d+ \((\w+)\)")
BUFFER_KB = 65536  # per CPU: ~40 bytes an event, the Django untar + git sends ~330,000 requests


class KernelRequests:
    """Requests per target and opcode between `begin()` and `end()`, kept per timed script."""

    def __init__(self, targets: dict[str, Path]) -> None:
        if not (TRACEFS / "events" / "fuse" / "fuse_request_send").exists():
            raise RuntimeError(f"no fuse tracepoint under {TRACEFS} (mount -t tracefs nodev {TRACEFS})")
        # The kernel's dev_t of a FUSE connection: major 0, minor = the mount's anonymous minor.
        self.names = {os.minor(os.stat(path).st_dev): name for name, path in targets.items()}
        self.instance = TRACEFS / "instances" / f"wsfs-bench-{os.getpid()}"
        self.instance.mkdir()
        event = self.instance / "events" / "fuse" / "fuse_request_send"
        (self.instance / "buffer_size_kb").write_text(str(BUFFER_KB))
        (event / "filter").write_text(" || ".join(f"connection == {minor}" for minor in self.names))
        (event / "enable").write_text("1")
        self.records: dict[tuple[str, str], list[Counter[str]]] = {}

    def _take(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        with open(self.instance / "trace") as trace:
            for line in trace:
                match = _LINE.search(line)
                if match:
                    name = self.names.get(int(match[1]), match[1])
                    out.setdefault(name, Counter())[match[2].removeprefix("FUSE_")] += 1
        (self.instance / "trace").write_text("")
        return out

    def begin(self) -> None:
        self._take()  # what came before (a setup) is not the timed script's

    def end(self, script: str, work: Path) -> None:
        lost = sum(int(line.split()[1]) for stats in self.instance.glob("per_cpu/cpu*/stats")
                   for line in stats.read_text().splitlines() if line.startswith("overrun:"))
        if lost:
            raise RuntimeError(f"trace buffer overran ({lost} events lost): raise BUFFER_KB")
        minor = os.minor(os.stat(work).st_dev)
        if minor in self.names:
            counts = self._take().get(self.names[minor], Counter())
            self.records.setdefault((script, self.names[minor]), []).append(counts)

    def close(self) -> None:
        (self.instance / "events" / "fuse" / "fuse_request_send" / "enable").write_text("0")
        self.instance.rmdir()

    def report(self, rows: list[tuple[str, str, int]]) -> str:
        """One line per (row name, script, n-th run of that script in a chain) and target: the counts."""
        lines = ["requests the kernel sent, per opcode (last rep; chains: the first):"]
        for name, script, nth in rows:
            for (recorded, target), runs in self.records.items():
                if recorded == script and runs:
                    counts = runs[nth] if nth >= 0 and nth < len(runs) else runs[-1]
                    text = ", ".join(f"{op} {n}" for op, n in counts.most_common())
                    lines.append(f"| {name} | {target} | {sum(counts.values())} | {text} |")
        return "\n".join(lines)

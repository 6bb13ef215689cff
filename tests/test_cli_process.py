"""`wsfs` as a process, as a user meets it: a busy port, a closed pipe, a server restart under `watch`, a live
`sync` without a terminal and its Ctrl-C, the one `token` family on a data dir and over a server.

Every subprocess is ours, bounded by a timeout, and stopped by its own handle.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from client_fixtures import RestartableServer
from server.cli import reachable_hosts
from server_fixtures import ServerProcess, serving

ROOT = Path(__file__).resolve().parent.parent
WAIT = 30.0  # seconds any one step may take


def wsfs(*argv: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wsfs", *argv], cwd=ROOT, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=WAIT * 2, **kw)


class Lines:
    """A started `wsfs` process whose stdout and stderr lines arrive on queues, for waiting on a line."""

    def __init__(self, *argv: str, env: dict[str, str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "wsfs", *argv], cwd=ROOT, env={**os.environ, **env},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        self.err_seen: list[str] = []
        self.pumps = [threading.Thread(target=lambda s=stream, q=sink: [q.put(line) for line in s], daemon=True)
                      for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for pump in self.pumps:
            pump.start()

    def wait_for(self, which: str, needle: str) -> str:
        q = self.out if which == "out" else self.err
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                line = q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if which == "err":
                self.err_seen.append(line)
            if needle in line:
                return line
        raise AssertionError(f"{needle!r} never came on std{which}; stderr so far: {self.err_seen}")

    def rest_of_stderr(self) -> str:
        lines = []
        while not self.err.empty():
            lines.append(self.err.get_nowait())
        return "".join(lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        for pump in self.pumps:  # they end at EOF, now that the process is gone
            pump.join(WAIT)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()


@pytest.fixture
def server(tmp_path):
    yield from serving(RestartableServer(tmp_path / "data"))


def env_for(server) -> dict[str, str]:
    return {"WSFS_URL": server.url, "WSFS_TOKEN": server.admin, "WSFS_WORKSPACE": "demo"}


def test_serve_on_a_busy_port_says_what_to_do(tmp_path):
    first = ServerProcess(tmp_path / "d")
    try:
        second = wsfs("serve", "--data", str(tmp_path / "d"), "--port", str(first.port))
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert second.stderr.count("\n") == 1 and "already in use" in second.stderr
        assert f"--port {first.port + 1}" in second.stderr and first.demo_url in second.stderr
    finally:
        first.stop()


def test_reachable_hosts_are_addresses_of_this_machine():
    hosts = reachable_hosts("0.0.0.0")
    assert hosts[0] == "127.0.0.1" and len(set(hosts)) == len(hosts)
    for host in hosts:  # each can be bound here: it is one of this machine's addresses
        with socket.socket() as s:
            s.bind((host, 0))
    assert reachable_hosts("127.0.0.1") == ["127.0.0.1"]


def test_cat_into_a_closed_pipe_exits_quietly(server):
    big = b"".join(b"line %d\n" % i for i in range(400_000))  # ~5 MiB: far more than a pipe buffer
    httpx.put(f"{server.url}/api/workspaces/demo/files/big.txt", content=big,
              headers={"Authorization": f"Bearer {server.admin}"}, timeout=WAIT).raise_for_status()
    cat = subprocess.Popen([sys.executable, "-m", "wsfs", "cat", "/big.txt"], cwd=ROOT,
                           env={**os.environ, **env_for(server)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert cat.stdout.read(10) == b"line 0\nlin"
    cat.stdout.close()  # `| head` is done
    assert cat.wait(WAIT) == 141
    assert cat.stderr.read() == b""
    cat.stderr.close()


def test_watch_rides_out_a_server_restart(server):
    watch = Lines("watch", "/w", "--json", "--count", "2", env=env_for(server))
    try:
        headers = {"Authorization": f"Bearer {server.admin}"}
        # the watcher has subscribed once its first event arrives: write until it does
        httpx.put(f"{server.url}/api/workspaces/demo/files/w/before.txt?parents=1", content=b"1",
                  headers=headers, timeout=WAIT).raise_for_status()
        deadline = time.monotonic() + WAIT
        seen_first = False
        while not seen_first and time.monotonic() < deadline:
            try:
                seen_first = '"/w/before.txt"' in watch.out.get(timeout=0.5) or seen_first
            except queue.Empty:
                httpx.put(f"{server.url}/api/workspaces/demo/files/w/before.txt", content=str(time.monotonic()).encode(),
                          headers=headers, timeout=WAIT)
        assert seen_first
        server.stop()
        watch.wait_for("err", "lost the connection")
        time.sleep(6)  # longer than the old give-up time (about 3 s)
        assert watch.proc.poll() is None, watch.rest_of_stderr()
        server.start()
        watch.wait_for("err", "reconnected")
        httpx.put(f"{server.url}/api/workspaces/demo/files/w/after.txt", content=b"2",
                  headers=headers, timeout=WAIT).raise_for_status()
        assert '"/w/after.txt"' in watch.wait_for("out", "/w/after.txt")
        assert watch.proc.wait(WAIT) == 0
    finally:
        watch.stop()


def test_live_sync_without_a_terminal_says_up_to_date_and_sums_up_on_ctrl_c(server, tmp_path):
    httpx.put(f"{server.url}/api/workspaces/demo/files/s.txt", content=b"synced",
              headers={"Authorization": f"Bearer {server.admin}"}, timeout=WAIT).raise_for_status()
    sync = Lines("sync", server.url, "demo", str(tmp_path / "rep"), "-v", env={"WSFS_TOKEN": server.admin})
    try:
        sync.wait_for("err", "is up to date with demo")
        assert (tmp_path / "rep" / "s.txt").read_bytes() == b"synced"
        sync.proc.send_signal(signal.SIGINT)
        assert sync.proc.wait(WAIT) == 130
        summary = sync.wait_for("err", "stopped syncing")
        assert "1 in; 0 out" in summary
        assert "HTTP Request" not in "".join(sync.err_seen)  # -v is not flooded with httpx lines
    finally:
        sync.stop()


def test_one_token_family_on_a_data_dir_and_over_a_server(tmp_path):
    data = tmp_path / "d"
    srv = ServerProcess(data)
    try:
        local = wsfs("token", "create", "demo", "--write", "--name", "alice", "--data", str(data))
        assert local.returncode == 0 and local.stdout.startswith("wsfs_") and "name alice" in local.stderr
        env = {"WSFS_URL": srv.url, "WSFS_TOKEN": srv.admin}
        over = wsfs("token", "create", "demo", "--read", "--name", "bob", env=env)
        assert over.returncode == 0 and over.stdout.startswith("wsfs_") and "name bob" in over.stderr
        here = wsfs("token", "list", "--data", str(data)).stdout.splitlines()
        there = wsfs("token", "list", env=env).stdout.splitlines()
        assert here == there and here[0].split() == ["ID", "SCOPE", "WORKSPACE", "NAME"]
        assert {line.split()[-1] for line in here[1:]} >= {"alice", "bob"}
        bob = next(line.split()[0] for line in here if line.endswith("bob"))
        assert wsfs("token", "revoke", bob, env=env).stdout == f"revoked {bob}\n"
        gone = wsfs("token", "revoke", bob, "--data", str(data))
        assert gone.returncode == 3 and bob in gone.stderr
        assert wsfs("token", "revoke", bob, env=env).returncode == 3
        admin = wsfs("token", "create", "--admin", env=env)
        assert admin.returncode == 2 and "--data" in admin.stderr
    finally:
        srv.stop()

"""Driving the `wsfs` command in-process against a real server, for the CLI tests.

`cli_server` is a restartable `wsfs serve` whose URL and admin token are in
the environment (`WSFS_URL`, `WSFS_TOKEN`), as a user's shell would have
them; `run` and `ok` call `wsfs.cli.main` as the command line would.
"""

from __future__ import annotations

import pytest

from client_fixtures import RestartableServer
from server_fixtures import serving
from wsfs.cli import main


@pytest.fixture
def cli_server(tmp_path, monkeypatch):
    srv = RestartableServer(tmp_path / "data")
    monkeypatch.setenv("WSFS_URL", srv.url)
    monkeypatch.setenv("WSFS_TOKEN", srv.admin)
    monkeypatch.delenv("WSFS_WORKSPACE", raising=False)
    yield from serving(srv)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """`wsfs ARGV...`: (exit code, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse: --help (0) and usage errors (2)
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys, *argv: str) -> str:
    """`wsfs ARGV...` that must succeed: its stdout."""
    code, out, err = run(capsys, *argv)
    assert code == 0, f"wsfs {' '.join(argv)} -> {code}: {err}"
    return out

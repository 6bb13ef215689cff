"""fsspec's own abstract test suite (copy, get, put, open, pipe) against a live wsfs server."""

from __future__ import annotations

import itertools
import posixpath

import pytest
from fsspec.tests.abstract import AbstractFixtures
from fsspec.tests.abstract.copy import AbstractCopyTests
from fsspec.tests.abstract.get import AbstractGetTests
from fsspec.tests.abstract.open import AbstractOpenTests
from fsspec.tests.abstract.pipe import AbstractPipeTests
from fsspec.tests.abstract.put import AbstractPutTests
from server_fixtures import LiveServer, serving

from client_py.fsspec_fs import WsfsFileSystem

_counter = itertools.count()


@pytest.fixture(scope="module")
def suite_server(tmp_path_factory):
    yield from serving(LiveServer(tmp_path_factory.mktemp("fsspec-suite")).start())


class WsfsFixtures(AbstractFixtures):
    @pytest.fixture
    def fs(self, suite_server):
        filesystem = WsfsFileSystem(port=suite_server.port, token=suite_server.admin, skip_instance_cache=True)
        yield filesystem
        filesystem.close()

    @pytest.fixture
    def fs_join(self):
        return posixpath.join

    @pytest.fixture
    def fs_path(self, fs):
        # A fresh, empty directory per test, in one shared workspace.
        path = f"demo/suite{next(_counter)}"
        fs.makedirs(path)
        return path


class TestWsfsCopy(AbstractCopyTests, WsfsFixtures):
    pass


class TestWsfsGet(AbstractGetTests, WsfsFixtures):
    pass


class TestWsfsPut(AbstractPutTests, WsfsFixtures):
    pass


class TestWsfsOpen(AbstractOpenTests, WsfsFixtures):
    pass


class TestWsfsPipe(AbstractPipeTests, WsfsFixtures):
    pass

"""`WsfsFileSystem` against a real server on loopback: fsspec calls, URLs, pandas, pyarrow."""

from __future__ import annotations

import os
from pathlib import Path

import blake3
import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from client_py.fsspec_fs import WsfsFileSystem


@pytest.fixture
def fs(live_server) -> WsfsFileSystem:  # noqa: F811
    filesystem = WsfsFileSystem(host="127.0.0.1", port=live_server.port, token=live_server.admin, skip_instance_cache=True)
    yield filesystem
    filesystem.close()


def url(live_server, path: str) -> str:  # noqa: F811
    return f"wsfs://127.0.0.1:{live_server.port}/{path}"


def test_write_read_list_and_metadata(fs: WsfsFileSystem):
    fs.pipe("demo/dir/a.txt", b"hello world")
    fs.pipe("demo/dir/sub/b.bin", bytes(range(256)))
    assert fs.cat("demo/dir/a.txt") == b"hello world"
    assert fs.ls("demo/dir", detail=False) == ["demo/dir/a.txt", "demo/dir/sub"]
    assert "demo" in fs.ls("", detail=False)
    info = fs.info("demo/dir/a.txt")
    assert (info["type"], info["size"]) == ("file", 11)
    assert fs.info("demo/dir/sub")["type"] == "directory"
    assert fs.checksum("demo/dir/a.txt") == blake3.blake3(b"hello world").hexdigest()
    assert fs.exists("demo/dir/a.txt") and not fs.exists("demo/nope")
    assert fs.isdir("demo/dir") and fs.isfile("demo/dir/sub/b.bin")
    assert sorted(fs.find("demo/dir")) == ["demo/dir/a.txt", "demo/dir/sub/b.bin"]
    assert fs.du("demo/dir") == 11 + 256
    with pytest.raises(FileNotFoundError):
        fs.cat("demo/missing")
    with pytest.raises(FileNotFoundError):
        fs.info("demo/missing")


def test_random_access_reads_use_ranges(fs: WsfsFileSystem):
    data = os.urandom(3 << 20)
    fs.pipe("demo/big.bin", data)
    assert fs.cat_file("demo/big.bin", start=1000, end=2000) == data[1000:2000]
    assert fs.cat_file("demo/big.bin", start=-10) == data[-10:]
    with fs.open("demo/big.bin", "rb", block_size=64 * 1024) as f:
        f.seek(2_000_000)
        assert f.read(100) == data[2_000_000:2_000_100]
        f.seek(17)
        assert f.read(5) == data[17:22]
        assert f.tell() == 22


def test_streamed_write_is_one_revision(fs: WsfsFileSystem, live_server):  # noqa: F811
    piece = os.urandom(1 << 20)
    before = fs.client.get("/api/workspaces/demo").json()["rev"]
    with fs.open("demo/stream.bin", "wb", block_size=1 << 20) as f:
        for _ in range(12):
            f.write(piece)
    assert fs.size("demo/stream.bin") == 12 << 20
    assert fs.checksum("demo/stream.bin") == blake3.blake3(piece * 12).hexdigest()
    assert fs.client.get("/api/workspaces/demo").json()["rev"] == before + 1


def test_put_get_rm_mkdir_mv_copy(fs: WsfsFileSystem, tmp_path: Path):
    local = tmp_path / "local"
    (local / "nested").mkdir(parents=True)
    (local / "one.txt").write_text("1")
    (local / "nested" / "two.txt").write_text("22")
    fs.put(str(local), "demo/up", recursive=True)
    assert fs.cat("demo/up/nested/two.txt") == b"22"
    fs.get("demo/up", str(tmp_path / "down"), recursive=True)
    assert (tmp_path / "down" / "nested" / "two.txt").read_text() == "22"

    fs.mkdir("demo/made/deep")
    assert fs.isdir("demo/made/deep")
    fs.copy("demo/up/one.txt", "demo/made/copy.txt")
    assert fs.cat("demo/made/copy.txt") == b"1"
    fs.mv("demo/up", "demo/moved")
    assert not fs.exists("demo/up") and fs.cat("demo/moved/nested/two.txt") == b"22"
    fs.rm("demo/moved", recursive=True)
    assert not fs.exists("demo/moved")
    fs.rm("demo/made/copy.txt")
    assert fs.ls("demo/made", detail=False) == ["demo/made/deep"]
    fs.rmdir("demo/made/deep")
    assert fs.ls("demo/made", detail=False) == []


def test_past_versions(fs: WsfsFileSystem, live_server):  # noqa: F811
    fs.pipe("demo/v.txt", b"first")
    first_rev = fs.info("demo/v.txt")["rev"]
    fs.pipe("demo/v.txt", b"second")
    assert fs.cat("demo/v.txt") == b"second"
    assert fs.cat(f"demo/v.txt?rev={first_rev}") == b"first"
    with fs.open("demo/v.txt", rev=first_rev) as f:
        assert f.read() == b"first"
    with fsspec.open(url(live_server, f"demo/v.txt?rev={first_rev}"), "rb", token=live_server.admin) as f:
        assert f.read() == b"first"
    assert [v["rev"] for v in fs.history("demo/v.txt")][1] == first_rev


def test_fsspec_open_by_url_with_token_option_and_env(live_server, monkeypatch):  # noqa: F811
    target = url(live_server, "demo/notes/hi.txt")
    with fsspec.open(target, "wb", token=live_server.admin) as f:
        f.write(b"via url")
    with fsspec.open(target, "rb", token=live_server.admin) as f:
        assert f.read() == b"via url"
    monkeypatch.setenv("WSFS_TOKEN", live_server.admin)
    fsspec.filesystem("wsfs").clear_instance_cache()
    with fsspec.open(target, "rt") as f:
        assert f.read() == "via url"
    monkeypatch.setenv("WSFS_TOKEN", "wsfs_wrong")
    fsspec.filesystem("wsfs").clear_instance_cache()
    with pytest.raises(PermissionError):
        fsspec.open(target, "rb").open()


def test_scoped_tokens(live_server):  # noqa: F811
    read_only = live_server.token("demo", "read")
    fs = WsfsFileSystem(port=live_server.port, token=read_only, skip_instance_cache=True)
    admin = WsfsFileSystem(port=live_server.port, token=live_server.admin, skip_instance_cache=True)
    admin.pipe("demo/r.txt", b"r")
    assert fs.cat("demo/r.txt") == b"r"
    with pytest.raises(PermissionError):
        fs.pipe("demo/w.txt", b"w")
    fs.close()
    admin.close()


def test_pandas_csv_and_parquet(live_server):  # noqa: F811
    options = {"token": live_server.admin}
    frame = pd.DataFrame({"city": ["Oslo", "Lima", "Pune"], "temp": [3.5, 19.0, 31.25], "n": [1, 2, 3]})
    frame.to_csv(url(live_server, "demo/data/cities.csv"), index=False, storage_options=options)
    back = pd.read_csv(url(live_server, "demo/data/cities.csv"), storage_options=options)
    pd.testing.assert_frame_equal(back, frame)

    table = pa.Table.from_pandas(frame, preserve_index=False)
    fs = WsfsFileSystem(port=live_server.port, token=live_server.admin, skip_instance_cache=True)
    pq.write_table(table, "demo/data/cities.parquet", filesystem=fs)
    assert pq.read_table("demo/data/cities.parquet", filesystem=fs).equals(table)
    fs.close()
    parquet = pd.read_parquet(url(live_server, "demo/data/cities.parquet"), storage_options=options)
    pd.testing.assert_frame_equal(parquet, frame)

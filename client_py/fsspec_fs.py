"""fsspec filesystem for wsfs: `wsfs://HOST:PORT/WORKSPACE/path`.

Registered under the `fsspec.specs` entry point, so after `pip install wsfs`
`fsspec.open("wsfs://127.0.0.1:8765/demo/data.csv")` and
`pandas.read_csv("wsfs://...")` work. It speaks the HTTP API of
docs/protocol.md with a synchronous httpx client.

Paths work like s3's: one filesystem instance per server (host, port,
token); a path is `WORKSPACE/dir/file`, and `""` lists the workspaces.
The token comes from `storage_options={"token": ...}` or `$WSFS_TOKEN`.

- Reads are random access: each block is one `Range` request.
- Writes stream: the file's blocks go into one chunked `PUT` as they are
  written (a bounded queue feeds the request from a helper thread), so memory
  stays bounded for any size and the server commits the whole file at once.
- `checksum(path)` / `ukey(path)` are the content id (BLAKE3 of the content).
- Past versions: `wsfs://.../file?rev=N`, or `fs.open(path, rev=N)`.
"""

from __future__ import annotations

import errno
import os
import queue
import re
import threading
import weakref
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem
from fsspec.utils import isfilelike

from vfs.wire import routes

from client_py.errors import exception_from_error

DEFAULT_PORT = 8765
_REV_SUFFIX = re.compile(r"\?rev=(\d+)$")
_LISTING_PAGE = 10000
_UPLOAD_QUEUE_BLOCKS = 4


class WsfsFileSystem(AbstractFileSystem):
    protocol = "wsfs"
    root_marker = ""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        token: str | None = None,
        *,
        scheme: str = "http",
        timeout: float = 60.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.host = host
        self.port = int(port)
        self.token = token if token is not None else os.environ.get("WSFS_TOKEN")
        self.base_url = f"{scheme}://{host}:{self.port}"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        # fsspec caches instances and never closes them: close the pool when this one is
        # collected. A finalizer (not __del__) holds the client itself, so the client and its
        # sockets are still whole when it runs, even if the instance died in a reference cycle.
        self._closer = weakref.finalize(self, self.client.close)

    def close(self) -> None:
        """Close the HTTP connection pool (instances are cached by fsspec; this is safe to call twice)."""
        self._closer()

    # -- URLs and paths ------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        """`wsfs://host:port/ws/a/b` -> `ws/a/b` (any `?rev=N` suffix is kept)."""
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("wsfs://"):
            path = path[len("wsfs://") :]
            path = path.partition("/")[2]
        return path.strip("/")

    @staticmethod
    def _get_kwargs_from_urls(urlpath: str) -> dict[str, Any]:
        if not urlpath.startswith("wsfs://"):
            return {}
        netloc = urlpath[len("wsfs://") :].partition("/")[0]
        host, _, port = netloc.rpartition(":") if ":" in netloc else (netloc, "", "")
        out: dict[str, Any] = {"host": host or "127.0.0.1"}
        if port:
            out["port"] = int(port)
        return out

    def unstrip_protocol(self, name: str) -> str:
        return f"wsfs://{self.host}:{self.port}/{self._strip_protocol(name)}"

    @staticmethod
    def _split(path: str) -> tuple[str, str]:
        """`ws/a/b` -> (`ws`, `/a/b`); `ws` -> (`ws`, `/`)."""
        workspace, _, rest = path.strip("/").partition("/")
        return workspace, "/" + rest

    @staticmethod
    def _split_rev(path: str, rev: int | None) -> tuple[str, int | None]:
        match = _REV_SUFFIX.search(path)
        if match:
            return path[: match.start()], int(match.group(1))
        return path, rev

    def _url(self, template: str, path: str) -> str:
        """The URL path of a `{path:path}` route (`vfs.wire.routes`) for `WORKSPACE/inner/path`."""
        workspace, inner = self._split(self._strip_protocol(path))
        if not workspace:
            raise IsADirectoryError(f"{path!r}: the root lists workspaces; it holds no files")
        return routes.build(template, ws=workspace, path=inner)

    def _ops_url(self, path: str) -> str:
        """`POST .../ops` of the workspace `path` is in."""
        workspace, _inner = self._split(self._strip_protocol(path))
        return routes.build(routes.OPS, ws=workspace)

    @staticmethod
    def _workspace_url(workspace: str) -> str:
        return routes.build(routes.WORKSPACE, ws=workspace)

    # -- HTTP ------------------------------------------------------------------

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, url, **kwargs)
        _raise_for(response)
        return response

    def _op(self, where: str, op: str, **fields: Any) -> dict:
        """POST one metadata op to the workspace of `where` (fields carry workspace paths)."""
        url = self._ops_url(where)
        return self._request("POST", url, json={"op": op, **fields}).json()

    # -- metadata ----------------------------------------------------------------

    def ls(self, path: str, detail: bool = True, **kwargs: Any):
        path = self._strip_protocol(path)
        if not path:
            names = [w["name"] for w in self._request("GET", routes.WORKSPACES).json()["workspaces"]]
            entries = [{"name": name, "size": 0, "type": "directory"} for name in names]
        else:
            entries = self._list_dir(path)
        return entries if detail else [entry["name"] for entry in entries]

    def _list_dir(self, path: str) -> list[dict]:
        entries: list[dict] = []
        offset = 0
        while True:
            try:
                page = self._request(
                    "GET", self._url(routes.READDIR, path), params={"limit": _LISTING_PAGE, "offset": offset}
                ).json()["entries"]
            except NotADirectoryError:
                return [self.info(path)]
            for entry in page:
                child = f"{path}/{entry['name']}"
                if entry["kind"] == "symlink":
                    entries.append(self._info_or_dangling(child))
                else:
                    entries.append(_entry_info(child, entry))
            if len(page) < _LISTING_PAGE:
                return entries
            offset += len(page)

    def _info_or_dangling(self, path: str) -> dict:
        try:
            return self.info(path)
        except FileNotFoundError:
            return {"name": path, "size": 0, "type": "other", "islink": True}

    def info(self, path: str, rev: int | None = None, **kwargs: Any) -> dict:
        path, rev = self._split_rev(self._strip_protocol(path), rev)
        workspace, inner = self._split(path)
        if not workspace:
            return {"name": "", "size": 0, "type": "directory"}
        if rev is not None:
            return self._version_info(path, rev)
        stat = self._request("GET", self._url(routes.STAT, path), params={"follow": 1}).json()
        return _stat_info(path, stat)

    def _version_info(self, path: str, rev: int) -> dict:
        versions = self._request("GET", self._url(routes.HISTORY, path)).json()["versions"]
        for version in versions:
            if version["rev"] == rev and version["kind"] != "delete":
                return {
                    "name": path, "size": version["size"], "type": "file", "hash": version["hash"],
                    "mtime": version["mtime"], "rev": rev,
                }
        raise FileNotFoundError(2, f"no version at revision {rev}", path)

    def checksum(self, path: str) -> str:
        """The content id: BLAKE3 of the file's bytes (hex)."""
        return self.info(path)["hash"]

    def ukey(self, path: str) -> str:
        return self.checksum(path)

    def modified(self, path: str) -> datetime:
        return datetime.fromtimestamp(self.info(path)["mtime"], tz=timezone.utc)

    def created(self, path: str) -> datetime:
        return datetime.fromtimestamp(self.info(path)["ctime"], tz=timezone.utc)

    def history(self, path: str) -> list[dict]:
        """Retained versions of a file, newest first (`rev` opens one)."""
        return self._request("GET", self._url(routes.HISTORY, self._strip_protocol(path))).json()["versions"]

    # -- reading -------------------------------------------------------------------

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, rev: int | None = None, **kwargs):
        path, rev = self._split_rev(self._strip_protocol(path), rev)
        headers = {}
        if start is not None or end is not None:
            size = None
            if (start is not None and start < 0) or (end is not None and end < 0):
                size = self.info(path, rev=rev)["size"]
            start = 0 if start is None else (max(size + start, 0) if start < 0 else start)
            if end is not None and end < 0:
                end = max(size + end, 0)
            if end is not None and end <= start:
                return b""
            headers["Range"] = f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"
        params = {"rev": rev} if rev is not None else {}
        response = self.client.get(self._url(routes.FILES, path), headers=headers, params=params)
        if response.status_code == 416:
            return b""
        _raise_for(response)
        if response.headers.get("content-type", "").startswith("application/json") and self.isdir(path):
            raise IsADirectoryError(21, "Is a directory", path)
        return response.content

    def cat(self, path, recursive: bool = False, on_error: str = "raise", **kwargs):
        # `?rev=N` would read as a glob; a versioned path names exactly one file.
        if isinstance(path, str) and _REV_SUFFIX.search(path):
            return self.cat_file(path, **kwargs)
        return super().cat(path, recursive=recursive, on_error=on_error, **kwargs)

    def get_file(self, rpath: str, lpath: str, callback=None, outfile=None, rev: int | None = None, **kwargs):
        rpath, rev = self._split_rev(self._strip_protocol(rpath), rev)
        if outfile is None and isfilelike(lpath):
            outfile = lpath
        elif outfile is None and self.isdir(rpath):
            os.makedirs(lpath, exist_ok=True)
            return
        if outfile is None:
            os.makedirs(os.path.dirname(os.path.abspath(lpath)), exist_ok=True)
        params = {"rev": rev} if rev is not None else {}
        with self.client.stream("GET", self._url(routes.FILES, rpath), params=params) as response:
            if response.is_error:
                response.read()
                _raise_for(response)
            target = outfile if outfile is not None else open(lpath, "wb")
            try:
                for piece in response.iter_bytes(1 << 20):
                    target.write(piece)
                    if callback is not None:
                        callback.relative_update(len(piece))
            finally:
                if outfile is None:
                    target.close()

    # -- writing -------------------------------------------------------------------

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs) -> None:
        self._put(path, value, create=mode == "create")

    def _put(self, path: str, body: Any, *, create: bool = False) -> None:
        """PUT a whole file (parents created); `create`: fail with FileExistsError if it exists."""
        headers = {"If-None-Match": "*"} if create else {}
        response = self.client.put(self._url(routes.FILES, path), content=body, headers=headers, params={"parents": 1})
        if create and response.status_code == 412:
            raise FileExistsError(errno.EEXIST, "File exists", path)
        _raise_for(response)

    def put_file(self, lpath: str, rpath: str, callback=None, mode: str = "overwrite", **kwargs) -> None:
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return
        with open(lpath, "rb") as source:
            self._put(rpath, _read_pieces(source, callback), create=mode == "create")

    def touch(self, path: str, truncate: bool = True, **kwargs) -> None:
        if truncate or not self.exists(path):
            self.pipe_file(path, b"")
        else:
            self._op(path, "utime", path=self._split(self._strip_protocol(path))[1], mtime=datetime.now().timestamp())

    def mkdir(self, path: str, create_parents: bool = True, **kwargs) -> None:
        path = self._strip_protocol(path)
        workspace, inner = self._split(path)
        if inner == "/":
            self._request("PUT", self._workspace_url(workspace))
            return
        if create_parents and not self._workspace_exists(workspace):
            self._request("PUT", self._workspace_url(workspace))
        self._op(path, "mkdir", path=inner, parents=create_parents, exist_ok=False)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        path = self._strip_protocol(path)
        workspace, inner = self._split(path)
        if not self._workspace_exists(workspace):
            self._request("PUT", self._workspace_url(workspace))
        elif inner == "/" and not exist_ok:
            raise FileExistsError(17, "File exists", path)
        if inner != "/":
            self._op(path, "mkdir", path=inner, parents=True, exist_ok=exist_ok)

    def _workspace_exists(self, workspace: str) -> bool:
        response = self.client.get(self._workspace_url(workspace))
        if response.status_code == 404:
            return False
        _raise_for(response)
        return True

    def rmdir(self, path: str) -> None:
        path = self._strip_protocol(path)
        self._op(path, "rmdir", path=self._split(path)[1])

    def _rm(self, path: str) -> None:
        path = self._strip_protocol(path)
        if self._split(path)[1] == "/":
            return  # a workspace root is never removed through fsspec
        self._request("DELETE", self._url(routes.FILES, path), params={"recursive": 1})

    def rm_file(self, path: str) -> None:
        self._request("DELETE", self._url(routes.FILES, path))

    def rm(self, path, recursive: bool = False, maxdepth: int | None = None) -> None:
        if isinstance(path, str) and recursive and maxdepth is None and not _has_magic(path):
            self._rm(path)  # one server-side recursive delete, one revision
            return
        super().rm(path, recursive=recursive, maxdepth=maxdepth)

    def cp_file(self, path1: str, path2: str, **kwargs) -> None:
        path1, path2 = self._strip_protocol(path1), self._strip_protocol(path2)
        if self.isdir(path1):
            self.makedirs(path2, exist_ok=True)
            return
        (ws1, inner1), (ws2, inner2) = self._split(path1), self._split(path2)
        if ws1 == ws2:
            parent = self._parent(path2)
            if self._split(parent)[1] != "/" and not self.isdir(parent):
                self.makedirs(parent, exist_ok=True)
            self._op(path1, "copy", src=inner1, dst=inner2)  # shares chunks: no bytes move
        else:
            self.pipe_file(path2, self.cat_file(path1))

    def mv(self, path1, path2, recursive: bool = False, maxdepth: int | None = None, **kwargs) -> None:
        if isinstance(path1, str) and isinstance(path2, str) and not _has_magic(path1):
            source, target = self._strip_protocol(path1), self._strip_protocol(path2)
            if self._split(source)[0] == self._split(target)[0]:
                if self.isdir(target):
                    target = f"{target}/{source.rsplit('/', 1)[-1]}"
                self._op(source, "rename", src=self._split(source)[1], dst=self._split(target)[1])
                return
        super().mv(path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict | None = None,
        rev: int | None = None,
        **kwargs: Any,
    ) -> WsfsFile:
        path, rev = self._split_rev(self._strip_protocol(path), rev)
        if rev is not None and mode != "rb":
            raise ValueError("past versions (rev=) are read-only")
        return WsfsFile(self, path, mode, block_size or "default", autocommit, cache_options=cache_options, rev=rev, **kwargs)


class WsfsFile(AbstractBufferedFile):
    """A file on a wsfs server: `Range` reads, one streamed `PUT` for writes."""

    def __init__(self, fs: WsfsFileSystem, path: str, mode: str = "rb", *args: Any, rev: int | None = None, **kwargs):
        self.rev = rev
        self._upload: _StreamingUpload | None = None
        if mode == "rb":
            kwargs["size"] = fs.info(path, rev=rev)["size"]
            kwargs.setdefault("cache_type", "readahead")
        elif mode == "xb" and fs.exists(path):
            raise FileExistsError(errno.EEXIST, "File exists", path)
        super().__init__(fs, path, mode, *args, **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.fs.cat_file(self.path, start=start, end=end, rev=self.rev)

    def _initiate_upload(self) -> None:
        self._upload = _StreamingUpload(self.fs, self.path, create=self.mode == "xb")

    def _upload_chunk(self, final: bool = False) -> bool:
        self.buffer.seek(0)
        data = self.buffer.read()
        if self._upload is None:
            self._initiate_upload()
        if data:
            self._upload.send(data)
        if final:
            self._upload.finish()
        return True

    def discard(self) -> None:
        if self._upload is not None:
            self._upload.abort()


class _StreamingUpload:
    """One `PUT` whose body is fed block by block from the writing thread."""

    _DONE = object()

    def __init__(self, fs: WsfsFileSystem, path: str, *, create: bool = False):
        self._create = create
        self._queue: queue.Queue = queue.Queue(maxsize=_UPLOAD_QUEUE_BLOCKS)
        self._error: BaseException | None = None
        self._aborted = False
        self._thread = threading.Thread(target=self._run, args=(fs, path), daemon=True)
        self._thread.start()

    def _body(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if self._aborted:
                raise RuntimeError("upload aborted")
            yield item

    def _run(self, fs: WsfsFileSystem, path: str) -> None:
        try:
            fs._put(path, self._body(), create=self._create)
        except BaseException as exc:  # reported to the writer on its next call
            self._error = exc

    def _put(self, item: object) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        self._raise()

    def send(self, data: bytes) -> None:
        self._raise()
        self._put(data)

    def finish(self) -> None:
        self._put(self._DONE)
        self._thread.join()
        self._raise()

    def abort(self) -> None:
        self._aborted = True
        if self._thread.is_alive():
            self._put(b"")
        self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error


def _raise_for(response: httpx.Response) -> None:
    if not response.is_error:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    error = exception_from_error(body, response.status_code, response.reason_phrase)
    if response.status_code == 401:
        # Data tools expect PermissionError for a refused credential (as s3fs, gcsfs raise).
        raise PermissionError(errno.EACCES, f"wsfs: {error}", str(response.url)) from error
    raise error


def _read_pieces(source, callback=None, size: int = 1 << 20) -> Iterator[bytes]:
    while piece := source.read(size):
        if callback is not None:
            callback.relative_update(len(piece))
        yield piece


def _has_magic(path: str) -> bool:
    return any(ch in path for ch in "*?[")


def _kind_type(kind: str) -> str:
    """fsspec's types: a FIFO, socket or device node (made through a mount) is "other",
    as fsspec's local filesystem shows one; `kind` in the info says which it is."""
    return {"file": "file", "dir": "directory"}.get(kind, "other")


def _entry_info(path: str, entry: dict) -> dict:
    return {
        "name": path, "size": entry["size"], "type": _kind_type(entry["kind"]), "kind": entry["kind"],
        "mtime": entry["mtime"],
    }  # fmt: skip


def _stat_info(path: str, stat: dict) -> dict:
    return {
        "name": path,
        "size": stat["size"] if stat["kind"] == "file" else 0,
        "type": _kind_type(stat["kind"]),
        "kind": stat["kind"],
        "rdev": stat.get("rdev", 0),
        "mtime": stat["mtime"],
        "ctime": stat["ctime"],
        "mode": stat["mode"],
        "ino": stat["ino"],
        "nlink": stat["nlink"],
        "rev": stat["rev"],
        "hash": stat["hash"],
    }

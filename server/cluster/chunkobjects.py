"""Chunk bytes as S3 objects: the node's synchronous S3 client and its bounded on-disk cache.

A store calls its chunk backend synchronously, in its writer thread or a
reader's (`vfs.chunkstore`), so the object-store chunk backend
(`server/cluster/objectchunks.py`) needs a synchronous client: one botocore
client per node (botocore clients are thread-safe), a thread pool for
parallel PUTs and read-ahead GETs, and `ChunkCache`, the chunk bytes this
node read or wrote lately, kept on local disk by hash and bounded in bytes
(least recently used out first). The event loop never runs any of this.

Errors: an object store that does not answer is `EAGAIN` (503, retry); an
object that is missing or whose bytes do not hash to its name is `EIO`.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import blake3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from server.cluster.objectstore import S3Location
from vfs.errors import fs_error

log = logging.getLogger("wsfs.server.cluster")

THREADS = 16  # parallel PUTs / GETs per node (measured: 16 in flight ~4x one at a time on loopback)
DELETE_BATCH = 1000  # keys per DeleteObjects request (the S3 maximum)
CACHE_BYTES = 1 << 30  # default bound of the local chunk cache (WSFS_CLUSTER_CHUNK_CACHE_MB)


class ObjectClient:
    """Synchronous, thread-safe S3 calls on one bucket, with counters a test or `/metrics` can read."""

    def __init__(self, location: S3Location, *, threads: int = THREADS, timeout: float = 10.0):
        config = Config(s3={"addressing_style": "path"}, max_pool_connections=threads * 2,
                        retries={"max_attempts": 3, "mode": "standard"},
                        connect_timeout=timeout, read_timeout=timeout)
        self._client: Any = botocore.session.get_session().create_client(
            "s3", endpoint_url=location.endpoint, region_name=location.region, config=config,
            aws_access_key_id=location.access_key, aws_secret_access_key=location.secret_key)
        self.bucket = location.bucket
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="wsfs-chunks")
        self._counts_lock = threading.Lock()
        self.counts = {"put": 0, "get": 0, "delete": 0, "put_bytes": 0, "get_bytes": 0}

    def _count(self, what: str, n: int = 1, nbytes: int = 0, field: str | None = None) -> None:
        with self._counts_lock:
            self.counts[what] += n
            if field:
                self.counts[field] += nbytes

    def put(self, key: str, body: bytes) -> None:
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=body)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise fs_error(errno.EAGAIN, key, f"chunk upload to the object store failed: {exc}") from None
        self._count("put", 1, len(body), "put_bytes")

    def get(self, key: str) -> bytes:
        try:
            reply = self._client.get_object(Bucket=self.bucket, Key=key)
            data: bytes = reply["Body"].read()
        except ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if status == 404:
                raise fs_error(errno.EIO, key, "chunk object missing from the object store") from None
            raise fs_error(errno.EAGAIN, key, f"chunk download failed: {exc}") from None
        except (BotoCoreError, OSError) as exc:
            raise fs_error(errno.EAGAIN, key, f"chunk download failed: {exc}") from None
        self._count("get", 1, len(data), "get_bytes")
        return data

    def listing(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        """(key, size, last modified as a Unix time) of every object under `prefix`."""
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            try:
                reply = self._client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1000, **extra)
            except (BotoCoreError, ClientError, OSError) as exc:
                raise fs_error(errno.EAGAIN, prefix, f"listing chunk objects failed: {exc}") from None
            for item in reply.get("Contents") or []:
                yield item["Key"], int(item["Size"]), item["LastModified"].timestamp()
            token = reply.get("NextContinuationToken")
            if not reply.get("IsTruncated") or not token:
                return

    def delete(self, keys: list[str]) -> None:
        """Delete `keys` (missing ones are fine); raises EAGAIN if any deletion was not confirmed."""
        for lo in range(0, len(keys), DELETE_BATCH):
            batch = keys[lo:lo + DELETE_BATCH]
            try:
                reply = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            except (BotoCoreError, ClientError, OSError) as exc:
                raise fs_error(errno.EAGAIN, batch[0], f"deleting chunk objects failed: {exc}") from None
            if reply.get("Errors"):
                raise fs_error(errno.EAGAIN, batch[0], f"deleting chunk objects failed: {reply['Errors'][:3]}")
            self._count("delete", len(batch))

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()


class ChunkCache:
    """Chunk bytes by BLAKE3 hash on local disk, at most `limit` bytes, least recently used out first.

    Content-addressed and shared by every workspace of the node; a file is
    written beside its place and renamed in, so a reader never sees half of
    one, and checked against its hash when read back."""

    def __init__(self, root: Path, limit: int = CACHE_BYTES):
        self.root = root
        self.limit = limit
        self._lock = threading.Lock()
        self._sizes: OrderedDict[str, int] = OrderedDict()
        self._total = 0
        root.mkdir(parents=True, exist_ok=True)
        for path in sorted(root.glob("??/*"), key=_mtime):
            if path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
                continue
            self._sizes[path.name] = size = path.stat().st_size
            self._total += size
        self._evict()

    def _path(self, name: str) -> Path:
        return self.root / name[:2] / name

    def get(self, digest: bytes) -> bytes | None:
        name = digest.hex()
        with self._lock:
            if name not in self._sizes:
                return None
            self._sizes.move_to_end(name)
        try:
            data = self._path(name).read_bytes()
        except FileNotFoundError:
            data = b""
        if blake3.blake3(data).digest() != digest:
            self._forget(name)
            return None
        return data

    def put(self, digest: bytes, data: bytes) -> None:
        if len(data) > self.limit:
            return
        name = digest.hex()
        with self._lock:
            if name in self._sizes:
                self._sizes.move_to_end(name)
                return
        path = self._path(name)
        tmp = path.with_name(f"{name}.{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError as exc:  # a full or broken cache disk only costs a download later
            log.warning("chunk cache write failed: %s", exc)
            tmp.unlink(missing_ok=True)
            return
        with self._lock:
            if name not in self._sizes:
                self._sizes[name] = len(data)
                self._total += len(data)
        self._evict()

    def _forget(self, name: str) -> None:
        with self._lock:
            size = self._sizes.pop(name, None)
            if size is not None:
                self._total -= size
        self._path(name).unlink(missing_ok=True)

    def _evict(self) -> None:
        while True:
            with self._lock:
                if self._total <= self.limit or not self._sizes:
                    return
                name, size = self._sizes.popitem(last=False)
                self._total -= size
            self._path(name).unlink(missing_ok=True)

    @property
    def total(self) -> int:
        return self._total


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


class ChunkObjects:
    """Chunk bytes in the object store, read through the node's cache."""

    def __init__(self, client: ObjectClient, cache: ChunkCache):
        self.client = client
        self.cache = cache

    def upload(self, key: str, digest: bytes, data: bytes) -> Future[None]:
        """PUT the chunk in the background (the caller waits for it before its COMMIT)."""
        return self.client.pool.submit(self._upload, key, digest, data)

    def _upload(self, key: str, digest: bytes, data: bytes) -> None:
        self.client.put(key, data)
        self.cache.put(digest, data)

    def fetch(self, key: str, digest: bytes) -> bytes:
        """The chunk's bytes: from the cache, else GET (checked against its hash, then cached)."""
        data = self.cache.get(digest)
        if data is not None:
            return data
        data = self.client.get(key)
        if blake3.blake3(data).digest() != digest:
            raise fs_error(errno.EIO, key, "chunk object does not match its hash")
        self.cache.put(digest, data)
        return data

    def fetch_later(self, key: str, digest: bytes) -> Future[bytes]:
        return self.client.pool.submit(self.fetch, key, digest)

    def close(self) -> None:
        self.client.close()

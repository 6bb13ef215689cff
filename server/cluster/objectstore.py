"""The S3 object store a cluster replicates into and fences with.

Two things live in the store: each workspace's Litestream replicas (one key
prefix per ownership epoch) and its manifest, the object whose conditional
updates decide which node may acknowledge writes. This module only knows
S3: where (`S3Location`, parsed from `s3://BUCKET/PREFIX`) and the few
conditional operations the fence needs (`ObjectStore`), over aiobotocore so
that the event loop never blocks on a round trip. The one call on every
acknowledgement's path, the fence's conditional HEAD, goes out as a request
signed by botocore's own SigV4 signer over a plain aiohttp session
(`FenceHead`): ~0.4-0.5 ms of CPU instead of ~1.6-1.8 ms through
aiobotocore's client machinery (measured here against SeaweedFS).

A refused precondition is an answer, not an error: `put_new`,
`put_replacing` and `matches` return None / False for it. Anything else
(store unreachable, bad credentials) raises `ObjectStoreError`, which a
caller turns into a refusal (HTTP 503), never into an acknowledgement.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
from aiobotocore.session import get_session
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError
from yarl import URL

# Statuses of a refused condition: 412 Precondition Failed; AWS answers 409
# ConditionalRequestConflict when two conditional writes race on one key.
_REFUSED = {412, 409}
_MISSING = {404}


class ObjectStoreError(Exception):
    """The object store did not answer (unreachable, refused credentials, a bucket that is missing)."""


@dataclass(frozen=True)
class S3Location:
    """Where a cluster keeps its objects: a bucket, a key prefix, and how to reach the store."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = None

    @classmethod
    def parse(cls, url: str, *, endpoint: str | None = None, region: str | None = None,
              access_key: str | None = None, secret_key: str | None = None) -> S3Location:
        """`s3://BUCKET/PREFIX` (the `--replicate` value); credentials default to the AWS_* variables."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"replication target must look like s3://BUCKET/PREFIX, got {url!r}")
        if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
            raise ValueError(f"S3 endpoint must be an http:// or https:// URL, got {endpoint!r}")
        return cls(
            bucket=parts.netloc,
            prefix=parts.path.strip("/"),
            endpoint=endpoint,
            region=region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            access_key=access_key if access_key is not None else os.environ.get("AWS_ACCESS_KEY_ID"),
            secret_key=secret_key if secret_key is not None else os.environ.get("AWS_SECRET_ACCESS_KEY"),
        )

    def key(self, *parts: str) -> str:
        """A key under this location's prefix."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def url(self, key: str) -> str:
        """`s3://bucket/key` with the endpoint options Litestream reads from a replica URL."""
        query = {"region": self.region}
        if self.endpoint:
            # path-style addressing: a local store has no per-bucket host names
            query |= {"endpoint": self.endpoint, "force-path-style": "true"}
        return f"s3://{self.bucket}/{key.strip('/')}?{urlencode(query)}"

    def object_url(self, key: str) -> str:
        """The path-style HTTP(S) address of `key` (the addressing `ObjectStore` uses throughout)."""
        base = self.endpoint or f"https://s3.{self.region}.amazonaws.com"
        return f"{base.rstrip('/')}/{quote(self.bucket, safe='')}/{quote(key, safe='/~')}"

    def child_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment for a child (Litestream) that talks to this store.

        AWS_CA_BUNDLE is dropped: set on some machines for Python's HTTPS, it
        breaks Litestream's Go S3 client even for plain http endpoints.
        """
        env = dict(os.environ if base is None else base)
        env.pop("AWS_CA_BUNDLE", None)
        if self.access_key is not None:
            env["AWS_ACCESS_KEY_ID"] = self.access_key
        if self.secret_key is not None:
            env["AWS_SECRET_ACCESS_KEY"] = self.secret_key
        env["AWS_REGION"] = self.region
        return env


@dataclass(frozen=True)
class Stored:
    """An object's body and the ETag a conditional request names it by."""

    body: bytes
    etag: str


class FenceHead:
    """The conditional HEAD of the fence, signed by botocore and sent over one aiohttp session.

    Only for a location with its keys known and no session token (the usual
    cluster set-up): anything else (instance roles, temporary credentials)
    keeps to aiobotocore, which knows how to refresh them."""

    def __init__(self, location: S3Location, session: aiohttp.ClientSession):
        assert location.access_key is not None and location.secret_key is not None
        self._location = location
        self._signer = S3SigV4Auth(Credentials(location.access_key, location.secret_key), "s3", location.region)
        self._session = session

    @staticmethod
    def usable(location: S3Location) -> bool:
        return (location.access_key is not None and location.secret_key is not None
                and not os.environ.get("AWS_SESSION_TOKEN"))

    async def status(self, key: str, etag: str) -> int:
        """The HTTP status of `HEAD key` with `If-Match: etag` (one retry after a 5xx or a broken connection)."""
        url = self._location.object_url(key)
        for attempt in (1, 2):
            request = AWSRequest(method="HEAD", url=url, headers={"If-Match": etag})
            self._signer.add_auth(request)
            try:
                async with self._session.head(URL(url, encoded=True), headers=dict(request.headers.items()),
                                              allow_redirects=False) as reply:
                    if reply.status < 500 or attempt == 2:
                        return reply.status
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                if attempt == 2:
                    raise ObjectStoreError(f"S3 HEAD {key} failed: {exc}") from exc
        raise AssertionError("unreachable")


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


class ObjectStore:
    """Conditional object operations on one `S3Location` (an open aiobotocore client).

    Use as `async with ObjectStore(location) as store:`, or `await open()` /
    `await close()`.
    """

    def __init__(self, location: S3Location, *, timeout: float = 5.0, signed_head: bool = True):
        """`signed_head=False`: the fence's HEAD through aiobotocore too (to compare the two)."""
        self.location = location
        self._signed_head = signed_head
        self._timeout = timeout
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._fence_head: FenceHead | None = None

    async def open(self) -> ObjectStore:
        stack = AsyncExitStack()
        config = Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=self._timeout,
            read_timeout=self._timeout,
        )
        loc = self.location
        self._client = await stack.enter_async_context(get_session().create_client(
            "s3", endpoint_url=loc.endpoint, region_name=loc.region, config=config,
            aws_access_key_id=loc.access_key, aws_secret_access_key=loc.secret_key,
        ))
        if self._signed_head and FenceHead.usable(loc):
            timeout = aiohttp.ClientTimeout(total=2 * self._timeout, connect=self._timeout)
            session = await stack.enter_async_context(aiohttp.ClientSession(timeout=timeout))
            self._fence_head = FenceHead(loc, session)
        self._stack = stack
        return self

    async def close(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._client, self._fence_head = self._stack, None, None, None
            await stack.aclose()

    async def __aenter__(self) -> ObjectStore:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, operation: str, **kwargs: Any) -> Any:
        """One S3 call; transport and server failures become ObjectStoreError, ClientError passes."""
        if self._client is None:
            raise ObjectStoreError("object store is not open")
        try:
            return await getattr(self._client, operation)(Bucket=self.location.bucket, **kwargs)
        except ClientError:
            raise
        except (BotoCoreError, OSError) as exc:
            raise ObjectStoreError(f"S3 {operation} failed: {exc}") from exc

    async def get(self, key: str) -> Stored | None:
        """The object at `key`, or None when there is none."""
        try:
            reply = await self._call("get_object", Key=key)
            async with reply["Body"] as body:
                data = await body.read()
        except ClientError as exc:
            if _status(exc) in _MISSING:
                return None
            raise ObjectStoreError(f"S3 GET {key}: {exc}") from exc
        return Stored(data, reply["ETag"])

    async def put_new(self, key: str, body: bytes) -> str | None:
        """Create `key` only if it does not exist (`If-None-Match: *`): its ETag, or None when it exists."""
        return await self._put(key, body, IfNoneMatch="*")

    async def put_replacing(self, key: str, body: bytes, etag: str) -> str | None:
        """Replace `key` only if it is still `etag` (`If-Match`): the new ETag, or None when it changed."""
        return await self._put(key, body, IfMatch=etag)

    async def _put(self, key: str, body: bytes, **condition: str) -> str | None:
        try:
            reply = await self._call("put_object", Key=key, Body=body, ContentType="application/json", **condition)
        except ClientError as exc:
            if _status(exc) in _REFUSED | _MISSING:
                return None
            raise ObjectStoreError(f"S3 PUT {key}: {exc}") from exc
        return str(reply["ETag"])

    async def matches(self, key: str, etag: str) -> bool:
        """Is `key` still the object `etag` names? (a conditional HEAD: one round trip, no body)"""
        if self._fence_head is not None:
            status = await self._fence_head.status(key, etag)
            if status in _REFUSED | _MISSING:
                return False
            if status != 200:
                raise ObjectStoreError(f"S3 HEAD {key}: HTTP {status}")
            return True
        try:
            await self._call("head_object", Key=key, IfMatch=etag)
        except ClientError as exc:
            if _status(exc) in _REFUSED | _MISSING:
                return False
            raise ObjectStoreError(f"S3 HEAD {key}: {exc}") from exc
        return True

    async def has_objects(self, prefix: str) -> bool:
        """Does any key start with `prefix/`?"""
        try:
            reply = await self._call("list_objects_v2", Prefix=prefix.rstrip("/") + "/", MaxKeys=1)
        except ClientError as exc:
            raise ObjectStoreError(f"S3 LIST {prefix}: {exc}") from exc
        return bool(reply.get("Contents"))

    async def keys(self, prefix: str, *, limit: int = 100_000) -> list[str]:
        """The keys under `prefix/` (at most `limit`)."""
        found: list[str] = []
        token: str | None = None
        while len(found) < limit:
            extra = {"ContinuationToken": token} if token else {}
            try:
                reply = await self._call("list_objects_v2", Prefix=prefix.rstrip("/") + "/",
                                         MaxKeys=min(1000, limit - len(found)), **extra)
            except ClientError as exc:
                raise ObjectStoreError(f"S3 LIST {prefix}: {exc}") from exc
            found += [item["Key"] for item in reply.get("Contents") or []]
            token = reply.get("NextContinuationToken")
            if not reply.get("IsTruncated") or not token:
                break
        return found

    async def delete(self, key: str) -> None:
        """Delete one key (a missing key is fine)."""
        try:
            await self._call("delete_object", Key=key)
        except ClientError as exc:
            if _status(exc) not in _MISSING:
                raise ObjectStoreError(f"S3 DELETE {key}: {exc}") from exc

    async def delete_prefix(self, prefix: str, *, limit: int = 100_000) -> int:
        """Delete every key under `prefix/`; how many. Bounded by `limit` keys: a prefix bigger than
        that is left partly for a later call."""
        keys = await self.keys(prefix, limit=limit)
        for key in keys:
            await self.delete(key)
        return len(keys)

    async def create_bucket(self) -> None:
        """Create the bucket (tests and first-time set-up); an existing bucket of ours is fine."""
        try:
            await self._call("create_bucket")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise ObjectStoreError(f"S3 create bucket {self.location.bucket}: {exc}") from exc

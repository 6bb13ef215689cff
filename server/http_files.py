"""File content: `GET/HEAD/PUT/PATCH/DELETE .../files/{path}`.

Reads answer `Range` (206/416) and `If-None-Match` (304) and stream big
files in ~1 MiB hops; writes spool the body first (a big one is stored as
it arrives instead, `_Arriving`, and committed by chunk list) and honour
`If-Match` / `If-None-Match: *` inside the writer's hop that commits, so
nothing can interleave.
"""

from __future__ import annotations

import asyncio
import io
import mimetypes
import mmap
from email.utils import formatdate
from typing import IO, Any, AsyncIterator

import blake3
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

import vfs
from vfs.chunks import cut
from vfs.content import StoredChunks
from vfs.chunkstore import stages_uploads
from vfs.packs import StagedPack, pack_dir
from vfs.wire import ProtocolError, direntry_to_wire, error_body, stat_to_wire
from vfs.wire.http import IF_MATCH_ANY, etag_matches, parse_if_match, parse_mode, parse_mtime, parse_range

from server.auth import Principal
from server.http_base import (
    SMALL_READ,
    JsonResponse,
    STREAM_STEP,
    api,
    author_of,
    check_if_match,
    if_match_of,
    json_response,
    q_flag,
    headers_of,
    q_int,
    query_of,
    bounded_parts,
    read_body,
    spool_body,
    wpath,
)
from server.pools import IdlePool
from server.state import ServerState
from server.store_options import file_size_at

SPOOL_MAP_MIN = 1 << 20  # a spooled PUT body at least this big is written to the store from a mapping of it
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # map the (just written, cached) pages at once, not fault by fault
PROBE_ATTEMPTS = 5  # reads of a small file rewritten meanwhile, before EAGAIN (see `_probe`)
# A PUT declaring at least STORE_AS_IT_ARRIVES bytes is cut, hashed and stored batch by batch while
# the rest of its body arrives (`_Arriving`), then committed by chunk list; smaller ones are spooled.
STORE_AS_IT_ARRIVES = 8 << 20
ARRIVING_BATCH = 4 << 20  # body bytes per cut; an upload holds at most ~2 of them
SMALL_WRITE = 16 * 1024  # a PUT up to this size runs on the loop when its workspace's writer is free (WorkspaceHandle.write)

# ---------------------------------------------------------------- reading


def _probe(ws: vfs.Workspace, path: str, range_header: str | None, limit: int | None, offset: int) -> dict[str, Any]:
    """Stat, and for small files the bytes, in one hop, ETag, length and bytes of one version.

    The stat and the read are two statements of a reader, and a commit may
    land between them (an editor saving while someone reads: the headers
    announced 27 bytes and the body had 20). So the file is stat'ed again
    after the read and the pair is kept only if its revision did not move;
    a file rewritten under every attempt is refused with EAGAIN (503, retry)
    rather than served torn."""
    for _ in range(PROBE_ATTEMPTS):
        st = ws.stat(path)
        if st.kind == "dir":
            return {"stat": st, "entries": ws.readdir(path, limit=limit, offset=offset)}
        rng = parse_range(range_header, st.size)
        start, length = rng if rng is not None else (0, st.size)
        if length > SMALL_READ:
            return {"stat": st, "range": rng, "start": start, "length": length, "data": None}
        data = ws.read_range(path, start, length)
        if ws.stat(path).rev == st.rev and len(data) == length:
            return {"stat": st, "range": rng, "start": start, "length": length, "data": data}
    raise ProtocolError("EAGAIN", f"{path} changed while it was read, {PROBE_ATTEMPTS} times; retry")


async def _stream(st: ServerState, name: str, path: str, start: int, length: int, rev: int | None,
                  announced: int) -> AsyncIterator[bytes]:
    """Stream a file in ~1 MiB thread hops, holding one reader Workspace for the duration.

    `announced`: the revision of the file whose ETag and length the headers
    carry. The chunk list is taken when the iterator is made; the file is
    stat'ed after that, and if it moved since the headers were made the
    response is cut (the client sees a short body and reads again) rather
    than another version's bytes sent under the first one's ETag."""
    async with st.stores.use(name) as h:
        ws = h.checkout()
        pending: asyncio.Future[bytes] | None = None
        try:
            it = ws.iter_file(path, start, length, rev=rev) if rev is not None else ws.iter_file(path, start, length)
            if rev is None and ws.stat(path).rev != announced:
                raise ProtocolError("EAGAIN", f"{path} changed after its headers were sent; read it again")

            def step() -> bytes:
                pieces, size = [], 0
                for piece in it:
                    pieces.append(piece)
                    size += len(piece)
                    if size >= STREAM_STEP:
                        break
                return b"".join(pieces)

            # double-buffered: the next block is read in the thread while this one is sent
            pending = asyncio.ensure_future(h.read_with(ws, step))
            while True:
                block = await pending
                if not block:
                    break
                pending = asyncio.ensure_future(h.read_with(ws, step))
                st.metrics.http_out.inc(len(block))
                yield block
        finally:
            if pending is not None and not pending.done():
                # the client went away mid-stream: the thread may still be reading with `ws`
                pending.add_done_callback(lambda f: (f.cancelled() or f.exception(), h.checkin(ws)))
            else:
                h.checkin(ws)


def _content_type(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def _file_headers(stat: vfs.Stat, path: str) -> dict[str, str]:
    return {
        "ETag": f'"{stat.hash}"',
        "Accept-Ranges": "bytes",
        "Last-Modified": formatdate(stat.mtime, usegmt=True),
        "X-Wsfs-Rev": str(stat.rev),
        "X-Wsfs-Mode": str(stat.mode),
        "Content-Type": _content_type(path),
    }


@api("read")
async def get_file(request: Request, st: ServerState, p: Principal) -> Response:
    name, path = request.path_params["ws"], wpath(request)
    rev = q_int(request, "rev")
    if rev is not None:
        async with st.stores.use(name) as h:
            data = await h.read(lambda ws: ws.read_file(path, rev=rev), op="read_file")
        return Response(data, headers={"Content-Type": _content_type(path)})
    async with st.stores.use(name) as h:
        info = await h.read(_probe, path, request.headers.get("range"), q_int(request, "limit"),
                            q_int(request, "offset", 0), op="get")
    stat: vfs.Stat = info["stat"]
    if stat.kind == "dir":
        entries = [direntry_to_wire(e) for e in info["entries"]]
        return json_response({"path": path, "kind": "dir", "entries": entries})
    headers = _file_headers(stat, path)
    if etag_matches(request.headers.get("if-none-match"), stat.hash):
        return Response(status_code=304, headers={"ETag": headers["ETag"]})
    status = 200
    if info["range"] is not None:
        status = 206
        headers["Content-Range"] = f"bytes {info['start']}-{info['start'] + info['length'] - 1}/{stat.size}"
    headers["Content-Length"] = str(info["length"])
    if info["data"] is not None:
        st.metrics.http_out.inc(len(info["data"]))
        return Response(info["data"], status_code=status, headers=headers)
    return StreamingResponse(_stream(st, name, path, info["start"], info["length"], None, stat.rev),
                             status_code=status, headers=headers)


# ---------------------------------------------------------------- writing


def _put(ws: vfs.Workspace, path: str, spool: bytes | IO[bytes] | StoredChunks, size: int, options: Any, mode: int | None, parents: bool,
         if_match: str | None, mtime: float | None) -> tuple[bool, vfs.Stat]:
    """Write the body; (created, stat). The store says whether it created the file (201) or replaced
    one (200) from the same lookup its write makes: no lookup of our own before it."""
    if if_match == IF_MATCH_ANY:  # `If-Match: *`: it must exist; checked in this hop, so nothing interleaves
        check_if_match(ws, path, if_match)
        if_match = None
    options.check_growth(ws, lambda ws: size - file_size_at(ws, path))
    stat, created = ws.put_file(path, _body_of(spool, size), mode=mode, parents=parents, if_match=if_match,
                                mtime=mtime)
    return created, stat


def _body_of(spool: bytes | IO[bytes] | StoredChunks, size: int) -> object:
    """What the store is given to write: a small body as its bytes, a big spooled file as a
    mapping of it, else the file itself. Bytes and mappings take the store's buffer path (cut and
    hashed in one pass); a stream is read and hashed piece by piece, which cost a 100 B PUT ~45 us
    more of the store's time than the same bytes (5 of 5 alternating rounds, in process)."""
    if isinstance(spool, (bytes, StoredChunks)):
        return spool
    view = _mapped(spool, size)
    return spool if view is None else view


def _mapped(spool: IO[bytes], size: int) -> memoryview | None:
    """The spooled body as a read-only view of its file, or None (small files stay streams).

    A buffer takes the store's fast path: chunks are cut and appended straight
    from the page cache, and the content id is hashed on another core
    meanwhile; a stream is read, hashed and copied chunk by chunk on one.
    The mapping goes away with its last reference (a hash thread may still
    hold the view briefly), never while anyone reads it.
    """
    if size < SPOOL_MAP_MIN:
        return None
    try:
        fileno = spool.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None
    return memoryview(mmap.mmap(fileno, size, prot=mmap.PROT_READ, flags=mmap.MAP_SHARED | _POPULATE))


# Cuts arriving bodies off the loop and off the writer (FastCDC and BLAKE3 of big buffers release the GIL).
# Threads that leave when idle, as the store pools' (server/pools.py: their cached freed blocks go back).
_CUTTER = IdlePool(2, thread_name_prefix="wsfs-put-cut")


class _Arriving:
    """A big body stored as it arrives, in a two-stage pipeline: the loop receives batch k+1
    while a cutter thread cuts batch k, hashes it (each chunk, and into the content id) and
    appends its chunks to the upload's own staged pack (`vfs.packs.StagedPack`: no write
    lock, writeback started every few MiB). At the end the staged file is synced (one
    `fdatasync`, off the writer) and one writer hop commits the file, adopting the pack and
    cataloguing its chunks in that same transaction (`StoredChunks(staged=...)`).

    The chunks' ids are this process's own BLAKE3 of the bytes it cut and appended, never
    ones that came with the body, which is what lets the store take them as given. Measured
    (`bench_server.py --transfers`): spooling first and storing after ran ~0.5x the bare
    body-to-disk endpoint; the writer cutting and storing per batch was the bottleneck; the
    writer storing each batch (one append, one `fdatasync`, one commit per 4 MiB) made the
    loop wait 0.25-0.37 s per 256 MiB. Now the writer is held once, for the commit (~47 ms
    for 256 MiB, ~3,700 chunks). Moving the appends to a thread of their own (a third stage)
    gave the same MB/s for 4-15 % more server CPU (8 of 8 rounds, load 1.8-2.0): not kept.

    A store whose chunks are not in packs (one made before them, a cluster node's objects:
    `vfs.chunkstore.stages_uploads` says no) would get the whole upload's bytes read back and
    stored inside that one commit; there the cutter hands each batch's chunks to the writer
    instead (`put_objects(hashed=True)`, the ids as the cutter computed them), one hop per
    batch, and the commit only points the path at them.

    Chunk boundaries are the whole body's (`vfs.chunks.cut`): a batch's last piece may end
    only because the batch did, so it is carried into the next batch and cut again from its
    start (FastCDC looks only at bytes after a chunk's start). An upload that fails leaves
    nothing: its staged file is deleted (`close`), and no row ever named it (chunks stored
    batch by batch go with the next collection, as a replica's do).
    """

    def __init__(self, directory: str | None) -> None:
        """`directory`: the store's pack directory, where the upload stages its chunks; None
        (not a packs store): its chunks go to the writer batch by batch (`store`)."""
        self.whole = blake3.blake3()
        self.chunks: list[tuple[bytes, int]] = []
        self.positions: list[int] = []
        self._directory = directory
        self.staged: StagedPack | None = None  # made by the first cut (a file, maybe a directory and its sync)
        self.pending: asyncio.Future[list[tuple[str, memoryview]]] | None = None  # the cut under way
        self.storing: asyncio.Future[None] | None = None  # the writer's hop storing a batch (no packs)
        self._carry = b""

    def cut(self, parts: list[bytes], last: bool) -> list[tuple[str, memoryview]]:
        """Cutter thread, one batch at a time in order: the carried piece and `parts` (joined
        once here: the loop only keeps what it received, so the body is copied once) cut,
        each chunk hashed, the batch hashed into the content id and appended to the staged
        pack (the last batch is synced there too); without packs, the (hex id, chunk) pairs
        the writer is to store."""
        data = b"".join([self._carry, *parts]) if self._carry or len(parts) != 1 else parts[0]
        parts.clear()
        view = memoryview(data)
        pieces = list(cut(view))
        self._carry = bytes(pieces.pop()) if pieces and not last else b""
        self.whole.update(view[: len(data) - len(self._carry)])
        digests = [blake3.blake3(piece).digest() for piece in pieces]
        self.chunks += [(digest, len(piece)) for digest, piece in zip(digests, pieces)]
        if self._directory is None:
            return [(digest.hex(), piece) for digest, piece in zip(digests, pieces)]
        if self.staged is None:
            self.staged = StagedPack(self._directory)
        self.positions += self.staged.append_many(pieces)  # type: ignore[arg-type]
        if last:
            self.staged.sync()  # durable before the transaction that names it
        return []

    @staticmethod
    def store(ws: vfs.Workspace, batch: list[tuple[str, memoryview]]) -> None:
        """Writer thread (a store without packs): one batch's chunks, under the cutter's ids."""
        ws.put_objects(batch, hashed=True)  # type: ignore[arg-type]

    def content(self) -> StoredChunks:
        if self.staged is None:  # (stored batch by batch)
            return StoredChunks(tuple(self.chunks), self.whole.digest())
        return StoredChunks(tuple(self.chunks), self.whole.digest(), self.staged, tuple(self.positions))

    def close(self) -> None:
        """After the commit, whatever its outcome: an adopted file is a pack now; else it goes.
        A cut still running (the body failed midway) is let finish first: it writes to the file."""
        running = [f for f in (self.pending, self.storing) if f is not None and not f.done()]
        if running:
            asyncio.gather(*running, return_exceptions=True).add_done_callback(lambda _: self._drop())
        else:
            self._drop()

    def _drop(self) -> None:
        if self.staged is not None:
            self.staged.close()


async def _store_arriving(request: Request, st: ServerState, h: Any, arriving: _Arriving, limit: int) -> int:
    """Receive the body into `arriving` batch by batch; its size. At most one batch is received
    and one cut at a time (~2 batches held; without packs one more, being stored)."""
    loop = asyncio.get_running_loop()

    async def hand_on(parts: list[bytes] | None, last: bool) -> None:
        """Cut `parts` once the batch before is cut, and give that one's chunks (if any: a store
        without packs) to the writer once the batch before it is stored."""
        batch = await arriving.pending if arriving.pending is not None else None
        arriving.pending = None if parts is None else loop.run_in_executor(_CUTTER, arriving.cut, parts, last)
        if arriving.storing is not None:
            await arriving.storing
            arriving.storing = None
        if batch:
            arriving.storing = asyncio.ensure_future(h.write(arriving.store, batch, op="put_chunks"))

    size = held = 0
    parts: list[bytes] = []
    async for part in bounded_parts(request, limit):
        size += len(part)
        parts.append(part)
        held += len(part)
        if held >= ARRIVING_BATCH:
            await hand_on(parts, False)
            parts, held = [], 0
    await hand_on(parts, True)
    await hand_on(None, True)  # the last batch's chunks to the writer (if they go there)
    await hand_on(None, True)  # and stored
    st.metrics.http_in.inc(size)
    return size


async def _big_upload_slot(st: ServerState) -> bool:
    """Take one of `config.max_big_uploads` slots, waiting up to `config.big_upload_wait`
    seconds for one to free; False if none did. Polled (every 50 ms, so bounded in count and
    time): a waiter that gives up or is cancelled never leaves a wake-up owed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + st.config.big_upload_wait
    while st.big_uploads >= st.config.max_big_uploads:
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(_SLOT_POLL)
    st.big_uploads += 1
    return True


_SLOT_POLL = 0.05


def _uploads_full(cap: int) -> Response:
    """503 EAGAIN with Retry-After: `cap` big PUTs were being received (each holds up to ~16
    MiB while stored as it arrives) for as long as this one waited, so it is refused before a
    byte of its body is read."""
    return json_response(error_body("EAGAIN", f"{cap} uploads of {STORE_AS_IT_ARRIVES >> 20} MiB or more are "
                                    "already being received (wsfs serve --max-big-uploads); retry later",
                                    limit=cap), 503, {"Retry-After": "1"})


def _spooled_size(spool: IO[bytes]) -> int:
    spool.seek(0, 2)
    size = spool.tell()
    spool.seek(0)
    return size


@api("write")
async def put_file(request: Request, st: ServerState, p: Principal) -> Response:
    params = request.scope["path_params"]
    name, path = params["ws"], "/" + params.get("path", "")
    if request.scope.get("query_string"):
        query = query_of(request)
        mode, parents, mtime = parse_mode(query.get("mode")), q_flag(request, "parents"), parse_mtime(query.get("mtime"))
    else:  # (most writes: nothing to parse)
        mode, parents, mtime = None, False, None
    headers = headers_of(request)
    if_match = parse_if_match(headers.get("if-match"), headers.get("if-none-match"))
    if not st.stores.exists(name):
        raise ProtocolError("ENOENT", f"no workspace named {name!r}")
    options = st.stores.options
    limit = min(st.config.max_upload, options.max_file_size + 1)
    declared = headers.get("content-length")
    length = int(declared) if declared is not None and declared.isdigit() else None
    if length is not None:
        options.check_file_size(length)  # before reading a byte of the body
        if length > limit:
            raise ProtocolError("EFBIG", f"upload of {declared} bytes is larger than the limit of {limit} bytes")
    if length is not None and length >= STORE_AS_IT_ARRIVES:
        if not await _big_upload_slot(st):
            return _uploads_full(st.config.max_big_uploads)
        try:
            async with st.stores.use(name) as h:
                staged = await asyncio.get_running_loop().run_in_executor(_CUTTER, stages_uploads, str(h.path))
                arriving = _Arriving(pack_dir(str(h.path)) if staged else None)
                try:
                    size = await _store_arriving(request, st, h, arriving, limit)
                    options.check_file_size(size)
                    created, stat = await h.write(_put, path, arriving.content(), size, options, mode, parents,
                                                  if_match, mtime, author=author_of(request, st, p), op="put",
                                                  handover=True)
                finally:
                    arriving.close()
        finally:
            st.big_uploads -= 1
        return JsonResponse(stat_to_wire(stat, path), 201 if created else 200, etag=stat.hash)
    spool: IO[bytes] | None = None
    if length is not None and length <= SMALL_READ:
        body: bytes | IO[bytes] = await read_body(request, limit, noun="upload")  # as bytes: no spool
        size = len(body)
        st.metrics.http_in.inc(size)
    else:
        body = spool = await spool_body(request, st, limit=limit)
    try:
        if spool is not None:
            size = _spooled_size(spool)
        options.check_file_size(size)
        async with st.stores.use(name) as h:
            created, stat = await h.write(_put, path, body, size, options, mode, parents, if_match, mtime,
                                          author=author_of(request, st, p), op="put", small=size <= SMALL_WRITE,
                                          known=(path, body) if isinstance(body, bytes) else None, handover=True)
    finally:
        if spool is not None:
            spool.close()
    return JsonResponse(stat_to_wire(stat, path), 201 if created else 200, etag=stat.hash)


@api("write")
async def patch_file(request: Request, st: ServerState, p: Principal) -> Response:
    name, path = request.path_params["ws"], wpath(request)
    offset = q_int(request, "offset")
    if offset is None:
        raise ProtocolError("EINVAL", "query offset is required", field="offset")
    if_match = if_match_of(request)
    options = st.stores.options
    declared = request.headers.get("content-length")
    options.check_file_size(offset + (int(declared) if declared is not None and declared.isdigit() else 0),
                            "offset")  # before reading the body: a write at 2^40 costs nothing
    data = await read_body(request, st.config.max_patch)
    options.check_file_size(offset + len(data), "offset")

    def job(ws: vfs.Workspace) -> vfs.Stat:
        check_if_match(ws, path, if_match)
        options.check_growth(ws, lambda ws: offset + len(data) - file_size_at(ws, path))
        return ws.write_range(path, offset, data)

    async with st.stores.use(name) as h:
        stat = await h.write(job, author=author_of(request, st, p), op="write_range")
    return JsonResponse(stat_to_wire(stat, path), 200, etag=stat.hash)


@api("write")
async def delete_file(request: Request, st: ServerState, p: Principal) -> Response:
    name, path = request.path_params["ws"], wpath(request)
    recursive, force = q_flag(request, "recursive"), q_flag(request, "force")

    def job(ws: vfs.Workspace) -> int:
        ws.rm(path, recursive=recursive, force=force)
        return ws.rev

    async with st.stores.use(name) as h:
        rev = await h.write(job, author=author_of(request, st, p), op="rm")
    return json_response({"rev": rev})

"""`Client`: one connection pool to one wsfs server.

HTTP goes through one `httpx.AsyncClient` (keep-alive, streaming bodies);
WebSockets are opened per use (`connect`). Errors come back as the Python
exceptions the store itself raises (`FileNotFoundError`, ...), and an
unreachable server is a `ServerUnreachable` naming the URL, after a few
retries with backoff for requests that were never sent.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any, Mapping

import orjson

from client_py.backoff import Backoff
from client_py.errors import ServerUnreachable, exception_from_error
from client_py.session import Session
from vfs.wire import routes

if TYPE_CHECKING:
    import httpx

DEFAULT_URL = "http://127.0.0.1:8765"


class Client:
    """Talk to a wsfs server: `async with Client(url, token=T) as c: ws = c.workspace("demo")`.

    `token` defaults to the `WSFS_TOKEN` environment variable. `backoff`
    governs reconnects (requests whose connection could not be opened, and
    `watch()` streams); the default gives up after 8 retries (~10 s).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        backoff: Backoff | None = None,
        name: str | None = None,
    ):
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"server URL must start with http:// or https://, got {url!r}")
        self.token = token if token is not None else os.environ.get("WSFS_TOKEN")
        self.backoff = backoff or Backoff()
        self.name = name  # presence name announced on WebSockets, if any
        headers = {"User-Agent": "client_py/0.1.0"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self._headers, self._timeout = headers, timeout
        self._http_client: httpx.AsyncClient | None = None

    @property
    def _http(self) -> httpx.AsyncClient:
        """The HTTP pool, made on first use: importing httpx and building its SSL context cost
        ~0.1 s, which a CLI command or a replica that only streams over WebSocket never needs."""
        if self._http_client is None:
            import httpx

            self._http_client = httpx.AsyncClient(base_url=self.url, headers=self._headers,
                                                  timeout=httpx.Timeout(self._timeout, connect=10.0))
        return self._http_client

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http_client is not None:
            await self._http_client.aclose()

    def workspace(self, name: str):
        """An async mirror of `vfs.Workspace` for the workspace `name` (nothing is sent yet)."""
        from client_py.workspace import RemoteWorkspace

        return RemoteWorkspace(self, name)

    # -- transport ------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: Any = None,
        headers: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (),
    ) -> httpx.Response:
        """One request with the body read; errors mapped. `ok` lists extra accepted statuses."""
        body = orjson.dumps(json) if json is not None else content
        hdrs = dict(headers or {})
        if json is not None:
            hdrs["Content-Type"] = "application/json"
        response = await self._send(self._http.build_request(method, path, params=_params(params), content=body, headers=hdrs))
        await response.aread()
        await response.aclose()
        self.raise_for(response, ok)
        return response

    async def stream(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """A response whose body is still to be read (`aiter_bytes`); close it when done."""
        response = await self._send(
            self._http.build_request(method, path, params=_params(params), headers=dict(headers or {})), stream=True
        )
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            self.raise_for(response)
        return response

    async def _send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        """Send, retrying only when the connection could not be opened (nothing was sent)."""
        import httpx

        delays = self.backoff.delays()
        while True:
            try:
                return await self._http.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                delay = next(delays, None)
                if delay is None:  # connect errors happen before any byte of the body is read
                    raise ServerUnreachable(self.url, e) from None
                await asyncio.sleep(delay)
            except httpx.TransportError as e:
                raise ServerUnreachable(self.url, e) from None

    @staticmethod
    def raise_for(response: httpx.Response, ok: tuple[int, ...] = ()) -> None:
        if response.status_code < 400 or response.status_code in ok:
            return
        try:
            body = response.json()
        except ValueError:
            body = None
        raise exception_from_error(body, response.status_code, response.reason_phrase)

    async def connect(self, workspace: str, *, presence: Mapping[str, Any] | None = None) -> Session:
        """Open a greeted WebSocket session on `workspace` (retrying while unreachable)."""
        if presence is None and self.name:
            presence = {"name": self.name}
        delays = self.backoff.delays()
        while True:
            try:
                return await Session.connect(self.url, workspace, self.token, presence=presence)
            except ServerUnreachable:
                delay = next(delays, None)
                if delay is None:
                    raise
                await asyncio.sleep(delay)

    # -- server and admin -------------------------------------------------------------

    async def healthz(self) -> dict[str, Any]:
        return (await self.request("GET", routes.HEALTHZ)).json()

    async def whoami(self) -> dict[str, Any]:
        return (await self.request("GET", routes.WHOAMI)).json()

    async def workspaces(self) -> list[str]:
        """Names of the workspaces this token can see."""
        body = (await self.request("GET", routes.WORKSPACES)).json()
        return [w["name"] for w in body["workspaces"]]

    async def create_workspace(self, name: str) -> dict[str, Any]:
        """Create `name` (admin); returns `{"name", "rev", "cursor", "created"}` (created=False if it existed)."""
        return (await self.request("PUT", routes.build(routes.WORKSPACE, ws=name))).json()

    async def delete_workspace(self, name: str) -> None:
        await self.request("DELETE", routes.build(routes.WORKSPACE, ws=name))

    async def tokens(self) -> list[dict[str, Any]]:
        return (await self.request("GET", routes.TOKENS)).json()["tokens"]

    async def create_token(self, workspace: str, scope: str = "read", name: str | None = None) -> dict[str, Any]:
        """A token scoped to one workspace; the returned `token` secret is shown only this once."""
        if scope not in ("read", "write"):
            raise ValueError("scope must be 'read' or 'write'")
        body: dict[str, Any] = {"workspace": workspace, "scope": scope}
        if name:
            body["name"] = name
        return (await self.request("POST", routes.TOKENS, json=body)).json()

    async def revoke_token(self, token_id: str) -> None:
        await self.request("DELETE", routes.build(routes.TOKEN, id=token_id))


def _params(params: Mapping[str, Any] | None) -> list[tuple[str, str]] | None:
    """Drop None values; booleans as 1/0; lists as repeated keys."""
    if not params:
        return None
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            out.append((key, ("1" if v else "0") if isinstance(v, bool) else str(v)))
    return out

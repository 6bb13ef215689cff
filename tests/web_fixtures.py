"""Browser fixtures for the web demo's end-to-end tests.

Real pieces only: `wsfs serve` (`python -m server serve`, via `ServerProcess`)
on a loopback port, Debian's chromium (`/usr/bin/chromium`) driven by
Playwright's async API (no pytest-playwright: it breaks under pytest 9 with
`filterwarnings=error`). Each `User` is its own browser context (own cookies,
sessionStorage, localStorage): two contexts are two people.

Every console message of type error and every uncaught page error is kept on
the `User`; tests end with `assert_clean()`.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright, expect

from server_fixtures import ServerProcess, serving

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "web_demo"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
WAIT_MS = 10_000  # upper bound of every UI wait (they poll and return as soon as the state is there)

expect.set_options(timeout=WAIT_MS)


class User:
    """One person: a browser context with one page of the demo."""

    def __init__(self, name: str, context: BrowserContext, page: Page):
        self.name = name
        self.context = context
        self.page = page
        self.errors: list[str] = []
        self.allowed: list[re.Pattern[str]] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    @classmethod
    async def open(cls, browser: Browser, url: str, name: str, *, width: int = 1280, height: int = 800,
                   wait_ready: bool = True, color_scheme: str = "light", coedit: bool = True) -> User:
        """A new browser context on `url` as `name`.

        `coedit=False` opens the demo with `&coedit=off`: text files keep the
        Save / If-Match / conflict-banner flow that binary and large files
        always use, which the tests of that flow need."""
        context = await browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True,
                                            color_scheme=color_scheme)  # type: ignore[arg-type]
        page = await context.new_page()
        user = cls(name, context, page)
        sep = "&" if "?" in url else "?"
        await page.goto(f"{url}{sep}name={name}" + ("" if coedit else "&coedit=off"))
        if wait_ready:
            await user.wait_ready()
        return user

    def _on_console(self, msg: ConsoleMessage) -> None:
        if msg.type != "error":
            return
        if any(p.search(msg.text) for p in self.allowed):
            return
        self.errors.append(f"console.error: {msg.text} @ {msg.location}")

    def allow_console(self, pattern: str) -> None:
        """Accept console errors matching `pattern` (only browser network notices a test provokes on purpose)."""
        self.allowed.append(re.compile(pattern))

    def assert_clean(self) -> None:
        assert self.errors == [], f"{self.name}: console errors: {self.errors}"

    async def wait_ready(self) -> None:
        await self.page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)

    # ------------------------------------------------------------ tree / files

    async def record_flashes(self) -> None:
        """From now on, remember every tree row that gets highlighted (rows are re-rendered often)."""
        await self.page.evaluate("""() => {
            window.__flashed = new Set();
            const note = () => document.querySelectorAll("#tree .tree-row.flash")
                .forEach((r) => window.__flashed.add(r.dataset.path));
            new MutationObserver(note).observe(document.getElementById("tree"), {childList: true, subtree: true});
        }""")

    async def flashed(self) -> set[str]:
        return set(await self.page.evaluate("() => [...window.__flashed]"))

    def newest_feed_item(self) -> Any:
        return self.page.locator("#feed .feed-item").first

    def row(self, path: str) -> Any:
        return self.page.locator(f'[role="treeitem"][data-path="{path}"]')

    async def open_file(self, path: str) -> None:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):  # expand the folders on the way
            folder = "/" + "/".join(parts[:i])
            row = self.row(folder)
            if await row.get_attribute("aria-expanded") != "true":
                await row.click()
        await self.row(path).click()
        await expect(self.page.locator("#file-path")).to_have_text(path)
        await self.page.wait_for_function(
            "(p) => { const f = window.wsfsDemo.fileView; return f.path === p && !['loading', 'none'].includes(f.mode); }",
            arg=path, timeout=WAIT_MS)

    async def editor_text(self) -> str:
        return await self.page.evaluate("() => window.wsfsDemo.fileView.text()")

    async def wait_editor_text(self, text: str, timeout: int = WAIT_MS) -> None:
        await self.page.wait_for_function("(t) => window.wsfsDemo?.fileView.text() === t", arg=text, timeout=timeout)

    async def type_in_editor(self, text: str, *, at_end: bool = True) -> None:
        await self.page.locator(".cm-content").first.click()
        if at_end:
            await self.page.keyboard.press("Control+End")
        await self.page.keyboard.type(text)

    async def save(self) -> None:
        await self.page.keyboard.press("Control+s")

    async def status(self) -> str:
        return await self.page.locator("#file-status").inner_text()

    async def banner_text(self) -> str:
        return await self.page.locator("#banner .banner-text").inner_text()

    async def click_banner(self, label: str) -> None:
        await self.page.locator("#banner button", has_text=label).click()

    async def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path))
        return path

    async def close(self) -> None:
        await self.context.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian chromium is needed: apt-get install -y chromium"
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """`wsfs serve` on a free loopback port; `.demo_url` is the URL it printed."""
    yield from serving(ServerProcess(tmp_path / "data"))


# ---------------------------------------------------------------- test data

TODO = "# Todo\n\n- write the demo\n- test it\n"


def tiny_png(width: int = 24, height: int = 16) -> bytes:
    """A real PNG (a colour gradient), made here so the test needs no data files."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"".join(bytes((x * 255 // width, y * 255 // height, 200)) for x in range(width)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def api(server: ServerProcess) -> httpx.Client:
    """A Python client of the demo workspace (the admin token: another writer than the browsers)."""
    return httpx.Client(base_url=f"{server.url}/api/workspaces/demo", timeout=30,
                        headers={"Authorization": f"Bearer {server.admin}"})


def seed(server: ServerProcess) -> None:
    with api(server) as c:
        for path, body in [("notes/todo.md", TODO), ("README.md", "# Demo\n\nHello.\n"),
                           ("img/logo.png", tiny_png()), ("data/blob.bin", bytes(range(256)) * 4)]:
            c.put(f"/files/{path}", content=body, params={"parents": 1}).raise_for_status()


async def two_users(browser: Browser, server: ServerProcess, *, opening: str | None = None,
                    **kw: Any) -> tuple[User, User]:
    """Alice and Bob on the demo; each then opens `opening` when one is given."""
    alice = await User.open(browser, server.demo_url, "Alice", **kw)
    bob = await User.open(browser, server.demo_url, "Bob", **kw)
    if opening is not None:
        for user in (alice, bob):
            await user.open_file(opening)
    return alice, bob


def assert_all_clean(*users: User) -> None:
    """No page logged a console error the test did not allow (the end of every test)."""
    for user in users:
        user.assert_clean()

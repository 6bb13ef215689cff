"""Render web_demo/favicon.svg into web_demo/favicon.ico (16, 32, 48 px PNG icons).

The demo page links the SVG; the .ico is for everything else on the same
origin that a browser opens (JSON API pages, /healthz), which asks for
/favicon.ico. Run from the repository root: python web_demo/vendor-src/make_favicon.py
"""

import asyncio
import struct
from pathlib import Path

from playwright.async_api import async_playwright

SIZES = (16, 32, 48)


async def render(svg: str) -> list[tuple[int, bytes]]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
        out = []
        for size in SIZES:
            page = await browser.new_page(viewport={"width": size, "height": size})
            sized = svg.replace("<svg ", f'<svg width="{size}" height="{size}" ', 1)
            await page.set_content(f'<body style="margin:0;background:transparent">{sized}</body>')
            out.append((size, await page.screenshot(omit_background=True)))
        await browser.close()
        return out


def ico(images: list[tuple[int, bytes]]) -> bytes:
    """An ICO file whose entries are PNG images (supported by every current browser)."""
    head = struct.pack("<HHH", 0, 1, len(images))
    offset = 6 + 16 * len(images)
    entries, data = b"", b""
    for size, png in images:
        entries += struct.pack("<BBBBHHII", size % 256, size % 256, 0, 0, 1, 32, len(png), offset + len(data))
        data += png
    return head + entries + data


if __name__ == "__main__":
    here = Path(__file__).resolve().parent.parent
    images = asyncio.run(render((here / "favicon.svg").read_text()))
    (here / "favicon.ico").write_bytes(ico(images))

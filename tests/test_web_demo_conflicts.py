"""The demo shows a conflict copy for what it is, and history rows on one line. Real `wsfs serve`, real Chromium."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from client_py.conflicts import conflict_name
from server_fixtures import ServerProcess
from web_fixtures import User, api, assert_all_clean


async def test_conflict_copies_are_marked_in_the_tree(browser: Browser, demo_server: ServerProcess) -> None:
    copy = conflict_name("/notes/plan.md", "laptop", 1_790_000_000.0)
    with api(demo_server) as c:
        c.put("/files/notes/plan.md", content=b"theirs\n", params={"parents": 1}).raise_for_status()
        c.put(f"/files{copy}", content=b"mine\n").raise_for_status()
    alice = await User.open(browser, demo_server.demo_url, "Alice", width=900)
    await alice.row("/notes").click()
    row = alice.row(copy)
    badge = row.locator(".conflict-badge")
    await expect(badge).to_have_text("conflict · laptop")
    await expect(badge).to_have_attribute("data-conflict-of", "/notes/plan.md")
    await expect(row.locator(".name")).to_have_text("plan.md")
    title = await row.locator(".name").get_attribute("title") or ""
    assert title.startswith("Conflict copy of /notes/plan.md: the edit made on laptop")
    assert f"wsfs conflicts resolve {copy} --keep mine|theirs|both" in title
    tree = await alice.page.locator(".tree").bounding_box()
    box = await badge.bounding_box()
    assert tree and box and box["x"] + box["width"] <= tree["x"] + tree["width"]  # the marker is not cut off
    plain = alice.row("/notes/plan.md")
    await expect(plain.locator(".conflict-badge")).to_have_count(0)
    assert_all_clean(alice)


async def test_history_rows_stay_on_one_line(browser: Browser, demo_server: ServerProcess) -> None:
    with api(demo_server) as c:
        for i in range(3):
            c.put("/files/notes/long-name-of-a-file-with-history.md", content=b"v%d\n" % i * (i + 1) * 500,
                  params={"parents": 1}).raise_for_status()
    alice = await User.open(browser, demo_server.demo_url, "Alice")
    await alice.open_file("/notes/long-name-of-a-file-with-history.md")
    await alice.page.locator("#history-btn").click()
    versions = alice.page.locator("#history .version")
    await expect(versions).to_have_count(3)
    for i in range(3):
        row = await versions.nth(i).bounding_box()
        rev = await versions.nth(i).locator("strong").bounding_box()
        assert row and rev and row["height"] < 1.5 * rev["height"], f"version row {i} wraps: {row}"
    assert_all_clean(alice)

"""Co-editing in the browser demo (real server process, real chromium, two browser contexts).

Typing in one window appears in the other with no save; carets carry names;
the server writes the file; one window goes offline, both type, it comes
back: both texts are equal and hold both sides' typing; undo is per person.
"""

from __future__ import annotations

import time

from playwright.async_api import Browser, expect

from server_fixtures import ServerProcess
from web_fixtures import TODO, User, api, assert_all_clean, seed, two_users

LIVE_MS = 2_000  # the bound for a keystroke to reach the other window


def http_text(server: ServerProcess, path: str) -> str:
    with api(server) as c:
        return c.get(f"/files{path}").text


def wait_file(server: ServerProcess, path: str, expected: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (got := http_text(server, path)) != expected:
        assert time.monotonic() < deadline, (got, expected)
        time.sleep(0.05)


async def test_typing_appears_in_the_other_window_live_with_named_carets(browser: Browser, demo_server: ServerProcess):
    seed(demo_server)
    alice, bob = await two_users(browser, demo_server, opening="/notes/todo.md")
    await alice.type_in_editor("alice types live\n")
    await bob.wait_editor_text(TODO + "alice types live\n", timeout=LIVE_MS)
    await bob.type_in_editor("bob too\n")
    await alice.wait_editor_text(TODO + "alice types live\nbob too\n", timeout=LIVE_MS)
    # nothing to save: the server writes the file, and the page says so
    for u in (alice, bob):
        await expect(u.page.locator("#save-btn")).to_be_hidden()
        await expect(u.page.locator("#file-status")).to_have_text("Saved")
    wait_file(demo_server, "/notes/todo.md", TODO + "alice types live\nbob too\n")
    # each sees the other's caret, with their name
    await expect(bob.page.locator(".cm-ySelectionInfo", has_text="Alice")).to_be_attached()
    await expect(alice.page.locator(".cm-ySelectionInfo", has_text="Bob")).to_be_attached()
    await alice.shot("coedit-01-alice")
    await bob.shot("coedit-02-bob")
    # a write from outside (a script, a replica) merges in without a banner
    with api(demo_server) as c:
        current = c.get("/files/notes/todo.md")
        c.put("/files/notes/todo.md", content=current.content + b"from a script\n",
              headers={"If-Match": current.headers["etag"]}).raise_for_status()
    expected = TODO + "alice types live\nbob too\nfrom a script\n"
    for u in (alice, bob):
        await u.wait_editor_text(expected)
        await expect(u.page.locator("#banner")).to_be_hidden()
    assert_all_clean(alice, bob)


async def test_offline_typing_merges_on_reconnect_and_undo_is_per_person(browser: Browser, demo_server: ServerProcess):
    seed(demo_server)
    alice, bob = await two_users(browser, demo_server, opening="/notes/todo.md")
    await bob.context.set_offline(True)
    await expect(bob.page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
    await alice.type_in_editor("online alice\n")
    await bob.type_in_editor("offline bob\n")
    await expect(bob.page.locator("#file-status")).to_have_text("Offline · your edits merge on reconnect")
    await bob.shot("coedit-03-offline-bob")
    await bob.context.set_offline(False)
    await expect(bob.page.locator("#conn")).to_have_attribute("data-state", "open")
    await bob.page.wait_for_function("() => window.wsfsDemo.fileView.text().includes('online alice')", timeout=10_000)
    await alice.page.wait_for_function("() => window.wsfsDemo.fileView.text().includes('offline bob')", timeout=10_000)
    a, b = await alice.editor_text(), await bob.editor_text()
    assert a == b and "online alice\n" in a and "offline bob\n" in a and a.startswith(TODO)
    await expect(bob.page.locator("#file-status")).to_have_text("Saved")
    wait_file(demo_server, "/notes/todo.md", a)
    # undo is per person: Alice's undo takes back her line only
    await alice.page.locator(".cm-content").first.click()
    await alice.page.keyboard.press("Control+z")
    without_alice = a.replace("online alice\n", "")
    await alice.wait_editor_text(without_alice)
    await bob.wait_editor_text(without_alice, timeout=LIVE_MS)
    assert "offline bob\n" in without_alice
    assert_all_clean(alice, bob)


async def test_coedit_off_keeps_the_save_with_if_match_flow(browser: Browser, demo_server: ServerProcess):
    seed(demo_server)
    alice = await User.open(browser, demo_server.demo_url + "&coedit=off", "Alice")
    await alice.open_file("/notes/todo.md")
    await expect(alice.page.locator("#save-btn")).to_be_visible()
    await alice.type_in_editor("saved by hand\n")
    await expect(alice.page.locator("#file-status")).to_have_text("Unsaved changes")
    await alice.save()
    await expect(alice.page.locator("#file-status")).to_have_text("Saved")
    assert http_text(demo_server, "/notes/todo.md") == TODO + "saved by hand\n"
    assert_all_clean(alice)


async def test_text_past_the_coedit_limit_is_saved_with_if_match_and_below_it_is_live(
        browser: Browser, demo_server: ServerProcess):
    """Between the co-editing limit (4 MiB) and the browser's view limit (8 MiB) a text file is
    still edited, with Save; below the limit it is co-edited (no Save button)."""
    seed(demo_server)
    line = b"0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\n"
    with api(demo_server) as c:
        c.put("/files/live.txt", content=line * (3 * 1024 * 1024 // len(line))).raise_for_status()
        c.put("/files/saved.txt", content=line * (5 * 1024 * 1024 // len(line))).raise_for_status()
    alice = await User.open(browser, demo_server.demo_url, "Alice")
    await alice.open_file("/live.txt")
    await expect(alice.page.locator("#file-status")).to_have_text("Saved")
    await expect(alice.page.locator("#save-btn")).to_be_hidden()
    await alice.open_file("/saved.txt")
    await expect(alice.page.locator("#file-status")).to_contain_text("Too large to edit together live")
    await expect(alice.page.locator("#save-btn")).to_be_visible()
    await expect(alice.page.locator(".info-card")).to_have_count(0)
    assert_all_clean(alice)

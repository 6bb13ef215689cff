"""End-to-end tests of the browser demo (web_demo/): two people in two real
Chromium contexts against a real `wsfs serve`, plus a Python HTTP client.

Screenshots of the main states land in test-artifacts/web_demo/.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import httpx

from playwright.async_api import Browser, expect

from server_fixtures import ServerProcess
from web_fixtures import ROOT, TODO, User, api, assert_all_clean, seed, two_users

async def test_presence_both_ways_and_open_file_is_shown(browser: Browser, demo_server: ServerProcess) -> None:
    seed(demo_server)
    alice, bob = await two_users(browser, demo_server, coedit=False)
    # each sees the other in the people list
    await expect(alice.page.locator('#people .person[data-name="Bob"]')).to_be_visible()
    await expect(bob.page.locator('#people .person[data-name="Alice"]')).to_be_visible()
    await alice.open_file("/notes/todo.md")
    assert await alice.editor_text() == TODO
    # Bob sees which file Alice has open: in the people list and as a dot in the tree
    await expect(bob.page.locator('#people .person[data-name="Alice"] .person-file')).to_have_text("/notes/todo.md")
    await bob.row("/notes").click()
    await expect(bob.row("/notes/todo.md").locator(".peer-dot")).to_have_count(1)
    # Bob opens it too: Alice's chip on the open file, and Bob's on Alice's
    await bob.open_file("/notes/todo.md")
    await expect(bob.page.locator("#file-viewers .chip", has_text="Alice")).to_be_visible()
    await expect(alice.page.locator("#file-viewers .chip", has_text="Bob")).to_be_visible()
    # a cursor moved by Alice shows as her caret in Bob's editor
    await alice.page.locator(".cm-line").nth(2).click()
    await expect(bob.page.locator(".remote-caret-label", has_text="Alice")).to_be_visible()
    # the name is editable and the change reaches the other side
    await bob.page.locator("#edit-name").click()
    await bob.page.locator("#dialog-input").fill("Robert")
    await bob.page.keyboard.press("Enter")
    await expect(alice.page.locator('#people .person[data-name="Robert"]')).to_be_visible()
    await expect(alice.page.locator('#people .person[data-name="Bob"]')).to_have_count(0)
    await alice.shot("01-presence-alice")
    await bob.shot("01-presence-bob")
    assert_all_clean(alice, bob)


async def test_saved_edit_reaches_the_other_open_view(browser: Browser, demo_server: ServerProcess) -> None:
    seed(demo_server)
    long_text = "".join(f"line {i}\n" for i in range(200))
    with api(demo_server) as c:
        c.put("/files/long.txt", content=long_text).raise_for_status()
    alice, bob = await two_users(browser, demo_server, opening="/long.txt", coedit=False)
    # Bob scrolls to the middle and puts his cursor on line 100
    await bob.page.evaluate("""() => {
        const v = window.wsfsDemo.fileView.view;
        const pos = v.state.doc.line(100).from + 2;
        v.dispatch({selection: {anchor: pos}, scrollIntoView: true});
    }""")
    await bob.page.wait_for_function("() => window.wsfsDemo.fileView.view.scrollDOM.scrollTop > 0")
    before = await bob.page.evaluate("""() => {
        const v = window.wsfsDemo.fileView.view;
        return {head: v.state.selection.main.head, top: v.scrollDOM.scrollTop};
    }""")
    assert before["top"] > 0
    # Alice appends a line at the end and saves with Ctrl+S
    await alice.type_in_editor("added by alice\n")
    await expect(alice.page.locator("#file-status")).to_have_text("Unsaved changes")
    await alice.save()
    await expect(alice.page.locator("#file-status")).to_have_text("Saved")
    saved_at = time.monotonic()
    # Bob's view (no local edits) updates in place within 2 s, cursor and scroll kept
    await bob.wait_editor_text(long_text + "added by alice\n", timeout=2000)
    latency = time.monotonic() - saved_at
    after = await bob.page.evaluate("""() => {
        const v = window.wsfsDemo.fileView.view;
        return {head: v.state.selection.main.head, top: v.scrollDOM.scrollTop};
    }""")
    assert after == before
    assert await bob.page.locator("#banner").is_hidden()
    print(f"save-to-other-view latency: {latency * 1000:.0f} ms")
    with api(demo_server) as c:
        assert c.get("/files/long.txt").text == long_text + "added by alice\n"
    # the feed of both says what happened to which file
    await expect(bob.newest_feed_item()).to_contain_text("edited /long.txt")
    await expect(alice.newest_feed_item()).to_contain_text("You edited /long.txt")
    await bob.shot("02-live-update-bob")
    assert_all_clean(alice, bob)


async def test_python_client_write_appears_in_both_trees(browser: Browser, demo_server: ServerProcess) -> None:
    seed(demo_server)
    alice, bob = await two_users(browser, demo_server)
    await alice.record_flashes()
    with api(demo_server) as c:
        c.put("/files/from-python.txt", content=b"written by httpx\n").raise_for_status()
        c.put("/files/deep/er/new.py", content=b"print('hi')\n", params={"parents": 1}).raise_for_status()
    for user in (alice, bob):
        await expect(user.row("/from-python.txt")).to_be_visible()
        await expect(user.row("/deep")).to_be_visible()
        await expect(user.page.locator("#feed")).to_contain_text("created /from-python.txt")
    # the changed entry is highlighted (flash) when it arrives
    assert "/from-python.txt" in await alice.flashed()
    await alice.shot("03-python-write-alice")
    # a delete and a rename by the Python client reach the trees too
    with api(demo_server) as c:
        c.post("/ops", json={"op": "rename", "src": "/from-python.txt", "dst": "/renamed.txt"}).raise_for_status()
        c.delete("/files/deep", params={"recursive": 1}).raise_for_status()
    for user in (alice, bob):
        await expect(user.row("/renamed.txt")).to_be_visible()
        await expect(user.row("/from-python.txt")).to_have_count(0)
        await expect(user.row("/deep")).to_have_count(0)
        await expect(user.page.locator("#feed")).to_contain_text("renamed /from-python.txt → /renamed.txt")
    assert_all_clean(alice, bob)


async def test_conflicting_saves_banner_overwrite_reload_nothing_lost(browser: Browser, demo_server: ServerProcess) -> None:
    seed(demo_server)
    alice, bob = await two_users(browser, demo_server, coedit=False)
    for u in (alice, bob):
        # the refused save is a 412 response, which Chromium notes on the console
        u.allow_console(r"Failed to load resource: the server responded with a status of 412")
        await u.open_file("/notes/todo.md")
    await alice.type_in_editor("alice was here\n")
    await bob.type_in_editor("bob was here\n")
    await alice.save()
    await expect(alice.page.locator("#file-status")).to_have_text("Saved")
    # Bob has unsaved edits: his text is kept, a banner says the file changed
    await expect(bob.page.locator("#banner")).to_be_visible()
    assert "changed todo.md while you were editing" in await bob.banner_text()
    assert await bob.editor_text() == TODO + "bob was here\n"
    # Bob saves anyway: refused (If-Match), the banner says so
    await bob.save()
    await expect(bob.page.locator("#banner .banner-text")).to_contain_text("Not saved")
    await bob.shot("04-conflict-banner-bob")
    # side by side: his version and the saved one
    await bob.click_banner("Compare side by side")
    await expect(bob.page.locator(".cm-mergeView")).to_be_visible()
    await expect(bob.page.locator(".merge-title.theirs")).to_be_visible()
    await bob.shot("05-compare-bob")
    await bob.click_banner("Back to editor")
    await expect(bob.page.locator(".cm-mergeView")).to_have_count(0)
    # Bob overwrites (conditional on the new ETag): his text wins on the server
    await bob.click_banner("Overwrite with mine")
    await expect(bob.page.locator("#file-status")).to_have_text("Saved")
    bob_text = TODO + "bob was here\n"
    with api(demo_server) as c:
        assert c.get("/files/notes/todo.md").text == bob_text
    # Alice had no local edits: her view follows
    await alice.wait_editor_text(bob_text)

    # round two: Bob saves first, Alice's save is refused, she reloads theirs
    await alice.type_in_editor("alice again\n")
    await bob.type_in_editor("bob again\n")
    await bob.save()
    await expect(bob.page.locator("#file-status")).to_have_text("Saved")
    await expect(alice.page.locator("#banner")).to_be_visible()
    await alice.save()
    await expect(alice.page.locator("#banner .banner-text")).to_contain_text("Not saved")
    await alice.click_banner("Reload theirs")
    await alice.wait_editor_text(bob_text + "bob again\n")
    await expect(alice.page.locator("#banner")).to_be_hidden()
    await expect(alice.page.locator("#file-status")).to_have_text("Saved")
    # nothing lost: every saved version is in the history
    with api(demo_server) as c:
        versions = c.get("/history/notes/todo.md").json()["versions"]
        texts = {c.get("/files/notes/todo.md", params={"rev": v["rev"]}).text for v in versions if v["kind"] == "file"}
    assert {TODO, TODO + "alice was here\n", bob_text, bob_text + "bob again\n"} <= texts
    assert_all_clean(alice, bob)


async def test_server_restart_both_pages_reconnect_and_keep_working(browser: Browser, tmp_path: Any) -> None:
    server = ServerProcess(tmp_path / "data")
    try:
        seed(server)
        alice, bob = await two_users(browser, server, opening="/notes/todo.md", coedit=False)
        for u in (alice, bob):
            await expect(u.page.locator("#conn")).to_have_attribute("data-state", "open")
            # while the server is down the browser reports the refused connection attempts
            u.allow_console(r"WebSocket connection to '.*' failed")
            u.allow_console(r"net::ERR_CONNECTION_REFUSED")
        port, admin = server.port, server.admin
        server.stop()
        for u in (alice, bob):
            await expect(u.page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
        await alice.shot("06-reconnecting-alice")
        # a change made while they were away, straight into the data dir's server
        server = ServerProcess(tmp_path / "data", "--port", str(port))
        server.admin = admin  # printed at the first start only
        with api(server) as c:
            c.put("/files/while-away.txt", content=b"missed nothing\n").raise_for_status()
        for u in (alice, bob):
            await expect(u.page.locator("#conn")).to_have_attribute("data-state", "open", timeout=20_000)
            await expect(u.row("/while-away.txt")).to_be_visible()
        # and everything keeps working: presence, edits, live updates
        await expect(alice.page.locator('#people .person[data-name="Bob"]')).to_be_visible()
        await expect(bob.page.locator("#file-viewers .chip", has_text="Alice")).to_be_visible()
        await alice.type_in_editor("after the restart\n")
        await alice.save()
        await expect(alice.page.locator("#file-status")).to_have_text("Saved")
        await bob.wait_editor_text(TODO + "after the restart\n")
        await bob.shot("07-reconnected-bob")
        assert_all_clean(alice, bob)
    finally:
        server.stop()


async def test_network_drop_shows_state_and_resumes(browser: Browser, demo_server: ServerProcess) -> None:
    seed(demo_server)
    alice = await User.open(browser, demo_server.demo_url, "Alice")
    await alice.open_file("/notes/todo.md")
    await alice.context.set_offline(True)
    await expect(alice.page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
    await expect(alice.page.locator("#conn")).to_contain_text("Offline")
    with api(demo_server) as c:
        c.put("/files/notes/todo.md", content=TODO + "written while offline\n").raise_for_status()
        c.put("/files/offline.txt", content=b"x\n").raise_for_status()
    await alice.shot("08-offline")
    await alice.context.set_offline(False)
    await expect(alice.page.locator("#conn")).to_have_attribute("data-state", "open")
    await expect(alice.row("/offline.txt")).to_be_visible()
    await alice.wait_editor_text(TODO + "written while offline\n")
    alice.assert_clean()


async def test_token_revoked_while_server_was_down_stops_retrying(browser: Browser, tmp_path: Any) -> None:
    server = ServerProcess(tmp_path / "data")
    try:
        alice = await User.open(browser, server.demo_url, "Alice")
        for pattern in (r"WebSocket connection to '.*' failed", r"net::ERR_CONNECTION_REFUSED", r"status of 401"):
            alice.allow_console(pattern)  # the refused reconnects this test provokes
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.admin}"}) as c:
            demo_link = next(t for t in c.get("/api/tokens").json()["tokens"] if t["name"] == "demo-link")
        port = server.port
        server.stop()
        await expect(alice.page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
        subprocess.run([sys.executable, "-m", "server", "token", "revoke", demo_link["id"], "--data", str(tmp_path / "data")],
                       check=True, cwd=ROOT, capture_output=True)
        server = ServerProcess(tmp_path / "data", "--port", str(port))
        # the upgrade is refused (401); the page finds out why over HTTP and stops retrying
        await expect(alice.page.locator("#conn")).to_have_attribute("data-state", "closed", timeout=20_000)
        await expect(alice.page.locator("#conn")).to_contain_text("token")
        alice.assert_clean()
    finally:
        server.stop()


async def test_personal_tokens_name_the_author_in_banner_and_feed(browser: Browser, demo_server: ServerProcess) -> None:
    """With a token each, the server knows who wrote what: the banner and the feed say it."""
    seed(demo_server)
    with httpx.Client(base_url=demo_server.url, headers={"Authorization": f"Bearer {demo_server.admin}"}) as c:
        tokens = {name: c.post("/api/tokens", json={"workspace": "demo", "scope": "write", "name": name}).json()["token"]
                  for name in ("carol", "dave")}
    carol = await User.open(browser, f"{demo_server.url}/?token={tokens['carol']}", "Carol", coedit=False)
    dave = await User.open(browser, f"{demo_server.url}/?token={tokens['dave']}", "Dave", coedit=False)
    for u in (carol, dave):
        await u.open_file("/notes/todo.md")
    await dave.type_in_editor("dave typing\n")
    await carol.type_in_editor("carol saved\n")
    await carol.save()
    await expect(dave.page.locator("#banner .banner-text")).to_have_text("Carol changed todo.md while you were editing.")
    await expect(dave.newest_feed_item()).to_contain_text("Carol edited /notes/todo.md")
    await expect(carol.newest_feed_item()).to_contain_text("You edited /notes/todo.md")
    await dave.shot("09-author-banner-dave")
    assert_all_clean(carol, dave)


async def test_burst_of_saves_leaves_the_other_view_on_the_last_one(browser: Browser, demo_server: ServerProcess) -> None:
    """Updates that arrive while the previous one is still being fetched are not lost or reordered."""
    seed(demo_server)
    alice, bob = await two_users(browser, demo_server, opening="/notes/todo.md", coedit=False)
    text = TODO
    for i in range(8):
        await alice.type_in_editor(f"save {i}\n")
        text += f"save {i}\n"
        await alice.save()  # no wait: a Ctrl+S during a save runs again when that one is done
    # meanwhile a Python writer appends to another file many times (other changes in the same stream)
    with api(demo_server) as c:
        for i in range(20):
            c.put("/files/log.txt", content=f"line {i}\n".encode() * (i + 1)).raise_for_status()
    await expect(alice.page.locator("#file-status")).to_have_text("Saved")
    await bob.wait_editor_text(text)
    await expect(bob.page.locator("#banner")).to_be_hidden()
    await expect(bob.page.locator("#file-status")).to_have_text("Saved")
    with api(demo_server) as c:
        assert c.get("/files/notes/todo.md").text == text
    assert_all_clean(alice, bob)


async def test_shared_demo_link_still_names_who_saved(browser: Browser, demo_server: ServerProcess) -> None:
    """Two people on the one link `wsfs serve` prints: the banner names the other by their presence name."""
    seed(demo_server)
    erin = await User.open(browser, demo_server.demo_url, "Erin", coedit=False)
    finn = await User.open(browser, demo_server.demo_url, "Finn", coedit=False)
    for u in (erin, finn):
        await u.open_file("/notes/todo.md")
    await finn.type_in_editor("finn typing\n")
    await erin.type_in_editor("erin saved\n")
    await erin.save()
    await expect(finn.page.locator("#banner .banner-text")).to_have_text("Erin changed todo.md while you were editing.")
    assert_all_clean(erin, finn)

"""End-to-end tests of the browser demo's file handling and chrome: create,
rename, delete, upload by drag and drop, download, images and binary files,
version history with restore, tokens and workspaces, narrow windows and the
keyboard. Real `wsfs serve`, real Chromium.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.async_api import Browser, expect

from server_fixtures import ServerProcess
from web_fixtures import TODO, User, api, assert_all_clean, seed, tiny_png, two_users


async def dialog_answer(user: User, text: str | None) -> None:
    """Fill the open dialog's field (if any) and confirm it."""
    dialog = user.page.locator("#dialog")
    await expect(dialog).to_be_visible()
    if text is not None:
        await user.page.locator("#dialog-input").fill(text)
    await user.page.locator("#dialog-ok").click()
    await expect(dialog).to_be_hidden()


async def test_create_rename_delete_through_the_ui(browser: Browser, demo_server: ServerProcess) -> None:
    seed(demo_server)
    alice, bob = await two_users(browser, demo_server, coedit=False)
    # a folder, then a file in it (new things go into the selected folder)
    await alice.page.locator("#new-folder-btn").click()
    await dialog_answer(alice, "drafts")
    await expect(alice.row("/drafts")).to_be_visible()
    await alice.row("/drafts").click()
    await alice.page.locator("#new-file-btn").click()
    await dialog_answer(alice, "plan.md")
    await expect(alice.page.locator("#file-path")).to_have_text("/drafts/plan.md")
    await alice.type_in_editor("step one\n")
    await alice.page.locator("#save-btn").click()
    await expect(alice.page.locator("#file-status")).to_have_text("Saved")
    with api(demo_server) as c:
        assert c.get("/files/drafts/plan.md").text == "step one\n"
    await expect(bob.row("/drafts")).to_be_visible()
    await expect(bob.page.locator("#feed")).to_contain_text("created /drafts/plan.md")
    # Bob opens it; Alice renames it (F2 on the selected row): Bob's open view follows
    await bob.open_file("/drafts/plan.md")
    await alice.row("/drafts/plan.md").click()
    await alice.row("/drafts/plan.md").press("F2")
    await dialog_answer(alice, "roadmap.md")
    await expect(alice.row("/drafts/roadmap.md")).to_be_visible()
    await expect(alice.row("/drafts/plan.md")).to_have_count(0)
    await expect(bob.page.locator("#file-path")).to_have_text("/drafts/roadmap.md")
    assert await bob.editor_text() == "step one\n"
    await expect(bob.page.locator("#feed")).to_contain_text("renamed /drafts/plan.md → /drafts/roadmap.md")
    await expect(alice.newest_feed_item()).to_contain_text("You renamed")
    # delete with the Delete key and the confirm dialog
    await alice.row("/README.md").click()
    await alice.page.locator("#file-path").wait_for()
    await alice.row("/README.md").press("Delete")
    await dialog_answer(alice, None)
    for u in (alice, bob):
        await expect(u.row("/README.md")).to_have_count(0)
    with api(demo_server) as c:
        assert c.get("/files/README.md").status_code == 404
    await alice.shot("10-file-ops-alice")
    assert_all_clean(alice, bob)


async def test_upload_by_drag_and_drop_and_download(browser: Browser, demo_server: ServerProcess, tmp_path: Path) -> None:
    seed(demo_server)
    alice, bob = await two_users(browser, demo_server)
    await alice.row("/notes").click()  # expand it: a drop onto a folder row uploads into that folder
    dt = await alice.page.evaluate_handle("""() => {
        const dt = new DataTransfer();
        dt.items.add(new File(["dropped text\\n"], "dropped.txt", {type: "text/plain"}));
        dt.items.add(new File([new Uint8Array([0, 1, 2, 250])], "raw.bin"));
        return dt;
    }""")
    target = '[role="treeitem"][data-path="/notes"]'
    for event in ("dragenter", "dragover"):
        await alice.page.dispatch_event(target, event, {"dataTransfer": dt})
    await expect(alice.page.locator("#drop-overlay")).to_have_text("Drop to upload into /notes")
    await alice.shot("11-drag-over-alice")
    await alice.page.dispatch_event(target, "drop", {"dataTransfer": dt})
    await expect(alice.row("/notes/dropped.txt")).to_be_visible()
    await expect(bob.page.locator("#feed")).to_contain_text("created /notes/dropped.txt")
    with api(demo_server) as c:
        assert c.get("/files/notes/dropped.txt").content == b"dropped text\n"
        assert c.get("/files/notes/raw.bin").content == bytes([0, 1, 2, 250])
    # download the selected file through the toolbar
    await alice.row("/notes/todo.md").click()
    async with alice.page.expect_download() as info:
        await alice.page.locator("#dl-btn").click()
    download = await info.value
    assert download.suggested_filename == "todo.md"
    saved = tmp_path / "todo.md"
    await download.save_as(saved)
    assert saved.read_text() == TODO
    assert_all_clean(alice, bob)


async def test_image_binary_and_large_files_are_not_edited_as_text(browser: Browser, demo_server: ServerProcess) -> None:
    seed(demo_server)
    with api(demo_server) as c:
        c.put("/files/big.log", content=b"x" * (9 * 1024 * 1024)).raise_for_status()
    alice = await User.open(browser, demo_server.demo_url, "Alice")
    await alice.open_file("/img/logo.png")
    image = alice.page.locator("img.preview-image")
    await expect(image).to_be_visible()
    assert await image.evaluate("(img) => img.naturalWidth") == 24
    await expect(alice.page.locator(".image-view .meta")).to_contain_text("image/png")
    await alice.shot("12-image")
    await alice.open_file("/data/blob.bin")
    await expect(alice.page.locator(".info-card")).to_contain_text("Binary file")
    await expect(alice.page.locator(".info-card")).to_contain_text("1,024 bytes")
    await expect(alice.page.locator(".hexdump")).to_contain_text("00000000  00 01 02 03")
    await alice.shot("13-binary")
    await alice.open_file("/big.log")
    await expect(alice.page.locator(".info-card")).to_contain_text("too large")
    # an image replaced by someone else is shown anew
    with api(demo_server) as c:
        c.put("/files/img/logo.png", content=tiny_png(40, 10)).raise_for_status()
    await alice.open_file("/img/logo.png")
    await expect(alice.page.locator("img.preview-image")).to_be_visible()
    await alice.page.wait_for_function("() => document.querySelector('img.preview-image')?.naturalWidth === 40")
    alice.assert_clean()


async def test_history_view_and_restore(browser: Browser, demo_server: ServerProcess) -> None:
    seed(demo_server)
    alice, bob = await two_users(browser, demo_server, opening="/notes/todo.md", coedit=False)
    await alice.type_in_editor("second version\n")
    await alice.save()
    await expect(alice.page.locator("#file-status")).to_have_text("Saved")
    await bob.wait_editor_text(TODO + "second version\n")
    await alice.page.locator("#history-btn").click()
    versions = alice.page.locator("#history .version")
    await expect(versions).to_have_count(2)
    await expect(versions.first).to_contain_text("current")
    # view the first version next to the current text, then restore it
    await versions.nth(1).get_by_role("button", name="View").click()
    await expect(alice.page.locator(".cm-mergeView")).to_be_visible()
    await expect(alice.page.locator("#banner")).to_contain_text("Viewing revision")
    await alice.shot("14-history-view")
    # Ctrl+S while previewing saves the editor's text, never the old version shown beside it
    await alice.save()
    await expect(alice.page.locator(".cm-mergeView")).to_have_count(0)
    assert await alice.editor_text() == TODO + "second version\n"
    await versions.nth(1).get_by_role("button", name="View").click()
    await alice.click_banner("Restore this version")
    await alice.wait_editor_text(TODO)
    await bob.wait_editor_text(TODO)
    await expect(versions).to_have_count(3)
    with api(demo_server) as c:
        assert c.get("/files/notes/todo.md").text == TODO
    await alice.shot("15-history-restored")
    assert_all_clean(alice, bob)


async def test_history_names_renames_instead_of_showing_empty_versions(browser: Browser,
                                                                       demo_server: ServerProcess) -> None:
    seed(demo_server)
    with api(demo_server) as c:
        c.post("/ops", json={"op": "rename", "src": "/notes/todo.md", "dst": "/notes/done.md"}).raise_for_status()
        c.put("/files/notes/todo.md", content=b"a new list\n").raise_for_status()
    alice = await User.open(browser, demo_server.demo_url, "Alice")
    await alice.open_file("/notes/done.md")  # the renamed file's history follows it from its old path
    await alice.page.locator("#history-btn").click()
    versions = alice.page.locator("#history .version")
    await expect(versions.first).to_contain_text("renamed from /notes/todo.md")
    await expect(versions.nth(1)).to_contain_text("as /notes/todo.md")
    await alice.open_file("/notes/todo.md")  # the old path's history: its old file left for the new path
    await expect(versions.filter(has_text="moved to /notes/done.md")).to_have_count(1)
    await expect(versions.filter(has_text="0 B")).to_have_count(0)
    alice.assert_clean()


async def test_token_is_kept_out_of_the_address_bar(browser: Browser, demo_server: ServerProcess) -> None:
    alice = await User.open(browser, demo_server.demo_url, "Alice")
    assert "token=" not in alice.page.url
    assert await alice.page.evaluate("() => sessionStorage.getItem('wsfs.token')") == demo_server.demo_token
    await alice.page.reload()
    await alice.wait_ready()
    # the Invite link brings a second person in (and is where the token shows, on purpose)
    await alice.page.locator("#invite-btn").click()
    link = await alice.page.locator("#dialog-input").input_value()
    assert link == f"{demo_server.url}/?token={demo_server.demo_token}&ws=demo"
    await alice.page.locator("#dialog-cancel").click()
    bob = await User.open(browser, link, "Bob")
    await expect(bob.page.locator('#people .person[data-name="Alice"]')).to_be_visible()
    bob.assert_clean()
    # a wrong token lands on the login form, which takes a good one
    eve = await User.open(browser, f"{demo_server.url}/?token=wsfs_wrong", "Eve", wait_ready=False)
    eve.allow_console(r"status of 401")
    await expect(eve.page.locator("#login")).to_be_visible()
    await expect(eve.page.locator("#login-error")).to_contain_text("refused")
    await eve.shot("16-login")
    await eve.page.locator("#login-token").fill(demo_server.demo_token)
    await eve.page.keyboard.press("Enter")
    await eve.wait_ready()
    await expect(eve.page.locator("#conn")).to_have_attribute("data-state", "open")
    assert_all_clean(alice, eve)


async def test_workspace_picker_admin_creates_and_read_token_cannot_write(browser: Browser, demo_server: ServerProcess) -> None:
    seed(demo_server)
    admin = await User.open(browser, f"{demo_server.url}/?token={demo_server.admin}", "Admin")
    await expect(admin.page.locator("#invite-btn")).to_be_hidden()  # never put an admin token in a link
    picker = admin.page.locator("#workspace-select")
    await expect(picker.locator("option")).to_have_text(["demo", "+ New workspace…"])
    await picker.select_option(label="+ New workspace…")
    await dialog_answer(admin, "team")
    await admin.page.wait_for_url("**ws=team*")
    await admin.wait_ready()
    await expect(picker).to_have_value("team")
    await expect(admin.page.locator(".tree-empty")).to_be_visible()
    with httpx.Client(base_url=demo_server.url, headers={"Authorization": f"Bearer {demo_server.admin}"}) as c:
        assert [w["name"] for w in c.get("/api/workspaces").json()["workspaces"]] == ["demo", "team"]
        reader = c.post("/api/tokens", json={"workspace": "demo", "scope": "read", "name": "viewer"}).json()["token"]
        # the workspace is deleted under the admin's page: it says so and stops
        c.delete("/api/workspaces/team").raise_for_status()
    await expect(admin.page.locator("#conn")).to_have_attribute("data-state", "closed")
    await expect(admin.page.locator("#conn")).to_contain_text("deleted")
    # a read token: sees the files live, cannot change them
    viewer = await User.open(browser, f"{demo_server.url}/?token={reader}", "Viewer")
    await expect(viewer.page.locator("#workspace-select option")).to_have_text(["demo"])
    await viewer.open_file("/notes/todo.md")
    await expect(viewer.page.locator("#file-status")).to_have_text("Read only")
    await expect(viewer.page.locator("#save-btn")).to_be_hidden()
    await expect(viewer.page.locator("#new-file-btn")).to_be_disabled()
    assert await viewer.page.evaluate("() => window.wsfsDemo.fileView.view.state.readOnly")
    with api(demo_server) as c:
        c.put("/files/notes/todo.md", content=TODO + "more\n").raise_for_status()
    await viewer.wait_editor_text(TODO + "more\n")
    assert_all_clean(admin, viewer)


async def test_narrow_window_and_keyboard_only(browser: Browser, demo_server: ServerProcess) -> None:
    seed(demo_server)
    phone = await User.open(browser, demo_server.demo_url, "Phone", width=390, height=800, coedit=False)
    sidebar = phone.page.locator("#sidebar")
    await expect(sidebar).to_be_hidden()
    await phone.page.locator("#toggle-sidebar").click()
    await expect(sidebar).to_be_visible()
    await phone.page.wait_for_function("() => document.getElementById('sidebar').getBoundingClientRect().left >= 0")
    await phone.page.wait_for_timeout(200)  # let the slide-in finish before the screenshot
    await phone.shot("17-narrow-files")
    # keyboard only: focus the tree, arrows to the notes folder, open it, Enter on the file
    await phone.page.locator("#tree").focus()
    focused = phone.page.locator('[role="treeitem"]:focus')
    await expect(focused).to_have_attribute("data-path", "/data")
    for _ in range(2):
        await phone.page.keyboard.press("ArrowDown")
    await expect(focused).to_have_attribute("data-path", "/notes")
    await phone.page.keyboard.press("ArrowRight")
    await phone.page.keyboard.press("ArrowRight")
    await expect(focused).to_have_attribute("data-path", "/notes/todo.md")
    await phone.page.keyboard.press("Enter")
    await expect(phone.page.locator("#file-path")).to_have_text("/notes/todo.md")
    await expect(sidebar).to_be_hidden()  # opening a file gives the editor the screen
    await phone.wait_editor_text(TODO)
    await phone.page.locator(".cm-content").focus()
    await phone.page.keyboard.press("Control+End")
    await phone.page.keyboard.type("typed on a phone\n")
    await phone.page.keyboard.press("Control+s")
    await expect(phone.page.locator("#file-status")).to_have_text("Saved")
    # nothing sticks out sideways
    assert await phone.page.evaluate("() => document.documentElement.scrollWidth") <= 390
    await phone.shot("18-narrow-editor")
    await phone.page.locator("#feed-title").scroll_into_view_if_needed()
    await phone.shot("19-narrow-panels")
    phone.assert_clean()


async def test_open_file_deleted_by_someone_else_can_be_restored(browser: Browser, demo_server: ServerProcess) -> None:
    seed(demo_server)
    alice = await User.open(browser, demo_server.demo_url, "Alice")
    await alice.open_file("/notes/todo.md")
    with api(demo_server) as c:
        c.delete("/files/notes/todo.md").raise_for_status()
    await expect(alice.page.locator("#banner")).to_contain_text("admin deleted /notes/todo.md")
    await expect(alice.page.locator("#file-status")).to_have_text("Deleted on the server")
    await alice.shot("20-deleted-banner")
    await alice.click_banner("Restore last version")
    await expect(alice.page.locator("#banner")).to_be_hidden()
    await expect(alice.page.locator("#file-status")).to_have_text("Saved")
    assert await alice.editor_text() == TODO
    with api(demo_server) as c:
        assert c.get("/files/notes/todo.md").text == TODO
    # deleted again, this time with unsaved edits: "Save my copy" brings it back with them
    await alice.type_in_editor("keep me\n")
    with api(demo_server) as c:
        c.delete("/files/notes", params={"recursive": 1}).raise_for_status()
    await expect(alice.page.locator("#banner")).to_contain_text("deleted /notes/todo.md")
    await alice.click_banner("Save my copy")
    await expect(alice.page.locator("#file-status")).to_have_text("Saved")
    with api(demo_server) as c:
        assert c.get("/files/notes/todo.md").text == TODO + "keep me\n"
    alice.assert_clean()


async def test_revoked_token_disconnects_for_good(browser: Browser, demo_server: ServerProcess) -> None:
    alice = await User.open(browser, demo_server.demo_url, "Alice")
    await expect(alice.page.locator("#conn")).to_have_attribute("data-state", "open")
    with httpx.Client(base_url=demo_server.url, headers={"Authorization": f"Bearer {demo_server.admin}"}) as c:
        demo_link = next(t for t in c.get("/api/tokens").json()["tokens"] if t["name"] == "demo-link")
        c.delete(f"/api/tokens/{demo_link['id']}").raise_for_status()
    await expect(alice.page.locator("#conn")).to_have_attribute("data-state", "closed")
    await expect(alice.page.locator("#conn")).to_contain_text("revoked")
    await expect(alice.page.locator("#retry-btn")).to_be_visible()
    await expect(alice.page.locator("#new-file-btn")).to_be_disabled()
    await alice.shot("21-revoked")
    alice.assert_clean()


async def test_search_names_and_text(browser: Browser, demo_server: ServerProcess) -> None:
    seed(demo_server)
    alice = await User.open(browser, demo_server.demo_url, "Alice")
    search = alice.page.locator("#search")
    await search.fill("TEST")
    results = alice.page.locator("#search-results")
    await expect(results).to_be_visible()
    await expect(alice.page.locator("#tree")).to_be_hidden()
    line = results.locator("button.result.line", has_text="test it")
    await expect(line).to_have_attribute("title", "/notes/todo.md:4")
    await alice.shot("22-search")
    await line.click()
    await expect(alice.page.locator("#file-path")).to_have_text("/notes/todo.md")
    # the file loads, then its line 4 is selected
    await alice.page.wait_for_function("""() => {
        const s = window.wsfsDemo.fileView.view?.state;
        return s && s.sliceDoc(s.selection.main.from, s.selection.main.to) === "- test it";
    }""")
    # names match from the live tree; Escape goes back to the tree
    await search.fill("logo")
    await expect(results.locator("button.result", has_text="/img/logo.png")).to_be_visible()
    await search.press("Escape")
    await expect(alice.page.locator("#tree")).to_be_visible()
    alice.assert_clean()


async def test_dark_colour_scheme(browser: Browser, demo_server: ServerProcess) -> None:
    seed(demo_server)
    night = await User.open(browser, demo_server.demo_url, "Night", color_scheme="dark", coedit=False)
    await night.open_file("/notes/todo.md")
    await night.type_in_editor("unsaved\n")
    with api(demo_server) as c:
        c.put("/files/notes/todo.md", content=TODO + "theirs\n").raise_for_status()
    await expect(night.page.locator("#banner")).to_be_visible()
    page_bg = await night.page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    editor_bg = await night.page.evaluate("() => getComputedStyle(document.querySelector('.cm-editor')).backgroundColor")
    assert page_bg == "rgb(13, 17, 23)"
    assert editor_bg == "rgb(40, 44, 52)"  # CodeMirror's one-dark theme
    await night.shot("23-dark")
    night.assert_clean()

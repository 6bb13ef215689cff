"""`web_demo/wsfs.js` on its own (no demo page): the browser client library
against a real `wsfs serve`, in real Chromium. The page is the server's
/healthz (same origin, nothing of the demo loaded); the test imports
/wsfs.js into it and drives the library with page.evaluate.
"""

from __future__ import annotations

from playwright.async_api import Browser

from server_fixtures import ServerProcess
from vfs.wire import routes
from web_fixtures import User, api

SETUP = """async (token) => {
    const lib = await import("/wsfs.js");
    window.lib = lib;
    window.log = [];
    const make = (name) => {
        const c = new lib.Wsfs({token, workspace: "demo", presence: {name, color: "#123456"}});
        c.addEventListener("presence", (e) => window.log.push([name, "presence", e.detail.op]));
        return c;
    };
    window.a = make("a");
    window.b = make("b");
    window.seen = [];
    window.sub = window.a.subscribe({
        after: null, inlineMax: 1024,
        onChanges: (entries) => entries.forEach((e) => window.seen.push({
            path: e.path, kind: e.kind, text: e.data ? new TextDecoder().decode(lib.decodeBase64(e.data)) : null})),
        onCaughtUp: () => { window.caughtUp = true; },
    });
    const opened = (c) => new Promise((res) => c.addEventListener("hello", res, {once: true}));
    const both = Promise.all([opened(window.a), opened(window.b)]);
    window.a.connect();
    window.b.connect();
    await both;
    return window.a.hello.scope;
}"""


async def test_wsfs_js_standalone(browser: Browser, demo_server: ServerProcess) -> None:
    with api(demo_server) as c:
        c.put("/files/a b/x.txt", content=b"one\n", params={"parents": 1}).raise_for_status()
    user = await User.open(browser, f"{demo_server.url}/healthz", "lib", wait_ready=False)
    user.allow_console(r"status of 412")  # the refused conditional write below
    page = user.page
    assert await page.evaluate(SETUP, demo_server.demo_token) == "write"
    # the snapshot arrives (inlined content decoded), then caught_up
    await page.wait_for_function("() => window.caughtUp === true")
    assert {"path": "/a b/x.txt", "kind": "file", "text": "one\n"} in await page.evaluate("() => window.seen")
    # presence both ways: each client knows the other's name
    await page.wait_for_function("() => [...window.a.peers.values()].some((p) => p.name === 'b')")
    await page.wait_for_function("() => [...window.b.peers.values()].some((p) => p.name === 'a')")
    await page.evaluate("() => window.b.setPresence({file: '/a b/x.txt'})")
    await page.wait_for_function("() => [...window.a.peers.values()].some((p) => p.file === '/a b/x.txt')")
    # HTTP through the library: read, conditional write, refused write
    result = await page.evaluate("""async () => {
        const f = await window.b.readFile("/a b/x.txt");
        const st = await window.b.writeFile("/a b/x.txt", "two\\n", {ifMatch: f.hash});
        let refused = null;
        try { await window.b.writeFile("/a b/x.txt", "three\\n", {ifMatch: f.hash}); }
        catch (e) { refused = {name: e.name, code: e.code, status: e.status, current: e.current}; }
        return {old: f.hash, now: st.hash, refused, text: new TextDecoder().decode((await window.b.readFile("/a b/x.txt")).bytes)};
    }""")
    assert result["text"] == "two\n"
    assert result["refused"] == {"name": "WsfsError", "code": "EPRECONDITION", "status": 412, "current": result["now"]}
    # the write reached a's live subscription
    await page.wait_for_function("() => window.seen.some((e) => e.text === 'two\\n')")
    # a bad request rejects with the server's error; the connection stays usable
    err = await page.evaluate("""async () => {
        try { await window.a.request({type: "subscribe", id: "bad", after: "banana"}); }
        catch (e) { return {code: e.code, field: e.field}; }
    }""")
    assert err == {"code": "EPROTO", "field": "after"}
    assert (await page.evaluate("() => window.a.ping()"))["type"] == "ok"
    # close() ends the connection for good; the other client sees a leave
    await page.evaluate("() => window.b.close()")
    await page.wait_for_function("() => window.log.some(([who, , op]) => who === 'a' && op === 'leave')")
    assert await page.evaluate("() => window.b.state") == "closed"
    user.assert_clean()


async def test_wsfs_js_routes_are_the_wire_table(browser: Browser, demo_server: ServerProcess) -> None:
    """The browser library spells every path as `vfs/wire/routes.py` does, encoding included."""
    user = await User.open(browser, f"{demo_server.url}/healthz", "routes", wait_ready=False)
    params = {"ws": "my ws(1)", "path": "/a b/ü?#/%x/it's!*~"}
    built = await user.page.evaluate(
        """async (params) => {
            const lib = await import("/wsfs.js");
            return Object.fromEntries(Object.entries(lib.ROUTES).map(([k, t]) => [k, [t, lib.route(t, params)]]));
        }""",
        params,
    )
    assert set(built) >= {"FILES", "OPS", "STAT", "READDIR", "HISTORY", "CHANGES", "WEBSOCKET", "WORKSPACE"}
    for name, (template, path) in built.items():
        assert template == getattr(routes, name), name
        used = {k: v for k, v in params.items() if "{" + k in template}
        assert path == routes.build(template, **used), name
    user.assert_clean()

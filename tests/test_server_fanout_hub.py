"""`LocalHub.stand_in`: a listener's commits handed to a stand-in called once per commit.

The fan-out (server/fanout.py) hands over the commits of every session whose subscriptions are
all parked with it, so a commit to 5,000 such sessions is one call, not 5,000. These tests hold
the hub to what that relies on: a held listener's `on_commit` is never called, the stand-in is
called once per commit however many it holds, with the head already raised, and a listener is
loud again once released, once it listens again, and never held after it left.
"""

from __future__ import annotations

from typing import Any

from server.hub import LocalHub


class Recorder:
    """A bare hub listener: records the commits the hub calls it with."""

    def __init__(self, session: str):
        self.session = session
        self.token_id = "none"
        self.commits: list[int] = []

    def on_commit(self, rev: int) -> None:
        self.commits.append(rev)

    def on_presence(self, op: str, peer: dict[str, Any]) -> None:
        pass

    def on_close(self, code: int, reason: str) -> None:
        pass


class StandIn:
    """A stand-in that records each call and the hub's head at that moment."""

    def __init__(self, hub: LocalHub, workspace: str):
        self.hub, self.workspace = hub, workspace
        self.calls: list[tuple[int, int]] = []

    def __call__(self, rev: int) -> None:
        self.calls.append((rev, self.hub.head(self.workspace)))


def test_a_held_listener_is_not_called_its_stand_in_is_once_per_commit() -> None:
    hub = LocalHub()
    held = [Recorder(f"s{i}") for i in range(100)]
    loud = Recorder("loud")
    for lst in (*held, loud):
        hub.listen("w", lst)
    other = Recorder("other")
    hub.listen("v", other)
    stand_in = StandIn(hub, "w")
    for lst in held:
        hub.stand_in("w", lst, stand_in)
    hub.publish_commit("w", 1)
    hub.publish_commit("w", 2)
    hub.publish_commit("w", 2)  # not above the head: nobody hears it
    hub.publish_commit("v", 5)
    assert all(lst.commits == [] for lst in held)
    assert stand_in.calls == [(1, 1), (2, 2)]  # once per commit for all 100, the head already raised
    assert loud.commits == [1, 2] and other.commits == [5]
    assert len(hub.listeners("w")) == 101  # held listeners still listen (presence, close)


def test_released_relistened_and_gone_listeners_are_loud_or_forgotten() -> None:
    hub = LocalHub()
    a, b, c = Recorder("a"), Recorder("b"), Recorder("c")
    for lst in (a, b, c):
        hub.listen("w", lst)
    stand_in = StandIn(hub, "w")
    for lst in (a, b, c):
        hub.stand_in("w", lst, stand_in)
    hub.stand_in("w", a, None)  # released: its own on_commit again
    hub.listen("w", b)  # listening again starts loud
    hub.unlisten("w", c)  # gone: neither it nor (with nobody else held) its stand-in hears a commit
    hub.publish_commit("w", 1)
    assert a.commits == [1] and b.commits == [1] and c.commits == []
    assert stand_in.calls == []
    hub.stand_in("w", c, stand_in)  # not listening: no-op, not a listener brought back
    hub.publish_commit("w", 2)
    assert c.commits == [] and stand_in.calls == [] and a.commits == [1, 2]
    hub.stand_in("w", a, stand_in)
    hub.stand_in("w", a, stand_in)  # held twice by one stand-in: still called once per commit
    hub.publish_commit("w", 3)
    assert stand_in.calls == [(3, 3)] and a.commits == [1, 2] and b.commits == [1, 2, 3]
    hub.unlisten("w", a)
    hub.unlisten("w", b)
    assert hub._held == {} and hub._stand_ins == {} and hub._loud == {} and hub._listeners == {}  # nothing kept


def test_two_stand_ins_each_called_once() -> None:
    hub = LocalHub()
    first, second = StandIn(hub, "w"), StandIn(hub, "w")
    listeners = [Recorder(f"s{i}") for i in range(4)]
    for i, lst in enumerate(listeners):
        hub.listen("w", lst)
        hub.stand_in("w", lst, first if i % 2 else second)
    hub.publish_commit("w", 7)
    assert first.calls == [(7, 7)] and second.calls == [(7, 7)]
    hub.stand_in("w", listeners[1], None)
    hub.stand_in("w", listeners[3], None)  # the last one `first` held: it is called no more
    hub.publish_commit("w", 8)
    assert first.calls == [(7, 7)] and second.calls == [(7, 7), (8, 8)]
    assert [lst.commits for lst in listeners] == [[], [8], [], [8]]

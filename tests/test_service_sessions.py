"""Sessions end as SwarmUI's do (31 days unused) and a user keeps a bounded number of them, so
``GetNewSession`` in a loop cannot grow the service's memory."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from service_support import served

from orchestrator.accounts import Role
from orchestrator.service._envelope import ApiRefusalError
from orchestrator.service._sessions import MAX_SESSION_IDLE_S, MAX_SESSIONS_PER_USER, SessionStore

pytestmark = pytest.mark.anyio

DAY = 24 * 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_swarmuis_max_session_age_is_31_days() -> None:
    assert MAX_SESSION_IDLE_S == 31 * DAY


def test_a_session_unused_for_31_days_ends_and_a_used_one_lives_on() -> None:
    clock = Clock()
    store = SessionStore(clock=clock)
    idle, used = store.new("ann"), store.new("ann")
    for _ in range(40):
        clock.now += DAY
        assert store.get(used.id, "ann") is used
    assert store.get(idle.id, "ann") is None
    assert store.of_user("ann") == [used]


def test_twenty_thousand_new_sessions_keep_at_most_the_cap_per_user() -> None:
    clock = Clock()
    store = SessionStore(clock=clock)
    made = [store.new("guest").id for _ in range(20_000)]
    store.new("ann")
    assert len(store) == MAX_SESSIONS_PER_USER + 1
    alive = [session.id for session in store.of_user("guest")]
    assert alive == made[-MAX_SESSIONS_PER_USER:]  # the least recently used made room
    assert store.get(made[0], "guest") is None


def test_a_session_in_use_keeps_its_place_and_the_least_recently_used_goes() -> None:
    clock = Clock()
    store = SessionStore(max_per_user=3, clock=clock)
    oldest, middle, newest = (store.new("ann") for _ in range(3))
    clock.now += 1
    assert store.get(oldest.id, "ann") is oldest  # used again: now the most recent
    store.new("ann")
    assert store.get(middle.id, "ann") is None
    assert store.get(oldest.id, "ann") is oldest and store.get(newest.id, "ann") is newest


async def test_sessions_running_generations_are_never_evicted_nor_expired() -> None:
    clock = Clock()
    store = SessionStore(max_per_user=2, clock=clock)
    busy = [store.new("ann"), store.new("ann")]
    for session in busy:
        session.running.add(anyio.CancelScope())
    with pytest.raises(ApiRefusalError) as refused:
        store.new("ann")
    assert refused.value.body == {"error": "User 'ann' may not create new sessions currently."}
    clock.now += 40 * DAY
    assert store.get(busy[0].id, "ann") is busy[0]
    assert store.new("bob").user == "bob"  # another user is not affected


async def test_the_service_answers_invalid_session_id_for_a_session_idle_31_days(
    tmp_path: Path,
) -> None:
    async with served(tmp_path, users={"ann": Role.POWERUSER}) as world:
        client = world.client("ann")
        await client.new_session()
        status, _ = await client.call("GetCurrentStatus", {})
        assert status == 200
        await anyio.sleep(MAX_SESSION_IDLE_S + 60)
        status, answer = await client.call("GetCurrentStatus", {})
        assert status == 401 and answer["error_id"] == "invalid_session_id"
        await client.new_session()
        status, _ = await client.call("GetCurrentStatus", {})
        assert status == 200


async def test_a_guest_calling_get_new_session_in_a_loop_holds_at_most_the_cap(
    tmp_path: Path,
) -> None:
    async with served(tmp_path, users={"guest": Role.GUEST, "ann": Role.USER}) as world:
        guest, ann = world.client("guest"), world.client("ann")
        await ann.new_session()
        first = None
        for _ in range(MAX_SESSIONS_PER_USER + 50):
            answer = await guest.new_session()
            first = first or answer["session_id"]
        assert len(world.service.sessions) == MAX_SESSIONS_PER_USER + 1
        status, answer = await guest.call("GetCurrentStatus", {"session_id": first})
        assert status == 401 and answer["error_id"] == "invalid_session_id"
        status, _ = await ann.call("GetCurrentStatus", {})  # other users keep theirs
        assert status == 200

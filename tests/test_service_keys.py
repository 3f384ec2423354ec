"""Per-user RunPod keys through the service: set, used for that user only, never shown,
encrypted at rest, surviving a restart; a wrong master key stops the start."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest
from cryptography.fernet import Fernet
from service_support import MASTER_KEY, served

from orchestrator.accounts import Role
from orchestrator.errors import MasterKeyError
from orchestrator.secrets import Secret

pytestmark = pytest.mark.anyio

ANN_KEY = "rpa_ANN_0123456789abcdef"
BOB_KEY = "rpa_BOB_fedcba9876543210"
USERS = {"ann": Role.POWERUSER, "bob": Role.POWERUSER}
PARAMS = {"prompt": "a fox", "width": 64, "height": 64, "steps": 4}


def state_bytes(state_dir: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(state_dir.iterdir()) if path.is_file())


async def test_two_users_generating_at_once_each_pay_with_their_own_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with served(
        tmp_path, backend_key=None, keys=(ANN_KEY, BOB_KEY), users=USERS, IdleTimeoutSec=0
    ) as world:
        ann, bob = world.client("ann"), world.client("bob")
        for client, key in ((ann, ANN_KEY), (bob, BOB_KEY)):
            await client.new_session()
            status, answer = await client.call("SetAPIKey", {"keyType": "runpod_api", "key": key})
            assert (status, answer) == (200, {"success": True})
            status, answer = await client.call("GetAPIKeyStatus", {"keyType": "runpod_api"})
            assert answer["status"].startswith("last updated") and key not in str(answer)

        answers = {}

        async def generate(name: str) -> None:
            client = world.client(name)
            client.session_id = (ann if name == "ann" else bob).session_id
            answers[name] = await client.call("GenerateText2Image", {"images": 1, **PARAMS})

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(generate, "ann")
            tasks.start_soon(generate, "bob")
        assert all(status == 200 and "images" in body for status, body in answers.values())
        fingerprints = {job.key_fingerprint for job in world.endpoint.jobs.values()}
        assert fingerprints == {Secret(ANN_KEY).fingerprint, Secret(BOB_KEY).fingerprint}
        assert len(world.endpoint.workers) == 2  # one pool per key: never a shared worker
        stored = state_bytes(world.state_dir)
    for key in (ANN_KEY, BOB_KEY):
        assert key.encode() not in stored
        assert key not in caplog.text


async def test_without_any_key_the_seed_message_says_what_to_do(tmp_path: Path) -> None:
    async with served(tmp_path, backend_key=None) as world:
        client = world.client("ann")
        await client.new_session()
        status, answer = await client.call("GenerateText2Image", {"images": 1, **PARAMS})
        assert status == 200
        assert "No RunPod API key for user 'ann'" in answer["error"]
        assert "runpod_api" in answer["error"]


async def test_keys_and_users_survive_a_restart_and_a_wrong_master_key_stops_the_start(
    tmp_path: Path,
) -> None:
    async with served(tmp_path, backend_key=None, keys=(ANN_KEY,)) as world:
        client = world.client("ann")
        await client.new_session()
        await client.call("SetAPIKey", {"keyType": "runpod_api", "key": ANN_KEY})
        token = world.tokens["ann"]
    async with served(tmp_path, backend_key=None, keys=(ANN_KEY,), users={}) as world:
        assert await world.service.accounts.get_user("ann") is not None
        key = await world.service.accounts.runpod_key("ann")
        assert key is not None and key.reveal() == ANN_KEY
        world.tokens["ann"] = token  # the old token still works
        client = world.client("ann")
        await client.new_session()
        status, answer = await client.call("GenerateText2Image", {"images": 1, **PARAMS})
        assert status == 200 and "images" in answer
    wrong = {"SWARMPOD_MASTER_KEY": Fernet.generate_key().decode()}
    with pytest.raises(MasterKeyError) as refused:
        async with served(tmp_path, users={}, env=wrong):
            pass
    assert MASTER_KEY not in str(refused.value) and wrong["SWARMPOD_MASTER_KEY"] not in str(
        refused.value
    )

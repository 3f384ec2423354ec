"""The HartsyAI v1 worker under ``swarmpod emulator --handler``, driven by ``swarmpod generate``.

The handler (tests/handlers/hartsy_v1_handler.py) behaves like HartsyAI RunPod-Worker-SwarmUI's
``src/rp_handler.py``: it reads ``SWARMUI_API_URL``, reports RunPod's proxy URL
``https://{worker}-7801.proxy.runpod.net`` and answers ``health`` by a ``GET /`` of SwarmUI.
Everything runs as on a user's machine: two real processes on the real clock, the official
``runpod`` SDK's worker loop in between.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from sdk_env import sdk_env, sdk_python

pytestmark = pytest.mark.slow

HANDLER = Path(__file__).parent / "handlers" / "hartsy_v1_handler.py"
KEY = "hartsy-emulator-key"


def swarmpod(*argv: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator.cli", *argv]


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``swarmpod emulator --handler`` running; yields its base URL and what it printed."""
    command = swarmpod(
        "emulator",
        "--port",
        "0",
        "--api-key",
        KEY,
        "--idle-timeout",
        "3",
        "--handler",
        str(HANDLER),
        "--handler-python",
        str(sdk_python()),
        "--handler-env",
        f"HOME={sdk_env()['HOME']}",
        "--stop-grace",
        "1",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "SWARMPOD_"))}
    with subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    ) as process:
        assert process.stderr is not None
        said: list[str] = []
        for line in process.stderr:
            said.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(said)
        found = re.search(r"serving at (http://127\.0\.0\.1:\d+/v2)", text)
        assert found, text
        try:
            yield found.group(1), text
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=60) == 0


def runsync(base_url: str, job_input: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        f"{base_url}/local-ep/runsync?wait=60000",
        data=json.dumps({"input": job_input}).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=90) as answer:
        job: dict[str, object] = json.loads(answer.read())
    return job


def test_the_hartsy_worker_runs_from_the_command_line_to_a_png(
    emulator: tuple[str, str], tmp_path: Path
) -> None:
    base_url, printed = emulator
    assert f"export RUNPOD_API_KEY={KEY}" in printed  # the real key, ready to paste

    health = runsync(base_url, {"action": "health"})
    assert health["status"] == "COMPLETED"
    output = health["output"]
    assert isinstance(output, dict)
    assert output["healthy"] is True  # GET / of the fake SwarmUI redirects, as SwarmUI does
    assert re.fullmatch(r"https://[a-z0-9]+-7801\.proxy\.runpod\.net", str(output["public_url"]))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "SWARMPOD_"))}
    env |= {
        "RUNPOD_API_KEY": KEY,
        "SWARMPOD_POLL_INTERVAL_MS": "500",
        "SWARMPOD_STATE_DIR": str(tmp_path / "state"),
    }
    out = tmp_path / "images"
    generated = subprocess.run(
        swarmpod(
            "generate",
            "a red fox",
            "--base-url",
            base_url,
            "--endpoint-id",
            "local-ep",
            "--emulator-proxy",
            "--width",
            "64",
            "--height",
            "96",
            "--steps",
            "2",
            "--seed",
            "7",
            "--out",
            str(out),
        ),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert generated.returncode == 0, generated.stderr
    (png,) = [Path(line) for line in generated.stdout.split()]
    assert png.parent == out and png.name.endswith("-seed7.png")
    with Image.open(io.BytesIO(png.read_bytes())) as image:
        assert (image.format, image.size) == ("PNG", (64, 96))

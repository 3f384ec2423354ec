"""The official runpod SDK in a virtual environment of its own (never a swarmpod dependency).

``make test`` creates it first (``make sdk-venv``); a test run without it creates it here, so the
cross-check tests work from a clean clone either way. The SDK is heavy (about 215 MB, ~100
packages, runpod-api.md §5.4), which is why it stays out of swarmpod's own environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Final

RUNPOD_SDK_VERSION: Final = "1.12.0"
"""The SDK release the specs were verified against (runpod-api.md §5)."""

ROOT: Final = Path(__file__).resolve().parent.parent
SDK_VENV: Final = Path(os.environ.get("SWARMPOD_SDK_VENV", ROOT / ".venv-sdk"))
_STAMP: Final = SDK_VENV / f".runpod-{RUNPOD_SDK_VERSION}"


def sdk_python() -> Path:
    """The interpreter of the SDK's environment, created and installed on first use."""
    python = SDK_VENV / "bin" / "python"
    if not _STAMP.exists():
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(SDK_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"runpod=={RUNPOD_SDK_VERSION}"],
            check=True,
        )
        _STAMP.touch()
    (SDK_VENV / "home").mkdir(exist_ok=True)
    return python


def sdk_env(**extra: str) -> dict[str, str]:
    """An environment for SDK processes: no developer key file, no inherited RunPod settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env["HOME"] = str(SDK_VENV / "home")  # keeps ~/.runpod/config.toml out (§5.3 step 5)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


if __name__ == "__main__":
    print(sdk_python())

"""swarmpod installed with no extras (``pip install swarmpod``) in a virtual environment of its own.

``make test`` creates it first (``make core-venv``: ``pip install -e .``, so the working tree's
code with only the core dependencies of pyproject.toml); a test run without it creates it here
(that step needs PyPI, like ``.venv-sdk``). The stamp holds a hash of pyproject.toml, so a
changed dependency list rebuilds it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
CORE_VENV: Final = Path(os.environ.get("SWARMPOD_CORE_VENV", ROOT / ".venv-core"))
_STAMP: Final = CORE_VENV / ".installed"


def _pyproject_hash() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def core_python() -> Path:
    """The interpreter of the no-extras environment, created and installed on first use."""
    python = CORE_VENV / "bin" / "python"
    wanted = _pyproject_hash()
    if not (_STAMP.exists() and _STAMP.read_text() == wanted):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(CORE_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-e", str(ROOT)],
            check=True,
        )
    _STAMP.write_text(wanted)  # also rewritten when unchanged, for make's timestamps
    return python


if __name__ == "__main__":
    print(core_python())

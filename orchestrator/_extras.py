"""Optional dependencies ("extras") and the error that names the one to install.

``pip install swarmpod`` installs the engine, the emulator and the replay files' readers.
The rest comes with an extra:

======== ==================================== =========================================
extra    brings                               needed by
======== ==================================== =========================================
otlp     opentelemetry-exporter-otlp-proto-http OTLP export (``--otlp``, ``OTEL_*``)
service  cryptography                          ``swarmpod serve``, user accounts
replay   looptime                              scenarios and cassettes in virtual time
testing  aioresponses                          :func:`orchestrator.replay.cassette_mocks`
postgres psycopg 3 and its pool                ``DatabaseUrl``: replicas sharing PostgreSQL
cli      all of the above, and rich            the ``swarmpod`` command
======== ==================================== =========================================
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Final

__all__ = ["EXTRAS", "MissingExtraError", "import_extra"]

EXTRAS: Final[dict[str, tuple[str, ...]]] = {
    "otlp": ("opentelemetry.exporter.otlp.proto.http",),
    "service": ("cryptography",),
    "replay": ("looptime",),
    "testing": ("aioresponses",),
    "postgres": ("psycopg", "psycopg_pool"),
    "cli": ("rich", "cryptography", "looptime", "opentelemetry.exporter.otlp.proto.http"),
}
"""Each extra and the modules it makes importable."""


class MissingExtraError(ModuleNotFoundError):
    """Raised when a feature needs an optional dependency that is not installed.

    It is a :class:`ModuleNotFoundError`, so code that guards an optional import keeps
    working; its message says which extra to install.

    Attributes:
        extra: the extra that brings the module (``cli``, ``service``, ...).
        feature: what needed it, in words (``swarmpod serve``).
        module: the module that could not be imported (``cryptography``).
    """

    def __init__(self, extra: str, feature: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the optional dependency {module!r}, which is not installed: "
            f"pip install 'swarmpod[{extra}]'",
            name=module,
        )
        self.extra = extra
        self.feature = feature
        self.module = module


def import_extra(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` naming ``extra``.

    >>> import_extra("json", extra="cli", feature="the example").__name__
    'json'
    >>> import_extra("surely_not_installed", extra="cli", feature="the example")
    Traceback (most recent call last):
    ...
    orchestrator._extras.MissingExtraError: the example needs the optional dependency \
'surely_not_installed', which is not installed: pip install 'swarmpod[cli]'

    Only the missing module itself (or its parent package) counts as missing: an import
    error inside an installed package is raised as it is.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as missing:
        if missing.name is None or not (
            module == missing.name or module.startswith(missing.name + ".")
        ):
            raise
        raise MissingExtraError(extra, feature, missing.name) from None

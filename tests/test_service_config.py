"""The service's TOML: [service] and one [backends.<name>] table per RunPod backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import SettingsError
from orchestrator.service import ServiceConfig


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "serve.toml"
    path.write_text(text)
    return path


def test_two_backends_in_file_order_with_their_own_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[service]
host = "0.0.0.0"
port = 9000
state_dir = "STATE"

[backends.main]
EndpointId = "abc123"
MaxConcurrent = 4
AutoRefresh = true

[backends.large]
EndpointId = "def456"
IdleTimeoutSec = "auto"
""".replace("STATE", str(tmp_path / "state")),
    )
    config = ServiceConfig.load(path)
    assert (config.host, config.port, config.state_dir) == ("0.0.0.0", 9000, tmp_path / "state")
    assert list(config.backends) == ["main", "large"]
    main, large = config.backends.values()
    assert (main.endpoint_id, main.max_concurrent, main.auto_refresh) == ("abc123", 4, True)
    assert (large.endpoint_id, large.idle_timeout_sec) == ("def456", "auto")
    assert main.state_file == str(tmp_path / "state" / "swarmpod.sqlite3")


def test_flags_win_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[service]\nport = 9000\n")
    config = ServiceConfig.load(path, host="10.0.0.1", port=9100)
    assert (config.host, config.port, dict(config.backends)) == ("10.0.0.1", 9100, {})


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[backends.main]\nMaxConcurrent = 4\n", "backends.main.EndpointId"),
        ('[backends.main]\nEndpointId = "a"\nMaxConcurrent = 0\n', "backends.main.MaxConcurrent"),
        ('[backends.main]\nEndpointId = "a"\nNoSuch = 1\n', "backends.main.NoSuch"),
        ("[service]\nport = 99999\n", "service.port"),
        ('[service]\nlisten = "x"\n', "service.listen"),
        ("backends = 3\n", "backends"),
    ],
)
def test_a_bad_value_is_refused_naming_where_it_is(tmp_path: Path, text: str, names: str) -> None:
    with pytest.raises(SettingsError) as refused:
        ServiceConfig.load(write(tmp_path, text))
    assert refused.value.setting == names


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        ServiceConfig.load(tmp_path / "nope.toml")

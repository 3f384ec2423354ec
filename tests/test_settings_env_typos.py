"""A misspelt ``SWARMPOD_*`` variable is not silently ignored: it is named, with a suggestion."""

from __future__ import annotations

import logging

import pytest

from orchestrator import Settings
from orchestrator import settings as settings_module


@pytest.fixture(autouse=True)
def _fresh_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "_reported_env", set())


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "swarmpod.settings"]


def test_a_misspelt_setting_is_reported_with_the_name_it_probably_meant(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="swarmpod.settings"):
        settings = Settings.load(env={"SWARMPOD_MAX_CONCURENT": "2"})
    assert settings.max_concurrent == 10  # ignored, as the warning says
    assert warnings_of(caplog) == [
        "SWARMPOD_MAX_CONCURENT is not a swarmpod variable and is ignored; "
        "did you mean SWARMPOD_MAX_CONCURRENT?"
    ]


def test_a_misspelt_variable_read_elsewhere_is_suggested_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="swarmpod.settings"):
        Settings.load(env={"SWARMPOD_MASTERKEY": "x"})
    assert warnings_of(caplog)[0].endswith("did you mean SWARMPOD_MASTER_KEY?")


def test_an_unrecognisable_name_gets_the_naming_rule(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="swarmpod.settings"):
        Settings.load(env={"SWARMPOD_COLOUR": "blue"})
    assert "SWARMPOD_<SNAKE_CASE_NAME>" in warnings_of(caplog)[0]


def test_each_misspelling_is_reported_once_and_correct_names_never(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {
        "SWARMPOD_POLL_INTERVALL_MS": "500",
        "SWARMPOD_POLL_INTERVAL_MS": "700",
        "SWARMPOD_STATE_DIR": "/tmp",
        "SWARMPOD_MASTER_KEY": "k",
        "RUNPOD_API_KEY": "rpa_x",
        "SWARMPODS_UNRELATED": "1",
    }
    with caplog.at_level(logging.WARNING, logger="swarmpod.settings"):
        first = Settings.load(env=env)
        Settings.load(env=env)
    assert first.poll_interval_ms == 700
    assert len(warnings_of(caplog)) == 1
    assert warnings_of(caplog)[0].startswith("SWARMPOD_POLL_INTERVALL_MS is not")

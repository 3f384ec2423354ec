"""Settings: the seed's table, three layers of loading, and refusals that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import Secret, Settings, SettingsError, Timeouts


def test_defaults_are_the_design_table() -> None:
    s = Settings()
    assert (s.endpoint_id, s.use_async, s.max_concurrent, s.poll_interval_ms) == (
        None,
        True,
        10,
        2000,
    )
    assert (s.startup_timeout_sec, s.generation_timeout_sec) == (120, 300)
    assert s.runpod_api_key is None and s.auto_refresh is False
    assert (s.idle_timeout_sec, s.worker_protocol, s.gpu_price_per_hour) == (60, "auto", 0.69)
    assert s.runpod_base_url == "https://api.runpod.ai/v2"


def test_toml_then_env_then_arguments_each_override_the_one_before(tmp_path: Path) -> None:
    config = tmp_path / "swarmpod.toml"
    config.write_text(
        'EndpointId = "from-file"\nMaxConcurrent = 4\nPollIntervalMs = 500\n'
        'IdleTimeoutSec = "auto"\n'
    )
    env = {"SWARMPOD_MAX_CONCURRENT": "6", "RUNPOD_ENDPOINT_ID": "from-env"}
    s = Settings.load(config, env=env, overrides={"EndpointId": "from-args"})
    assert s.endpoint_id == "from-args"
    assert s.max_concurrent == 6
    assert s.poll_interval_ms == 500
    assert s.idle_timeout_sec == "auto"


def test_swarmpod_prefixed_env_beats_the_runpod_names() -> None:
    env = {"RUNPOD_API_KEY": "rpa_generic", "SWARMPOD_RUNPOD_API_KEY": "rpa_specific"}
    key = Settings.load(env=env).runpod_api_key
    assert key is not None and key.reveal() == "rpa_specific"


def test_backend_table_and_snake_case_keys_are_accepted(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[backend]\nendpoint_id = "ep1"\ngeneration_timeout_sec = 42\n')
    s = Settings.load(config, env={})
    assert (s.endpoint_id, s.generation_timeout_sec) == ("ep1", 42)


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("MaxConcurrent", "0", "must be >= 1"),
        ("MaxConcurrent", "ten", "must be an integer"),
        ("PollIntervalMs", 2.5, "must be an integer"),
        ("StartupTimeoutSec", "-1", "must be a finite number > 0"),
        ("GenerationTimeoutSec", "inf", "must be a finite number > 0"),
        ("IdleTimeoutSec", "forever", "must be a number of seconds"),
        ("WorkerProtocol", "v3", "must be auto, v1 or v2"),
        ("UseAsync", "maybe", "must be true or false"),
        ("RunPodBaseUrl", "ftp://x", "must be an http(s) URL"),
        ("EndpointId", "bad id!", "must be a RunPod endpoint id"),
        ("RunPodApiKey", "two words", "must not contain whitespace"),
    ],
)
def test_a_bad_value_is_refused_naming_the_setting_and_why(
    name: str, value: object, reason: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load(env={}, overrides={name: value})
    assert caught.value.setting == name
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"Setting {name} (from arguments):")


def test_a_bad_env_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"from env SWARMPOD_MAX_CONCURRENT"):
        Settings.load(env={"SWARMPOD_MAX_CONCURRENT": "-3"})


def test_an_unknown_key_in_a_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("MaxConcurent = 3\n")
    with pytest.raises(SettingsError, match="unknown setting"):
        Settings.load(config, env={})


def test_a_missing_or_broken_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        Settings.load(tmp_path / "nope.toml", env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("MaxConcurrent = [")
    with pytest.raises(SettingsError, match="not valid TOML"):
        Settings.load(broken, env={})


def test_the_key_never_shows_in_repr_or_str() -> None:
    s = Settings.load(env={"RUNPOD_API_KEY": "rpa_PLANTED_SECRET"})
    assert "rpa_PLANTED_SECRET" not in repr(s)
    assert "rpa_PLANTED_SECRET" not in str(s)
    assert "rpa_PLANTED_SECRET" not in repr(s.runpod_api_key)
    assert f"{s.runpod_api_key}" == "********"


def test_timeouts_are_one_value_object_built_from_the_settings() -> None:
    s = Settings.load(env={}, overrides={"StartupTimeoutSec": 90, "GenerationTimeoutSec": 30})
    assert s.timeouts == Timeouts(startup=90, generation=30, request=30, release=30)
    with pytest.raises(SettingsError, match=r"Timeouts.release"):
        Timeouts(release=0)


def test_constructing_settings_directly_is_validated_too() -> None:
    with pytest.raises(SettingsError, match="MaxConcurrent"):
        Settings(max_concurrent=0)
    with pytest.raises(SettingsError, match="RunPodApiKey"):
        Settings(runpod_api_key="plain-string")  # type: ignore[arg-type]
    assert Settings(runpod_api_key=Secret("k")).runpod_api_key == Secret("k")


def test_a_generation_timeout_over_a_day_is_refused_naming_why() -> None:
    with pytest.raises(SettingsError, match=r"GenerationTimeoutSec.*at most 86400 s"):
        Settings.load(env={}, overrides={"EndpointId": "ep", "GenerationTimeoutSec": 86_401})
    longest = Settings.load(env={}, overrides={"EndpointId": "ep", "GenerationTimeoutSec": 86_400})
    assert longest.generation_timeout_sec == 86_400

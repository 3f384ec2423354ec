"""deploy/replicas: the compose file, the configuration every replica runs, and the balancer
agree with each other and with what swarmpod reads."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from orchestrator.service import ServiceConfig
from orchestrator.settings import OTHER_ENV_NAMES, Settings
from orchestrator.store import DatabaseUrl

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "replicas"


def test_every_replica_runs_the_shared_configuration_on_the_shared_database() -> None:
    compose = (DEPLOY / "compose.yaml").read_text()
    replicas = re.findall(r"^  (swarmpod-\d+): \*replica$", compose, re.M)
    assert replicas == ["swarmpod-1", "swarmpod-2", "swarmpod-3"]
    url = re.search(r"SWARMPOD_DATABASE_URL: (.+)$", compose, re.M)
    assert url is not None
    shaped = re.sub(r"\$\{POSTGRES_PASSWORD[^}]*\}", "pw", url[1])
    assert DatabaseUrl(shaped).shown == "postgresql://swarmpod@postgres:5432/swarmpod"
    read = {f"SWARMPOD_{name.upper()}" for name in Settings.__dataclass_fields__}
    for variable in re.findall(r"^    (SWARMPOD_\w+|RUNPOD_\w+):", compose, re.M):
        assert variable in read | OTHER_ENV_NAMES | {"RUNPOD_API_KEY"}, variable
    assert "/etc/swarmpod/serve.toml" in compose and "./serve.toml:" in compose


def test_the_shared_configuration_loads_with_the_compose_database() -> None:
    config = ServiceConfig.load(
        DEPLOY / "serve.toml",
        env={"SWARMPOD_DATABASE_URL": "postgresql://swarmpod:pw@postgres:5432/swarmpod"},
    )
    assert config.database is not None and config.port == 7801
    assert config.backends["main"].max_workers == 4
    assert config.backends["main"].database_url == config.database


def test_the_balancer_sends_to_every_replica_keeps_websockets_and_never_retries() -> None:
    nginx = (DEPLOY / "nginx.conf").read_text()
    compose = (DEPLOY / "compose.yaml").read_text()
    servers = re.findall(r"server (swarmpod-\d+):(\d+)", nginx)
    assert [name for name, _ in servers] == re.findall(r"^  (swarmpod-\d+):", compose, re.M)
    port = tomllib.loads((DEPLOY / "serve.toml").read_text())["service"]["port"]
    assert {int(p) for _, p in servers} == {port}
    assert "proxy_set_header Upgrade $http_upgrade" in nginx
    assert "proxy_next_upstream off" in nginx
    assert "hash $remote_addr consistent" in nginx  # a client's session stays on its replica


def test_the_image_installs_the_command_and_postgres_extras() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "pip install --no-cache-dir '/src[cli,postgres]'" in dockerfile
    assert "dockerfile: deploy/replicas/Dockerfile" in (DEPLOY / "compose.yaml").read_text()

"""The Jaeger compose file and the README's three commands agree on the ports."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_the_compose_file_runs_jaeger_with_otlp_http_and_the_ui() -> None:
    compose = (ROOT / "observability" / "jaeger" / "compose.yaml").read_text()
    assert "image: jaegertracing/all-in-one:" in compose
    assert '"4318:4318"' in compose and '"16686:16686"' in compose
    assert 'COLLECTOR_OTLP_ENABLED: "true"' in compose


def test_the_readme_shows_the_three_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docker compose -f observability/jaeger/compose.yaml up -d" in readme
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 .venv/bin/swarmpod demo" in readme
    assert "http://localhost:16686" in readme

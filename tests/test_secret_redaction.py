"""Secrets never reach logs, spans, metrics or files.

A RunPod key is planted in every place a user can set one (the backend key in the service's
TOML file, a user's own key through SetAPIKey, the API token itself), a generation runs through
the service with tracing, metrics and DEBUG logging on, and then every log line, span, metric
point, trace file and state file is searched for them. The redaction filter is proven apart
too: a key logged on purpose comes out as ``[REDACTED]``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_support import served
from support import KEY

from observability import REDACTED, Telemetry, configure_logging, redact
from orchestrator.accounts import Role
from orchestrator.secrets import Secret

USER_KEY = "rpa_PLANTEDuser0123456789"
PARAMS = {"prompt": "a fox", "width": 64, "height": 64, "steps": 4}
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
pytestmark = pytest.mark.anyio


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging(logging.DEBUG, stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)


def test_a_registered_secret_logged_on_purpose_is_redacted(log_stream: io.StringIO) -> None:
    secret = Secret("my-very-private-token-42")
    logging.getLogger("swarmpod.test").warning("oops: %s and %r", secret.reveal(), {"k": 1})
    assert "my-very-private-token-42" not in log_stream.getvalue()
    assert f"oops: {REDACTED} and {{'k': 1}}" in log_stream.getvalue()


def test_secret_shapes_are_redacted_even_when_never_registered(log_stream: io.StringIO) -> None:
    logging.getLogger("swarmpod.test").info(
        "calling with rpa_NEVERSEEN9999 and Authorization: Bearer eyJhbGciOi.x-y"
    )
    text = log_stream.getvalue()
    assert "rpa_NEVERSEEN9999" not in text and "eyJhbGciOi" not in text
    assert redact("token sp_abcdefghijklmnop") == f"token {REDACTED}"


def test_a_traceback_carrying_a_secret_is_redacted(log_stream: io.StringIO) -> None:
    secret = Secret("another-private-value-77").reveal()
    try:
        raise RuntimeError(f"failed with {secret}")
    except RuntimeError:
        logging.getLogger("swarmpod.test").exception("it failed")
    text = log_stream.getvalue()
    assert "Traceback" in text and secret not in text and REDACTED in text


def test_log_records_carry_the_current_trace_and_span_ids(log_stream: io.StringIO) -> None:
    telemetry = Telemetry.configure(in_memory=True, otlp=False)
    with telemetry.tracer.start_as_current_span("work") as span:
        logging.getLogger("swarmpod.test").warning("inside")
    context = span.get_span_context()
    assert f"trace={context.trace_id:032x} span={context.span_id:016x}" in log_stream.getvalue()
    telemetry.shutdown()


async def test_keys_planted_everywhere_reach_no_log_span_metric_or_file(
    tmp_path: Path, log_stream: io.StringIO
) -> None:
    trace_file = tmp_path / "trace.jsonl"
    telemetry = Telemetry.configure(in_memory=True, otlp=False, trace_file=trace_file)
    async with served(
        tmp_path,
        keys=(KEY, USER_KEY),
        users={"ann": Role.POWERUSER, "bob": Role.POWERUSER},
        telemetry=telemetry,
    ) as world:
        ann, bob = world.client("ann"), world.client("bob")
        await bob.new_session()
        await bob.call("SetAPIKey", {"keyType": "runpod_api", "key": USER_KEY})
        await ann.new_session()
        ann.extra_headers["traceparent"] = TRACEPARENT
        status, answer = await ann.call("GenerateText2Image", {"images": 1, **PARAMS})
        assert status == 200 and "images" in answer
        secrets = [KEY, USER_KEY, *world.tokens.values()]
        state_dir = world.state_dir
    telemetry.shutdown()

    assert all(len(secret) > 10 for secret in secrets)
    logs = log_stream.getvalue()
    assert "[RunPodServerless]" in logs and "[RunPodApiClient]" in logs
    spans = telemetry.finished_spans()
    span_text = "\n".join(span.to_json() for span in spans)
    assert telemetry.metric_reader is not None
    metrics = telemetry.metric_reader.get_metrics_data()
    metric_text = metrics.to_json() if metrics is not None else ""
    files = trace_file.read_bytes() + b"".join(
        path.read_bytes() for path in sorted(state_dir.rglob("*")) if path.is_file()
    )
    for secret in secrets:
        assert secret not in logs
        assert secret not in span_text
        assert secret not in metric_text
        assert secret.encode() not in files
    assert "Bearer" not in span_text

    # the one request is one trace: the caller's, through the service into the engine
    (generation,) = [s for s in spans if s.name.startswith("Generation:")]
    (server,) = [s for s in spans if s.name == "POST /API/GenerateText2Image"]
    assert generation.parent is not None and server.context is not None
    assert generation.parent.span_id == server.context.span_id
    assert server.parent is not None
    assert f"{server.parent.trace_id:032x}" == TRACEPARENT.split("-")[1]


def test_the_registry_stays_bounded_and_lease_tokens_are_caught_by_shape(
    log_stream: io.StringIO,
) -> None:
    from observability import _logs

    kept = dict(_logs._secrets)
    try:
        for index in range(5000):
            _logs.register_secret(f"short-lived-secret-{index:05d}")
        assert len(_logs._secrets) <= 4096
        assert redact("x short-lived-secret-04999 y") == f"x {REDACTED} y"
        lease = Secret("Bearer lease-token-abc123", ephemeral=True)
        assert "Bearer lease-token-abc123" not in _logs._secrets
        logging.getLogger("swarmpod.test").warning("sent %s", lease.reveal())
        assert "lease-token-abc123" not in log_stream.getvalue()
    finally:  # the rest of the session keeps a small matcher
        _logs._secrets.clear()
        _logs._secrets.update(kept)
        _logs._dirty = True

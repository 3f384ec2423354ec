"""Cassettes: record every HTTP exchange, replay it in virtual time, judge the outcome."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import looptime
import pytest
from aiohttp import web
from support import KEY, world

from orchestrator import OrchestratorError, Settings, SettingsError
from orchestrator.cli import main
from orchestrator.cli._demo import demo
from orchestrator.cli._generate import generate
from orchestrator.cli._main import build_parser
from orchestrator.emulator import EmulatedEndpoint, EndpointConfig
from orchestrator.emulator.swarm import SwarmConfig
from orchestrator.errors import GenerationFailedError, RunPodServerError, TransportError
from orchestrator.replay import (
    Cassette,
    CassetteError,
    CassetteRecorder,
    ScenarioError,
    load_cassette,
    replay_cassette,
)

FIXTURE = Path(__file__).parent / "cassettes" / "cold_start_90s.cassette.jsonl"
PARAMS = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 4, "seed": 7}
SLOW = EndpointConfig(cold_start_s=10.0, swarm=SwarmConfig(seconds_per_step=1.0))

Fault = Callable[[EmulatedEndpoint], object]


async def record(
    path: Path,
    endpoint: EndpointConfig = SLOW,
    *,
    fault: Fault | None = None,
    **settings: Any,
) -> Cassette:
    """Record one generation of PARAMS against the emulator; return the cassette read back."""
    async with world(endpoint, **settings) as w:
        if fault is not None:
            fault(w.endpoint)
        async with CassetteRecorder(path, w.orch.settings) as recorder:
            with contextlib.suppress(OrchestratorError):
                await recorder.generate(PARAMS, images=2)
    return load_cassette(path)


def files_in(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


def rewrite(path: Path, keep: Callable[[dict[str, Any]], bool], into: Path) -> Path:
    """A copy (in directory ``into``) of the cassette at ``path`` without what ``keep`` refuses."""
    copy = into / f"edited-{path.name}"
    kept = [line for line in lines_of(path) if keep(json.loads(line))]
    copy.write_text("".join(f"{line}\n" for line in kept))
    return copy


# --- recording and replaying -------------------------------------------------------------


@pytest.mark.anyio
async def test_a_recording_replays_to_the_same_outcome_with_the_emulator_gone(
    tmp_path: Path,
) -> None:
    cassette = await record(tmp_path / "fox.cassette.jsonl")

    (outcome,) = cassette.outcomes
    assert outcome.state == "Done"
    assert outcome.cold_start is True
    assert [image.seed for image in outcome.images] == [7, 8]
    assert {exchange.kind for exchange in cassette.exchanges} == {"http", "ws"}
    (ws,) = [exchange for exchange in cassette.exchanges if exchange.kind == "ws"]
    assert ws.url.endswith("/API/GenerateText2ImageWS")
    assert ws.messages[0].sender == "client" and "a lighthouse" in str(ws.messages[0].data)
    assert any(m.sender == "server" and "gen_progress" in str(m.data) for m in ws.messages)
    assert any("/run" in exchange.url for exchange in cassette.exchanges)

    report = await replay_cassette(cassette)  # the emulator is gone: only the cassette answers

    assert report.passed, report.render()
    assert report.outcomes == list(cassette.outcomes)
    assert report.served == len(cassette.exchanges)
    assert report.max_drift < 1e-3  # every request came at its recorded time


@pytest.mark.anyio
async def test_the_committed_90_s_cold_start_replays_on_the_virtual_clock() -> None:
    """Its wall-clock time is measured by ``make bench`` (benchmarks/virtual_time.py)."""
    cassette = load_cassette(FIXTURE)
    assert cassette.duration > 90

    report = await replay_cassette(cassette)

    assert report.passed, report.render()
    assert report.outcomes[0].path[:3] == ("Idle", "Waking", "Polling")
    assert float(report.timeline[-1].split("s")[0]) > 90


@dataclass(frozen=True)
class FailureCase:
    fault: Fault
    error: type[OrchestratorError]
    phase: str
    evidence: str  # an exchange-level trace the failure leaves in the cassette
    transport: str = "ws"
    replayed: str = ""  # what the replay's report must show


def _die_while_holding(after_s: float) -> Fault:
    # Deaths hit the next jobs a worker takes, in order: the wake-up completes long before
    # 1000 s, so only the keepalive's worker dies, ``after_s`` into holding it.
    def fault(endpoint: EmulatedEndpoint) -> None:
        endpoint.faults.worker_dies(after_s=1000.0)
        endpoint.faults.worker_dies(after_s=after_s)

    return fault


FAILURES = {
    "runpod_500_on_run": FailureCase(
        lambda e: e.faults.http_status("run", 500), RunPodServerError, "waking", '"status":500'
    ),
    "worker_dies_mid_ws_generation": FailureCase(
        _die_while_holding(2.0), TransportError, "generating", '"type":"closed"'
    ),
    "worker_dies_mid_http_generation": FailureCase(
        _die_while_holding(2.0), TransportError, "generating", '"kind":"disconnect"', "http"
    ),
    "worker_gone_before_ready": FailureCase(
        _die_while_holding(0.0),
        TransportError,
        "ready",
        '"kind":"connect"',
        replayed="did not answer /API/GetNewSession: ClientConnectorError",  # refused again
    ),
    "status_poll_times_out": FailureCase(
        lambda e: e.faults.latency("status", 40.0), TransportError, "ready", '"kind":"timeout"'
    ),
    "swarmui_generation_error": FailureCase(
        lambda e: e.swarm_faults.generation_error("CUDA out of memory"),
        GenerationFailedError,
        "generating",
        "CUDA out of memory",
    ),
}


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(FAILURES))
async def test_a_failed_recording_replays_to_the_same_error_type_and_phase(
    tmp_path: Path, name: str
) -> None:
    case = FAILURES[name]
    path = tmp_path / f"{name}.cassette.jsonl"
    cassette = await record(path, fault=case.fault, Transport=case.transport)

    (outcome,) = cassette.outcomes
    assert outcome.state == "Failed"
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.phase) == (case.error.__name__, case.phase)
    assert case.evidence in path.read_text()

    report = await replay_cassette(cassette)

    assert report.passed, report.render()
    assert report.outcomes == list(cassette.outcomes)
    assert f"{case.error.__name__}[{case.phase}]" in report.render()
    assert case.replayed in report.render()
    assert report.max_drift < 1e-3  # timeouts fire when they fired in the recording


@pytest.mark.anyio
async def test_a_failure_escaping_the_recorder_is_still_recorded(tmp_path: Path) -> None:
    path = tmp_path / "escaped.cassette.jsonl"
    async with world(SLOW) as w:
        w.endpoint.faults.http_status("run", 500)
        with pytest.raises(RunPodServerError):
            async with CassetteRecorder(path, w.orch.settings) as recorder:
                await recorder.generate(PARAMS)
    error = load_cassette(path).outcomes[0].error
    assert error is not None and (error.type, error.phase) == ("RunPodServerError", "waking")


@pytest.mark.anyio
async def test_a_cassette_that_cannot_be_written_is_refused_before_the_run(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings = Settings.load(env={}, overrides={"EndpointId": "ep", "RunPodApiKey": KEY})
    with pytest.raises(CassetteError, match="cannot write"):
        async with CassetteRecorder(blocker / "x.cassette.jsonl", settings):
            pytest.fail("the recording must not start")


@pytest.mark.anyio
async def test_a_recorder_that_cannot_start_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "never.cassette.jsonl"
    with pytest.raises(SettingsError, match="EndpointId"):
        async with CassetteRecorder(path, Settings.load(env={})):
            pytest.fail("the recording must not start")
    assert files_in(tmp_path) == []


@pytest.mark.anyio
async def test_a_caller_giving_up_is_replayed_at_the_same_moment(tmp_path: Path) -> None:
    path = tmp_path / "impatient.cassette.jsonl"
    async with (
        world(SLOW, Transport="http") as w,
        CassetteRecorder(path, w.orch.settings) as recorder,
    ):
        with anyio.move_on_after(17.0):  # mid-generation: its HTTP request is cut
            await recorder.generate(PARAMS, images=2)
    cassette = load_cassette(path)
    assert cassette.generations[0].cancel_after == pytest.approx(17.0)
    assert cassette.outcomes[0].state == "Cancelled"
    assert any(e.error is not None and e.error.kind == "cancelled" for e in cassette.exchanges)

    report = await replay_cassette(cassette)

    assert report.passed, report.render()
    assert "cancelled; the worker was released" in report.render()


@pytest.mark.anyio
async def test_binary_bodies_are_stored_as_base64_and_served_byte_for_byte(
    tmp_path: Path,
) -> None:
    path = tmp_path / "view.cassette.jsonl"
    cassette = await record(
        path, fault=lambda e: e.swarm_faults.ignore_donotsave(), Transport="http"
    )
    assert '"body_b64"' in path.read_text()  # the PNGs fetched from View/...
    assert cassette.outcomes[0].state == "Done"

    report = await replay_cassette(cassette)

    assert report.passed, report.render()
    assert report.outcomes[0].images == cassette.outcomes[0].images


@pytest.mark.anyio
async def test_the_same_cassette_gives_the_same_timeline_twice(tmp_path: Path) -> None:
    # 429s without Retry-After: the backoff is random jitter, recorded and drawn again.
    cassette = await record(
        tmp_path / "storm.cassette.jsonl",
        fault=lambda e: e.faults.http_status("status", 429, times=3),
    )
    assert len(cassette.jitter) == 3

    first = await replay_cassette(cassette)
    second = await replay_cassette(cassette)

    assert first.render() == second.render()
    assert first.timeline == second.timeline
    assert len(first.timeline) > 5
    assert "→ 429  (x3" in first.render()
    assert first.max_drift < 1e-3  # the recorded jitter, not fresh random delays


@pytest.mark.anyio
async def test_concurrent_websockets_are_matched_by_what_the_client_sends(
    tmp_path: Path,
) -> None:
    path = tmp_path / "two.cassette.jsonl"
    async with (
        world(SLOW) as w,
        CassetteRecorder(path, w.orch.settings) as recorder,
        anyio.create_task_group() as tasks,
    ):
        for prompt in ("a red fox", "a paper boat"):
            tasks.start_soon(recorder.generate, {**PARAMS, "prompt": prompt, "seed": -1})
    # Make the recorded order of the two upgrades the opposite of the replay's.
    records = [json.loads(line) for line in lines_of(path)]
    first, second = (r for r in records if r["kind"] == "ws")
    first["seq"], second["seq"] = second["seq"], first["seq"]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    cassette = load_cassette(path)
    assert cassette.outcomes[0].images != cassette.outcomes[1].images  # a swap would show

    report = await replay_cassette(cassette)

    assert report.passed, report.render()  # each socket got its own prompt's images


# --- secrets -------------------------------------------------------------------------------

PLANTED_TOKEN = "lease-tok-PLANTED-9f8e7d6c5b"
PLANTED_QUERY_KEY = "query-key-PLANTED-1a2b3c4d"


@pytest.mark.anyio
async def test_no_key_or_token_reaches_the_cassette_file(tmp_path: Path) -> None:
    """Plant the API key, a v2 lease token and a key in a query; grep the file's bytes."""

    async def lease(request: web.Request) -> web.Response:
        return web.json_response(
            {"stream": [{"output": {"public_url": "http://w", "token": PLANTED_TOKEN}}]}
        )

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"seen": request.headers.get("Authorization", "")})

    app = web.Application()
    app.router.add_get("/lease", lease)
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    path = tmp_path / "secrets.cassette.jsonl"
    try:
        async with world(SLOW) as w, CassetteRecorder(path, w.orch.settings) as recorder:
            await recorder.generate(PARAMS)  # Authorization: Bearer KEY on every call
            session = recorder.session
            async with session.get(f"http://127.0.0.1:{port}/lease") as response:
                await response.read()
            async with session.post(
                f"http://127.0.0.1:{port}/echo?api_key={PLANTED_QUERY_KEY}&page=2",
                headers={"Authorization": f"Bearer {PLANTED_TOKEN}"},
                json={"note": f"worker said {PLANTED_TOKEN}", "session_id": "s-123"},
            ) as response:
                await response.read()
    finally:
        await runner.cleanup()

    data = path.read_bytes()
    for secret in (KEY, PLANTED_TOKEN, PLANTED_QUERY_KEY):
        assert secret.encode() not in data, f"{secret} leaked into the cassette"
    assert data.count(b"[redacted]") >= 4
    assert b"page=2" in data  # only secret-named query values go
    assert b"s-123" in data  # a SwarmUI session id is not a secret
    assert (await replay_cassette(load_cassette(path))).outcomes[0].state == "Done"


# --- bad files -------------------------------------------------------------------------------


def _edit_line(number: int, change: Callable[[dict[str, Any]], object]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        lines = text.splitlines()
        record = json.loads(lines[number - 1])
        change(record)
        lines[number - 1] = json.dumps(record)
        return "".join(f"{line}\n" for line in lines)

    return edit


def _replace_line(number: int, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        lines = text.splitlines()
        lines[number - 1] = new
        return "".join(f"{line}\n" for line in lines)

    return edit


def _swap_body_for_bad_base64(record: dict[str, Any]) -> None:
    record.pop("body")
    record["body_b64"] = "@@@"


_LAST = len(FIXTURE.read_text().splitlines())
_WS_LINE = next(
    i for i, line in enumerate(FIXTURE.read_text().splitlines(), 1) if '"kind":"ws"' in line
)
BAD_FILES: dict[str, tuple[Callable[[str], str], int | None, str]] = {
    "bad_json": (_replace_line(3, '{"kind": "http", "seq": 0,'), 3, "not JSON"),
    "not_an_object": (_replace_line(4, "[1, 2]"), 4, "must be a JSON object"),
    "unknown_version": (
        _edit_line(1, lambda r: r.update(version=99)),
        1,
        "unknown cassette version 99",
    ),
    "not_a_cassette": (
        _edit_line(1, lambda r: r.update(format="har")),
        1,
        "not a swarmpod cassette",
    ),
    "header_not_first": (lambda t: "\n".join(t.splitlines()[1:]) + "\n", 1, "header"),
    "api_key_in_settings": (
        _edit_line(1, lambda r: r["settings"].update(runpod_api_key="x")),
        1,
        "must not hold an API key",
    ),
    "bad_setting": (
        _edit_line(1, lambda r: r["settings"].update(max_concurrent=0)),
        1,
        "settings:",
    ),
    "missing_method": (_edit_line(3, lambda r: r.pop("method")), 3, "missing field 'method'"),
    "bad_status": (_edit_line(3, lambda r: r.update(status="ok")), 3, "'status' must be"),
    "negative_duration": (_edit_line(4, lambda r: r.update(dt=-1)), 4, "'dt' must be"),
    "status_and_error": (
        _edit_line(3, lambda r: r.update(error={"kind": "timeout", "type": "TimeoutError"})),
        3,
        "either a 'status' or an 'error'",
    ),
    "bad_base64": (_edit_line(3, _swap_body_for_bad_base64), 3, "not valid base64"),
    "unknown_kind": (_edit_line(5, lambda r: r.update(kind="grpc")), 5, "unknown record kind"),
    "duplicate_seq": (_edit_line(4, lambda r: r.update(seq=0)), 4, "duplicate exchange seq 0"),
    "bad_ws_message": (
        _edit_line(_WS_LINE, lambda r: r["messages"][1].update({"from": "nobody"})),
        _WS_LINE,
        "field 'messages[1].from' must be client or server",
    ),
    "outcome_count": (
        _edit_line(_LAST, lambda r: r.update(generations=[])),
        _LAST,
        "the outcome lists 0 generation(s)",
    ),
    "truncated_at_a_line": (
        lambda t: "".join(f"{x}\n" for x in t.splitlines()[:-1]),
        _LAST - 1,
        "truncated: the file ends without its outcome trailer",
    ),
    "truncated_mid_line": (
        lambda t: t[: len(t) - 40],
        _LAST,
        "truncated: the last line is cut off",
    ),
    "empty": (lambda t: "", None, "empty file"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_cassette_is_refused_with_file_line_and_reason(tmp_path: Path, name: str) -> None:
    edit, line, reason = BAD_FILES[name]
    path = tmp_path / "bad.cassette.jsonl"
    path.write_text(edit(FIXTURE.read_text()))

    with pytest.raises(CassetteError) as caught:
        load_cassette(path)

    assert caught.value.file == str(path)
    if line is not None:
        assert caught.value.line == line
        assert str(caught.value).startswith(f"{path}:{line}: ")
    assert reason in caught.value.reason
    assert isinstance(caught.value, ScenarioError) and isinstance(caught.value, OrchestratorError)


def test_a_missing_cassette_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CassetteError, match="cannot read"):
        load_cassette(tmp_path / "nope.cassette.jsonl")


# --- divergence ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_request_the_cassette_cannot_answer_fails_the_verdict_saying_which(
    tmp_path: Path,
) -> None:
    edited = rewrite(FIXTURE, lambda record: record.get("kind") != "ws", tmp_path)

    with anyio.fail_after(600):  # loop time: a hang would fail here, not stall the suite
        report = await replay_cassette(load_cassette(edited))

    assert not report.passed
    first = report.problems[0]
    assert first.startswith("unexpected request WS swarm1 /API/GenerateText2ImageWS")
    assert "the cassette expected next GET runpod /test-ep/status/" in first  # the keepalive
    assert "generation 0: state 'Cancelled', recorded 'Done'" in report.problems
    assert "verdict: FAIL" in report.render()


@pytest.mark.anyio
async def test_recorded_exchanges_nobody_asks_for_fail_the_verdict(tmp_path: Path) -> None:
    lines = lines_of(FIXTURE)
    extra = json.loads(lines[3])
    extra["seq"] = 10_000
    edited = tmp_path / "extra.cassette.jsonl"
    edited.write_text("".join(f"{line}\n" for line in [*lines[:-1], json.dumps(extra), lines[-1]]))

    report = await replay_cassette(load_cassette(edited))

    assert not report.passed
    assert report.problems[0].startswith("1 recorded exchange(s) never requested; first: GET")


@pytest.mark.anyio
async def test_a_host_outside_the_cassette_is_refused_not_contacted(tmp_path: Path) -> None:
    base = load_cassette(FIXTURE).runpod_base_url
    edited = rewrite(
        FIXTURE,
        lambda record: record.get("kind") not in ("http", "ws") or record["url"].startswith(base),
        tmp_path,
    )

    report = await replay_cassette(load_cassette(edited))

    assert not report.passed
    assert "/API/GetNewSession (not recorded)" in report.problems[0]


# --- the command line ------------------------------------------------------------------------


@pytest.fixture
def no_configured_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own RunPod settings must not leak into the CLI tests."""
    for name in list(os.environ):
        if name.startswith(("SWARMPOD_", "RUNPOD_")):
            monkeypatch.delenv(name)


def run_virtual(command: Any, *argv: str) -> int:
    """Run a CLI command coroutine on a looptime loop (from a sync test: no loop is running)."""
    args = build_parser().parse_args(argv)
    code: int = anyio.run(command, args, backend_options={"loop_factory": looptime.new_event_loop})
    return code


@pytest.mark.usefixtures("no_configured_endpoint")
def test_generate_record_then_replay_cassette_round_trip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "fox.rec"  # no .jsonl suffix: `replay cassette` says what it is
    assert (
        run_virtual(
            generate,
            "generate",
            "a fox",
            "--seed",
            "3",
            "--out",
            str(tmp_path),
            "--record",
            str(path),
        )
        == 0
    )
    assert f"into {path}" in " ".join(capsys.readouterr().err.split())

    assert main(["replay", "cassette", str(path)]) == 0
    first = capsys.readouterr().out
    assert main(["replay", "cassette", str(path)]) == 0
    second = capsys.readouterr().out

    assert first == second  # the same cassette prints the same timeline
    assert (
        "generation 0: Idle → Waking → Polling → Ready → Generating → ShuttingDown → Done  "
        "1 image(s)" in first
    )
    assert "timeline:" in first and "verdict: PASS" in first


@pytest.mark.usefixtures("no_configured_endpoint")
def test_demo_record_replays_its_warm_reuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "demo.cassette.jsonl"
    assert run_virtual(demo, "demo", "--out", str(tmp_path), "--record", str(path)) == 0
    capsys.readouterr()

    assert main(["replay", "-q", str(path), str(path)]) == 0  # the suffix says cassette
    assert capsys.readouterr().out.split("\n")[:2] == [f"PASS  {path}"] * 2
    assert main(["replay", str(path)]) == 0
    out = capsys.readouterr().out
    assert "generation 2: Idle → Ready → Generating → ShuttingDown → Done  2 image(s)" in out


def test_the_replay_command_exits_2_on_a_bad_cassette_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.cassette.jsonl"
    path.write_text(_replace_line(3, "{oops")(FIXTURE.read_text()))

    assert main(["replay", "cassette", str(path)]) == 2

    err = " ".join(capsys.readouterr().err.split())
    assert f"{path}:3: not JSON" in err


def test_the_replay_command_exits_1_on_a_failed_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edited = rewrite(FIXTURE, lambda record: record.get("kind") != "ws", tmp_path)

    assert main(["replay", str(edited)]) == 1
    assert "verdict: FAIL" in capsys.readouterr().out


def test_settings_recorded_in_the_header_load_back() -> None:
    cassette = load_cassette(FIXTURE)
    settings = Settings.from_mapping(cassette.settings)
    assert settings.endpoint_id == "test-ep"
    assert settings.poll_interval_ms == 1000
    assert "runpod_api_key" not in cassette.settings


def test_failed_attempts_are_recorded_by_the_kind_the_replay_reproduces() -> None:
    """The recorder sorts aiohttp's failures into the kinds the replay server reproduces."""
    from orchestrator.replay._capture import error_of

    assert error_of(aiohttp.ServerDisconnectedError()).kind == "disconnect"
    assert error_of(aiohttp.ConnectionTimeoutError()).kind == "connect"
    assert error_of(aiohttp.SocketTimeoutError()).kind == "timeout"
    assert error_of(TimeoutError()).kind == "timeout"

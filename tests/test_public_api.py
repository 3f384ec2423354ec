"""Each package's public namespace is exactly what we mean to publish, and documented."""

from __future__ import annotations

import importlib
import inspect

import pytest

PUBLIC = {
    "orchestrator": {
        "BudgetExceededError",
        "GeneratedImage",
        "GenerationFailedError",
        "GenerationResult",
        "GenerationTimeoutError",
        "ImageDecodeError",
        "JobFailedError",
        "KeyProvider",
        "MissingApiKeyError",
        "NoImagesError",
        "Orchestrator",
        "OrchestratorError",
        "OrchestratorStatus",
        "Phase",
        "PhaseTimings",
        "ProgressCallback",
        "ProgressEvent",
        "RetryPolicy",
        "RunPodAuthError",
        "RunPodError",
        "SettingsError",
        "Secret",
        "Settings",
        "Stage",
        "StaticKeys",
        "SwarmUIError",
        "Timeouts",
        "TransportError",
        "WaitReason",
        "NoCapacityError",
        "WorkerCrashLoopError",
        "WorkerNotReadyError",
    },
    "statecharts": {
        "Chart",
        "GenerationChart",
        "GenerationStates",
        "Outcome",
        "PathRecorder",
        "StateVisit",
        "TransitionNotAllowed",
        "WorkerChart",
        "WorkerStates",
    },
    "observability.diagrams": {"mermaid", "svg", "write_diagrams"},
    "orchestrator.replay": {
        "Cassette",
        "CassetteError",
        "CassetteMocks",
        "CassetteRecorder",
        "CassetteReport",
        "CassetteServer",
        "Exchange",
        "FaultStep",
        "GenerationOutcome",
        "RequestOutcome",
        "RequestStep",
        "Scenario",
        "ScenarioError",
        "ScenarioReport",
        "add_cassette_mocks",
        "cassette_mocks",
        "load_cassette",
        "load_scenario",
        "replay_cassette",
        "replay_cassette_blocking",
        "run_scenario",
        "run_scenario_blocking",
    },
    "orchestrator.workers": {
        "Admission",
        "AutoStation",
        "ClusterPool",
        "GpuBudget",
        "IdleWindow",
        "JournalEntry",
        "LeaseJournal",
        "LeaseTerms",
        "PROBE_INTERVAL_S",
        "PoolStatus",
        "PrewarmRule",
        "PrewarmSchedule",
        "Recovery",
        "RunnerTimes",
        "Seat",
        "SharedPools",
        "Station",
        "V1Protocol",
        "V2Protocol",
        "WaitReason",
        "Waiting",
        "WaitingCallback",
        "WorkerHandle",
        "WorkerPool",
        "WorkerSession",
        "recover_leases",
    },
    "orchestrator.accounts": {
        "ACCOUNTS_HOLD",
        "PERMISSIONS",
        "Accounts",
        "Permission",
        "Role",
        "TokenInfo",
        "User",
        "permissions_of",
        "role_has",
    },
    "orchestrator.service": {"ServiceConfig", "SwarmpodService", "route_table"},
    "orchestrator.store": {
        "ACCOUNTS",
        "BUDGETS",
        "CATALOGS",
        "JOURNAL",
        "POOL",
        "REPLICAS",
        "Component",
        "DatabaseUrl",
        "Dialect",
        "Migration",
        "Params",
        "PostgresStore",
        "Row",
        "SqliteStore",
        "StateStore",
        "Statements",
        "Transaction",
        "migrate",
        "open_component",
        "opened_store",
    },
    "observability": {
        "REDACTED",
        "ChartSpans",
        "CostLedger",
        "EndpointBilling",
        "GenerationCost",
        "GenerationTrace",
        "GenerationTraces",
        "Instruments",
        "JsonLinesSpanExporter",
        "OpenSpans",
        "PoolReading",
        "RedactingFilter",
        "ReportSummary",
        "SpanEventRecord",
        "SpanRecord",
        "Telemetry",
        "TraceContextFilter",
        "WorkerBill",
        "WorkerTrace",
        "WorkerTraces",
        "build_report",
        "configure_logging",
        "end_worker_span",
        "otlp_configured",
        "read_trace_file",
        "record_cost_span",
        "record_settled",
        "record_retry",
        "record_api_call",
        "request_span",
        "RequestSpan",
        "redact",
        "register_secret",
        "span_attributes",
        "span_time_ns",
        "write_report",
    },
}
DOCUMENTED_PACKAGES = [
    "orchestrator.accounts",
    "orchestrator.service",
    "orchestrator",
    "orchestrator.runpod",
    "orchestrator.swarmui",
    "orchestrator.workers",
    "orchestrator.emulator",
    "orchestrator.emulator.swarm",
    "orchestrator.replay",
    "orchestrator.store",
    "statecharts",
    "observability",
    "observability.diagrams",
]


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_all_is_exactly_the_intended_public_names(package: str) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) == PUBLIC[package]


@pytest.mark.parametrize("package", DOCUMENTED_PACKAGES)
def test_every_public_symbol_exists_and_has_a_docstring(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__doc__, f"{package} has no module docstring"
    for name in module.__all__:
        symbol = getattr(module, name)
        if inspect.isclass(symbol) or inspect.isfunction(symbol):
            assert inspect.getdoc(symbol), f"{package}.{name} has no docstring"


def test_the_error_tree_in_the_docstring_names_every_error_class() -> None:
    from orchestrator import errors

    classes = {
        name
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), errors.OrchestratorError)
    }
    drawn = set(errors.__doc__.split()) if errors.__doc__ else set()
    assert classes <= drawn, f"not drawn in errors.py's tree: {sorted(classes - drawn)}"

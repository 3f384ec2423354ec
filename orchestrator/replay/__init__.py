"""Replay: scenario files run against the emulator in virtual time, with a verdict."""

from ._runner import RequestOutcome as RequestOutcome
from ._runner import ScenarioReport as ScenarioReport
from ._runner import run_scenario as run_scenario
from ._runner import run_scenario_blocking as run_scenario_blocking
from ._scenario import FaultStep as FaultStep
from ._scenario import RequestStep as RequestStep
from ._scenario import Scenario as Scenario
from ._scenario import ScenarioError as ScenarioError
from ._scenario import load_scenario as load_scenario

__all__ = [
    "FaultStep",
    "RequestOutcome",
    "RequestStep",
    "Scenario",
    "ScenarioError",
    "ScenarioReport",
    "load_scenario",
    "run_scenario",
    "run_scenario_blocking",
]

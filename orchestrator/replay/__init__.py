"""Replay: scenario files run against the emulator, and cassettes of recorded runs played back.

Both run the engine in virtual time and end in a verdict:

- a *scenario* (TOML) scripts the emulator, its faults and the requests, with expectations;
- a *cassette* (JSON lines) holds every HTTP exchange of a recorded run — against the
  emulator or real RunPod — which a local server answers again with the recorded timing, so the
  engine re-runs the exact provider timeline and must reach the recorded outcome.
"""

from ._cassette import Cassette as Cassette
from ._cassette import CassetteError as CassetteError
from ._cassette import Exchange as Exchange
from ._cassette import GenerationOutcome as GenerationOutcome
from ._cassette_load import load_cassette as load_cassette
from ._cassette_replay import CassetteReport as CassetteReport
from ._cassette_replay import replay_cassette as replay_cassette
from ._cassette_replay import replay_cassette_blocking as replay_cassette_blocking
from ._cassette_server import CassetteServer as CassetteServer
from ._recorder import CassetteRecorder as CassetteRecorder
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
    "Cassette",
    "CassetteError",
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
    "load_cassette",
    "load_scenario",
    "replay_cassette",
    "replay_cassette_blocking",
    "run_scenario",
    "run_scenario_blocking",
]

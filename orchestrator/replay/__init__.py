"""Replay: scenario files run against the emulator, and cassettes of recorded runs played back.

Both run the engine in virtual time and end in a verdict:

- a *scenario* (TOML) scripts the emulator, its faults and the requests, with expectations;
- a *cassette* (JSON lines) holds every HTTP exchange of a recorded run — against the
  emulator or real RunPod — which a local server answers again with the recorded timing, so the
  engine re-runs the exact provider timeline and must reach the recorded outcome.

:func:`cassette_mocks` turns a cassette into aioresponses mocks instead (the ``testing``
extra), so an embedder's unit tests replay a recorded RunPod timeline with no server at all.
The blocking runners need the ``replay`` extra (looptime).
"""

from ._cassette import Cassette as Cassette
from ._cassette import CassetteError as CassetteError
from ._cassette import Exchange as Exchange
from ._cassette import GenerationOutcome as GenerationOutcome
from ._cassette_load import load_cassette as load_cassette
from ._cassette_mocks import CassetteMocks as CassetteMocks
from ._cassette_mocks import add_cassette_mocks as add_cassette_mocks
from ._cassette_mocks import cassette_mocks as cassette_mocks
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
]

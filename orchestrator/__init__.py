"""swarmpod: SwarmUI generations on RunPod serverless workers, woken only when needed.

>>> from orchestrator import Orchestrator, Settings
"""

from ._events import Stage as Stage
from ._orchestrator import Orchestrator as Orchestrator
from ._orchestrator import OrchestratorStatus as OrchestratorStatus
from ._progress import ProgressCallback as ProgressCallback
from ._progress import ProgressEvent as ProgressEvent
from ._result import GenerationResult as GenerationResult
from ._result import PhaseTimings as PhaseTimings
from ._retry import RetryPolicy as RetryPolicy
from .errors import BudgetExceededError as BudgetExceededError
from .errors import GenerationFailedError as GenerationFailedError
from .errors import GenerationTimeoutError as GenerationTimeoutError
from .errors import ImageDecodeError as ImageDecodeError
from .errors import JobFailedError as JobFailedError
from .errors import MissingApiKeyError as MissingApiKeyError
from .errors import NoCapacityError as NoCapacityError
from .errors import NoImagesError as NoImagesError
from .errors import OrchestratorError as OrchestratorError
from .errors import Phase as Phase
from .errors import RunPodAuthError as RunPodAuthError
from .errors import RunPodError as RunPodError
from .errors import SettingsError as SettingsError
from .errors import SwarmUIError as SwarmUIError
from .errors import TransportError as TransportError
from .errors import WorkerCrashLoopError as WorkerCrashLoopError
from .errors import WorkerNotReadyError as WorkerNotReadyError
from .keys import KeyProvider as KeyProvider
from .keys import StaticKeys as StaticKeys
from .secrets import Secret as Secret
from .settings import Settings as Settings
from .settings import Timeouts as Timeouts
from .swarmui import GeneratedImage as GeneratedImage
from .workers import WaitReason as WaitReason

__all__ = [
    "BudgetExceededError",
    "GeneratedImage",
    "GenerationFailedError",
    "GenerationResult",
    "GenerationTimeoutError",
    "ImageDecodeError",
    "JobFailedError",
    "KeyProvider",
    "MissingApiKeyError",
    "NoCapacityError",
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
    "Secret",
    "Settings",
    "SettingsError",
    "Stage",
    "StaticKeys",
    "SwarmUIError",
    "Timeouts",
    "TransportError",
    "WaitReason",
    "WorkerCrashLoopError",
    "WorkerNotReadyError",
]

"""Workers: how swarmpod wakes, holds, shares and releases RunPod workers.

- :class:`LeasePool` (protocol v2): leases on warm workers, scaled out to ``MaxWorkers`` and
  released after the idle window; :class:`SharedV1Worker` (protocol v1): one worker per
  endpoint; :class:`AutoStation`: leases first, v1 when the endpoint refuses them.
- :class:`Admission`: the ``MaxConcurrent`` limit; :class:`IdleWindow`; prewarm schedules;
  the :class:`LeaseJournal` that makes release crash-safe; :class:`GpuBudget` per user.
"""

from ._admission import Admission as Admission
from ._budget import GpuBudget as GpuBudget
from ._handle import Seat as Seat
from ._handle import WakeReceipt as WakeReceipt
from ._handle import WorkerHandle as WorkerHandle
from ._handle import copy_failure as copy_failure
from ._idle import IdleWindow as IdleWindow
from ._journal import JournalEntry as JournalEntry
from ._journal import LeaseJournal as LeaseJournal
from ._journal import Recovery as Recovery
from ._journal import recover_leases as recover_leases
from ._pool import LeasePool as LeasePool
from ._pool import PoolStatus as PoolStatus
from ._readiness import wait_until_swarm_ready as wait_until_swarm_ready
from ._schedule import PrewarmRule as PrewarmRule
from ._schedule import PrewarmSchedule as PrewarmSchedule
from ._shared_v1 import SharedV1Worker as SharedV1Worker
from ._station import AutoStation as AutoStation
from ._station import Station as Station
from ._v1 import V1Protocol as V1Protocol
from ._v1 import WakeWatcher as WakeWatcher
from ._v2 import LeaseTerms as LeaseTerms
from ._v2 import LeaseWatcher as LeaseWatcher
from ._v2 import V2Protocol as V2Protocol
from ._waiting import Waiting as Waiting
from ._waiting import WaitingCallback as WaitingCallback
from ._waiting import WaitReason as WaitReason

__all__ = [
    "Admission",
    "AutoStation",
    "GpuBudget",
    "IdleWindow",
    "JournalEntry",
    "LeaseJournal",
    "LeasePool",
    "LeaseTerms",
    "LeaseWatcher",
    "PoolStatus",
    "PrewarmRule",
    "PrewarmSchedule",
    "Recovery",
    "Seat",
    "SharedV1Worker",
    "Station",
    "V1Protocol",
    "V2Protocol",
    "WaitReason",
    "Waiting",
    "WaitingCallback",
    "WakeReceipt",
    "WakeWatcher",
    "WorkerHandle",
    "copy_failure",
    "recover_leases",
    "wait_until_swarm_ready",
]

"""Workers: how swarmpod wakes, holds, shares and releases RunPod workers.

- :class:`WorkerPool`: the workers of one endpoint and key on one protocol (v2 leases scaled
  out to ``MaxWorkers``; one shared v1 worker), each driven through its worker chart by its own
  task; :class:`AutoStation`: leases first, v1 when the endpoint refuses them;
  :class:`WorkerSession`: one use of one worker, given back on every path.
- :class:`Admission`: the ``MaxConcurrent`` limit; :class:`IdleWindow`; prewarm schedules;
  the :class:`LeaseJournal` that makes release crash-safe; :class:`GpuBudget` per user.
- :class:`V1Protocol` and :class:`V2Protocol`: the two worker protocols' RunPod jobs; a held
  v2 worker is watched through its own gateway every :data:`PROBE_INTERVAL_S` (no RunPod call).
- :class:`ClusterPool` and :class:`SharedPools`: with a PostgreSQL store, one warm lease pool
  shared by every ``swarmpod serve`` replica (its design: ``_cluster_pool``).
"""

from ._admission import Admission as Admission
from ._budget import GpuBudget as GpuBudget
from ._cluster import SharedPools as SharedPools
from ._cluster_pool import ClusterPool as ClusterPool
from ._drivers import PROBE_INTERVAL_S as PROBE_INTERVAL_S
from ._handle import Seat as Seat
from ._handle import WorkerHandle as WorkerHandle
from ._idle import IdleWindow as IdleWindow
from ._journal import JournalEntry as JournalEntry
from ._journal import LeaseJournal as LeaseJournal
from ._journal import Recovery as Recovery
from ._journal import recover_leases as recover_leases
from ._pool import PoolStatus as PoolStatus
from ._pool import WorkerPool as WorkerPool
from ._runner import RunnerTimes as RunnerTimes
from ._schedule import PrewarmRule as PrewarmRule
from ._schedule import PrewarmSchedule as PrewarmSchedule
from ._session import WorkerSession as WorkerSession
from ._station import AutoStation as AutoStation
from ._station import Station as Station
from ._v1 import V1Protocol as V1Protocol
from ._v2 import LeaseTerms as LeaseTerms
from ._v2 import V2Protocol as V2Protocol
from ._waiting import Waiting as Waiting
from ._waiting import WaitingCallback as WaitingCallback
from ._waiting import WaitReason as WaitReason

__all__ = [
    "PROBE_INTERVAL_S",
    "Admission",
    "AutoStation",
    "ClusterPool",
    "GpuBudget",
    "IdleWindow",
    "JournalEntry",
    "LeaseJournal",
    "LeaseTerms",
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
]

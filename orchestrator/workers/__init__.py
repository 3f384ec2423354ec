"""Worker protocols and admission: how swarmpod wakes, holds and releases workers."""

from ._admission import Admission as Admission
from ._handle import WakeReceipt as WakeReceipt
from ._handle import WorkerHandle as WorkerHandle
from ._idle import IdleWindow as IdleWindow
from ._journal import JournalEntry as JournalEntry
from ._journal import LeaseJournal as LeaseJournal
from ._journal import Recovery as Recovery
from ._journal import recover_leases as recover_leases
from ._schedule import PrewarmRule as PrewarmRule
from ._schedule import PrewarmSchedule as PrewarmSchedule
from ._shared_v1 import SharedV1Worker as SharedV1Worker
from ._v1 import V1Protocol as V1Protocol
from ._v1 import WakeWatcher as WakeWatcher
from ._v2 import LeaseTerms as LeaseTerms
from ._v2 import LeaseWatcher as LeaseWatcher
from ._v2 import V2Protocol as V2Protocol

__all__ = [
    "Admission",
    "IdleWindow",
    "JournalEntry",
    "LeaseJournal",
    "LeaseTerms",
    "LeaseWatcher",
    "PrewarmRule",
    "PrewarmSchedule",
    "Recovery",
    "SharedV1Worker",
    "V1Protocol",
    "V2Protocol",
    "WakeReceipt",
    "WakeWatcher",
    "WorkerHandle",
    "recover_leases",
]

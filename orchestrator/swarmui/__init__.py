"""The SwarmUI client: sessions, parameter serialization, HTTP and WebSocket generation.

Built to specs/swarmui-api.md. ``SwarmUIClient`` talks to one SwarmUI server through a
caller-owned ``aiohttp.ClientSession``; ``serialize_params`` and ``clean_param_id`` turn caller
parameters into SwarmUI's request body; ``check_params`` refuses numbers SwarmUI would refuse
(``T2I_LIMITS``), before a worker is woken.
"""

from ._client import SwarmUIClient as SwarmUIClient
from ._images import decode_data_url as decode_data_url
from ._images import decode_image as decode_image
from ._limits import T2I_LIMITS as T2I_LIMITS
from ._limits import ParamLimit as ParamLimit
from ._limits import check_params as check_params
from ._models import BackendInfo as BackendInfo
from ._models import GeneratedImage as GeneratedImage
from ._models import GenerationEvent as GenerationEvent
from ._models import ImageReady as ImageReady
from ._models import ModelListing as ModelListing
from ._models import Progress as Progress
from ._models import RequestSent as RequestSent
from ._models import SessionInfo as SessionInfo
from ._models import StatusUpdate as StatusUpdate
from ._params import clean_param_id as clean_param_id
from ._params import serialize_params as serialize_params

__all__ = [
    "T2I_LIMITS",
    "BackendInfo",
    "GeneratedImage",
    "GenerationEvent",
    "ImageReady",
    "ModelListing",
    "ParamLimit",
    "Progress",
    "RequestSent",
    "SessionInfo",
    "StatusUpdate",
    "SwarmUIClient",
    "check_params",
    "clean_param_id",
    "decode_data_url",
    "decode_image",
    "serialize_params",
]

"""Webhook delivery of the emulated platform (runpod-api.md §2.1, §3).

On a terminal state RunPod POSTs the job's status object to the request's ``webhook`` URL. It
expects a 200; otherwise it retries twice more, 10 s apart (both configurable in the emulator).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import anyio

__all__ = ["WebhookCall", "deliver_webhook"]

_log = logging.getLogger("swarmpod.emulator")
_ATTEMPT_TIMEOUT_S: Final = 10.0


@dataclass(frozen=True)
class WebhookCall:
    """One webhook delivery attempt.

    Attributes:
        job_id: the job whose terminal status was sent.
        url: where it was POSTed.
        attempt: 1 for the first try, then 2, 3, ...
        status: the receiver's HTTP status; None when the request failed (refused, timeout).
        at: loop time of the attempt.
    """

    job_id: str
    url: str
    attempt: int
    status: int | None
    at: float


async def deliver_webhook(
    job_id: str,
    url: str,
    body: dict[str, Any],
    *,
    retries: int,
    retry_delay_s: float,
    record: Callable[[WebhookCall], None],
) -> None:
    """POST ``body`` to ``url`` until it answers 200, at most ``1 + retries`` times."""
    timeout = aiohttp.ClientTimeout(total=_ATTEMPT_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for attempt in range(1, retries + 2):
            if attempt > 1:
                await anyio.sleep(retry_delay_s)
            at = anyio.current_time()
            status: int | None = None
            try:
                async with session.post(url, json=body) as response:
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                _log.info("[Emulator] webhook for %s to %s failed: %r", job_id, url, exc)
            record(WebhookCall(job_id, url, attempt, status, at))
            if status == 200:
                return

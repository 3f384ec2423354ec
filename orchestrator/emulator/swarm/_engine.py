"""Running one generation in the fake: backend wait, model load, timed sampling, images.

The message sequence follows specs/swarmui-api.md §3.2; outputs follow §3.1.
"""

from __future__ import annotations

import base64
import json
import random
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

import anyio

from ._render import image_params, render_jpeg_preview, render_png
from ._state import Generation, SwarmState
from ._t2i import T2IRequest

__all__ = ["Emit", "GenerationFailed", "Output", "run_generation"]

Emit = Callable[[dict[str, Any]], Awaitable[None]]
Output = tuple[int, str]
"""(batch index, ``images`` entry: a data URL or a ``View/...`` path)."""

_UNSAFE: Final = re.compile(r'[\\/:*?"<>|\n\r\t]')
_BAD_BASE64: Final = "data:image/png;base64,@@this is not base64@@"
_MAX_RANDOM_SEED: Final = 2**31 - 2
# A wait is at least a microsecond: a shorter one may not move a virtual clock (looptime's
# moves on a microsecond grid), and a loop waiting for a deadline a hair ahead would spin.
_MIN_WAIT_S: Final = 1e-6
_rng = random.Random()


class GenerationFailed(Exception):  # noqa: N818 - mirrors SwarmUI's wording, not raised outward
    """The generation failed with SwarmUI's ``text`` (answered as ``{"error": text}``)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


async def _no_emit(message: dict[str, Any]) -> None:
    return None


class _Run:
    """One generation request's run; ``emit`` is None for HTTP (no streaming)."""

    def __init__(
        self,
        state: SwarmState,
        generation: Generation,
        request: T2IRequest,
        emit: Emit | None,
        abort_connection: Callable[[], None],
        batch_offset: int,
    ) -> None:
        self.state = state
        self.generation = generation
        self.session = generation.session
        self.request = request
        self.streaming = emit is not None
        self.emit = emit or _no_emit
        self.abort_connection = abort_connection
        self.batch_offset = batch_offset
        faults = state.faults
        self.hang = faults.take("hang_generation")
        self.no_images = faults.take("no_images")
        self.bad_base64 = faults.take("bad_base64")
        self.drop = faults.take("drop_connection")
        self.save = not request.donotsave or faults.take("ignore_donotsave")
        self.slow = faults.slow_factor

    async def status(self) -> None:
        await self.emit(self.state.status_object(self.session))

    async def wait_for_backend(self) -> None:
        state = self.state.backend_state()
        if state in ("errored", "disabled", "none", "idle"):
            raise GenerationFailed("No backends available!")
        if state != "loading":
            return
        self.session.waiting_backends += 1
        try:
            await self.status()
            while self.state.backend_state() == "loading":
                ends = self.state.loading_ends_at()
                now = anyio.current_time()
                await anyio.sleep(max(ends - now, _MIN_WAIT_S) if ends is not None else 0.5)
        finally:
            self.session.waiting_backends -= 1
        if self.state.backend_state() != "running":
            raise GenerationFailed("No backends available!")

    def model_name(self) -> str | None:
        if self.request.model is not None:
            return self.request.model
        if self.state.current_model is not None:
            return self.state.current_model
        models = self.state.catalog.of("Stable-Diffusion")
        return models[0].name if models else None

    async def ensure_model(self, model: str | None) -> None:
        if model is None or model == self.state.current_model:
            return
        async with self.state.model_lock:
            if model == self.state.current_model:
                return
            self.session.loading_models += 1
            self.state.model_loads_started += 1
            self.state.model_loads_in_flight += 1
            self.state.notify_activity()
            try:
                await self.status()
                await anyio.sleep(self.state.config.model_load_s)
                self.state.current_model = model
                self.state.last_activity_at = anyio.current_time()
            finally:
                self.session.loading_models -= 1
                self.state.model_loads_in_flight -= 1
                self.state.notify_activity()

    def output_path(self, model: str | None) -> str:
        state = self.state
        state.output_counter += 1
        when = state.now()
        prompt = _UNSAFE.sub("", self.request.prompt)[:40].strip() or "image"
        stem = (model or "none").rsplit("/", 1)[-1].removesuffix(".safetensors")
        name = f"{when:%H%M}{state.output_counter}-{prompt}-{stem}.png"
        return f"View/{self.session.user_id}/raw/{when:%Y-%m-%d}/{name}"

    async def sample(self, index: int, batch: int, seed: int) -> None:
        updates = max(self.state.config.progress_updates, 1)
        total = self.request.steps * self.state.config.seconds_per_step * self.slow
        images = self.request.images
        for step in range(1, updates + 1):
            await anyio.sleep(total / updates)
            if self.drop:
                self.abort_connection()
                await anyio.sleep_forever()
            if not self.streaming:
                continue
            progress: dict[str, Any] = {
                "batch_index": str(batch),
                "request_id": str(self.generation.request_id),
                "overall_percent": (index + step / updates) / images,
                "current_percent": step / updates,
            }
            if not self.request.nopreviews:
                jpeg = render_jpeg_preview(self.request.prompt, seed, step)
                progress["preview"] = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
            await self.emit({"gen_progress": progress})

    async def one_image(self, index: int, seed: int, model: str | None) -> Output | None:
        request = self.request
        batch = self.batch_offset + index
        self.session.live_gens += 1
        try:
            await self.status()
            if self.hang:
                await anyio.sleep_forever()
            await self.sample(index, batch, seed)
        finally:
            self.session.live_gens -= 1
            self.state.last_used_at = anyio.current_time()
        if self.no_images:
            return None
        png = render_png(request.prompt, seed, request.width, request.height, model=model)
        if self.bad_base64:
            entry = _BAD_BASE64
        elif self.save:
            entry = self.output_path(model)
            self.state.outputs[entry] = png
        else:
            entry = "data:image/png;base64," + base64.b64encode(png).decode()
        if request.forwardswarmdata:
            await self.emit({"raw_swarm_data": {"params_used": sorted(request.params)}})
        metadata = {
            "sui_image_params": image_params(
                request.prompt, seed, request.width, request.height, model
            )
        }
        await self.emit(
            {
                "image": entry,
                "batch_index": str(batch),
                "request_id": str(self.generation.request_id),
                "metadata": json.dumps(metadata),
            }
        )
        await self.status()
        return batch, entry

    async def run(self) -> list[Output]:
        request = self.request
        await self.status()
        if self.state.faults.take("generation_error"):
            raise GenerationFailed(self.state.faults.error_text)
        seed = request.seed if request.seed != -1 else _rng.randint(0, _MAX_RANDOM_SEED)
        pending = request.images
        self.session.waiting_gens += pending
        outputs: list[Output] = []
        try:
            await self.wait_for_backend()
            model = self.model_name()
            for index in range(request.images):
                async with self.state.limiter:
                    pending -= 1
                    self.session.waiting_gens -= 1
                    await self.ensure_model(model)
                    image_seed = seed if request.noseedincrement else seed + index
                    output = await self.one_image(index, image_seed, model)
                if output is not None:
                    outputs.append(output)
        finally:
            self.session.waiting_gens -= pending
        return outputs


async def run_generation(
    state: SwarmState,
    generation: Generation,
    request: T2IRequest,
    *,
    emit: Emit | None = None,
    abort_connection: Callable[[], None] = lambda: None,
    batch_offset: int = 0,
) -> list[Output] | None:
    """Run one generation request; return its outputs, or None if InterruptAll stopped it.

    Raises:
        GenerationFailed: the generation failed (injected error, no backend).
    """
    state.in_flight.add(generation)
    state.generations_started += 1
    state.notify_activity()
    try:
        with generation.scope:
            run = _Run(state, generation, request, emit, abort_connection, batch_offset)
            return await run.run()
        return None
    finally:
        state.in_flight.discard(generation)
        state.generations_finished += 1
        state.last_activity_at = anyio.current_time()
        state.notify_activity()

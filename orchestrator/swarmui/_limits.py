"""SwarmUI's limits on T2I parameters, checked before any RunPod call.

SwarmUI refuses a number outside a parameter's registered range only once a worker is awake
and billing; swarmpod checks the same ranges first, with SwarmUI's own error texts, so a typo
costs nothing. The table is SwarmUI's core registry (``src/Text2Image/T2IParamTypes.cs``:
every ``Register<int|long|double>`` with its ``Min``, ``Max`` and ``IgnoreIf``; ControlNet's
three sets), checked the way ``T2IParamTypes.ValidateParam`` does:

- the value becomes the text SwarmUI sees (``$"{JToken}"``: ``20.0`` is ``20``, ``true`` is
  ``True``), and a text equal to the parameter's ``IgnoreIf`` removes it (not checked);
- an integer parameter must parse as a C# ``long`` (``1.5``, ``NaN``, ``"abc"`` do not), a
  decimal one as a C# ``double`` (thousands commas allowed); then ``Min <= value <= Max``;
- the error is ``Invalid value for parameter <Name>: Invalid integer value for param <Name> -
  '<value>' - must be between <Min> and <Max>`` (or ``must be a valid integer (eg '0', '3',
  '-5', etc)``), as SwarmUI words it.

One deliberate difference: a decimal ``NaN`` is refused ("must be a valid decimal"); SwarmUI
lets it through its range check (every comparison with NaN is false) and the GPU then renders
noise. Parameters not in the table (text, models, dropdowns, extensions' own, unknown ids)
pass unchecked: SwarmUI judges them.
"""

from __future__ import annotations

import decimal
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..errors import InvalidParameterError
from ._params import clean_param_id, serialize_params

__all__ = ["T2I_LIMITS", "ParamLimit", "check_params"]

_LONG_MAX: Final = 2**63 - 1
_UINT_MAX: Final = 2**32 - 1
_LONG_MIN: Final = -(2**63)
_SHOWN_CHARS: Final = 100
_INTEGER_TEXT: Final = re.compile(r"\s*[+-]?[0-9]+\s*")
_DECIMAL_TEXT: Final = re.compile(
    r"\s*[+-]?(?:[0-9][0-9,]*(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*"
)
_DECIMAL_WORDS: Final = {"infinity": math.inf, "+infinity": math.inf, "-infinity": -math.inf}
_RENAMED: Final = {"textvideofps": "videofps"}  # SwarmUI's renamed old ids (numeric ones)
_RAW_RESOLUTION: Final = "rawresolution"
_SIDE_RANGE: Final = (64, 16384)


@dataclass(frozen=True)
class ParamLimit:
    """A numeric T2I parameter as SwarmUI registers it.

    >>> T2I_LIMITS["steps"]
    ParamLimit(name='Steps', integer=True, minimum=0, maximum=500, ignore_if=None)

    Attributes:
        name: SwarmUI's display name (used in its error texts).
        integer: an INTEGER parameter (else DECIMAL).
        minimum: the lowest value taken.
        maximum: the highest value taken.
        ignore_if: the text that removes the parameter instead (SwarmUI's ``IgnoreIf``).
    """

    name: str
    integer: bool
    minimum: float
    maximum: float
    ignore_if: str | None = None

    def check(self, value: Any) -> None:
        """Refuse ``value`` (a JSON value as sent to SwarmUI) as SwarmUI would.

        Raises:
            InvalidParameterError: it does not parse, or is out of range.
        """
        text = swarm_text(value)
        if text == self.ignore_if:
            return
        number = _parse_integer(text) if self.integer else _parse_decimal(text)
        kind = "integer" if self.integer else "decimal"
        if number is None:
            example = "'0', '3', '-5'" if self.integer else "'0.0', '3.5', '-5.2'"
            self._refuse(text, f"must be a valid {kind} (eg {example}, etc)", kind)
        elif not self.minimum <= number <= self.maximum:
            bounds = f"{dotnet_number(self.minimum)} and {dotnet_number(self.maximum)}"
            self._refuse(text, f"must be between {bounds}", kind)

    def _refuse(self, text: str, rule: str, kind: str) -> None:
        shown = text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."
        raise InvalidParameterError(
            f"Invalid value for parameter {self.name}: Invalid {kind} value for param "
            f"{self.name} - '{shown}' - {rule}",
            parameter=clean_param_id(self.name),
            value=shown,
        )


def _integer(name: str, minimum: int, maximum: int, *, ignore_if: str | None = None) -> ParamLimit:
    return ParamLimit(name, True, minimum, maximum, ignore_if)


def _decimal(
    name: str, minimum: float, maximum: float, *, ignore_if: str | None = None
) -> ParamLimit:
    return ParamLimit(name, False, minimum, maximum, ignore_if)


T2I_LIMITS: Final[Mapping[str, ParamLimit]] = {
    clean_param_id(limit.name): limit
    for limit in (
        _decimal("ReVision Strength", 0, 10, ignore_if="0"),
        _integer("Images", 1, 10000, ignore_if="1"),
        _integer("Seed", -1, _LONG_MAX),
        _integer("Steps", 0, 500),
        _decimal("CFG Scale", 0, 100),
        _integer("Text2Video Frames", 1, 1000),
        _decimal("Text2Audio Duration", 1, 1000),
        _integer("Text2Audio BPM", 10, 300),
        _integer("Variation Seed", -1, _UINT_MAX),
        _decimal("Variation Seed Strength", 0, 1, ignore_if="0"),
        _integer("Width", 64, 16384),
        _integer("Height", 64, 16384),
        _integer("Side Length", 64, 16384),
        _integer("Cascade Latent Compression", 1, 100, ignore_if="32"),
        _decimal("Flux Guidance Scale", 0, 100),
        _decimal("Init Image Creativity", 0, 1),
        _decimal("Init Image Reset To Norm", 0, 1, ignore_if="0"),
        _decimal("Init Image Noise", 0, 10, ignore_if="0"),
        _integer("Mask Shrink Grow", 0, 512),
        _integer("Mask Blur", 0, 64, ignore_if="0"),
        _integer("Mask Grow", 0, 256, ignore_if="0"),
        _decimal("Refiner Control Percentage", 0, 1),
        _decimal("Refiner Upscale", 0.25, 8, ignore_if="1"),
        _integer("Refiner Steps", 1, 200),
        _decimal("Refiner CFG Scale", 0, 100),
        _decimal("ControlNet Strength", 0, 2),
        _decimal("ControlNet Two Strength", 0, 2),
        _decimal("ControlNet Three Strength", 0, 2),
        _decimal("ControlNet Start", 0, 1, ignore_if="0"),
        _decimal("ControlNet Two Start", 0, 1, ignore_if="0"),
        _decimal("ControlNet Three Start", 0, 1, ignore_if="0"),
        _decimal("ControlNet End", 0, 1, ignore_if="1"),
        _decimal("ControlNet Two End", 0, 1, ignore_if="1"),
        _decimal("ControlNet Three End", 0, 1, ignore_if="1"),
        _decimal("Video Swap Percent", 0, 1),
        _integer("Video Frames", 1, 1000),
        _integer("Video Steps", 1, 200),
        _decimal("Video CFG", 1, 100),
        _decimal("Video2Video Creativity", 0, 1, ignore_if="1"),
        _integer("Video FPS", 1, 1024),
        _decimal("Video Min CFG", -1, 100),
        _integer("Video Motion Bucket", 1, 1023),
        _decimal("Video Augmentation Level", 0, 10),
        _integer("Trim Video Start Frames", 0, 1000, ignore_if="0"),
        _integer("Trim Video End Frames", 0, 1000, ignore_if="0"),
        _integer("Video Extend Frame Overlap", 1, 128),
        _decimal("Video Extend Swap Percent", 0, 1),
        _integer("Batch Size", 1, 100, ignore_if="1"),
        _decimal("Alt Resolution Height Multiplier", 0, 10),
        _integer("Wildcard Seed", -1, _UINT_MAX),
        _decimal("Global Region Factor", 0, 1, ignore_if="0.5"),
        _decimal("Regional Object Cleanup Factor", 0, 1, ignore_if="0"),
        _integer("Segment Mask Blur", 0, 64),
        _integer("Segment Mask Grow", 0, 512),
        _integer("Segment Mask Oversize", 0, 512),
        _decimal("Segment Threshold Max", 0, 1),
        _integer("Segment Steps", 1, 200),
        _decimal("Segment CFG Scale", 0, 100),
        _decimal("Sampler Sigma Min", 0, 1000),
        _decimal("Sampler Sigma Max", 0, 1000),
        _decimal("Sigma Shift", 0, 100),
        _decimal("Sampler Rho", 0, 1000),
        _decimal("IP2P CFG 2", 1, 100),
        _integer("CLIP Stop At Layer", -24, -1),
        _integer("VAE Tile Size", 128, 4096),
        _integer("VAE Tile Overlap", 0, 4096),
        _integer("VAE Temporal Tile Size", 8, 4096),
        _integer("VAE Temporal Tile Overlap", 4, 4096),
        _decimal("Conditioning Multiplier", -100, 100),
        _decimal("Negative Conditioning Multiplier", -100, 100),
        _decimal("End Steps Early", 0, 1, ignore_if="0"),
        _decimal("[FreeU] Block One", 0, 10),
        _decimal("[FreeU] Block Two", 0, 10),
        _decimal("[FreeU] Skip One", 0, 10),
        _decimal("[FreeU] Skip Two", 0, 10),
        _decimal("Audio Silent Prefix Duration", 0, 9999),
        _decimal("Audio Silent Suffix Duration", 0, 9999),
    )
}
"""Every numeric T2I parameter of SwarmUI's core registry, by cleaned id."""


def check_params(params: Mapping[str, Any], *, images: int | None = None) -> None:
    """Refuse T2I parameters SwarmUI would refuse for their numbers, before a worker wakes.

    ``params`` are the caller's parameters as :meth:`Orchestrator.generate` takes them (they
    are checked as :func:`serialize_params` sends them); ``images`` is the image count (also
    read from ``params["images"]``). Unknown and non-numeric parameters pass.

    >>> check_params({"prompt": "a cat", "steps": 20, "cfg_scale": 7.5, "whatever": "x"})
    >>> check_params({"steps": 900})
    Traceback (most recent call last):
    ...
    orchestrator.errors.InvalidParameterError: Invalid value for parameter Steps: Invalid \
integer value for param Steps - '900' - must be between 0 and 500

    Raises:
        InvalidParameterError: the first parameter out of range or not a number.
    """
    for count in (params.get("images"), images):
        if count is not None:
            T2I_LIMITS["images"].check(count)
    for key, value in serialize_params(params).items():
        cleaned = clean_param_id(key)
        limit = T2I_LIMITS.get(_RENAMED.get(cleaned, cleaned))
        if limit is not None:
            limit.check(value)
        elif cleaned == _RAW_RESOLUTION:
            _check_raw_resolution(swarm_text(value))


def _check_raw_resolution(text: str) -> None:
    """``rawresolution`` is ``WIDTHxHEIGHT``, each side 64..16384 (its ``Clean`` in SwarmUI)."""
    width, _, height = text.partition("x")
    sides = [_parse_integer(side) for side in (width, height)]
    low, high = _SIDE_RANGE
    if all(side is not None and low <= side <= high for side in sides):
        return
    shown = text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."
    raise InvalidParameterError(
        f"Invalid value for parameter Raw Resolution: Invalid resolution: {shown} (must be "
        f"between {low}x{low} and {high}x{high})",
        parameter=_RAW_RESOLUTION,
        value=shown,
    )


def swarm_text(value: Any) -> str:
    """The text SwarmUI makes of a JSON value before it parses a parameter (``$"{JToken}"``).

    >>> [swarm_text(v) for v in (20, 20.0, 7.5, True, "12", 1e20)]
    ['20', '20', '7.5', 'True', '12', '1E+20']
    """
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return dotnet_number(value)
    if isinstance(value, list | tuple):
        return "\n|||\n".join(swarm_text(item) for item in value)
    if isinstance(value, Mapping):
        return json.dumps(value)
    return str(value)


def dotnet_number(number: float) -> str:
    """A number as .NET's ``double.ToString()`` writes it (shortest round trip; scientific
    from 1E+15 up and below 1E-05).

    >>> [dotnet_number(n) for n in (0, 500, 0.25, -1, 2**63 - 1, 1e15, 1e-05, float("nan"))]
    ['0', '500', '0.25', '-1', '9.223372036854776E+18', '1E+15', '1E-05', 'NaN']
    """
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"
    shortest = decimal.Decimal(repr(float(number))).normalize()
    sign, digits, exponent = shortest.as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    power = len(digits) - 1 + exponent  # the position of the first digit
    prefix = "-" if sign else ""
    if power >= 15 or power < -4:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}E{'+' if power >= 0 else '-'}{abs(power):02d}"
    if power < 0:
        return f"{prefix}0.{'0' * (-power - 1)}{text}"
    whole = text[: power + 1].ljust(power + 1, "0")
    fraction = text[power + 1 :]
    return f"{prefix}{whole}{'.' + fraction if fraction else ''}"


def _parse_integer(text: str) -> int | None:
    """C#'s ``long.TryParse`` (invariant culture): None when it fails."""
    if not _INTEGER_TEXT.fullmatch(text):
        return None
    number = int(text.strip())
    return number if _LONG_MIN <= number <= _LONG_MAX else None


def _parse_decimal(text: str) -> float | None:
    """C#'s ``double.TryParse`` (invariant culture; ``NaN`` refused, see the module doc)."""
    word = text.strip().lower()
    if word in _DECIMAL_WORDS:
        return _DECIMAL_WORDS[word]
    if not _DECIMAL_TEXT.fullmatch(text):
        return None
    return float(text.strip().replace(",", ""))

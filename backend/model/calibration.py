"""The match calibration: a result's raw score -> the measured chance that it is the product.

A cosine of 0.43 is not a 43 % chance: what a score means depends on the model and on the
photos. A calibration file (calibrations/<model>.json, fitted by `python -m bench.calibrate`
on shopper photos of products with their catalogue photos) maps the score of a result to the
measured fraction of results with that score that were the product in the photo. A model, weights or
scoring without a file of its own identity has no calibration: its results carry a
similarity, never a chance.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_bytes
from .specs import RUNTIMES

log = logging.getLogger(__name__)

CALIBRATIONS_DIR = Path(__file__).resolve().parent / "calibrations"
FORMAT = 1


@dataclass(frozen=True)
class Calibration:
    """chance = 1 / (1 + exp(-(slope * score + intercept))), fitted for one model identity.

    A logistic (Platt) map: two numbers, so it cannot chase the few high scores of a sample,
    and it rises with the score (slope > 0), so a higher score never shows a lower chance.
    """

    identity: str
    slope: float
    intercept: float
    # The served minimum match (whole percent) when MIN_MATCH is unset.
    default_min_match: int
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        numbers = (self.slope, self.intercept)
        if not all(isinstance(n, int | float) and math.isfinite(n) for n in numbers):
            raise ValueError("calibration slope and intercept must be finite numbers")
        if self.slope <= 0:
            raise ValueError(f"calibration slope {self.slope} must be positive")
        if not 0 <= self.default_min_match <= 100:
            raise ValueError("default_min_match must be a whole percent from 0 to 100")

    def chance(self, scores: np.ndarray) -> np.ndarray:
        """Scores (N,) -> chances (N,), strictly between 0 and 1 (0 for a score of -inf)."""
        logits = self.slope * np.asarray(scores, dtype=float) + self.intercept
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-logits))

    def matches(self, scores: np.ndarray) -> list[int]:
        """The whole percents results of these scores are shown with (rounded to nearest)."""
        return [match_percent(float(chance)) for chance in self.chance(scores)]

    def score_at(self, percent: int) -> float:
        """The lowest score shown at a minimum match of `percent` (the map inverted)."""
        chance = min(max(percent - 0.5, 1e-9), 100 - 1e-9) / 100  # where rounding reaches it
        return (math.log(chance / (1 - chance)) - self.intercept) / self.slope

    def meaning(self) -> str | None:
        """What the default minimum hides on the photos it was fitted on, in plain words."""
        measured = self.provenance.get("default_hides")
        if not measured:
            return None
        return (
            f"Measured on {self.provenance['queries']:,} shopper photos of "
            f"{self.provenance['catalog']} products: the default, {self.default_min_match} %, "
            f"hides {measured['wrong']:.0%} of the wrong products and {measured['right']:.0%} "
            "of the right ones."
        )

    def fits(self, identity: str) -> bool:
        """Whether vectors of `identity` are those it was fitted on (the runtime aside: ONNX
        Runtime and torch differ in the last digits only)."""
        return _without_runtime(identity) == _without_runtime(self.identity)


def match_percent(chance: float) -> int:
    """A chance from 0 to 1 as a whole percent (0.5 rounds up, as a shopper would)."""
    return min(100, max(0, math.floor(chance * 100 + 0.5)))


def _without_runtime(identity: str) -> str:
    """An identity without its runtime: name/weights/preprocessing, then what follows the
    runtime (an adapter's or a head's `+...`) kept, so it matches only itself."""
    parts = identity.split("/")
    runtime, plus, rest = parts[-1].partition("+")
    if len(parts) == 4 and runtime in RUNTIMES.values():
        return "/".join(parts[:3]) + plus + rest
    return identity


def calibration_path(model_name: str, folder: Path = CALIBRATIONS_DIR) -> Path:
    return folder / f"{model_name}.json"


def write_calibration(calibration: Calibration, path: Path) -> None:
    document = {"format": FORMAT, **asdict(calibration)}
    text = json.dumps(document, indent=1) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode())


def read_calibration(path: Path) -> Calibration | None:
    """The calibration in `path`; None if there is none (an unreadable file is logged)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.pop("format", None) != FORMAT:
            raise ValueError(f"format is not {FORMAT}")
        return Calibration(**document)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as error:
        log.error("ignoring the calibration %s: %s", path, error)
        return None


@functools.lru_cache(maxsize=8)
def shipped_calibration(model_name: str) -> Calibration | None:
    """The calibration shipped for a model (its default weights), if there is one."""
    return read_calibration(calibration_path(model_name))


def served_calibration(
    model_name: str, weights: str | None, head: str | None, adapter: str | None = None
) -> Calibration | None:
    """The calibration of a served model: only its default weights and bundled adapter, without
    a head, have one (other weights, adapters or a head score differently: refit for them)."""
    if weights or head or adapter:
        return None
    return shipped_calibration(model_name)

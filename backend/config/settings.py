"""`Settings`: the declared settings, and what follows from them (the served threshold...)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..model.calibration import Calibration, served_calibration
from ..model.specs import bundled_adapter, default_threshold
from ..options import SearchOptions
from .declarations import BUNDLED_CATALOG, ServiceSettings


@dataclass(frozen=True)
class Settings(ServiceSettings):
    """Every setting, validated by `load_settings`. The minimum served is `threshold`: the
    variables it is resolved from (MIN_MATCH, SIMILARITY_THRESHOLD) are inputs, not answers."""

    @property
    def bundled_catalog(self) -> bool:
        """Whether the catalog is the demo's, the only one whose images may be in static/."""
        return _same_file(self.catalog_path, BUNDLED_CATALOG)

    @property
    def image_roots(self) -> tuple[Path, ...]:
        """Where a relative image_url is looked up: the catalog's folder (and static/ for the demo)."""
        folder = self.catalog_path.parent
        static = (self.static_dir,) if self.bundled_catalog else ()
        return (folder, *static, *self.image_dirs)

    @property
    def random_weights(self) -> bool:
        return self.model_weights == "random"

    @property
    def calibration(self) -> Calibration | None:
        """The served model's match calibration (`efficientnet_lite0`'s default weights with its
        bundled adapter), if any."""
        return served_calibration(
            self.model, self.model_weights, self.model_head, self.model_adapter
        )

    @property
    def threshold(self) -> float:
        """The served default threshold, from 0 to 1: a minimum match for a calibrated model
        (MIN_MATCH, else its calibration's), else a minimum cosine (SIMILARITY_THRESHOLD, else
        the model's own default)."""
        calibration = self.calibration
        if calibration is not None:
            minimum = calibration.default_min_match if self.min_match is None else self.min_match
            return minimum / 100
        if self._similarity_threshold is not None:
            return self._similarity_threshold
        return default_threshold(self.model, adapted=self.adapter_served)

    @property
    def similarity_floor(self) -> float:
        """The served default threshold as a cosine: for a calibrated model, the lowest score
        its default minimum match shows (the search log's best similarities are held to it)."""
        calibration = self.calibration
        if calibration is None:
            return self.threshold
        return calibration.score_at(round(self.threshold * 100))

    @property
    def search_defaults(self) -> SearchOptions:
        """The search options used where a request leaves them out (the form, API, CLI, OpenAPI)."""
        return SearchOptions(k=self.top_k, threshold=self.threshold)

    @property
    def model_export_dir(self) -> Path:
        return self.model_dir or self.cache_dir / "models"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def search_log_file(self) -> Path | None:
        """Where the search log lives, or None when it is off (SEARCH_LOG_DAYS=0)."""
        if self.search_log_days == 0:
            return None
        return self.search_log_path or self.index_path.with_name("searches.sqlite")

    @property
    def search_log_max_bytes(self) -> int | None:
        """The search log's size bound in bytes, or None without one (SEARCH_LOG_MAX_MB=0)."""
        return int(self.search_log_max_mb * 1024 * 1024) or None

    @property
    def adapter_choice(self) -> tuple[str | None, bool]:
        """The adapter file to load (None: none) and whether it must fit the model."""
        if self.model_adapter is None:
            # Trained on the model's default weights, with no head on top.
            off = self.model_head or self.model_weights
            bundled = None if off else bundled_adapter(self.model)
            return (None if bundled is None else str(bundled)), False
        if self.model_adapter.lower() == "none":
            return None, False
        return self.model_adapter, True

    @property
    def adapter_served(self) -> bool:
        """Whether a shopper adapter is served: scores are the adapter's, and so is the threshold."""
        return self.adapter_choice[0] is not None

    @property
    def faiss_path(self) -> Path:
        """The FAISS backend's files live next to index.csv (a cache of it, rebuilt on sync)."""
        return self.index_path.with_name(self.index_path.name + ".faiss")


def _same_file(path: Path, other: Path) -> bool:
    try:
        return path.resolve() == other.resolve()
    except OSError:
        return False

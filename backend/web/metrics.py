"""Metrics for operators: `/metrics` in the Prometheus text format, from `prometheus_client`.

Request counts by route and status, search latency by stage (decode, embed, rank), the index
size and the model identity. Under gunicorn, every worker writes its counts to files in
PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py sets it up) and a scrape adds all workers up,
whichever worker answers it. `/metrics` needs `Authorization: Bearer <METRICS_TOKEN>`: a
scraper gets its own token, which cannot change the catalog. No setting's value is ever a label.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from ..config.server import server_value
from ..search import SearchResult
from .security import require_token

bp = Blueprint("metrics", __name__)
require_token(
    bp,
    "metrics_token",
    realm="metrics",
    off="metrics are disabled; set METRICS_TOKEN on the server to enable them",
    how="send the metrics token as the header `Authorization: Bearer <token>`",
)

EXTENSION_KEY = "metrics"
PREFIX = "image_search"
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}  # others: "other"


class Metrics:
    """This app's metric objects, in a registry of its own (several apps may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            f"{PREFIX}_search_stage_seconds",
            "Time of one stage of a search: decode (bytes to pixels), embed (the model), "
            "rank (the vector store).",
            ["stage"],
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.search_seconds = Histogram(
            f"{PREFIX}_search_seconds",
            "Time of one whole search, by channel and query kind.",
            ["channel", "kind"],
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.log_lost = Counter(
            f"{PREFIX}_search_log_lost",
            "Searches not written to the search log: dropped (queue full) or failed (write error).",
            ["reason"],
            registry=self.registry,
        )
        self.log_pruned = Counter(
            f"{PREFIX}_search_log_pruned",
            "Logged searches deleted: age (older than SEARCH_LOG_DAYS) or size (the oldest, to "
            "keep the log within SEARCH_LOG_MAX_MB).",
            ["reason"],
            registry=self.registry,
        )

    def observe_search(self, result: SearchResult, channel: str, kind: str) -> None:
        for stage, ms in result.stages_ms.items():
            self.stage_seconds.labels(stage).observe(ms / 1000)
        self.search_seconds.labels(channel, kind).observe(result.took_ms / 1000)

    def count_lost(self, reason: str, count: int) -> None:
        self.log_lost.labels(reason).inc(count)

    def count_pruned(self, reason: str, count: int) -> None:
        self.log_pruned.labels(reason).inc(count)


class IndexCollector(Collector):
    """The index size and the model identity, read from this process's service at scrape time."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        from ..extensions import get_service

        service = get_service(self.app)
        snapshot = service.snapshot  # None until the index is loaded: nothing to report yet
        if snapshot is None:
            return
        yield GaugeMetricFamily(
            f"{PREFIX}_index_products",
            "Products searchable in the index.",
            value=len(snapshot.products),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_catalog_products", "Products in the catalog.", value=len(snapshot.catalog)
        )
        model = InfoMetricFamily(f"{PREFIX}_model", "The model and vector store serving searches.")
        # The embedder is loaded once a snapshot exists, so this reads it without loading.
        model.add_metric(
            [],
            {"model": service.embedder.identity, "vector_backend": service.settings.vector_backend},
        )
        yield model


def init_metrics(app: Flask) -> Metrics:
    """Create the app's metrics and count every request by route and status."""
    disable_created_metrics()  # `_created` series: one more per label set, of no use here
    metrics = Metrics()
    app.extensions[EXTENSION_KEY] = metrics
    if not multiprocess_dir():
        metrics.registry.register(IndexCollector(app))
    app.after_request(_count_request)
    app.register_blueprint(bp)
    return metrics


def get_metrics(app: Flask | None = None) -> Metrics:
    return (app or current_app).extensions[EXTENSION_KEY]


def multiprocess_dir() -> str | None:
    """Where gunicorn's workers share their counts, when the server set it up."""
    return server_value("PROMETHEUS_MULTIPROC_DIR")


def _count_request(response: Response) -> Response:
    rule = request.url_rule
    route = rule.rule if rule is not None else "unmatched"  # never the raw path: unbounded
    method = request.method if request.method in METHODS else "other"
    get_metrics().requests.labels(route, method, str(response.status_code)).inc()
    return response


@bp.get("/metrics")
def metrics():
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        # current_app is a LocalProxy; Flask annotates it as the app it stands for.
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        registry.register(IndexCollector(app))
    else:
        registry = get_metrics().registry
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

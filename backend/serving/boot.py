"""Server start-up: sync the index once before the workers start, then load it in each worker.

`python -m backend.serving.boot` syncs index.csv with the catalog, logging progress, and exits non-zero
with the reason (e.g. missing weights) when it cannot. The gunicorn master runs it in a child
process, so the master never imports torch before forking its workers.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading

import numpy as np
from flask import Flask

from ..config import load_settings
from ..errors import SearchAppError
from ..extensions import get_service
from ..search import SearchService

log = logging.getLogger("backend.serving.boot")

LOG_EVERY = 100  # images
MAX_LISTED = 20  # skipped rows and failed images named in the log; the rest are counted


def sync_index(service: SearchService, log_every: int = LOG_EVERY) -> None:
    """Bring index.csv up to date, logging progress every `log_every` images and a summary."""
    log.info(
        "model %s; syncing %s with %s",
        service.embedder.identity,
        service.settings.index_path,
        service.settings.catalog_path,
    )
    logged = 0

    def progress(done: int, total: int) -> None:
        nonlocal logged
        if done - logged >= log_every or done == total:
            log.info("embedded %d/%d images", done, total)
            logged = done

    catalog, report = service.sync(progress=progress)
    if report.replaced_model:
        log.warning(
            "%s was built with model %s: every image was embedded again with this one",
            service.settings.index_path.name,
            report.replaced_model,
        )
    for skipped in catalog.skipped[:MAX_LISTED]:
        log.warning("skipped %s %s", catalog.path.name, skipped)
    for product_id, reason in list(report.failed.items())[:MAX_LISTED]:
        log.warning("failed %s: %s", product_id, reason)
    hidden = max(len(catalog.skipped) - MAX_LISTED, 0) + max(len(report.failed) - MAX_LISTED, 0)
    if hidden:
        log.warning("... and %d more skipped rows or failed images", hidden)
    if catalog.csv_format.note:
        log.info("catalog %s %s", catalog.path.name, catalog.csv_format.note)
    if catalog.undecodable_rows:
        log.warning(
            "%d rows of %s could not be read: the file %s",
            catalog.undecodable_rows,
            catalog.path.name,
            catalog.decoding_advice,
        )
    log.info(
        "index: %s in %.1f s; %d products searchable",
        report.summary(),
        report.seconds,
        service.indexed_count(),
    )


def load_worker(app: Flask) -> None:
    """Load the model and the synced index into this process, and run the model once."""
    service = get_service(app)
    # 50k products and index rows are 100k objects made at once: collecting garbage between
    # them would scan them again and again (a third of the load time), and none is garbage.
    gc.disable()
    try:
        catalog = service.load_index()
        blank = np.zeros((service.embedder.crop_size, service.embedder.crop_size, 3), np.uint8)
        service.embedder.embed_arrays([blank])  # the first inference is slow; pay it now
    finally:
        gc.enable()
    gc.freeze()  # what is loaded lives as long as the worker: later collections skip it
    log.info("worker ready: %d of %d products searchable", service.indexed_count(), len(catalog))


def sync_in_background(app: Flask) -> threading.Thread:
    """Sync and load the index in a thread, so that a server without a start-up sync (`flask run`)
    turns ready (`/readyz`) by itself instead of at its first search."""
    service = get_service(app)

    def run() -> None:
        try:
            sync_index(service)
        except SearchAppError as error:  # the first search tries again and shows the reason
            log.error("cannot load the index: %s", error.message)
        except OSError as error:
            log.error("cannot load the index: %s", error)

    thread = threading.Thread(target=run, name="index-sync", daemon=True)
    thread.start()
    return thread


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        sync_index(SearchService(load_settings()))
    except SearchAppError as error:
        log.error("cannot start: %s", error.message)
        return 1
    except OSError as error:  # e.g. a disk for INDEX_PATH or CACHE_DIR that is not writable
        log.error("cannot start: %s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

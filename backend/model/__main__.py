"""`python -m backend.model`: export the configured model into MODEL_DIR (the Docker build runs it).

Reads the same settings as the server (MODEL, MODEL_WEIGHTS, MODEL_RUNTIME, MODEL_DIR); a
model that is already exported is only checked. Exits 1 with the reason when it cannot.
"""

from __future__ import annotations

import logging
import sys

from ..config import load_settings
from ..errors import ConfigError
from . import load_embedder


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        embedder = load_embedder(
            settings.model, settings.model_weights, None, settings.model_runtime, settings.model_export_dir, settings.model_threads,
        )  # fmt: skip
    except ConfigError as error:
        logging.getLogger("backend.model").error("cannot export: %s", error.message)
        return 1
    print(f"{embedder.identity}: {getattr(embedder, 'path', 'nothing to export')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

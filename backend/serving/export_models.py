"""`python -m backend.serving.export_models [MODEL ...]`: export models into MODEL_DIR.

Exports the models named (default: the configured MODEL) with the same settings as the server
(MODEL_WEIGHTS, MODEL_RUNTIME, MODEL_DIR); a model that is already exported is only checked.
Exits 1 with the reason when it cannot. The Docker build runs it.
"""

from __future__ import annotations

import logging
import sys

from ..config import load_settings
from ..errors import ConfigError
from ..model import load_embedder


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        for model in dict.fromkeys(argv or [settings.model]):  # each once, in order
            embedder = load_embedder(
                model,
                settings.model_weights,
                None,
                settings.model_runtime,
                settings.model_export_dir,
                settings.model_threads,
            )
            print(f"{embedder.identity}: {getattr(embedder, 'path', 'nothing to export')}")
    except ConfigError as error:
        logging.getLogger("backend.serving.export_models").error("cannot export: %s", error.message)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

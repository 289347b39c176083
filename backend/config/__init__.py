"""Settings from the environment, with defaults, validated once at startup.

Each setting is declared once (`declarations.py`); `Settings` adds what follows from them,
`load_settings` reads and validates them, and the server's own settings are in `server.py`.
"""

from __future__ import annotations

from .bounds import MODEL_RUNTIMES, VECTOR_BACKENDS
from .declarations import BUNDLED_CATALOG, PACKAGE_DIR, PROJECT_ROOT
from .load import DATABASE_SCHEMES, ENV_VARS, load_settings, mask_url, validate
from .settings import Settings

__all__ = [
    "BUNDLED_CATALOG",
    "DATABASE_SCHEMES",
    "ENV_VARS",
    "MODEL_RUNTIMES",
    "PACKAGE_DIR",
    "PROJECT_ROOT",
    "VECTOR_BACKENDS",
    "Settings",
    "load_settings",
    "mask_url",
    "validate",
]

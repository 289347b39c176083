"""Settings from the environment, with defaults, validated once at startup.

Each setting is declared once (`declarations.py`); `Settings` adds what follows from them,
`load_settings` reads and validates them, and the server's own settings are in `server.py`.
"""

from __future__ import annotations

from .declarations import BUNDLED_CATALOG, PACKAGE_DIR, PROJECT_ROOT
from .load import ENV_VARS, load_settings, mask_url
from .settings import Settings

__all__ = [
    "BUNDLED_CATALOG",
    "ENV_VARS",
    "PACKAGE_DIR",
    "PROJECT_ROOT",
    "Settings",
    "load_settings",
    "mask_url",
]

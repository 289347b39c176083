"""`python -m bench [--quick]`: run the benchmark suite and write bench/RESULTS.md."""

from __future__ import annotations

import sys

from .run import main

sys.exit(main())

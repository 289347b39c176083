"""The decode budget's process-wide part: freed decoded images leave the process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Decodes in threads (each thread gets its own glibc arena), then the resident memory: without a
# fixed mmap threshold the freed 48 MB images stayed in the arenas (+50 MB here, +430 MB in a
# worker of four threads), where they count against a 512 MB instance.
CHILD = r"""
import io, sys, threading
from PIL import Image
from backend.images.budget import return_large_blocks_to_the_system
from backend.images.decode import decode_image
assert return_large_blocks_to_the_system()
def rss_mb():
    return next(int(line.split()[1]) // 1024 for line in open("/proc/self/status")
                if line.startswith("VmRSS"))
buffer = io.BytesIO()
Image.linear_gradient("L").resize((4000, 3000)).convert("RGB").save(buffer, "PNG")
before = rss_mb()
for _ in range(3):
    for thread in [threading.Thread(target=decode_image, args=(buffer.getvalue(),),
                                     kwargs={"min_size": 256})
                   for _ in range(4)]:
        thread.start()
        thread.join()
print(rss_mb() - before)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_decoded_images_freed_in_threads_leave_the_process():
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=root, capture_output=True, text=True, check=True
    )
    assert int(done.stdout.strip()) < 20  # MB kept after twelve 48 MB decodes

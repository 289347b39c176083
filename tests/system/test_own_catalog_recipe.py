"""The README's "Serve your own catalog" recipe, run as written next to a running demo: the shop
is served and re-indexed, and the demo's answers do not change."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.catalogs import draw_image, write_catalog
from tests.support.servers import free_port, request_json, running, wait_ready

ROOT = Path(__file__).resolve().parents[2]
SHOP_ITEMS = [
    ("s1", "Green tent", "outdoor", "green", "triangle"),
    ("s2", "Blue box", "toys", "blue", "square"),
    ("s3", "Red scarf", "clothes", "red", "stripes"),
]

pytestmark = pytest.mark.slow


def readme_recipe() -> list[str]:
    """The commands of the README's "Serve your own catalog" block, comments dropped."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Serve your own catalog", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of the project as a user has it (the demo writes its index into it), sharing the
    already installed .venv; without what a server running in this tree writes (a demo's index,
    search log and uploads)."""
    copy = tmp_path / "checkout"
    copy.mkdir()
    written = shutil.ignore_patterns("__pycache__", "index.csv*", "searches.sqlite*", "uploads")
    for name in ("backend", "scripts"):
        shutil.copytree(ROOT / name, copy / name, ignore=written)
    for path in ROOT.glob("requirements*.txt"):
        shutil.copy(path, copy / path.name)
    shutil.copy(ROOT / "gunicorn.conf.py", copy)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    return copy


def environment(**extra: str) -> dict[str, str]:
    unset = (
        "SECRET_KEY",
        "CATALOG_PATH",
        "INDEX_PATH",
        "CACHE_DIR",
        "PORT",
        "HOST",
        "MODEL_WEIGHTS",
    )
    env = {key: value for key, value in os.environ.items() if key not in unset}
    # The model does not matter here, only which index each server reads and writes: the colour
    # histogram needs no weights and no torch, which keeps two servers' start-ups short.
    settings = {"MODEL": "color_histogram", "WEB_CONCURRENCY": "1", "THREADS": "2"}
    return env | settings | extra


def search(base: str, image: bytes) -> list[tuple[str, float]]:
    boundary = "recipe-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="q.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + image
        + (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="threshold"\r\n\r\n0'
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="k"\r\n\r\n10\r\n'
            f"--{boundary}--\r\n"
        ).encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, answer = request_json(f"{base}/api/search", body, headers)
    assert status == 200, answer
    return [(hit["id"], round(hit["similarity"], 5)) for hit in answer["results"]]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_readme_recipe_serves_and_re_indexes_a_shop_next_to_the_demo(checkout, tmp_path):
    serve, beside_demo, reindex = readme_recipe()
    assert serve == "./scripts/serve.sh path/to/products.csv"
    assert beside_demo.startswith("PORT=") and beside_demo.endswith(serve.removeprefix("."))
    assert reindex == "./scripts/serve.sh --index path/to/products.csv"

    demo_port, shop_port = free_port(), free_port()
    demo_log, shop_log = tmp_path / "demo.log", tmp_path / "shop.log"
    demo_base, shop_base = f"http://127.0.0.1:{demo_port}", f"http://127.0.0.1:{shop_port}"
    # The README's demo command, as its first block gives it.
    demo_env = environment(PORT=str(demo_port))
    with running(["./scripts/demo.sh"], demo_env, demo_log, cwd=checkout) as demo:
        demo_ready = wait_ready(demo_base, demo, demo_log, seconds=300)
        demo_index = checkout / "backend" / "data" / "index.csv"
        demo_index_digest = digest(demo_index)
        photo = next((checkout / "backend" / "static").rglob("*.jpg")).read_bytes()
        demo_answer = search(demo_base, photo)
        assert demo_answer

        # The shop owner's catalog, in a folder of their own, given by a relative path.
        shop = write_catalog(tmp_path / "shop", SHOP_ITEMS)
        command = beside_demo.replace("8001", str(shop_port)).replace(
            "path/to/products.csv", os.path.relpath(shop, checkout)
        )
        with running(["bash", "-c", command], environment(), shop_log, cwd=checkout) as shop_server:
            shop_ready = wait_ready(shop_base, shop_server, shop_log, seconds=300)
            assert (shop_ready["catalog_size"], shop_ready["indexed"]) == (3, 3)
            assert (tmp_path / "shop" / "index.csv").is_file()  # beside the shop's catalog
            assert search(shop_base, photo)[0][0].startswith("s")

            # The owner adds a product and re-indexes with the README's command.
            draw_image("yellow", "circle").save(tmp_path / "shop" / "images" / "s4.png")
            with shop.open("a", encoding="utf-8") as handle:
                handle.write("s4,Yellow ball,toys,2.50,images/s4.png\n")
            done = subprocess.run(
                ["bash", "-c", reindex.replace("path/to/products.csv", str(shop))],
                cwd=checkout,
                env=environment(),
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            assert "index: 1 added, 0 updated, 0 removed, 3 unchanged" in done.stdout
            deadline = time.monotonic() + 30
            # The running server loads the new index at its next request (checked every 2 s).
            while request_json(f"{shop_base}/api/products")[1]["total"] != 4:
                assert time.monotonic() < deadline, shop_log.read_text()
                time.sleep(0.5)
            status, _ = request_json(f"{shop_base}/api/products/s4/similar")
            assert status == 200

        # The demo's answers, index and readiness are exactly as before.
        assert search(demo_base, photo) == demo_answer
        assert digest(demo_index) == demo_index_digest
        assert request_json(f"{demo_base}/readyz") == (200, demo_ready)
    assert "Traceback" not in demo_log.read_text() + shop_log.read_text()


def offline_environment(tmp_path: Path) -> dict[str, str]:
    """A user's shell on a machine without network: no setting of this app, every download
    (torch hub, pip) sent to a closed port, an empty torch hub cache."""
    ours = {"MODEL", "MODEL_WEIGHTS", "MODEL_DIR", "SIMILARITY_THRESHOLD", "WEB_CONCURRENCY"}
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ours
        and key.upper() not in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
        and key not in ("SECRET_KEY", "CATALOG_PATH", "INDEX_PATH", "CACHE_DIR", "PORT", "HOST")
    }
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    return env | {
        "HTTP_PROXY": nowhere,
        "HTTPS_PROXY": nowhere,
        "http_proxy": nowhere,
        "https_proxy": nowhere,
        "NO_PROXY": "",
        "PIP_NO_INDEX": "1",
        "TORCH_HOME": str(tmp_path / "empty-torch-home"),
        "THREADS": "2",
    }


def search_with_defaults(base: str, image: bytes) -> dict:
    """POST /api/search with the photo only: the served default threshold and k."""
    boundary = "recipe-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="q.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, answer = request_json(f"{base}/api/search", body, headers)
    assert status == 200, answer
    return answer


def test_the_readme_recipe_works_offline_with_the_default_model(checkout, tmp_path):
    """The recipe exactly as the README gives it, on a fresh checkout with no network: the
    default model's weights come with the requirements, nothing is downloaded."""
    _, beside_demo, reindex = readme_recipe()
    shop = write_catalog(tmp_path / "shop", SHOP_ITEMS)
    port, log = free_port(), tmp_path / "shop.log"
    base = f"http://127.0.0.1:{port}"
    command = beside_demo.replace("8001", str(port)).replace(
        "path/to/products.csv", os.path.relpath(shop, checkout)
    )
    env = offline_environment(tmp_path)
    with running(["bash", "-c", command], env, log, cwd=checkout) as server:
        ready = wait_ready(base, server, log, seconds=400)
        assert ready["model"].startswith("efficientnet_lite0/file-"), ready
        assert (ready["random_weights"], ready["indexed"]) == (False, 3)
        answer = search_with_defaults(base, (tmp_path / "shop" / "images" / "s2.png").read_bytes())
        assert answer["results"][0]["id"] == "s2"

        draw_image("yellow", "circle").save(tmp_path / "shop" / "images" / "s4.png")
        with shop.open("a", encoding="utf-8") as handle:
            handle.write("s4,Yellow ball,toys,2.50,images/s4.png\n")
        done = subprocess.run(
            ["bash", "-c", reindex.replace("path/to/products.csv", str(shop))],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "index: 1 added, 0 updated, 0 removed, 3 unchanged" in done.stdout
        assert "model: efficientnet_lite0/file-" in done.stderr
    assert not (tmp_path / "empty-torch-home").exists()  # nothing fetched into the hub cache
    assert "Traceback" not in log.read_text()

"""ONNX Runtime serving: agreement with torch, the export cache, threads, and no torch in serving."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from backend import create_app
from backend.config import load_settings
from backend.errors import ConfigError
from backend.extensions import get_service
from backend.index.index_file import read_index
from backend.model import BACKBONE_NAMES, load_embedder
from backend.model.onnx_runtime import machine_key, model_path, optimized_path
from backend.model.specs import LITE0, SPECS
from tests.support.catalogs import RANDOM_RESNET18, RANDOM_TEST_MODEL, draw_image, image_bytes

ROOT = Path(__file__).resolve().parents[2]
DEMO_PHOTOS = sorted((ROOT / "backend" / "static" / "catalog").glob("*.jpg"))
BENCH_IMAGES = ROOT.parent / "shared" / "bench" / "images"


def real_photos(count: int) -> list:
    """Real product photos: the demo catalog's, spread across it."""
    from PIL import Image

    step = max(len(DEMO_PHOTOS) // count, 1)
    return [Image.open(path).convert("RGB") for path in DEMO_PHOTOS[::step][:count]]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


def calibrated_weights(name: str, folder: Path, photos: list) -> Path:
    """The random network with batch-norm statistics measured on real photos, as a weights file.

    A random init keeps ImageNet's default statistics (mean 0, variance 1), which lets some
    networks' activations fade to float noise (EfficientNet-B0's features end near 1e-13):
    nothing to compare. Measured statistics keep them at their natural scale, as real weights do.
    """
    from backend.model.backbones import BACKBONES
    from backend.model.torch_runtime import ImagesToEmbeddings

    backbone = BACKBONES[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = backbone.build()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the calibration batches
    arrays = torch.from_numpy(np.stack([backbone.spec.preprocessing.apply(p) for p in photos]))
    pipeline = ImagesToEmbeddings(model, backbone.spec).train()
    with torch.no_grad():
        pipeline(arrays)
    path = folder / f"{name}-calibrated.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_onnx_runtime_agrees_with_torch_on_real_photos(name, tmp_path):
    photos = real_photos(40)
    assert len(photos) >= 32
    # EfficientNet-Lite0 has its real ImageNet weights here; the others are calibrated.
    weights = None if name == LITE0 else str(calibrated_weights(name, tmp_path, photos[1::2]))
    served = load_embedder.__wrapped__(name, weights, model_dir=tmp_path)
    reference = load_embedder.__wrapped__(name, weights, runtime="torch")
    assert served.identity == reference.identity.replace("/torch-fp32", "/ort-fp32")
    assert served.identity.endswith(f"/{SPECS[name].preprocessing.tag}/ort-fp32")
    assert served.runtime == "ort-fp32" and reference.runtime == "torch-fp32"
    queries = photos[::2]  # not the calibration photos
    expected = reference.embed(queries)
    assert cosines(expected, np.roll(expected, 1, axis=0)).min() < 0.99  # distinct embeddings
    assert cosines(served.embed(queries), expected).min() >= 0.999


@pytest.mark.slow
@pytest.mark.skipif(not BENCH_IMAGES.is_dir(), reason="../shared/bench is not here")
def test_onnx_runtime_agrees_with_torch_on_the_benchmark_photos(model_dir):
    from PIL import Image

    paths = sorted(BENCH_IMAGES.glob("*.jpg"))[::100]  # 64 photos, fashion and grocery
    photos = [Image.open(path).convert("RGB") for path in paths]
    for name, weights in (("resnet18", "random"), (LITE0, None)):
        served = load_embedder(name, weights, model_dir=model_dir)
        reference = load_embedder(name, weights, runtime="torch")
        assert cosines(served.embed(photos), reference.embed(photos)).min() >= 0.999, name


@pytest.mark.slow
def test_the_export_is_named_by_its_identity_written_once_and_reused(tmp_path):
    first = load_embedder.__wrapped__("resnet18", "random", model_dir=tmp_path)
    path = tmp_path / f"{RANDOM_RESNET18.replace('/', '__')}.onnx"
    assert first.path == path == model_path(tmp_path, first.identity)
    written = path.stat()
    again = load_embedder.__wrapped__("resnet18", "random", model_dir=tmp_path)
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    assert again.identity == first.identity
    optimized = tmp_path / f"{path.stem}.optimized-{machine_key()}.onnx"
    assert sorted(tmp_path.glob("*.onnx")) == [path, optimized]
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    images = [draw_image("red"), draw_image("green", "stripes")]
    assert np.array_equal(first.embed(images), again.embed(images))


@pytest.mark.slow
def test_a_damaged_export_is_exported_again(tmp_path):
    good = load_embedder.__wrapped__("resnet18", "random", model_dir=tmp_path)
    expected = good.embed([draw_image("blue")])
    good.path.write_bytes(good.path.read_bytes()[:100_000])  # cut short, like a full disk
    repaired = load_embedder.__wrapped__("resnet18", "random", model_dir=tmp_path)
    assert repaired.embed([draw_image("blue")]) == pytest.approx(expected, abs=1e-6)


@pytest.mark.slow
def test_the_graph_optimised_for_this_cpu_is_saved_and_a_damaged_one_made_again(tmp_path):
    first = load_embedder.__wrapped__("resnet18", "random", model_dir=tmp_path)
    optimized = optimized_path(first.path)
    assert optimized.is_file() and optimized.stat().st_size > 10_000_000
    expected = first.embed([draw_image("purple", "square")])
    optimized.write_bytes(b"\0" * 1000)
    again = load_embedder.__wrapped__("resnet18", "random", model_dir=tmp_path)
    assert again.embed([draw_image("purple", "square")]) == pytest.approx(expected, abs=1e-6)
    assert optimized.stat().st_size > 10_000_000


@pytest.mark.slow
def test_a_weights_file_gets_its_own_export_and_a_foreign_file_is_replaced(tmp_path):
    weights = tmp_path / "resnet18.pth"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    random_model = load_embedder.__wrapped__("resnet18", "random", model_dir=tmp_path)
    # A file at the weights' path that computes something else (the random network).
    wanted = load_embedder.__wrapped__("resnet18", str(weights), runtime="torch").identity
    wanted = wanted.replace("torch-fp32", "ort-fp32")
    model_path(tmp_path, wanted).write_bytes(random_model.path.read_bytes())
    from_file = load_embedder.__wrapped__("resnet18", str(weights), model_dir=tmp_path)
    assert from_file.identity == wanted and wanted.startswith("resnet18/file-")
    image = [draw_image("yellow", "triangle")]
    assert cosines(from_file.embed(image), random_model.embed(image))[0] < 0.999


def test_inference_threads_are_explicit(model_dir):
    embedder = load_embedder("resnet18", "random", model_dir=model_dir, threads=1)
    options = embedder.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    settings = load_settings(environ={"OMP_NUM_THREADS": "3", "MODEL_DIR": str(model_dir)})
    assert (settings.model_threads, settings.model_export_dir) == (3, model_dir)


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"MODEL_RUNTIME": "tensorflow"}, "MODEL_RUNTIME='tensorflow' must be one of onnx, torch"),
        ({"OMP_NUM_THREADS": "many"}, "OMP_NUM_THREADS='many' is not a valid int"),
    ],
)
def test_bad_runtime_settings_are_refused_by_name(environ, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ)


def test_switching_runtimes_re_embeds_every_row(app_config):
    """Vectors of two runtimes differ slightly: one index never mixes them."""
    torch_app = create_app({**app_config, "model_runtime": "torch"})
    get_service(torch_app).sync()
    models = {entry.model for entry in read_index(app_config["index_path"]).entries}
    assert models == {RANDOM_TEST_MODEL.replace("/ort-fp32", "/torch-fp32")}
    _, report = get_service(create_app(app_config)).sync()
    assert (
        report.summary() == "0 added, 7 updated, 0 removed, 0 unchanged, 0 failed, 0 rows skipped"
    )
    models = {entry.model for entry in read_index(app_config["index_path"]).entries}
    assert models == {RANDOM_TEST_MODEL}


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return run_module(["-c", textwrap.dedent(code)], env)


def run_module(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


SERVE_AND_RESYNC = """
    import json, sys
    from pathlib import Path
    from backend import create_app
    from backend.serving.boot import load_worker, sync_index
    from backend.extensions import get_service
    from backend.search import SearchService
    from backend.config import load_settings

    sync_index(SearchService(load_settings()))  # what the server's master runs before forking
    after_sync = "torch" in sys.modules
    app = create_app()
    load_worker(app)  # a serving worker
    service = get_service(app)
    found = service.search_bytes(Path("{query}").read_bytes(), k=3)
    _, report = service.sync()  # an unchanged re-index
    print(json.dumps({{"after_sync": after_sync, "torch": "torch" in sys.modules,
                      "hits": [hit.product.id for hit in found.hits], "resync": report.summary(),
                      "model": service.embedder.identity}}))
"""


def test_serving_and_an_unchanged_reindex_never_import_torch(app_config, model_dir, tmp_path):
    load_embedder("resnet18", "random", model_dir=model_dir)  # exported (this process has torch)
    query = tmp_path / "query.png"
    query.write_bytes(image_bytes(draw_image("red", "circle")))
    env = {
        "CATALOG_PATH": str(app_config["catalog_path"]),
        "INDEX_PATH": str(app_config["index_path"]),
        "CACHE_DIR": str(app_config["cache_dir"]),
        "MODEL": "resnet18",
        "MODEL_WEIGHTS": "random",
    }
    done = run_python(SERVE_AND_RESYNC.format(query=query), env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["model"] == RANDOM_RESNET18
    assert (
        result["resync"] == "0 added, 0 updated, 0 removed, 7 unchanged, 0 failed, 0 rows skipped"
    )
    assert result["hits"][0] == "p1"
    assert result["after_sync"] is False and result["torch"] is False


NO_TORCH = """
    import sys
    sys.modules["torch"] = None  # `import torch` now fails, as in an image without torch
    from pathlib import Path
    from backend.errors import ConfigError
    from backend.model import load_embedder
    try:
        load_embedder("resnet18", "random", model_dir=Path("{folder}"))
    except ConfigError as error:
        print(error.message)
"""


@pytest.mark.slow
def test_without_torch_a_missing_export_says_how_to_get_one(tmp_path):
    done = run_python(NO_TORCH.format(folder=tmp_path), {})
    assert done.returncode == 0, done.stderr
    message = done.stdout
    assert "MODEL=resnet18 has no exported model at" in message and "needs torch" in message
    assert "docker build --build-arg MODEL=resnet18 ." in message
    assert "docker build --target with-torch ." in message


@pytest.mark.slow
def test_the_export_command_of_the_docker_build(tmp_path):
    """`python -m backend.serving.export_models`, as the Dockerfile runs it: the served model."""
    env = {"MODEL_DIR": str(tmp_path / "models"), "MODEL_WEIGHTS": "random", "MODEL": "resnet18"}
    done = run_module(["-m", "backend.serving.export_models"], env)
    assert done.returncode == 0, done.stderr
    path = tmp_path / "models" / f"{RANDOM_RESNET18.replace('/', '__')}.onnx"
    assert done.stdout.strip() == f"{RANDOM_RESNET18}: {path}"
    assert path.is_file() and SPECS["resnet18"].dim == 512


@pytest.mark.slow
def test_the_default_model_exports_offline_with_its_installed_weights(tmp_path):
    """No MODEL, no MODEL_WEIGHTS: the default model's real weights, with no download."""
    env = {key: value for key, value in os.environ.items() if key not in ("MODEL", "MODEL_WEIGHTS")}
    env |= {"MODEL_DIR": str(tmp_path / "models"), "TORCH_HOME": str(tmp_path / "no-hub")}
    done = subprocess.run(
        [sys.executable, "-m", "backend.serving.export_models"],
        cwd=ROOT,
        env=env | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    identity, _, path = done.stdout.strip().partition(": ")
    assert identity.startswith(f"{LITE0}/file-") and Path(path).is_file()
    assert not (tmp_path / "no-hub").exists()  # nothing downloaded into the hub cache

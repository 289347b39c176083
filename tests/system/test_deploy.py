"""Deploy files checked without a Docker engine: the Dockerfile's paths and command, the real
gunicorn start-up (the image's exact CMD), and the Render blueprint agreeing with both."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.catalogs import RANDOM_TEST_MODEL, TEST_MODEL
from tests.support.servers import (
    ROOT,
    dockerfile,
    free_port,
    gunicorn,
    image_command,
    instructions,
    request_json,
    server_env,
    wait_ready,
)


def docker_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in instructions("ENV"):
        env.update(dict(pair.split("=", 1) for pair in shlex.split(args)))
    return env


def requirement_pins() -> dict[str, str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return dict(line.split("==") for line in lines if "==" in line and not line.startswith("#"))


def render_service() -> dict:
    (service,) = yaml.safe_load((ROOT / "render.yaml").read_text())["services"]
    return service


def render_env() -> dict[str, str | None]:
    return {var["key"]: var.get("value") for var in render_service()["envVars"]}


def test_every_copied_path_exists_and_is_not_docker_ignored():
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = [args for args in instructions("COPY") if not args.startswith("--from=")]
    assert copies
    for args in copies:
        sources = [word for word in args.split()[:-1] if not word.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path"
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source


def stages() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Each build stage's name -> (what it is FROM, its instructions), in file order."""
    found: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    current: list[tuple[str, str]] = []
    for instruction, args in dockerfile():
        if instruction == "FROM":
            parent, _, name = args.partition(" AS ")
            current = []
            found[name.strip()] = (parent.strip(), current)
        else:
            current.append((instruction, args))
    return found


def default_image() -> list[tuple[str, str]]:
    """The instructions that build the default (last) stage, its ancestors' first."""
    every = stages()
    chain, name = [], list(every)[-1]
    while name in every:
        chain.insert(0, name)
        name = every[name][0]
    return [step for stage in chain for step in every[stage][1]]


def test_the_default_image_serves_without_torch_from_a_model_exported_at_build_time():
    steps = default_image()
    runs = " ".join(args for instruction, args in steps if instruction == "RUN")
    excluded = re.search(r"grep -vE '(.+?)' requirements\.txt > requirements-serve\.txt", runs)
    assert excluded and [i.strip() for i in re.findall(r"pip install ([^&]+)", runs)] == [
        "-r requirements-serve.txt"
    ]
    installed = {
        name for name in requirement_pins() if not re.match(excluded.group(1), f"{name}==")
    }
    assert not installed & {"torch", "torchvision", "onnx"}
    assert {"onnxruntime", "numpy", "pillow", "flask", "gunicorn"} <= installed
    copies = [args for instruction, args in steps if instruction == "COPY"]
    assert "--from=export /app/models /app/models" in copies  # only the exported model
    assert not [args for args in copies if args.startswith("--from=torch")]
    (export_run,) = [args for instruction, args in stages()["export"][1] if instruction == "RUN"]
    exporter = "python -m backend.serving.export_models"
    assert exporter in export_run and docker_env()["MODEL_DIR"] == "/app/models"
    # The served MODEL and the demo's Lite0, so the demo catalog's model serves without torch too.
    assert f'{exporter} "$MODEL" efficientnet_lite0' in export_run


def healthcheck() -> list[str]:
    (check,) = instructions("HEALTHCHECK")
    return json.loads(check.split("CMD", 1)[1])


def test_the_command_is_gunicorn_with_the_config_file_and_the_demo_uses_it_too():
    assert image_command() == ["gunicorn", "--config", "gunicorn.conf.py"]
    assert (
        "exec .venv/bin/gunicorn --config gunicorn.conf.py"
        in (ROOT / "scripts" / "demo.sh").read_text()
    )


def test_render_blueprint_agrees_with_the_dockerfile():
    service, env, image_env = render_service(), render_env(), docker_env()
    assert service["type"] == "web" and service["runtime"] == "docker"
    assert (ROOT / service["dockerfilePath"]).is_file()
    assert service["healthCheckPath"] == "/healthz"
    mount = Path(service["disk"]["mountPath"])
    for name in ("INDEX_PATH", "CACHE_DIR"):
        assert env[name] == image_env[name]
        assert Path(env[name]).is_relative_to(mount), f"{name} must be on the persistent disk"
    assert env["PORT"] == image_env["PORT"] == instructions("EXPOSE")[0]


def test_render_leaves_the_threshold_to_the_model():
    """Unset, the served threshold is the model's own measured default (0.70 hid nearly every
    result of the default model)."""
    assert "SIMILARITY_THRESHOLD" not in render_env()
    assert "MODEL" not in render_env() or render_env()["MODEL"] == docker_env().get("MODEL")


def test_the_container_starts_as_root_only_to_hand_the_disk_to_the_app_user():
    """Render mounts the disk root-owned: the entrypoint (tests/system/test_entrypoint.py) runs
    as root, gives the data folders to `app` and runs the server as `app`."""
    steps = default_image()
    assert not [args for instruction, args in steps if instruction == "USER"]
    (entrypoint,) = [args for instruction, args in steps if instruction == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["docker-entrypoint.sh"]
    copies = [args for instruction, args in steps if instruction == "COPY"]
    assert "docker-entrypoint.sh /usr/local/bin/" in copies
    assert os.access(ROOT / "docker-entrypoint.sh", os.X_OK)
    runs = " ".join(args for instruction, args in steps if instruction == "RUN")
    script = (ROOT / "docker-entrypoint.sh").read_text()
    assert "useradd --create-home --uid 10001 app" in runs and "APP_USER:-app}" in script
    assert "exec setpriv --reuid=" in script


def test_render_sets_only_variables_something_reads():
    from backend.config import ENV_VARS

    server_vars = {"PORT", "SECRET_KEY", "WEB_CONCURRENCY", "THREADS", "FORWARDED_ALLOW_IPS"}
    assert set(render_env()) <= set(ENV_VARS) | server_vars


def without_torch(folder: Path, env: dict[str, str]) -> dict[str, str]:
    """Every Python process of the server cannot import torch, as in the default image."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        "import sys\nsys.modules['torch'] = sys.modules['torchvision'] = None\n"
    )
    return env | {"PYTHONPATH": str(folder)}


@pytest.mark.slow
def test_the_docker_command_serves_the_app_without_torch_and_the_healthcheck_passes(
    tmp_path, model_dir
):
    from backend.model import load_embedder

    load_embedder(TEST_MODEL, "random", model_dir=model_dir)  # what the image's build does
    port = free_port()
    env = without_torch(tmp_path / "no-torch", server_env(tmp_path, port))
    log = tmp_path / "gunicorn.log"
    with gunicorn(env, log) as process:
        base = f"http://127.0.0.1:{port}"
        ready = wait_ready(base, process, log)
        assert ready | {"model": "?"} == {
            "ready": True,
            "status": "ready",
            "random_weights": True,
            "model": "?",
            "catalog_size": 7,
            "indexed": 7,
            "skipped_rows": 0,
            "failed_images": 0,
        }
        assert ready["model"] == RANDOM_TEST_MODEL
        assert request_json(f"{base}/healthz") == (200, {"status": "ok"})
        check = subprocess.run(healthcheck(), env=env, capture_output=True, timeout=30)
        assert check.returncode == 0, check.stderr
        status, body = request_json(f"{base}/api/products/p1/similar?k=2&threshold=0&category=toys")
        assert status == 200 and [hit["id"] for hit in body["results"]] == ["p2", "p3"]
    text = log.read_text()
    assert "embedded 7/7 images" in text  # the master's sync logged its progress
    assert "worker ready: 7 of 7 products searchable" in text
    assert "loaded index.csv.packed, packed by the last sync" in text  # nothing parsed again
    assert '"GET /healthz HTTP/1.1" 200' in text  # the access log
    assert "Traceback" not in text


@pytest.mark.slow
def test_the_demo_model_serves_without_torch_too(tmp_path, model_dir):
    """efficientnet_lite0 with its real weights, as the image bakes it beside MODEL."""
    from backend.model import bundled_adapter, load_embedder
    from backend.model.adapter import load_adapter

    served = load_embedder("efficientnet_lite0", None, model_dir=model_dir)  # the image's build
    # Served with its bundled shopper adapter, which names itself in the identity.
    adapted = load_adapter(bundled_adapter("efficientnet_lite0")).identity(served.identity)
    port = free_port()
    env = server_env(tmp_path, port, MODEL="efficientnet_lite0", MODEL_WEIGHTS="")
    env = without_torch(tmp_path / "no-torch", env)
    log = tmp_path / "gunicorn.log"
    with gunicorn(env, log) as process:
        base = f"http://127.0.0.1:{port}"
        ready = wait_ready(base, process, log)
        assert ready["model"] == adapted and ready["random_weights"] is False
        assert served.identity.endswith("/p2-r256c224-bicubic-tf127/ort-fp32")
        status, body = request_json(f"{base}/api/products/p1/similar?k=3&threshold=0")
        assert status == 200 and len(body["results"]) == 3
    text = log.read_text()
    assert "worker ready: 7 of 7 products searchable" in text and "Traceback" not in text


@pytest.mark.slow
def test_unusable_weights_stop_the_server_with_the_reason(tmp_path):
    weights = tmp_path / "resnet18.pth"
    weights.write_bytes(b"not a state dict")
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with gunicorn(server_env(tmp_path, port, MODEL_WEIGHTS=str(weights)), log) as process:
        assert process.wait(timeout=120) != 0
    text = log.read_text()
    assert f"cannot start: MODEL_WEIGHTS file {weights} is not a readable state dict" in text
    assert "not starting" in text
    assert "Traceback" not in text
    assert "Booting worker" not in text

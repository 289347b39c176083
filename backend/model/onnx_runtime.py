"""The ONNX Runtime embedder: a backbone exported once per model identity, served without torch.

The exported file lives in MODEL_DIR as `<identity>.onnx` (slashes as `__`) and is reused by
every later process; only a missing file imports torch, to export it (`export.py`). Its graph
takes the preprocessed uint8 images and returns unit-length embeddings, so serving is
preprocess (PIL + numpy) then one `InferenceSession.run`.

ONNX Runtime's fastest CPU convolutions need the weights re-laid out for this CPU's vector width
(NCHWc blocks) when a session starts, which briefly holds both copies: twice the model's size at
peak. The first process to start on a machine (the server's index sync) saves that optimised
graph next to the export, keyed by the CPU's features and the runtime's version; later
processes (the workers) load it as it is, at the model's size and in half the time.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..errors import ConfigError
from .specs import (
    ONNX_IDENTITY_KEY,
    ONNX_INPUT,
    ONNX_OUTPUT,
    ORT_FP32,
    BackboneSpec,
    SpecEmbedder,
    identity,
)

log = logging.getLogger(__name__)

# Images per InferenceSession.run: a batch of 32 runs as four. Activations grow with the batch
# and ONNX Runtime's arena keeps the largest run's for good (EfficientNet-Lite0: a process
# peaks at ~820 MB after runs of 32, ~270 MB after runs of 8); the server's index sync must fit
# a 512 MB instance beside the server.
RUN_BATCH = 8


class OnnxEmbedder(SpecEmbedder):
    """Images in, L2-normalised float32 embeddings out, computed by ONNX Runtime."""

    runtime = ORT_FP32

    def __init__(self, spec: BackboneSpec, weights: str | None, path: Path, threads: int) -> None:
        self.spec = spec
        self.path = path
        self.random_weights = weights == "random"
        self.session = open_session(path, threads)
        self.identity = self.session.get_modelmeta().custom_metadata_map.get(ONNX_IDENTITY_KEY, "")

    def embed_arrays(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Embed preprocessed images in one batch; (N, dim) float32, unit length."""
        runs = [
            self.session.run(
                [ONNX_OUTPUT], {ONNX_INPUT: np.stack(arrays[start : start + RUN_BATCH])}
            )
            for start in range(0, len(arrays), RUN_BATCH)
        ]  # (N, H, W, 3) uint8 in, (N, dim) out, RUN_BATCH images at a time
        if not runs:
            return np.zeros((0, self.dim), dtype=np.float32)
        return runs[0][0] if len(runs) == 1 else np.concatenate([run[0] for run in runs])


def open_session(path: Path, threads: int) -> ort.InferenceSession:
    """A session on the exported model, optimised for this machine once and then read as is."""
    optimized = optimized_path(path)
    if optimized.is_file() and optimized.stat().st_mtime_ns >= path.stat().st_mtime_ns:
        try:
            return _session(optimized, session_options(threads, optimize=False))
        except Exception as error:  # noqa: BLE001 - damaged: optimise the export again
            log.warning("optimised model %s is unreadable (%s); optimising again", optimized, error)
    options = session_options(threads)
    if not os.access(path.parent, os.W_OK):  # e.g. a read-only image: optimise in memory only
        return _session(path, options)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{optimized.name}.", suffix=".tmp")
    os.close(fd)
    try:
        options.optimized_model_filepath = temp
        session = _session(path, options)
        os.replace(temp, optimized)  # whole or not at all, for the processes that start next
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    return session


def _session(path: Path, options: ort.SessionOptions) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def session_options(threads: int, optimize: bool = True) -> ort.SessionOptions:
    """One inference at a time uses `threads` cores (0: all of this process's cores)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
    options.inter_op_num_threads = 1  # a backbone is one chain of layers: nothing to overlap
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if optimize
        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    options.log_severity_level = 3  # errors only: its warnings are about graph rewrites
    return options


def optimized_path(path: Path) -> Path:
    """Where the export's graph optimised for this CPU and runtime version is kept."""
    return path.with_name(f"{path.stem}.optimized-{machine_key()}.onnx")


@functools.cache
def machine_key() -> str:
    """The runtime's version and a digest of the CPU's feature flags (which kernels it has)."""
    flags = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        flags = next((line for line in cpuinfo if line.startswith("flags")), "")
    digest = hashlib.sha256(f"{ort.__version__} {flags}".encode()).hexdigest()[:10]
    return f"ort{ort.__version__}-{digest}"


def model_path(model_dir: Path, model_identity: str) -> Path:
    """Where the exported model of one identity lives."""
    return model_dir / f"{model_identity.replace('/', '__')}.onnx"


def load_onnx_embedder(
    spec: BackboneSpec, weights: str | None, model_dir: Path, threads: int
) -> OnnxEmbedder:
    """Serve the exported model of this identity, exporting it first if MODEL_DIR lacks it."""
    wanted = identity(spec, weights, ORT_FP32)
    path = model_path(model_dir, wanted)
    embedder = _open(spec, weights, path, threads, wanted)
    if embedder is None:
        with _export_lock(path):
            # Another process may have exported it while this one waited for the lock.
            embedder = _open(spec, weights, path, threads, wanted)
            if embedder is None:
                _export(spec, weights, path)
                embedder = OnnxEmbedder(spec, weights, path, threads)
    return embedder


def _open(
    spec: BackboneSpec, weights: str | None, path: Path, threads: int, wanted: str
) -> OnnxEmbedder | None:
    """The exported model at `path` if it computes `wanted`; None if it must be exported again."""
    if not path.is_file():
        return None
    try:
        embedder = OnnxEmbedder(spec, weights, path, threads)
    except Exception as error:  # noqa: BLE001 - whatever ORT says of a damaged file: export again
        log.warning("exported model %s is unreadable (%s); exporting it again", path, error)
        return None
    if embedder.identity != wanted:
        log.warning(
            "exported model %s computes %r, not %s; exporting it again",
            path,
            embedder.identity,
            wanted,
        )
        return None
    return embedder


def _export(spec: BackboneSpec, weights: str | None, path: Path) -> None:
    try:
        from .export import export_model
    except ImportError as error:
        raise ConfigError(no_torch_message(spec, path, error)) from None
    export_model(spec.name, weights, path)
    for stale in path.parent.glob(f"{path.stem}.optimized-*.onnx"):  # made from the old file
        stale.unlink(missing_ok=True)


def no_torch_message(spec: BackboneSpec, path: Path, error: ImportError) -> str:
    return (
        f"MODEL={spec.name} has no exported model at {path}, and exporting one needs torch, "
        f"which this installation leaves out ({error}). Either build the Docker image for this "
        f"model (docker build --build-arg MODEL={spec.name} .), or use the image that keeps "
        "torch (docker build --target with-torch .), or install requirements.txt in full."
    )


@contextlib.contextmanager
def _export_lock(path: Path) -> Iterator[None]:
    """One exporter per model file across processes (server workers, `flask index`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)

"""Export a torch backbone to ONNX once per model identity, checked against torch (imports torch).

`onnx_runtime.load_onnx_embedder` calls this only when MODEL_DIR has no model for the identity;
the Docker image runs that at build time (`python -m backend.serving.export_models`), so its
containers start without torch.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from PIL import Image

from ..atomic import atomic_write_bytes
from ..errors import ConfigError
from .backbones import load_backbone
from .specs import (
    ONNX_IDENTITY_KEY,
    ONNX_INPUT,
    ONNX_OUTPUT,
    ORT_FP32,
    RANDOM_SEED,
    SPECS,
    identity,
)
from .torch_runtime import TorchEmbedder

log = logging.getLogger(__name__)

OPSET = 17
MIN_COSINE = 0.999  # ONNX Runtime against torch on the check images, per image


def export_model(model_name: str, weights: str | None, path: Path) -> None:
    """Export MODEL with its weights, check it agrees with torch, and write it atomically to `path`."""
    spec = SPECS[model_name]
    model_identity = identity(spec, weights, ORT_FP32)
    log.info("exporting %s to ONNX (%s)", model_identity, path)
    embedder = load_backbone(model_name, weights)
    data = onnx_bytes(embedder, model_identity)
    check_agreement(embedder, data, model_identity)
    atomic_write_bytes(path, data)
    log.info("exported %s (%.1f MB)", path, len(data) / 1e6)


def onnx_bytes(embedder: TorchEmbedder, model_identity: str) -> bytes:
    """The embedder's whole graph (uint8 images -> unit vectors) as an ONNX model, batch size free."""
    sample = torch.from_numpy(check_images(embedder.crop_size, count=2))  # (2, H, W, 3) uint8
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter warns that it is deprecated; the torch.export-based one
        # needs onnxscript and gives the same graph for these convolutional networks.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            embedder.model,
            (sample,),
            buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to a file object too
            dynamo=False,
            opset_version=OPSET,
            input_names=[ONNX_INPUT],
            output_names=[ONNX_OUTPUT],
            dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}},
        )
    model = onnx.load_from_string(buffer.getvalue())
    preprocessing = embedder.spec.preprocessing
    metadata = {
        ONNX_IDENTITY_KEY: model_identity,
        "dim": str(embedder.dim),
        "preprocessing": json.dumps(preprocessing.__dict__),
        "exported_by": f"torch {torch.__version__}, onnx {onnx.__version__}",
    }
    onnx.helper.set_model_props(model, metadata)
    return model.SerializeToString()


def check_agreement(embedder: TorchEmbedder, data: bytes, model_identity: str) -> float:
    """Refuse an export whose embeddings stray from torch's (cosine under 0.999 on any image)."""
    images = check_images(embedder.crop_size, count=8)
    expected = embedder.embed_arrays(list(images))  # (8, dim)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run([ONNX_OUTPUT], {ONNX_INPUT: images})[0]  # (8, dim)
    cosine = float(np.min(np.sum(expected * got, axis=1)))
    if cosine < MIN_COSINE:
        raise ConfigError(
            f"the ONNX export of {model_identity} disagrees with torch (cosine {cosine:.5f} < "
            f"{MIN_COSINE}); use MODEL_RUNTIME=torch for this model"
        )
    log.info("ONNX Runtime vs torch on %d check images: cosine >= %.6f", len(images), cosine)
    return cosine


def check_images(size: int, count: int) -> np.ndarray:
    """Seeded photo-like images: smooth colour fields with fine noise; (count, size, size, 3) uint8."""
    rng = np.random.default_rng(RANDOM_SEED)
    images = []
    for _ in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), np.float32)
        noisy = smooth + rng.normal(0, 12, smooth.shape)
        images.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return np.stack(images)

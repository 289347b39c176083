"""Model throughput: ONNX Runtime against torch eager, batch 32, two threads, same input arrays.

Both runtimes embed the same preprocessed photos (uint8 arrays, as the indexer hands them over)
through their whole graph (normalisation, backbone, L2 norm), in alternating rounds so that
they see the same machine load; each figure is the median round.
"""

from __future__ import annotations

import time

import numpy as np

from .common import MODEL_DIR, Context, Figure, median, model_weights

BATCH = 32
THREADS = 2
# Times faster than torch eager that ONNX Runtime must be, per model.
TARGETS = {"resnet18": 1.4, "efficientnet_lite0": 3.0}


def run(ctx: Context) -> list[Figure]:
    import torch

    torch.set_num_threads(THREADS)
    return [measure(model, ctx) for model in TARGETS]


def measure(model: str, ctx: Context) -> Figure:
    from backend.model import load_embedder

    weights = model_weights(model)
    served = load_embedder(model, weights, model_dir=MODEL_DIR, threads=THREADS)
    baseline = load_embedder(model, weights, runtime="torch")
    arrays = photo_arrays(served, ctx, BATCH)
    rounds = 3 if ctx.quick else 6
    seconds: dict[str, list[float]] = {"onnx": [], "torch": []}
    for embedder in (served, baseline):
        embedder.embed_arrays(arrays)  # the first batch pays one-off costs
    for _ in range(rounds):
        for name, embedder in (("onnx", served), ("torch", baseline)):
            seconds[name].append(timed_batch(embedder, arrays))
    ort_rate, torch_rate = BATCH / median(seconds["onnx"]), BATCH / median(seconds["torch"])
    cosine = float(np.min(np.sum(served.embed_arrays(arrays) * baseline.embed_arrays(arrays), 1)))
    target = TARGETS[model]
    return Figure(
        key=f"throughput_{model}",
        section="Model throughput",
        what=f"{model} embeddings per second, batch {BATCH}, {THREADS} threads, ONNX Runtime "
        f"float32 ({'random' if weights else 'pretrained'} weights)",
        value=ort_rate,
        unit="images/s",
        baseline="torch eager float32, same arrays and threads",
        baseline_value=torch_rate,
        ratio=ort_rate / torch_rate,
        target=f">= {target}x torch eager",
        met=ort_rate / torch_rate >= target,
        note=f"median of {rounds} alternating rounds; cosine ONNX Runtime vs torch >= {cosine:.5f}",
        detail={"seconds": seconds, "cosine_min": cosine},
    )


def photo_arrays(embedder, ctx: Context, count: int) -> list[np.ndarray]:
    """`count` benchmark photos, preprocessed for the model (drawn ones without the catalog)."""
    from PIL import Image

    from backend.images.decode import decode_image

    paths = sorted((ctx.bench_catalog / "images").glob("*.jpg"))[:count]
    images = [decode_image(path.read_bytes()) for path in paths]
    while len(images) < count:  # no benchmark catalog: flat colours will do for timing
        images.append(Image.new("RGB", (300, 240), (40 * len(images) % 256, 120, 200)))
    return [embedder.preprocess(image) for image in images]


def timed_batch(embedder, arrays: list[np.ndarray]) -> float:
    start = time.perf_counter()
    embedder.embed_arrays(arrays)
    return time.perf_counter() - start

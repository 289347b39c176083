"""A fine-tuned projection head applied on top of a backbone's embeddings (numpy, no torch).

The head is a small MLP, `unit(relu(...relu((x - centre) / scale W1 + b1)...) Wn + bn)`, trained by
`finetune.py` and saved as an .npz file next to the index. It is applied when vectors are loaded
and to every query, so index.csv keeps the backbone's own embeddings and switching heads needs
no re-embedding; the served model identity names the head.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes
from ..errors import ConfigError
from .on_top import OnTopEmbedder

FORMAT = "projection-head/1"


@dataclass(frozen=True)
class ProjectionHead:
    base_identity: str  # the backbone identity whose embeddings it was trained on
    centre: np.ndarray  # (D,) training mean
    scale: np.ndarray  # (D,) training standard deviation: every input dimension counts alike
    layers: list[tuple[np.ndarray, np.ndarray]]  # (W (in, out), b (out,)) per layer
    residual: bool = True  # add the standardised input to the output (needs dim == D)
    info: dict = field(default_factory=dict)  # how it was trained (seed, epochs, scores)

    @property
    def input_dim(self) -> int:
        return self.layers[0][0].shape[0]

    @property
    def dim(self) -> int:
        return self.layers[-1][0].shape[1]

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Project (N, D) backbone embeddings to (N, dim) float32 unit vectors."""
        x = (np.asarray(vectors, dtype=np.float32) - self.centre) / self.scale  # (N, D)
        inputs = x
        for number, (weight, bias) in enumerate(self.layers):
            x = x @ weight + bias
            if number < len(self.layers) - 1:
                np.maximum(x, 0, out=x)
        if self.residual:
            x = x + inputs  # (N, D)
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return (x / np.maximum(norms, 1e-12)).astype(np.float32)  # (N, dim)

    def to_bytes(self) -> bytes:
        arrays = {"centre": self.centre, "scale": self.scale}
        for number, (weight, bias) in enumerate(self.layers):
            arrays[f"w{number}"], arrays[f"b{number}"] = weight, bias
        meta = {
            "format": FORMAT,
            "base_identity": self.base_identity,
            "layers": len(self.layers),
            "residual": self.residual,
        }
        arrays["meta"] = np.array(json.dumps({**meta, "info": self.info}))
        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **arrays)  # numbers and one string: no objects
        return buffer.getvalue()


@dataclass(frozen=True)
class LoadedHead:
    head: ProjectionHead
    digest: str  # of the file, so any retraining gives a new identity

    def identity(self) -> str:
        return f"{self.head.base_identity}+head-{self.digest}"


def save_head(path: Path, head: ProjectionHead) -> LoadedHead:
    """Write the head atomically; return it with its file digest."""
    data = head.to_bytes()
    atomic_write_bytes(path, data)
    return LoadedHead(head, hashlib.sha256(data).hexdigest()[:12])


def load_head(path: Path) -> LoadedHead:
    """Read a head file saved by save_head; anything else is a ConfigError naming the file."""
    try:
        data = path.read_bytes()
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            meta = json.loads(str(arrays["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r} is not {FORMAT!r}")
            layers = [
                (arrays[f"w{n}"].astype(np.float32), arrays[f"b{n}"].astype(np.float32))
                for n in range(int(meta["layers"]))
            ]
            head = ProjectionHead(
                meta["base_identity"],
                arrays["centre"].astype(np.float32),
                arrays["scale"].astype(np.float32),
                layers,
                bool(meta["residual"]),
                meta.get("info", {}),
            )
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        raise ConfigError(
            f"MODEL_HEAD file {path} is not a readable projection head: {error}"
        ) from None
    return LoadedHead(head, hashlib.sha256(data).hexdigest()[:12])


def check_base(loaded: LoadedHead, path: Path, identity: str) -> None:
    """Refuse a head trained on another backbone: its projection would be meaningless."""
    trained_on = loaded.head.base_identity
    if trained_on == identity:
        return
    model, runtime = identity.rsplit("/", 1)
    trained_model, trained_runtime = trained_on.rsplit("/", 1)
    if model == trained_model:
        raise ConfigError(
            f"MODEL_HEAD {path} was trained on {trained_runtime} embeddings, but this server "
            f"computes {runtime} ones (MODEL_RUNTIME); fine-tune again here "
            "(flask finetune) or unset MODEL_HEAD"
        )
    raise ConfigError(
        f"MODEL_HEAD {path} was trained on {trained_on}, but the model is "
        f"{identity}; fine-tune again (flask finetune) or unset MODEL_HEAD"
    )


class HeadEmbedder(OnTopEmbedder):
    """A backbone embedder with a projection head on top: same interface, new identity."""

    def __init__(self, base, loaded: LoadedHead) -> None:
        super().__init__(base, loaded.identity(), loaded.head.dim)
        self.head = loaded.head

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        return self.head.apply(vectors)


def load_head_embedder(base, path: Path) -> HeadEmbedder:
    """Put the head saved at `path` on top of `base`, refusing one trained on another model."""
    loaded = load_head(path)
    check_base(loaded, path, base.identity)
    return HeadEmbedder(base, loaded)

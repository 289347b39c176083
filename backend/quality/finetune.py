"""Fine-tune a projection head on cached backbone embeddings with the catalog's own labels.

Supervised contrastive loss (Khosla et al., 2020) over label-balanced batches: each step draws
`batch_labels` labels and `per_label` items of each, so rare labels weigh as much as common ones.
A share of the LABELS (not of the rows) is held out, so the reported before/after scores are on
products of kinds the head has never seen, which is what a growing catalog looks like. With
holdout 0 every label trains the head (best when a separate test catalog measures it).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_writer
from ..errors import InvalidInput
from ..model.head import ProjectionHead, save_head
from .embeddings import Embeddings, Progress
from .leave_one_out import Evaluation, evaluate_vectors


@dataclass(frozen=True)
class FinetuneOptions:
    epochs: int = 10
    hidden: int = 512
    learning_rate: float = 1e-4
    weight_decay: float = 1e-4
    temperature: float = 0.1
    batch_labels: int = 32
    per_label: int = 8
    holdout: float = 0.2  # share of the labels held out for validation
    seed: int = 0


@dataclass(frozen=True)
class LabelSplit:
    train: np.ndarray  # row indices
    held_out: np.ndarray
    train_labels: list[str]
    held_out_labels: list[str]


def split_labels(labels: Sequence[str | None], holdout: float, seed: int) -> LabelSplit:
    """Hold out a seeded share of the labels that have at least two items; all their rows go with them.

    holdout 0 holds nothing out: every such label trains.
    """
    if not 0.0 <= holdout < 1.0:
        raise InvalidInput(f"holdout={holdout} must be at least 0 and below 1")
    rows_of: dict[str, list[int]] = {}
    for row, label in enumerate(labels):
        if label:
            rows_of.setdefault(label, []).append(row)
    usable = sorted(label for label, rows in rows_of.items() if len(rows) >= 2)
    n_held = round(holdout * len(usable))
    if holdout == 0 and len(usable) >= 2:
        rows = [row for label in usable for row in rows_of[label]]
        return LabelSplit(np.array(sorted(rows)), np.zeros(0, dtype=np.int64), usable, [])
    if len(usable) < 4 or n_held < 2 or len(usable) - n_held < 2:
        raise InvalidInput(
            f"fine-tuning needs at least 2 training and 2 held-out labels with 2+ items each; "
            f"{len(usable)} labels have 2+ items (holdout {holdout})"
        )
    order = np.random.default_rng(seed).permutation(len(usable))
    held = sorted(usable[i] for i in order[:n_held])
    held_set = set(held)
    kept = [label for label in usable if label not in held_set]
    train = [row for label in kept for row in rows_of[label]]
    held_rows = [row for label in held for row in rows_of[label]]
    return LabelSplit(np.array(sorted(train)), np.array(sorted(held_rows)), kept, held)


class Head(nn.Module):
    """input + MLP(input), the last layer zeroed: training starts from the standardised input."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        first, last = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.mlp = nn.Sequential(first, nn.ReLU(), last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(x)


def supervised_contrastive_loss(
    z: torch.Tensor, codes: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Mean over anchors of -log softmax similarity of each positive against all other items."""
    z = nn.functional.normalize(z, dim=1)  # (B, dim)
    logits = z @ z.T / temperature  # (B, B)
    own = torch.eye(len(z), dtype=torch.bool)
    logits = logits.masked_fill(own, float("-inf"))
    positives = (codes[:, None] == codes[None, :]) & ~own
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    per_anchor = log_prob.masked_fill(~positives, 0).sum(1) / positives.sum(1).clamp(min=1)
    return -per_anchor[positives.any(1)].mean()


def train_head(
    vectors: np.ndarray,
    labels: Sequence[str],
    base_identity: str,
    options: FinetuneOptions,
    progress: Progress | None = None,
) -> ProjectionHead:
    """Train the head on (N, D) embeddings with one label per row; deterministic per seed."""
    names = sorted(set(labels))
    codes = np.array([names.index(label) for label in labels])
    rows_by_label = [np.flatnonzero(codes == code) for code in range(len(names))]
    centre = vectors.mean(axis=0).astype(np.float32)  # (D,)
    scale = (vectors.std(axis=0) + 1e-6).astype(np.float32)  # (D,)
    inputs = torch.from_numpy(np.ascontiguousarray((vectors - centre) / scale, dtype=np.float32))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        model = Head(vectors.shape[1], options.hidden)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay
    )
    rng = np.random.default_rng(options.seed)
    steps = max(1, len(vectors) // (options.batch_labels * options.per_label))
    threads = torch.get_num_threads()
    # One thread: the matrices are small, so more only contend for the cores, and the result
    # then cannot depend on the machine's core count.
    torch.set_num_threads(1)
    try:
        for epoch in range(options.epochs):
            for _ in range(steps):
                batch = _balanced_batch(rng, rows_by_label, options)
                loss = supervised_contrastive_loss(
                    model(inputs[batch]), torch.from_numpy(codes[batch]), options.temperature
                )
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            if progress:
                progress(epoch + 1, options.epochs)
    finally:
        torch.set_num_threads(threads)
    return _export(model, centre, scale, base_identity, options)


def _balanced_batch(
    rng: np.random.Generator, rows_by_label: list[np.ndarray], options
) -> np.ndarray:
    """`batch_labels` labels, `per_label` rows of each (all of a smaller label); no row twice."""
    chosen = rng.choice(
        len(rows_by_label), size=min(options.batch_labels, len(rows_by_label)), replace=False
    )
    return np.concatenate(
        [
            rng.choice(
                rows_by_label[code],
                size=min(options.per_label, len(rows_by_label[code])),
                replace=False,
            )
            for code in chosen
        ]
    )


def _export(model: Head, centre, scale, base_identity: str, options) -> ProjectionHead:
    linears = [layer for layer in model.mlp if isinstance(layer, nn.Linear)]
    layers = [
        (layer.weight.detach().numpy().T.copy(), layer.bias.detach().numpy().copy())
        for layer in linears
    ]
    return ProjectionHead(base_identity, centre, scale, layers, info={"options": asdict(options)})


@dataclass(frozen=True)
class FinetuneRun:
    head_path: Path
    labels_path: Path | None  # the held-out split as id,label (None when nothing is held out)
    identity: str  # served identity with the head
    before: Evaluation | None  # the backbone alone, on the held-out labels (None: none held out)
    after: Evaluation | None  # with the head, on the same products
    split: LabelSplit


def finetune_catalog(
    base: Embeddings,
    labels: Sequence[str | None],
    options: FinetuneOptions,
    ks: Sequence[int],
    head_path: Path,
    progress: Progress | None = None,
) -> FinetuneRun:
    """Train a head on a backbone's catalog embeddings; score it on held-out labels; save it."""
    split = split_labels(labels, options.holdout, options.seed)
    head = train_head(
        base.vectors[split.train],
        [labels[row] for row in split.train],
        base.identity,
        options,
        progress,
    )
    if not len(split.held_out):
        saved = save_head(head_path, head)
        return FinetuneRun(head_path, None, saved.identity(), None, None, split)
    held_labels = [labels[row] for row in split.held_out]
    before = evaluate_vectors(base.vectors[split.held_out], held_labels, ks, model="before")
    after = evaluate_vectors(
        head.apply(base.vectors[split.held_out]), held_labels, ks, model="after"
    )
    info = {
        **head.info,
        "held_out_labels": split.held_out_labels,
        "held_out_precision": {"before": before.precision, "after": after.precision},
    }
    saved = save_head(head_path, replace(head, info=info))
    split_path = head_path.with_suffix(".heldout.csv")
    _write_labels(split_path, [(base.products[row].id, labels[row]) for row in split.held_out])
    return FinetuneRun(head_path, split_path, saved.identity(), before, after, split)


def _write_labels(path: Path, rows: list[tuple[str, str]]) -> None:
    with atomic_writer(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label"])
        writer.writerows(rows)

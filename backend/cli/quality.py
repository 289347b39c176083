"""Flask CLI: `flask evaluate` (retrieval quality) and `flask finetune` (a head on the catalog)."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from ..config import PROJECT_ROOT
from ..extensions import get_service
from . import friendly_errors, progress_bar

RANDOM_QUALITY_NOTICE = (
    "NOTE: random-init weights: these are the scores of an UNTRAINED network, "
    "not of the ImageNet model."
)


def parse_ks(ctx, param, value: str) -> list[int]:
    try:
        ks = sorted({int(part) for part in value.split(",") if part.strip()})
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers") from None
    if not ks or ks[0] < 1:
        raise click.BadParameter("give one or more K of at least 1, e.g. 1,5,10")
    return ks


labels_option = click.option(
    "--labels",
    "labels_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CSV with the columns id,label (default: each product's category is its label).",
)
ks_option = click.option(
    "--k", "ks", default="1,5,10", callback=parse_ks, help="K values, e.g. 1,5,10."
)


@click.command("evaluate")
@labels_option
@ks_option
@click.option(
    "--queries",
    "queries_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Shopper photos (CSV image,label): search the catalog with each, as the API does.",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    help="A model name or a head file (.npz); repeat to compare. Default: the served model.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for evaluation.json and evaluation.png (default: artifacts/).",
)
@click.option(
    "--worst", type=click.IntRange(0, 1000), default=10, help="Labels to list, worst first."
)
@click.option(
    "--top-k",
    "top_k",
    type=click.IntRange(1, 100),
    default=None,
    help="Results per page for the top-k view of the threshold (default: TOP_K).",
)
@with_appcontext
@friendly_errors
def evaluate_command(
    labels_path: Path | None,
    ks: list[int],
    queries_path: Path | None,
    models: tuple[str, ...],
    out,
    worst: int,
    top_k: int | None,
) -> None:
    """Leave-one-out retrieval quality on the catalog: P@K, R@K, mAP, per label, threshold sweep.

    With --queries: shopper photos searched against the catalog (P@1, top-5, top-12, MRR, the
    reliability of the figure on the cards).
    """
    from dataclasses import replace

    if queries_path is not None:
        return evaluate_shopper(queries_path, labels_path, out)

    from ..quality.embeddings import ModelSpec, embeddings_for
    from ..quality.labels import load_labels, product_labels
    from ..quality.leave_one_out import evaluate_vectors
    from ..quality.report import (
        format_labels,
        format_summary,
        format_sweep,
        format_top_k,
        write_figure,
        write_json,
    )

    settings = current_app.config["SETTINGS"]
    top_k = top_k or settings.top_k
    labels = load_labels(labels_path) if labels_path else None
    specs = [ModelSpec.parse(name) for name in models] or [ModelSpec.served(settings)]
    results, any_random = [], False
    for spec in specs:
        with progress_bar(f"embedding ({spec.model})") as progress:
            embeddings = embeddings_for(settings, spec, progress)
        any_random |= embeddings.random_weights
        with progress_bar(f"scoring {embeddings.identity}") as progress:
            results.append(
                evaluate_vectors(
                    embeddings.vectors,
                    product_labels(embeddings.products, labels),
                    ks,
                    model=embeddings.identity,
                    progress=progress,
                    top_k=top_k,
                )
            )
    if any_random:
        click.secho(RANDOM_QUALITY_NOTICE, fg="yellow", err=True)
    first = results[0]
    click.echo(
        f"{first.queries} queries ({first.skipped_singletons} alone in their label, "
        f"{first.unlabelled} unlabelled: distractors only), {first.candidates} candidates each"
    )
    click.echo(format_summary(results))
    for spec, result in zip(specs, results, strict=True):
        # The threshold this model is served with: SIMILARITY_THRESHOLD, else its own default.
        served = replace(settings, model=spec.model).threshold
        click.echo(f"\n{result.model}: worst labels\n{format_labels(result, worst)}")
        click.echo(
            f"\n{result.model}: threshold sweep over all pairs (* best F1, < served default)\n"
            f"{format_sweep(result, served)}"
        )
        click.echo(
            f"\n{result.model}: what a shopper sees of the top {top_k} (* best F1, < served "
            f"default)\n{format_top_k(result, served)}"
        )
    out = out or PROJECT_ROOT / "artifacts"
    context = {"catalog": str(settings.catalog_path), "labels": str(labels_path or "category")}
    write_json(out / "evaluation.json", results, context)
    write_figure(out / "evaluation.png", results)
    click.echo(f"\nwrote {out / 'evaluation.json'} and {out / 'evaluation.png'}")


def evaluate_shopper(queries_path: Path, labels_path: Path | None, out: Path | None) -> None:
    """`flask evaluate --queries`: the served search, photo by photo."""
    from ..quality.labels import load_labels
    from ..quality.shopper import evaluate_queries, load_queries
    from ..quality.shopper_report import (
        format_shopper,
        write_shopper_figure,
        write_shopper_json,
    )

    settings = current_app.config["SETTINGS"]
    queries = load_queries(queries_path)
    labels = load_labels(labels_path) if labels_path else None
    service = get_service()
    with progress_bar("syncing the catalog") as progress:
        service.sync(progress)
    with progress_bar(f"searching with {len(queries)} photos") as progress:
        result = evaluate_queries(service, queries, labels, progress)
    if service.embedder.random_weights:
        click.secho(RANDOM_QUALITY_NOTICE, fg="yellow", err=True)
    click.echo(format_shopper(result))
    out = out or PROJECT_ROOT / "artifacts"
    context = {"catalog": str(settings.catalog_path), "queries": str(queries_path)}
    write_shopper_json(out / "shopper.json", result, context)
    write_shopper_figure(out / "shopper.png", result)
    click.echo(f"\nwrote {out / 'shopper.json'} and {out / 'shopper.png'}")


@click.command("finetune")
@labels_option
@ks_option
@click.option(
    "--epochs", type=click.IntRange(1, 10_000), default=None, help="Passes over the data."
)
@click.option(
    "--holdout",
    type=click.FloatRange(0.0, 0.95),
    default=0.2,
    help="Share of labels held out (0: train on every label; measure on a separate catalog).",
)
@click.option(
    "--seed", type=int, default=0, help="Seed for the split, the initial weights and the batches."
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Head file to write (default: head-<model>.npz next to the index).",
)
@with_appcontext
@friendly_errors
def finetune_command(labels_path, ks, epochs, holdout, seed, out) -> None:
    """Train a projection head on the catalog's labels; report P@K before/after on held-out labels."""
    from dataclasses import replace

    from ..quality.embeddings import ModelSpec, embeddings_for
    from ..quality.finetune import FinetuneOptions, finetune_catalog
    from ..quality.labels import load_labels, product_labels
    from ..quality.report import format_summary

    settings = current_app.config["SETTINGS"]
    options = FinetuneOptions(holdout=holdout, seed=seed)
    options = replace(options, epochs=epochs) if epochs else options
    with progress_bar(f"embedding ({settings.model})") as progress:
        base = embeddings_for(settings, ModelSpec(settings.model), progress)
    labels = product_labels(base.products, load_labels(labels_path) if labels_path else None)
    out = out or settings.index_path.with_name(f"head-{settings.model}.npz")
    with progress_bar("training") as progress:
        run = finetune_catalog(base, labels, options, ks, out, progress)
    if base.random_weights:
        click.secho(RANDOM_QUALITY_NOTICE, fg="yellow", err=True)
    split = run.split
    trained = f"trained on {len(split.train)} products of {len(split.train_labels)} labels"
    if run.before is None or run.after is None:  # both or neither: a held-out evaluation
        click.echo(f"{trained}: every label (none held out)")
    else:
        click.echo(
            f"{trained}; held out {len(split.held_out)} products of "
            f"{len(split.held_out_labels)} labels (P@K among the held-out products only)"
        )
        click.echo(format_summary([run.before, run.after]))
    click.echo(f"\nsaved {run.head_path} ({run.identity})")
    if run.labels_path is not None:
        click.echo(f"held-out split: {run.labels_path}")
    else:
        click.echo(
            "no label held out: measure the head on a separate catalog, e.g. "
            f"CATALOG_PATH=test/products.csv flask evaluate --labels test/labels.csv "
            f"--model {settings.model} --model {run.head_path}"
        )
    click.echo(f"serve it with MODEL_HEAD={run.head_path}")


COMMANDS = (evaluate_command, finetune_command)

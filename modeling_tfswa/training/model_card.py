"""The model card (README.md) of a saved model, through `huggingface_hub.ModelCard`.

One template (`templates/model_card.md`, Jinja) filled from the training configuration; the
metadata (`ModelCardData`) carries `pipeline_tag: audio-to-audio`, `library_name: transformers`
and the scores as `eval_results`, which the Hub renders as the model's results (`model-index`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..configuration_tfswa import TFSWAConfig
from ..fileio import write_text_atomic
from ..metrics import metric_name
from .config import TrainingConfig

TEMPLATE = Path(__file__).with_name("templates") / "model_card.md"

#: The dataset named in the metadata for each `data.source` (others: the source's name).
DATASETS = {"musdb18": "MUSDB18", "musdb18hq": "MUSDB18-HQ", "synthetic": "synthetic multitracks"}


def _eval_results(scores: dict[str, float], split: str, source: str, kind: str) -> list[EvalResult]:
    return [
        EvalResult(
            task_type="audio-to-audio",
            task_name="Music source separation",
            dataset_type=source,
            dataset_name=DATASETS.get(source, source),
            dataset_split=split,
            metric_type="sdr",
            metric_name=f"SDR {stem} ({kind}, dB)",
            metric_value=round(float(value), 3),
        )
        for stem, value in scores.items()
        if math.isfinite(value)
    ]


def build_model_card(
    config: TrainingConfig,
    metrics: dict[str, float],
    step: int,
    *,
    evaluation: dict[str, float] | None = None,
    evaluation_split: str = "test",
    model_id: str | None = None,
    model_config: TFSWAConfig | None = None,
) -> ModelCard:
    """The model card of a model trained with `config`.

    Args:
        config ([`TrainingConfig`]): the run's configuration.
        metrics (`dict[str, float]`): validation metrics (`sdr/<stem>`, `sdr_gain/<stem>`).
        step (`int`): optimizer steps trained.
        evaluation (`dict[str, float]`, *optional*): stem -> SDR (dB) from `tfswa-evaluate`.
        evaluation_split (`str`, *optional*, defaults to `"test"`): the split it was computed on.
        model_id (`str`, *optional*): the Hub id shown in the examples (defaults to
            `config.hub_model_id`, else a placeholder).
        model_config ([`TFSWAConfig`], *optional*): the saved model's config (defaults to
            `config.model_config()`).
    """
    model = model_config or config.model_config()
    stems = list(model.stems)
    validation = {stem: metrics.get(metric_name("sdr", stem), float("nan")) for stem in stems}
    sources = [entry["source"] for entry in config.data.sources] or [config.data.source]
    source = "+".join(sources)
    results = _eval_results(validation, "validation", source, "validation segments, median")
    if evaluation:
        results += _eval_results(
            {stem: evaluation[stem] for stem in stems if stem in evaluation},
            evaluation_split,
            source,
            "tfswa-evaluate",
        )
    model_id = model_id or config.hub_model_id or "path/or/hub-id"
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="audio-to-audio",
        license="mit",
        tags=["audio", "music-source-separation", "tfswa-unet"],
        model_name=model_id,
        eval_results=results or None,
    )
    rows = ["| stem | validation SDR | SDR gain over the mixture |"]
    if evaluation:
        rows[0] += f" {evaluation_split} SDR (tfswa-evaluate) |"
    rows.append("|---" * (4 if evaluation else 3) + "|")
    for stem in stems:
        row = f"| {stem} | {validation[stem]:.2f} | {metrics.get(metric_name('sdr_gain', stem), math.nan):.2f} |"
        if evaluation:
            row += f" {evaluation.get(stem, math.nan):.2f} |"
        rows.append(row)
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        model_id=model_id,
        stems=stems,
        audio_channels=model.audio_channels,
        sample_rate=model.sample_rate,
        n_fft=model.n_fft,
        hop_length=model.hop_length,
        mask_type=model.mask_type,
        log_power_input=model.log_power_input,
        segment_seconds=model.segment_seconds,
        overlap=model.overlap,
        data_source=source,
        stem_set=config.stem_set(model),
        batch_size=config.data.batch_size,
        lr=config.optim.lr,
        weight_decay=config.optim.weight_decay,
        warmup_steps=config.optim.warmup_steps,
        max_grad_norm=config.optim.max_grad_norm,
        ema_decay=config.ema_decay,
        step=step,
        init_from=config.init_from,
        scores_table="\n".join(rows),
    )


def write_model_card(
    folder: str | os.PathLike,
    config: TrainingConfig,
    metrics: dict[str, float],
    step: int,
    **kwargs,
) -> Path:
    """Write `folder/README.md` ([`build_model_card`]'s card; `kwargs` are its options)."""
    card = build_model_card(config, metrics, step, **kwargs)
    return write_text_atomic(Path(folder) / "README.md", str(card))


__all__ = ["build_model_card", "write_model_card"]

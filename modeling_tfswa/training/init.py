"""Fine-tuning: start a run from a trained model's weights (`init_from: DIR_OR_HUB_ID`).

Only the weights are taken (not the optimizer, schedule or step: the run has its own). With a
different stem list, the shared trunk is loaded and the weights whose meaning depends on the stems
(the mask head) keep their fresh initialisation; which weights those are is found by comparing
the model with a probe built on the meta device with one more stem, so the rule holds whatever
the architecture's layer names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ..modeling_tfswa import TFSWAUNet
from .config import ConfigError

logger = logging.getLogger(__name__)

#: Config fields that must match between the source and the new model (the STFT and the signal).
MATCHING_FIELDS = ("sample_rate", "audio_channels", "n_fft", "hop_length", "mask_type")


class InitFromError(ConfigError):
    """`init_from` names something that cannot initialise this model (one line)."""


@dataclass
class InitReport:
    """What [`init_from_pretrained`] did.

    Args:
        source (`str`): the folder or Hub id.
        loaded (`list[str]`): weights copied from it.
        new (`list[str]`): weights left at their initialisation (stem-dependent ones).
    """

    source: str
    loaded: list[str]
    new: list[str]


def _stem_dependent(model: TFSWAUNet) -> set[str]:
    """Names of the weights whose shape changes with the number of stems."""
    config = model.config
    probe_config = replace_stems(config, [*config.stems, "__probe__"])
    with torch.device("meta"):
        probe = TFSWAUNet(probe_config)
    shapes = {name: tensor.shape for name, tensor in model.state_dict().items()}
    return {name for name, tensor in probe.state_dict().items() if shapes.get(name) != tensor.shape}


def replace_stems(config, stems: list[str]):
    """A copy of a `TFSWAConfig` with other stems."""
    return type(config)(**{**config.to_dict(), "stems": list(stems)})


def init_from_pretrained(
    model: TFSWAUNet, name_or_path: str, *, revision: str | None = None
) -> InitReport:
    """Copy a saved TFSWA-UNet's weights into `model` (in place).

    Args:
        model ([`TFSWAUNet`]): the freshly initialised model of the run.
        name_or_path (`str`): a `save_pretrained` folder or a Hub id.
        revision (`str`, *optional*): Hub revision.

    Raises:
        InitFromError: not a TFSWA-UNet, or one of another architecture than `model` (other than
            its stems): the message names the source and the first difference.
    """
    from transformers import AutoModel

    try:
        source = AutoModel.from_pretrained(str(name_or_path), revision=revision)
    except (OSError, ValueError, KeyError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise InitFromError(
            f"init_from: {name_or_path}: not a TFSWA-UNet model ({first})"
        ) from None
    if getattr(source.config, "model_type", None) != model.config.model_type:
        raise InitFromError(
            f"init_from: {name_or_path}: a {source.config.model_type!r} model, not a TFSWA-UNet"
        )
    for field in MATCHING_FIELDS:
        theirs, ours = getattr(source.config, field), getattr(model.config, field)
        if theirs != ours:
            raise InitFromError(
                f"init_from: {name_or_path}: {field} is {theirs!r}, this run's model has {ours!r}"
            )
    fresh = (
        _stem_dependent(model) if list(source.config.stems) != list(model.config.stems) else set()
    )
    theirs = source.state_dict()
    state = model.state_dict()
    loaded, new = [], []
    for name, tensor in state.items():
        if name in fresh:
            new.append(name)
            continue
        if name not in theirs or theirs[name].shape != tensor.shape:
            found = tuple(theirs[name].shape) if name in theirs else "missing"
            raise InitFromError(
                f"init_from: {name_or_path}: weight {name} is {found}, this run's model needs "
                f"{tuple(tensor.shape)} (only the stems may differ)"
            )
        loaded.append(name)
    unused = sorted(set(theirs) - set(state) - fresh)
    if unused:
        raise InitFromError(
            f"init_from: {name_or_path}: has weights this run's model lacks ({unused[0]}...; "
            "only the stems may differ)"
        )
    with torch.no_grad():
        for name in loaded:
            state[name].copy_(theirs[name])
    report = InitReport(source=str(name_or_path), loaded=loaded, new=new)
    logger.info(
        "init_from %s: %d weights loaded%s",
        name_or_path,
        len(loaded),
        f"; new (stems {source.config.stems} -> {model.config.stems}): {', '.join(new)}"
        if new
        else "",
    )
    return report


__all__ = ["InitFromError", "InitReport", "init_from_pretrained"]

"""The separators evaluation runs: a trained model ([`ModelSeparator`], through
`modeling_tfswa.separation.apply_model`) or an oracle, both behind [`load_separator`]."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..configuration_tfswa import TFSWAConfig
from ..separation import apply_model
from .oracles import ORACLE_MASKS, OracleSeparator


@dataclass
class ModelSeparator:
    """A trained model run over full tracks with `modeling_tfswa.separation.apply_model`.

    Args:
        model: a [`TFSWAUNet`] (or any model with `config.stems` / `config.sample_rate` /
            `config.audio_channels` that `apply_model` accepts).
        name (`str`): name in the reports (the model's path or Hub id).
        segment_seconds / overlap / shifts / batch_size / device: passed to `apply_model`.
    """

    model: torch.nn.Module
    name: str
    segment_seconds: float | None = None
    overlap: float = 0.25
    shifts: int = 0
    batch_size: int = 4
    device: str | None = None

    @property
    def stems(self) -> list[str]:
        return list(self.model.config.stems)

    @property
    def sample_rate(self) -> int:
        return self.model.config.sample_rate

    @property
    def audio_channels(self) -> int:
        return self.model.config.audio_channels

    def settings(self) -> dict:
        """What its estimates depend on (for reusing results): the separation options, the
        model's config and a hash of its weights (a model retrained at the same path differs)."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            flat = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(flat.view(torch.uint8).numpy().tobytes())
        return {
            "segment_seconds": self.segment_seconds,
            "overlap": self.overlap,
            "shifts": self.shifts,
            "config": self.model.config.to_diff_dict(),
            "weights_sha256": digest.hexdigest(),
        }

    def separate(self, mixture: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """`(channels, samples)` -> `(stems, channels, samples)`; `references` is not looked at."""
        return apply_model(
            self.model,
            mixture,
            segment_seconds=self.segment_seconds,
            overlap=self.overlap,
            shifts=self.shifts,
            batch_size=self.batch_size,
            device=self.device,
        )


def load_separator(
    name_or_path: str,
    *,
    stems: Sequence[str] | None = None,
    n_fft: int | None = None,
    hop_length: int | None = None,
    **separation_options,
) -> OracleSeparator | ModelSeparator:
    """An oracle (`name_or_path` a key of [`ORACLE_MASKS`]) or a model loaded with
    `AutoModel.from_pretrained(name_or_path)`.

    Args:
        name_or_path (`str`): `"irm"`, `"irm2"`, `"ibm"`, a local model folder or a Hub id.
        stems (`Sequence[str]`, *optional*): oracle stems (defaults to `TFSWAConfig`'s 4 stems).
        n_fft / hop_length (`int`, *optional*): oracle STFT (defaults to `TFSWAConfig`'s).
        separation_options: [`ModelSeparator`] options (segment_seconds, overlap, shifts,
            batch_size, device).
    """
    if name_or_path in ORACLE_MASKS:
        defaults = TFSWAConfig()
        return OracleSeparator(
            kind=name_or_path,
            stems=list(stems) if stems else list(defaults.stems),
            sample_rate=defaults.sample_rate,
            n_fft=n_fft or defaults.n_fft,
            hop_length=hop_length or defaults.hop_length,
        )
    if stems or n_fft or hop_length:
        raise ValueError("stems, n_fft and hop_length only apply to oracles; a model has its own")
    from transformers import AutoModel

    model = AutoModel.from_pretrained(name_or_path).eval()
    return ModelSeparator(model=model, name=name_or_path, **separation_options)

"""The separators evaluation runs: a trained model ([`ModelSeparator`], through
`modeling_tfswa.separation.Separator`, the one separation path) or an oracle, both behind [`load_separator`]."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..configuration_tfswa import TFSWAConfig
from ..separation import Separator
from .oracles import ORACLE_MASKS, OracleSeparator


@dataclass
class ModelSeparator:
    """A trained model's [`Separator`] (the one separation path) as an evaluation separator.

    Args:
        separator ([`Separator`]): the model and its separation options.
        name (`str`): name in the reports (the model's path or Hub id).
    """

    separator: Separator
    name: str

    @property
    def model(self) -> torch.nn.Module:
        return self.separator.model

    @property
    def stems(self) -> list[str]:
        return self.separator.stems

    @property
    def sample_rate(self) -> int:
        return self.separator.sample_rate

    @property
    def audio_channels(self) -> int:
        return self.model.config.audio_channels

    def settings(self) -> dict:
        """What its estimates depend on (for reusing results): the separation options (the
        model's own segment and overlap when not given), the model's config and a hash of its
        weights (a model retrained at the same path differs)."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            flat = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(flat.view(torch.uint8).numpy().tobytes())
        options = self.separator.options
        config = self.model.config
        return {
            "segment_seconds": options["segment_seconds"] or config.segment_seconds,
            "overlap": config.overlap if options["overlap"] is None else options["overlap"],
            "shifts": options["shifts"],
            "config": config.to_diff_dict(),
            "weights_sha256": digest.hexdigest(),
        }

    def separate(self, mixture: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """`(channels, samples)` -> `(stems, channels, samples)`; `references` is not looked at."""
        stems = self.separator.separate_waveform(mixture, self.sample_rate, self.name)
        return torch.stack([stems[stem] for stem in self.stems])


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
        n_fft / hop_length (`int`, *optional*): oracle STFT (defaults to `TFSWAConfig`'s: n_fft
            2048, hop `n_fft // 2`).
        separation_options: [`Separator`] options (segment_seconds, overlap, shifts, batch_size,
            device, dtype).
    """
    if name_or_path in ORACLE_MASKS:
        defaults = TFSWAConfig(**({"n_fft": n_fft} if n_fft else {}))
        return OracleSeparator(
            kind=name_or_path,
            stems=list(stems) if stems else list(defaults.stems),
            sample_rate=defaults.sample_rate,
            n_fft=defaults.n_fft,
            hop_length=hop_length or defaults.hop_length,
        )
    if stems or n_fft or hop_length:
        raise ValueError("stems, n_fft and hop_length only apply to oracles; a model has its own")
    separator = Separator.from_pretrained(name_or_path, **separation_options)
    return ModelSeparator(separator=separator, name=name_or_path)

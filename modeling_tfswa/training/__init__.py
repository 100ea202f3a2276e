"""Training of TFSWA-UNet with Accelerate: configuration, losses, augmentation, the loop, Hub pushes.

`accelerate launch train_accelerate.py --config configs/<name>.yaml [--key value ...]` is a thin shell
over [`main`] / [`train`]; see `configs/` for recipes.

- `config`: [`TrainingConfig`], one dataclass tree from YAML + `--key value` overrides.
- `losses`: [`SeparationLoss`] (waveform L1, magnitude-spectrogram L1, multi-resolution STFT).
- `augment`: [`Augmenter`] (gain, pitch, tempo, mixup on stems; STFT masking of the input).
- `trainer`: [`train`], the only training loop; `ema`: [`EMA`]; `hub`: [`HubPusher`].
- `data`: `config.data` -> datasets (through `data_scripts`); `demo`: the quickstart's demo.
"""

from .augment import Augmenter
from .cli import main
from .config import ConfigError, TrainingConfig, config_from_argv, load_config
from .ema import EMA
from .hub import HubPusher
from .losses import SeparationLoss
from .trainer import TrainResult, train

__all__ = [
    "EMA",
    "Augmenter",
    "ConfigError",
    "HubPusher",
    "SeparationLoss",
    "TrainResult",
    "TrainingConfig",
    "config_from_argv",
    "load_config",
    "main",
    "train",
]

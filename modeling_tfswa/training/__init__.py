"""Training of TFSWA-UNet with Accelerate: configuration, losses, augmentation, the loop, Hub pushes.

`accelerate launch train_accelerate.py --config configs/<name>.yaml [--key value ...]` is a thin shell
over [`train`]; see `configs/` for recipes.
"""

from .config import ConfigError, TrainingConfig, config_from_argv, load_config
from .losses import SeparationLoss

__all__ = ["ConfigError", "SeparationLoss", "TrainingConfig", "config_from_argv", "load_config"]

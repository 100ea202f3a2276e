"""TFSWA-UNet music source separation for the Hugging Face ecosystem.

Importing the package registers the model with `AutoConfig` / `AutoModel` (model type `"tfswa"`), and
marks both classes for `register_for_auto_class`, so that `save_pretrained` writes the model's code
next to its weights and the folder loads anywhere with `trust_remote_code=True`.
"""

from transformers import AutoConfig, AutoModel

from .configuration_tfswa import TFSWAConfig
from .modeling_tfswa import TFSWAMaskEstimator, TFSWASeparationOutput, TFSWAUNet

AutoConfig.register(TFSWAConfig.model_type, TFSWAConfig, exist_ok=True)
AutoModel.register(TFSWAConfig, TFSWAUNet, exist_ok=True)
TFSWAConfig.register_for_auto_class()
TFSWAUNet.register_for_auto_class("AutoModel")

__all__ = ["TFSWAConfig", "TFSWAMaskEstimator", "TFSWASeparationOutput", "TFSWAUNet"]

"""TFSWA-UNet music source separation for the Hugging Face ecosystem.

Importing the package registers the model with `AutoConfig` / `AutoModel` (model type `"tfswa"`), and
marks both classes for `register_for_auto_class`, so that `save_pretrained` writes the model's code
next to its weights and the folder loads anywhere with `trust_remote_code=True`; and registers the
`music-source-separation` task of `transformers.pipeline` ([`MusicSourceSeparationPipeline`]).
"""

from transformers import AutoConfig, AutoModel
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_tfswa import TFSWAConfig
from .modeling_tfswa import TFSWAMaskEstimator, TFSWASeparationOutput, TFSWAUNet
from .pipeline_tfswa import PIPELINE_TASK, MusicSourceSeparationPipeline

AutoConfig.register(TFSWAConfig.model_type, TFSWAConfig, exist_ok=True)
AutoModel.register(TFSWAConfig, TFSWAUNet, exist_ok=True)
TFSWAConfig.register_for_auto_class()
TFSWAUNet.register_for_auto_class("AutoModel")
PIPELINE_REGISTRY.register_pipeline(
    PIPELINE_TASK, pipeline_class=MusicSourceSeparationPipeline, pt_model=AutoModel, type="audio"
)

__all__ = [
    "MusicSourceSeparationPipeline",
    "TFSWAConfig",
    "TFSWAMaskEstimator",
    "TFSWASeparationOutput",
    "TFSWAUNet",
]

"""TFSWA-UNet music source separation for the Hugging Face ecosystem."""

from .configuration_tfswa import TFSWAConfig

__all__ = ["TFSWAConfig"]

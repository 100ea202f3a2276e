"""Exponential moving average of model weights, checkpointed with the training state."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


class EMA:
    """Float32 moving average of a model's trainable parameters.

    The effective decay ramps up as `min(decay, (1 + n) / (10 + n))` after `n` updates, so that short
    runs are not dominated by the random initialisation. Checkpoints carry it as safetensors
    (`modeling_tfswa.training.run_folder.save_run_state`).

    Args:
        model (`nn.Module`): the (unwrapped) model whose parameters are averaged.
        decay (`float`): the final decay, in [0, 1).
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.num_updates = 0
        self.shadow = {
            name: p.detach().float().clone()
            for name, p in model.named_parameters()
            if p.requires_grad
        }

    def current_decay(self) -> float:
        n = self.num_updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards the model's current parameters (call after each optimizer step)."""
        weight = 1.0 - self.current_decay()
        for name, p in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(p.detach().float(), weight)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's parameters with the averages."""
        for name, p in model.named_parameters():
            if name in self.shadow:
                p.copy_(self.shadow[name].to(p.dtype))

    @contextmanager
    def swapped(self, model: nn.Module):
        """Run a block with the averaged weights in `model`, restoring the trained ones after."""
        backup = {name: p.detach().clone() for name, p in model.named_parameters()}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    p.copy_(backup[name])

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.shadow) ^ set(state["shadow"])
        if missing:
            raise ValueError(
                f"EMA state does not match the model: differing keys {sorted(missing)}"
            )
        self.decay = state["decay"]
        self.num_updates = state["num_updates"]
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)


__all__ = ["EMA"]

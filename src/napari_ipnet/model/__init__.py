"""IPNet network definitions in plain torch (no torchvision)."""

from .networks import InteractionNet, IPNetModel, PropagationNet, build_model

__all__ = ["InteractionNet", "PropagationNet", "IPNetModel", "build_model"]

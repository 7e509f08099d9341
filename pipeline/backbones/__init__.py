"""Frozen torchvision backbones: building (:mod:`.models`), inference, weights names."""

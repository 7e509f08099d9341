"""Frozen torchvision backbones: the table and building one (:mod:`.models`), batched inference
(:mod:`.inference`), and telling weights apart without importing torchvision (:mod:`.weights`).
"""

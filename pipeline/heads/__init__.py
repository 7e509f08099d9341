"""The heads trained on cached features (:mod:`.dressed`: quantum, classical, linear) and
their checkpoints (:mod:`.checkpoint`).
"""

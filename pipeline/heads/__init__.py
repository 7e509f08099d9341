"""The heads trained on cached features (:mod:`.dressed`: quantum, classical, linear, and the
photonic ``cv`` head of :mod:`.photonic`), which features each fits (:mod:`.inputs`), and their
checkpoints (:mod:`.checkpoint`).
"""

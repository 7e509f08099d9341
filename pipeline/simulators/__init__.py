"""Simulators of the quantum circuits the heads use: the paper's qubit circuit (:mod:`.qubit`)
and the same circuit with finite shots and noise channels (:mod:`.noise`).
"""

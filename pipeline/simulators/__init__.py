"""Simulators of the quantum circuits the heads use: the paper's qubit circuit (:mod:`.qubit`)."""

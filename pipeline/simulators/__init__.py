"""Simulators of the quantum circuits the heads use: the paper's qubit circuit (:mod:`.qubit`),
the same circuit with finite shots and noise channels (:mod:`.noise`), and photonic
continuous-variable circuits in a truncated Fock basis (:mod:`.fock`).
"""

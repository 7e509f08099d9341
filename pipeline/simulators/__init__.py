"""Simulators of the paper's circuit."""

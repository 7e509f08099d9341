"""Simulators of quantum circuits in torch (batched, differentiable): see :mod:`.fock`."""

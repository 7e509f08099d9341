"""Circuits for the quantum head: built-in ansätze and embeddings, a user's file, compiled to
:mod:`pipeline.simulators.program`."""

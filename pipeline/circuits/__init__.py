"""Circuits for the quantum head: built-ins or a user's file, compiled to a program."""

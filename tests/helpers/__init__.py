"""Helpers several test modules share (data builders, recording wrappers); test modules import from here,
never from each other, and fixtures live in ``tests/conftest.py``."""

"""Runnable examples: ``python -m blis_gym.examples.<name>``."""

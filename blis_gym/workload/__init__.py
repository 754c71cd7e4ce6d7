"""Workload sources: synthetic distributions, presets and CSV trace replay."""

from .distribution import generate as generate_distribution
from .traces import load_trace

__all__ = ["generate_distribution", "load_trace"]

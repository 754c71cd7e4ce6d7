"""A run of the simulator: options in, a validated plan (config plus requests) out.

``RunOptions`` (every ``blis run`` flag) -> ``resolve`` -> ``RunPlan`` -> ``simulate``.
Everything that is not the CLI builds its runs here.
"""

from .options import RunOptions, cli_flags
from .resolve import RunPlan, generate_requests, resolve, simulate

__all__ = ["RunOptions", "RunPlan", "cli_flags", "generate_requests", "resolve", "simulate"]

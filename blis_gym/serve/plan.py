"""What ``blis serve`` simulates: ``blis run`` options resolved into one cluster per server.

Without a fleet, one server fronts the whole simulated cluster (``--num-instances``, routed by
``--routing-policy``). A fleet of N is N independent single-instance servers (one simulator
each), for an outside router or gateway to front. The run's workload flags play no part:
requests come over HTTP, and the run has no horizon (it lasts until the server stops).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..config.schema import MAX_INT64, ClusterConfig
from ..errors import ConfigError
from ..plan import RunOptions, resolve


@dataclass(frozen=True)
class ServePlan:
    """The served model's name (as the client must send it, case aside) and one cluster
    config per server."""

    model: str
    configs: tuple[ClusterConfig, ...]


def plan_serve(opts: RunOptions, fleet: int = 0) -> ServePlan:
    """Resolve ``opts`` as ``blis run`` would; ``fleet`` > 0 asks for that many single-instance
    servers. Raises :class:`~blis_gym.errors.BlisError` (one line) on bad options."""
    if fleet < 0:
        raise ConfigError(f"--instances must be >= 1, got {fleet}")
    if "horizon" in opts.explicit:
        raise ConfigError("--horizon: blis serve has no horizon (it simulates until it is stopped)")
    if fleet:
        if opts.instance_pool:
            raise ConfigError("--instances (a fleet of single-instance servers) excludes --instance-pool")
        if "num_instances" in opts.explicit and opts.num_instances != 1:
            raise ConfigError(
                "--instances (a fleet of single-instance servers) excludes --num-instances; use one or the other"
            )
        opts = replace(opts, num_instances=1)
    config = replace(resolve(opts).config, horizon=MAX_INT64)
    return ServePlan(opts.model, (config,) * (fleet or 1))

"""``blis serve``: an OpenAI-compatible server whose every token is timed by the simulator, in
real time (the ``serve`` extra: Starlette and uvicorn)."""

from __future__ import annotations

from typing import Optional

import typer

from ..errors import ConfigError
from .logs import setup_logging
from .run_command import run_options_from_args

_WHERE = "blis serve: blis run flags"


def serve_cmd(
    ctx: typer.Context,
    model: str = typer.Option(
        "",
        "--model",
        help="Model to simulate and serve (blis run's --model); clients send it as 'model' (any case) or leave it out.",
    ),
    port: int = typer.Option(8000, "--port", help="Port to listen on (0: any free port, printed)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    instances: int = typer.Option(
        0,
        "--instances",
        help="A fleet: N independent single-instance servers, one "
        "simulator each, on ports --base-port .. --base-port+N-1 "
        "(for an outside router to front). Default: one server "
        "fronting the whole simulated cluster.",
    ),
    base_port: Optional[int] = typer.Option(
        None, "--base-port", help="First port of an --instances fleet (default: --port)."
    ),
) -> None:
    """Serve /v1/completions, /v1/chat/completions, /v1/models and /health, each token released when
    the simulated cluster produces it (simulated time runs with the wall clock from start).

    Any blis run flag is accepted too, directly or after --: the model, hardware, TP, coefficients,
    number of instances, admission and routing policies (rl, lookahead, ...), KV cache and batch
    limits. Prompt tokens are the prompt's whitespace-separated words ("Token count: N" means N);
    a request generates exactly max_tokens tokens (default 16). Stop with Ctrl-C.
    """
    from ..serve.launch import endpoints, run_forever
    from ..serve.plan import plan_serve

    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {port}")
    if instances < 0:
        raise ConfigError(f"--instances must be >= 1, got {instances}")
    if base_port is not None and not instances:
        raise ConfigError("--base-port goes with --instances (a fleet)")
    first = port if base_port is None else base_port
    if not 0 <= first <= 65535 or (first and first + max(instances, 1) - 1 > 65535):
        raise ConfigError(f"--base-port: ports {first}..{first + max(instances, 1) - 1} are not all in 1..65535")
    args = (["--model", model] if model else []) + list(ctx.args)
    opts = run_options_from_args(args, _WHERE)
    setup_logging(opts.log)
    plan = plan_serve(opts, instances)
    eps = endpoints(plan, host, first)
    cfg = plan.configs[0]
    n = len(eps)

    def describe(e) -> str:
        if instances:
            k = eps.index(e) + 1
            return f"blis serve: {e.url} serves {plan.model} (fleet server {k} of {n}: one simulated instance)"
        what = (
            f"{cfg.num_instances} simulated instances, {cfg.routing_policy} routing"
            if cfg.num_instances > 1
            else "one simulated instance"
        )
        return f"blis serve: {e.url} serves {plan.model} ({what})"

    try:
        run_forever(eps, plan.model, describe)
    finally:
        for e in eps:
            e.sock.close()

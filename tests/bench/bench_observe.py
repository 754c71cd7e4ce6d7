#!/usr/bin/env python
"""``blis observe`` drift: how far the TTFT and E2E it records stray from ``blis serve``'s own (not a pytest test).

For each concurrency K, starts a fresh ``blis serve`` in a child process (as ``bench_serve.py``:
llama-3.1-8b on 4 simulated instances, round-robin) and replays against it, with ``blis
observe``'s own client (:class:`blis_gym.observe.client.RealClient`, on the event loop ``blis
observe`` runs), a workload of requests all due at once with at most K in flight: K streams
sending back to back over connections opened beforehand, for ``--duration`` seconds (then the
replay is stopped and the requests cut off are left out). The steady state is measured: the
first wave, K requests all sent at the start, is left out (of ``--client raw`` and ``httpx``
too, unlike in ``bench_serve.py``), since it measures parsing a burst of K requests at once,
in the client and in the server. Lengths
vary as in ``bench_serve.py`` (256-515 prompt and 48-83 output tokens). Every final chunk
carries ``blis_sim``, the simulator's TTFT and E2E for the request; drift is what the client
recorded (first chunk - send, last chunk - send) minus that, as ``bench_serve.py`` defines it.
``--client raw`` or ``httpx`` adds ``bench_serve.py``'s minimal asyncio client or its
one-``httpx.AsyncClient``-per-stream client on the same footing, for comparison.

The client and server share the machine: on 2 cores a large K measures both falling behind.

    python tests/bench/bench_observe.py
    python tests/bench/bench_observe.py --concurrency 1000 --client observe raw --duration 10 --json drift.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_serve import drive, drive_raw, server_stats, start_server, stop_server, summarize

from blis_gym.observe.client import PendingRequest, RealClient, run


def workload(k: int, duration_s: float, n_in: int, n_out: int) -> list[PendingRequest]:
    """More requests than K streams can finish in the duration, all due at once."""
    count = k * max(int(duration_s * 8), 20)
    return [
        PendingRequest(
            request_id=i,
            arrival_us=0,
            input_tokens=n_in + 37 * ((i % k + i // k) % 8),
            output_tokens=n_out + 5 * ((3 * (i % k) + i // k) % 8),
        )
        for i in range(count)
    ]


async def drive_observe(url: str, model: str, k: int, duration_s: float, n_in: int, n_out: int) -> dict:
    sims: dict[int, dict] = {}

    def on_final(rid: int, payload: dict) -> None:
        sim = payload.get("blis_sim")
        if sim is not None:
            sims[rid] = sim

    requests = workload(k, duration_s, n_in, n_out)
    stop = asyncio.Event()
    async with RealClient(url, model, concurrency=k, timeout_s=300.0, on_final=on_final) as client:

        async def health() -> None:
            async with client.http.get(url + "/health") as r:
                await r.read()

        # K connections open before timing starts, as bench_serve.py's clients have them.
        await asyncio.gather(*(health() for _ in range(k)))
        asyncio.get_running_loop().call_later(duration_s, stop.set)
        started = time.perf_counter()
        replay = await client.replay(requests, stop)
        wall = time.perf_counter() - started
    rows = []
    errors = 0
    for req, obs in replay.sent:
        if obs.error_message == "interrupted":
            continue
        if obs.status != "ok" or req.request_id not in sims:
            errors += 1
            continue
        if req.request_id < k:  # the first wave, all sent at once
            continue
        sim = sims[req.request_id]
        rows.append(
            (
                obs.first_chunk_time_us - obs.send_time_us,
                obs.last_chunk_time_us - obs.send_time_us,
                sim["ttft_us"],
                sim["e2e_us"],
                obs.output_tokens,
            )
        )
    out = summarize(k, rows, errors, wall)
    out["delivered_tokens"] = sum(obs.output_tokens for _, obs in replay.sent if obs.status == "ok")
    return out


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux: /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="meta-llama/llama-3.1-8b-instruct")
    ap.add_argument("--num-instances", type=int, default=4)
    ap.add_argument("--routing-policy", default="round-robin")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[50, 200, 1000])
    ap.add_argument(
        "--client",
        choices=["observe", "raw", "httpx"],
        nargs="+",
        default=["observe"],
        help="observe: blis observe's client; raw, httpx: bench_serve.py's clients",
    )
    ap.add_argument(
        "--loop",
        choices=["auto", "asyncio"],
        default="auto",
        help="the observe client's event loop: auto (blis observe's: uvloop when installed) or asyncio",
    )
    ap.add_argument("--duration", type=float, default=8.0, help="seconds each K sends requests for")
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args()
    results = []
    for client in args.client:
        for k in args.concurrency:
            proc, url = start_server(args)  # a fresh server (and clock) per measurement
            load = os.getloadavg()[0]
            try:
                cpu0, server0 = time.process_time(), cpu_s(proc.pid)
                if client == "observe":
                    coro = drive_observe(url, args.model, k, args.duration, args.prompt_tokens, args.max_tokens)
                    res = run(coro) if args.loop == "auto" else asyncio.run(coro)
                else:
                    fn = drive_raw if client == "raw" else drive
                    res = asyncio.run(fn(url, k, args.duration, args.prompt_tokens, args.max_tokens, skip_first=True))
                tokens = res.get("delivered_tokens", res["tokens_per_s"] * res["wall_s"])
                # CPU per token delivered: what the client and the server cost, whatever the load.
                res["client_cpu_us_per_token"] = (time.process_time() - cpu0) / max(tokens, 1) * 1e6
                res["server_cpu_us_per_token"] = (cpu_s(proc.pid) - server0) / max(tokens, 1) * 1e6
                res["client"] = client
                res["server"] = server_stats(url)
                res["load_before"] = load
            finally:
                stop_server(proc)
            results.append(res)
            t, e = res["ttft_drift_ms"], res["e2e_drift_ms"]
            late = res["server"].get("release_lateness_ms", {})
            print(
                f"{client:7s} K={k:5d}  {res['requests']:6d} req  {res['errors']} err  "
                f"{res['tokens_per_s']:7.0f} tok/s | drift TTFT p50 {t['p50']:6.1f} p99 {t['p99']:6.1f}, "
                f"E2E p50 {e['p50']:6.1f} p99 {e['p99']:6.1f} ms | server release late p50 "
                f"{late.get('p50', 0):.1f} p99 {late.get('p99', 0):.1f} ms | CPU/token client "
                f"{res['client_cpu_us_per_token']:.0f} server {res['server_cpu_us_per_token']:.0f} us | "
                f"load before {load:.2f}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()

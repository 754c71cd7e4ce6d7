#!/usr/bin/env python
"""``blis serve`` drift: how far clients' TTFT and E2E stray from the simulator's own (not a pytest test).

For each client kind and concurrency K, starts a fresh ``blis serve`` in a child process
(default: llama-3.1-8b on 4 simulated instances, round-robin) and drives it with K streaming
clients, each sending requests back to back for ``--duration`` seconds over its own
connection: ``httpx`` (one ``httpx.AsyncClient`` per stream) or ``raw`` (a minimal asyncio
HTTP/1.1 client, several times cheaper per chunk, so less of the measurement is the client).
Every request's final chunk carries ``blis_sim``, the simulator's TTFT and E2E for it; drift
is what the client measured (from just before sending to the first token chunk, and to the
last chunk) minus that, so it includes the HTTP round trip. Reports
per K: requests, tokens/s delivered, drift p50 / p99 / max in ms, and the server's own
release lateness (``GET /blis/stats``: how late it wrote tokens after the simulator's times).

The client and server share the machine: on 2 cores a large K measures both falling behind.

``--memory N`` measures something else: the server's resident memory (RSS, from /proc) while
it serves N short streamed requests (``--memory-prompt-tokens``, 1,024 by default, and 4
output tokens) over ``--memory-streams`` raw-client streams, at the start, every tenth of N
and at the end. The KV cache's per-block tables fill in as blocks are first used, so RSS
grows until every block has been used once (with 1,024-token prompts, within the first few
thousand requests on the default cluster), bounded by the cache's size; after that, what
still grows is what the server keeps per request.

    python tests/bench/bench_serve.py
    python tests/bench/bench_serve.py --client raw --concurrency 50 200 --duration 10 --json drift.json
    python tests/bench/bench_serve.py --memory 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import time

import httpx
import numpy as np


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    cmd = [
        sys.executable,
        "-m",
        "blis_gym",
        "serve",
        "--model",
        args.model,
        "--port",
        "0",
        "--",
        "--num-instances",
        str(args.num_instances),
        "--routing-policy",
        args.routing_policy,
        "--log",
        "error",
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if line.startswith("blis serve: http://"):
            print(line.strip(), file=sys.stderr)
            return proc, line.split()[2]
    proc.kill()
    raise SystemExit(f"blis serve did not start ({' '.join(cmd)})")


async def one_request(client: httpx.AsyncClient, url: str, n_in: int, n_out: int) -> tuple[float, float, dict]:
    """(observed TTFT, observed E2E) in µs, and the final chunk's blis_sim."""
    body = {"prompt": f"Token count: {n_in}", "max_tokens": n_out, "stream": True}
    buf = bytearray()
    first = last = None
    t0 = time.perf_counter()
    async with client.stream("POST", url + "/v1/completions", json=body) as r:
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread())[:200]!r}")
        async for data in r.aiter_raw():
            if first is None:
                first = time.perf_counter()
            buf += data
            if buf.endswith(b"data: [DONE]\n\n"):
                last = time.perf_counter()
    if last is None:
        raise RuntimeError("the stream ended without data: [DONE]")
    # Only the last event before [DONE] is parsed (usage and blis_sim): the client stays cheap.
    final = bytes(buf).rsplit(b"data: ", 2)[-2]
    return (first - t0) * 1e6, (last - t0) * 1e6, json.loads(final)["blis_sim"]


class RawClient:
    """One keep-alive HTTP/1.1 connection over asyncio streams, just enough for these streams:
    several times cheaper per chunk than httpx, so the client is less of the measurement."""

    def __init__(self, url: str) -> None:
        host, port = url.split("//", 1)[1].rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def aclose(self) -> None:
        if self.writer is not None:
            self.writer.close()

    async def stream(self, n_in: int, n_out: int) -> tuple[float, float, dict]:
        body = json.dumps({"prompt": f"Token count: {n_in}", "max_tokens": n_out, "stream": True}).encode()
        head = (
            f"POST /v1/completions HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        buf = bytearray()
        first = None
        t0 = time.perf_counter()
        self.writer.write(head + body)
        read = self.reader.read
        while True:
            data = await read(65536)
            if not data:
                raise RuntimeError("connection closed")
            if first is None and b"data: " in data:
                first = time.perf_counter()
            buf += data
            if buf.endswith(b"\r\n0\r\n\r\n"):  # the last chunk of a chunked body
                last = time.perf_counter()
                break
        if not buf.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(bytes(buf[:200]).decode(errors="replace"))
        # Each write was one HTTP chunk: the final event is the last "data: {" before [DONE].
        at = buf.rindex(b"data: {")
        final = json.loads(bytes(buf[at + 6 : buf.index(b"\n\n", at)]))
        return (first - t0) * 1e6, (last - t0) * 1e6, final["blis_sim"]


async def drive_raw(url: str, k: int, duration_s: float, n_in: int, n_out: int, skip_first: bool = False) -> dict:
    clients = [RawClient(url) for _ in range(k)]
    rows: list[tuple[float, float, float, float, int]] = []
    errors = 0
    delivered = [0]  # tokens of every request answered
    try:
        await asyncio.gather(*(c.open() for c in clients))
        stop_at = time.perf_counter() + duration_s

        async def worker(w: int) -> None:
            nonlocal errors
            i = 0
            while time.perf_counter() < stop_at:
                a = n_in + 37 * ((w + i) % 8)
                b = n_out + 5 * ((w * 3 + i) % 8)
                i += 1
                try:
                    ttft, e2e, sim = await clients[w].stream(a, b)
                except (OSError, RuntimeError, KeyError, ValueError):
                    errors += 1
                    return  # the connection is in an unknown state
                delivered[0] += b
                if i > 1 or not skip_first:  # skip_first: the first wave, all sent at once, is left out
                    rows.append((ttft, e2e, sim["ttft_us"], sim["e2e_us"], b))

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(k)))
        wall = time.perf_counter() - started
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    out = summarize(k, rows, errors, wall)
    out["delivered_tokens"] = delivered[0]
    return out


async def drive(url: str, k: int, duration_s: float, n_in: int, n_out: int, skip_first: bool = False) -> dict:
    # One AsyncClient (one connection) per stream: httpcore's pool scans every connection for
    # every queued request, so one shared pool of K connections made the client, not the
    # server, the bottleneck from K = 200 on. The clients share one SSL context (building one
    # per client would cost seconds at K = 1000; it is unused over http anyway).
    ssl_context = ssl.create_default_context()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(300.0), verify=ssl_context) for _ in range(k)]
    rows: list[tuple[float, float, float, float, int]] = []
    errors = 0
    delivered = [0]  # tokens of every request answered
    try:
        # K connections open before timing starts (opening them is not what is measured).
        await asyncio.gather(*(c.get(url + "/health") for c in clients))
        stop_at = time.perf_counter() + duration_s

        async def worker(w: int) -> None:
            nonlocal errors
            i = 0
            while time.perf_counter() < stop_at:
                # Lengths vary a little (deterministically) so steps mix prefills and decodes.
                a = n_in + 37 * ((w + i) % 8)
                b = n_out + 5 * ((w * 3 + i) % 8)
                i += 1
                try:
                    ttft, e2e, sim = await one_request(clients[w], url, a, b)
                except (httpx.HTTPError, RuntimeError, KeyError, ValueError):
                    errors += 1
                    continue
                delivered[0] += b
                if i > 1 or not skip_first:  # skip_first: the first wave, all sent at once, is left out
                    rows.append((ttft, e2e, sim["ttft_us"], sim["e2e_us"], b))

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(k)))
        wall = time.perf_counter() - started
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    out = summarize(k, rows, errors, wall)
    out["delivered_tokens"] = delivered[0]
    return out


def stop_server(proc) -> None:
    """Stop a server started by :func:`start_server` (Ctrl-C, then kill after 30 s)."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def summarize(k: int, rows: list, errors: int, wall: float) -> dict:
    """Drift percentiles (ms) of rows (observed TTFT, observed E2E, sim TTFT, sim E2E in µs; tokens)."""
    arr = np.array([r[:4] for r in rows], dtype=float).reshape(-1, 4)
    dt = (arr[:, 0] - arr[:, 2]) / 1e3
    de = (arr[:, 1] - arr[:, 3]) / 1e3

    def q(a: np.ndarray) -> dict:
        return (
            {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max())}
            if len(a)
            else {}
        )

    return {
        "k": k,
        "requests": len(rows),
        "errors": errors,
        "wall_s": wall,
        "tokens_per_s": sum(r[4] for r in rows) / wall,
        "sim_ttft_p50_ms": float(np.median(arr[:, 2]) / 1e3),
        "sim_e2e_p50_ms": float(np.median(arr[:, 3]) / 1e3),
        "ttft_drift_ms": q(dt),
        "e2e_drift_ms": q(de),
    }


def rss_mib(pid: int) -> float:
    """Resident memory of a process (MiB; Linux: /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def drive_memory(url: str, pid: int, total: int, k: int, n_in: int = 1024) -> list[tuple[int, float]]:
    """Send ``total`` short requests (``n_in`` prompt tokens, 4 output) over ``k`` raw streams;
    (requests done, server RSS MiB) at the start, every tenth and at the end."""
    clients = [RawClient(url) for _ in range(k)]
    step = max(total // 10, 1)
    samples = [(0, rss_mib(pid))]
    done = 0
    started = 0
    try:
        await asyncio.gather(*(c.open() for c in clients))

        async def worker(w: int) -> None:
            nonlocal done, started
            while started < total:
                started += 1
                await clients[w].stream(n_in, 4)
                done += 1
                if done % step == 0:
                    samples.append((done, rss_mib(pid)))
                    print(f"  {done:7d} requests: server RSS {samples[-1][1]:.1f} MiB", file=sys.stderr, flush=True)

        await asyncio.gather(*(worker(w) for w in range(k)))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    if samples[-1][0] != done:
        samples.append((done, rss_mib(pid)))
    return samples


def server_stats(url: str) -> dict:
    return httpx.get(url + "/blis/stats", timeout=10.0).json()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="meta-llama/llama-3.1-8b-instruct")
    ap.add_argument("--num-instances", type=int, default=4)
    ap.add_argument("--routing-policy", default="round-robin")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[50, 200, 1000])
    ap.add_argument(
        "--client",
        choices=["httpx", "raw"],
        nargs="+",
        default=["httpx", "raw"],
        help="httpx: one httpx.AsyncClient per stream; raw: a minimal asyncio HTTP/1.1 client",
    )
    ap.add_argument("--duration", type=float, default=8.0, help="seconds each K sends requests for")
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--json", default="", help="also write the results here")
    ap.add_argument("--memory", type=int, default=0, help="instead: server RSS over this many requests")
    ap.add_argument("--memory-streams", type=int, default=100, help="streams sending them (--memory)")
    ap.add_argument("--memory-prompt-tokens", type=int, default=1024, help="their prompt tokens (--memory)")
    args = ap.parse_args()
    if args.memory:
        proc, url = start_server(args)
        try:
            time.sleep(1.0)  # settled
            started = time.perf_counter()
            samples = asyncio.run(
                drive_memory(url, proc.pid, args.memory, args.memory_streams, args.memory_prompt_tokens)
            )
            wall = time.perf_counter() - started
            stats = server_stats(url)
        finally:
            stop_server(proc)
        print(
            f"{args.memory} requests in {wall:.1f} s over {args.memory_streams} streams; server RSS (MiB): "
            + ", ".join(f"{n}: {mib:.1f}" for n, mib in samples)
            + f" | in flight at the end {stats['in_flight']}",
            flush=True,
        )
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"args": vars(args), "rss_mib": samples, "wall_s": wall, "server": stats}, f, indent=2)
        return
    results = []
    for client in args.client:
        for k in args.concurrency:
            proc, url = start_server(args)  # a fresh server (and clock) per measurement
            try:
                run = drive_raw if client == "raw" else drive
                res = asyncio.run(run(url, k, args.duration, args.prompt_tokens, args.max_tokens))
                res["client"] = client
                res["server"] = server_stats(url)
            finally:
                stop_server(proc)
            results.append(res)
            t, e = res["ttft_drift_ms"], res["e2e_drift_ms"]
            late = res["server"].get("release_lateness_ms", {})
            print(
                f"{client:5s} K={k:5d}  {res['requests']:6d} req  {res['errors']} err  "
                f"{res['tokens_per_s']:7.0f} tok/s  sim TTFT p50 {res['sim_ttft_p50_ms']:6.1f} ms, "
                f"E2E p50 {res['sim_e2e_p50_ms']:7.1f} ms | drift TTFT p50 {t['p50']:7.1f} p99 {t['p99']:7.1f}, "
                f"E2E p50 {e['p50']:7.1f} p99 {e['p99']:7.1f} ms | server release late p50 "
                f"{late.get('p50', 0):.1f} p99 {late.get('p99', 0):.1f} ms",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()

"""``blis serve``: the OpenAI-compatible API, and that a client sees the simulator's own TTFT and
E2E in real time (the open simulation and token counting: tests/unit/test_serve_open_run.py).

These tests start servers on 127.0.0.1 (free ports) in a background thread or a subprocess;
every wait is bounded and every server is stopped in a fixture's teardown.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from blis_gym.cluster.simulator import ClusterSimulator
from blis_gym.engine.request import Request
from blis_gym.plan import RunOptions, resolve
from blis_gym.serve.tokens import FRESH_BASE, filler_text

httpx = pytest.importorskip("httpx", reason="needs the serve extra (pip install 'blis-gym[serve]')")
pytest.importorskip("uvicorn", reason="needs the serve extra (pip install 'blis-gym[serve]')")
pytest.importorskip("starlette", reason="needs the serve extra (pip install 'blis-gym[serve]')")

from blis_gym.serve.launch import BackgroundServers  # noqa: E402
from blis_gym.serve.plan import plan_serve  # noqa: E402

pytestmark = pytest.mark.timeout(180)

MODEL = "meta-llama/llama-3.1-8b-instruct"
TIMEOUT = httpx.Timeout(30.0)


def _tolerance_us(expected_us: float, base_us: float = 5000.0) -> float:
    """How far a client's wall-clock measurement may stray from the simulator's figure: 5 ms + 2%
    (HTTP on loopback, timer granularity, two threads sharing a GIL)."""
    return base_us + 0.02 * expected_us


def _config(**kw):
    return resolve(RunOptions(model=MODEL, **kw)).config


def _offline(config, rows) -> tuple[dict, dict]:
    """TTFT and E2E (ticks) by request id of a plain run (lazy decoding and all) of requests
    ``(id, arrival tick, input tokens, output tokens)``, listed in arrival order."""
    reqs = [
        Request(rid, i, arrival, np.arange(i * 100_000, i * 100_000 + n_in), np.arange(n_out) + FRESH_BASE)
        for i, (rid, arrival, n_in, n_out) in enumerate(rows)
    ]
    result = ClusterSimulator.from_config(config, reqs).run()
    return result.aggregate.ttfts, result.aggregate.e2es


# --- the server ------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def quick_gil_handoff():
    """Servers here run in a thread beside the client: hand the GIL over every 0.5 ms rather than
    every 5 ms, so neither holds up the other's timing for long; and no full garbage collection
    of the test process's heap (every module pytest loaded: about 25 ms, a pause a server's own
    process does not have) in the middle of a measurement."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        sys.setswitchinterval(before)


@pytest.fixture(scope="module")
def server():
    """One server fronting a 2-instance round-robin cluster."""
    with BackgroundServers(plan_serve(RunOptions(model=MODEL, num_instances=2))) as urls:
        yield urls[0]


def _post(url: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=TIMEOUT)


def _sse(url: str, path: str, body: dict, client: httpx.Client | None = None) -> tuple[list[dict], list[float], float]:
    """Streamed events (parsed, [DONE] excluded) with their arrival times (s after sending).
    Timing needs a ``client`` made beforehand (making one costs milliseconds)."""
    events, times = [], []
    own = client is None
    client = httpx.Client(timeout=TIMEOUT) if own else client
    t0 = time.perf_counter()
    with client.stream("POST", url + path, json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        done = False
        for line in r.iter_lines():
            if not line.startswith("data: "):
                assert line == ""
                continue
            assert not done
            if line == "data: [DONE]":
                done = True
                continue
            times.append(time.perf_counter() - t0)
            events.append(json.loads(line[6:]))
        assert done
    if own:
        client.close()
    return events, times, t0


def test_models_and_health(server):
    r = httpx.get(server + "/v1/models", timeout=TIMEOUT)
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list" and [m["id"] for m in body["data"]] == [MODEL]
    assert httpx.get(server + "/health", timeout=TIMEOUT).status_code == 200
    stats = httpx.get(server + "/blis/stats", timeout=TIMEOUT).json()
    assert stats["in_flight"] == 0 and stats["sim_time_us"] >= 0 and stats["requests"] >= 0


def test_completion_json(server):
    r = _post(server, "/v1/completions", {"model": MODEL, "prompt": "Token count: 300", "max_tokens": 7})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "text_completion" and body["model"] == MODEL and body["id"].startswith("cmpl-")
    assert isinstance(body["created"], int)
    [choice] = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "length" and choice["text"] == filler_text(0, 7)
    assert body["usage"] == {"prompt_tokens": 300, "completion_tokens": 7, "total_tokens": 307}
    sim = body["blis_sim"]
    assert sim["instance"] in ("instance_0", "instance_1") and 0 < sim["ttft_us"] < sim["e2e_us"]


def test_default_max_tokens_and_word_counts(server):
    a = _post(server, "/v1/completions", {"prompt": "one two  three\nfour"}).json()
    b = _post(server, "/v1/completions", {"prompt": ["one two  three\nfour"]}).json()
    c = _post(server, "/v1/completions", {"prompt": [5, 6, 7], "max_tokens": 2}).json()
    assert a["usage"] == b["usage"] == {"prompt_tokens": 4, "completion_tokens": 16, "total_tokens": 20}
    assert c["usage"]["prompt_tokens"] == 3 and c["usage"]["completion_tokens"] == 2


def test_completion_stream(server):
    events, _, _ = _sse(
        server,
        "/v1/completions",
        {"prompt": "Token count: 100", "max_tokens": 12, "stream": True, "stream_options": {"include_usage": True}},
    )
    tokens, final = events[:-1], events[-1]
    assert len(tokens) == 12
    assert "".join(e["choices"][0]["text"] for e in tokens) == filler_text(0, 12)
    assert [e["choices"][0]["finish_reason"] for e in tokens] == [None] * 11 + ["length"]
    assert len({e["id"] for e in events}) == 1 and all(e["object"] == "text_completion" for e in events)
    assert final["choices"] == [] and final["usage"] == {
        "prompt_tokens": 100,
        "completion_tokens": 12,
        "total_tokens": 112,
    }
    assert final["blis_sim"]["e2e_us"] > final["blis_sim"]["ttft_us"]


def test_chat(server):
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "Token count: 40"}]},
    ]
    r = _post(server, "/v1/chat/completions", {"model": MODEL.upper(), "messages": messages, "max_tokens": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["choices"][0]["message"] == {"role": "assistant", "content": filler_text(0, 5)}
    assert body["usage"] == {"prompt_tokens": 42, "completion_tokens": 5, "total_tokens": 47}
    events, _, _ = _sse(
        server, "/v1/chat/completions", {"messages": messages, "max_completion_tokens": 6, "stream": True}
    )
    tokens = events[:-1]
    assert len(tokens) == 6 and all(e["object"] == "chat.completion.chunk" for e in events)
    assert tokens[0]["choices"][0]["delta"] == {"role": "assistant", "content": " the"}
    assert "".join(e["choices"][0]["delta"]["content"] for e in tokens) == filler_text(0, 6)
    assert tokens[-1]["choices"][0]["finish_reason"] == "length"
    assert events[-1]["usage"]["completion_tokens"] == 6 and events[-1]["choices"] == []


@pytest.mark.parametrize(
    "path,body,status,param",
    [
        ("/v1/completions", {"max_tokens": 4}, 400, "prompt"),
        ("/v1/completions", {"prompt": ""}, 400, "prompt"),
        ("/v1/completions", {"prompt": ["a", "b"]}, 400, "prompt"),
        ("/v1/completions", {"prompt": {"x": 1}}, 400, "prompt"),
        ("/v1/completions", {"prompt": "Token count: 5000000"}, 400, "prompt"),
        ("/v1/completions", {"prompt": "hi", "max_tokens": 0}, 400, "max_tokens"),
        ("/v1/completions", {"prompt": "hi", "max_tokens": "8"}, 400, "max_tokens"),
        ("/v1/completions", {"prompt": "hi", "max_tokens": 2.5}, 400, "max_tokens"),
        ("/v1/completions", {"prompt": "hi", "n": 2}, 400, "n"),
        ("/v1/completions", {"prompt": "hi", "stream": "yes"}, 400, "stream"),
        ("/v1/completions", {"prompt": "hi", "model": "gpt-4"}, 404, "model"),
        ("/v1/chat/completions", {"max_tokens": 4}, 400, "messages"),
        ("/v1/chat/completions", {"messages": []}, 400, "messages"),
        ("/v1/chat/completions", {"messages": [{"content": "x"}]}, 400, "messages"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": -1},
            400,
            "max_completion_tokens",
        ),
    ],
)
def test_bad_requests(server, path, body, status, param):
    r = _post(server, path, body)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["param"] == param and err["message"] and err["type"] == "invalid_request_error"
    assert err["code"] == ("model_not_found" if status == 404 else 400)


def test_bad_json(server):
    r = httpx.post(server + "/v1/completions", content=b"{not json", timeout=TIMEOUT)
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    r = httpx.post(server + "/v1/completions", content=b"[1]", timeout=TIMEOUT)
    assert r.status_code == 400


def test_a_lone_request_sees_the_simulators_ttft_and_e2e():
    """Alone on a fresh single-instance server, a streamed request's first chunk comes at the
    simulator's TTFT and its last at its E2E, as an offline run of that one request says."""
    n_in, n_out = 700, 24
    config = _config()
    ttfts, e2es = _offline(config, [("r", 0, n_in, n_out)])
    with BackgroundServers(plan_serve(RunOptions(model=MODEL))) as (url,), httpx.Client(timeout=TIMEOUT) as client:
        client.get(url + "/health")  # an open connection, as a benchmark client has
        events, times, _ = _sse(
            url, "/v1/completions", {"prompt": f"Token count: {n_in}", "max_tokens": n_out, "stream": True}, client
        )
    sim = events[-1]["blis_sim"]
    assert sim["ttft_us"] == ttfts["r"] and sim["e2e_us"] == e2es["r"]
    ttft_us, e2e_us = times[0] * 1e6, times[-1] * 1e6
    assert abs(ttft_us - ttfts["r"]) <= _tolerance_us(ttfts["r"]), (ttft_us, ttfts["r"])
    assert abs(e2e_us - e2es["r"]) <= _tolerance_us(e2es["r"]), (e2e_us, e2es["r"])
    # Tokens in between come an inter-token latency apart, not in bursts.
    gaps = np.diff(times[:-1]) * 1e3
    assert len(gaps) == n_out - 1 and np.median(gaps) > 5.0, gaps


async def _stream_timed(
    client: httpx.AsyncClient, url: str, n_in: int, n_out: int, delay_s: float = 0.0
) -> tuple[float, float, float, dict, list]:
    """(send, first chunk, last chunk) times (s, time.monotonic), the final event and the text
    of each token chunk."""
    await asyncio.sleep(delay_s)
    sent = time.monotonic()
    first = last = None
    final = None
    texts = []
    async with client.stream(
        "POST", url + "/v1/completions", json={"prompt": f"Token count: {n_in}", "max_tokens": n_out, "stream": True}
    ) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                last = time.monotonic()
                first = last if first is None else first
                final = line
                event = json.loads(line[6:])
                if event["choices"]:
                    texts.append(event["choices"][0]["text"])
    return sent, first, last, json.loads(final[6:]), texts


def test_concurrent_requests_get_the_simulators_timings():
    """Twelve overlapping requests (sent 5 ms apart, each lasting 100-300 ms) on a 2-instance
    least-loaded cluster that queues them: the simulator's figures the server reports are
    exactly an offline run's for the same arrivals, and each client sees them, counted from the
    request's arrival, within the tolerance. (Sent all at once, one thread's client and server
    would take longer to parse the burst than the first request's TTFT on a loaded machine.)"""
    shapes = [(200 + 97 * i, 8 + 3 * i) for i in range(12)]
    opts = RunOptions(model=MODEL, num_instances=2, routing_policy="least-loaded", max_num_running_reqs=4)

    async def drive(url: str):
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            await asyncio.gather(*(client.get(url + "/health") for _ in shapes))  # open the connections
            return await asyncio.gather(
                *(_stream_timed(client, url, n_in, n_out, 0.005 * i) for i, (n_in, n_out) in enumerate(shapes))
            )

    servers = BackgroundServers(plan_serve(opts))
    with servers as (url,):
        got = asyncio.run(drive(url))
    engine = servers.endpoints[0].engine
    sims = [final["blis_sim"] for *_, final, _ in got]
    rows = sorted(
        (
            s["arrival_us"],
            int(s["request_id"].split("_")[1]),
            s["request_id"],
            final["usage"]["prompt_tokens"],
            final["usage"]["completion_tokens"],
        )
        for s, (*_, final, _) in zip(sims, got)
    )
    ttfts, e2es = _offline(resolve(opts).config, [(rid, t, n_in, n_out) for t, _, rid, n_in, n_out in rows])
    for (sent, first, last, _, _), sim in zip(got, sims):
        rid = sim["request_id"]
        assert (sim["ttft_us"], sim["e2e_us"]) == (ttfts[rid], e2es[rid])
        # Times count from each request's arrival (the way there, HTTP in Python, is bounded).
        arrived = engine.wall_time(sim["arrival_us"])
        assert -0.001 < arrived - sent < 0.05
        ttft_us, e2e_us = (first - arrived) * 1e6, (last - arrived) * 1e6
        # 8 ms: the server thread also parses the others' requests and writes their tokens.
        assert abs(ttft_us - ttfts[rid]) <= _tolerance_us(ttfts[rid], 8000.0), (rid, ttft_us, ttfts[rid])
        assert abs(e2e_us - e2es[rid]) <= _tolerance_us(e2es[rid], 8000.0), (rid, e2e_us, e2es[rid])
    assert len({s["instance"] for s in sims}) == 2


def test_preempted_requests_stream_every_token():
    """A KV cache too small for the batch preempts requests mid-decode (their progress starts
    over): each stream still gets every token, in order, and the offline run's figures."""
    shapes = [(300 + 50 * i, 30 + 6 * i) for i in range(8)]
    opts = RunOptions(model=MODEL, total_kv_blocks=70)

    async def drive(url: str):
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            return await asyncio.gather(
                *(_stream_timed(client, url, n_in, n_out, 0.002 * i) for i, (n_in, n_out) in enumerate(shapes))
            )

    servers = BackgroundServers(plan_serve(opts))
    with servers as (url,):
        got = asyncio.run(drive(url))
        assert servers.endpoints[0].engine.sim.instances[0].metrics.preemptions > 0
    sims = [final["blis_sim"] for *_, final, _ in got]
    rows = sorted((s["arrival_us"], s["request_id"], n_in, n_out) for s, (n_in, n_out) in zip(sims, shapes))
    ttfts, e2es = _offline(resolve(opts).config, [(rid, t, n_in, n_out) for t, rid, n_in, n_out in rows])
    for (_, _first, _last, final, texts), sim, (_, n_out) in zip(got, sims, shapes):
        assert final["usage"]["completion_tokens"] == n_out and "".join(texts) == filler_text(0, n_out)
        assert (sim["ttft_us"], sim["e2e_us"]) == (ttfts[sim["request_id"]], e2es[sim["request_id"]])


def test_rejections_lookahead_and_fleet():
    """An admission rejection is a 429, a request that can never fit a 400; the lookahead oracle
    routes an open run; a fleet is N single-instance servers, each its own clock."""
    with BackgroundServers(plan_serve(RunOptions(model=MODEL, admission_policy="reject-all"))) as (url,):
        r = _post(url, "/v1/completions", {"prompt": "hi", "stream": True})
        assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
    with BackgroundServers(plan_serve(RunOptions(model=MODEL, total_kv_blocks=4))) as (url,):
        r = _post(url, "/v1/completions", {"prompt": "Token count: 200"})
        assert r.status_code == 400 and "KV cache" in r.json()["error"]["message"]
    # The lookahead oracle forks the open run at each decision: its forks must not report to the server.
    with BackgroundServers(plan_serve(RunOptions(model=MODEL, num_instances=3, routing_policy="lookahead"))) as (url,):
        for i in range(3):
            r = _post(url, "/v1/completions", {"prompt": "a shared system prompt " * 20 + str(i), "max_tokens": 4})
            assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 4
    with BackgroundServers(plan_serve(RunOptions(model=MODEL), fleet=3)) as urls:
        assert len(set(urls)) == 3
        for url in urls:
            body = _post(url, "/v1/completions", {"prompt": "Token count: 50", "max_tokens": 3}).json()
            assert body["blis_sim"]["instance"] == "instance_0" and body["blis_sim"]["request_id"] == "request_0"


def _until(what, timeout_s: float = 10.0, every_s: float = 0.02) -> None:
    """Wait (bounded) until ``what()`` is true."""
    deadline = time.monotonic() + timeout_s
    while not what():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(every_s)


def test_a_client_that_hangs_up_cancels_its_request():
    """A client that closes its connection mid-stream, or gives up waiting for a whole answer,
    cancels its request: the simulation lets go of it (no KV block held, nothing queued or
    running) and /blis/stats counts it. Afterwards, after a hundred more requests, the server
    keeps no per-request record of any of them."""
    servers = BackgroundServers(plan_serve(RunOptions(model=MODEL, num_instances=2)))
    with servers as (url,):
        engine = servers.endpoints[0].engine
        body = {"prompt": "Token count: 1500", "max_tokens": 5000}
        with httpx.Client(timeout=TIMEOUT) as client:
            with client.stream("POST", url + "/v1/completions", json={**body, "stream": True}) as r:
                assert r.status_code == 200
                chunks = 0
                for line in r.iter_lines():
                    chunks += line.startswith("data: ")
                    if chunks == 3:
                        break  # leaving the block closes the connection
        _until(lambda: engine.cancelled == 1)
        with httpx.Client(timeout=httpx.Timeout(30.0, read=0.5)) as client:
            with pytest.raises(httpx.ReadTimeout):
                client.post(url + "/v1/completions", json=body)  # 5000 tokens take a minute
        _until(lambda: engine.cancelled == 2)
        stats = httpx.get(url + "/blis/stats", timeout=TIMEOUT).json()
        assert (stats["cancelled"], stats["in_flight"], stats["kv_blocks_used"]) == (2, 0, 0)
        for inst in engine.sim.instances:
            assert not inst.running and not inst.waitq and inst.kv.used == 0

        async def many():
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                bodies = [
                    {"prompt": f"Token count: {20 + i}", "max_tokens": 3, "stream": i % 2 == 0} for i in range(100)
                ]
                return await asyncio.gather(*(client.post(url + "/v1/completions", json=b) for b in bodies))

        assert all(r.status_code == 200 for r in asyncio.run(many()))
        _until(lambda: engine.in_flight == 0)
        tables = [
            (t, len(getattr(inst.metrics, t)))
            for inst in engine.sim.instances
            for t in ("ttfts", "e2es", "itls", "scheduling_delays", "requests")
        ]
        assert all(n == 0 for _, n in tables), tables
        assert not engine._streams and not engine._doomed and engine.cancelled == 2


# --- the command ---------------------------------------------------------------------------------
def _spawn(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "blis_gym", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _listening(proc: subprocess.Popen, count: int, timeout_s: float = 60.0) -> list[str]:
    """The URLs a starting server prints on stderr (one line each)."""
    urls, deadline = [], time.monotonic() + timeout_s
    while len(urls) < count:
        assert time.monotonic() < deadline, "blis serve did not start"
        line = proc.stderr.readline()
        assert line, f"blis serve exited early ({proc.wait(5)})"
        if line.startswith("blis serve: http://"):
            urls.append(line.split()[2])
    return urls


def test_cli_fleet_and_ctrl_c():
    proc = _spawn("--model", MODEL, "--port", "0", "--instances", "2", "--", "--log", "error")
    try:
        urls = _listening(proc, 2)
        for url in urls:
            assert httpx.get(url + "/v1/models", timeout=TIMEOUT).json()["data"][0]["id"] == MODEL
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        assert "error" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_cli_errors(blis):
    with BackgroundServers(plan_serve(RunOptions(model=MODEL))) as (url,):
        port = url.rsplit(":", 1)[1]
        code, _, err = blis("serve", "--model", MODEL, "--port", port, "--log", "error")
    assert code == 2 and err.strip().splitlines()[-1] == f"error: cannot listen on 127.0.0.1:{port}: the port is in use"
    for args, words in [
        (("--num-instancez", "3"), "No such option: --num-instancez"),
        (("--port", "70000"), "--port"),
        (("--instances", "2", "--num-instances", "2"), "--instances"),
        (("--base-port", "9000"), "--base-port"),
        (("--horizon", "10"), "--horizon"),
    ]:
        code, _, err = blis("serve", "--model", MODEL, *args)
        lines = err.strip().splitlines()
        assert code == 2 and lines[-1].startswith("error:") and words in lines[-1], (args, err)
    code, _, err = blis("serve", "--model", "no-such/model", "--port", "0")
    assert code == 2 and err.strip().splitlines()[-1].startswith("error:")

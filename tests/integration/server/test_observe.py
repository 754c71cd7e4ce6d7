"""blis observe against a fake OpenAI-compatible server run in-process (Starlette on uvicorn,
in a background thread on a free localhost port)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("httpx")
pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")

from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from blis_gym.cli.app import main  # noqa: E402
from blis_gym.observe import PendingRequest, RealClient, pending_requests  # noqa: E402
from blis_gym.plan import RunOptions, generate_requests  # noqa: E402
from blis_gym.workload.tracev2 import DATA_FILE, HEADER_FILE, export_trace_v2, load_trace_v2  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)

CHUNKS = 3  # content chunks the fake streams before its usage chunk


class FakeServer:
    """An OpenAI-compatible server whose behaviour a test picks with ``mode``:

    ``ok``: streams CHUNKS content chunks (``delay_s`` apart) then a usage chunk and [DONE], or
    answers one JSON body; usage.completion_tokens = max_tokens. ``junk``: 200 with plain text.
    ``junk-sse``: an event stream whose data is not JSON. ``500``: an error status.
    ``reset``: one chunk, then the connection breaks. ``slow``: answers after ``delay_s``.
    It records every body and header and the most requests it had in flight at once.
    """

    def __init__(self, mode: str = "ok", delay_s: float = 0.005, models_status: int = 200) -> None:
        self.mode = mode
        self.delay_s = delay_s
        self.models_status = models_status
        self.bodies: list[dict] = []
        self.arrived_us: list[int] = []  # when each body came (µs since the Unix epoch)
        self.paths: list[str] = []
        self.auth: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.done = 0
        self.lock = threading.Lock()

    def _enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self.lock:
            self.in_flight -= 1
            self.done += 1

    async def models(self, request: Request) -> Response:
        if self.models_status != 200:
            return PlainTextResponse("no such route", status_code=self.models_status)
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": "fake-model", "object": "model", "owned_by": "fakevllm", "max_model_len": 4096}],
            }
        )

    async def complete(self, request: Request) -> Response:
        body = await request.json()
        self.bodies.append(body)
        self.arrived_us.append(time.time_ns() // 1000)
        self.paths.append(request.url.path)
        self.auth.append(request.headers.get("authorization", ""))
        self._enter()
        n = body["max_tokens"]
        mode = self.mode
        if mode in ("500", "junk", "slow") or not body.get("stream"):
            try:
                await asyncio.sleep(self.delay_s * (1 if mode == "slow" else CHUNKS))
                if mode == "500":
                    return PlainTextResponse("boom: the engine fell over\n" + "x" * 500, status_code=500)
                if mode == "junk":
                    return PlainTextResponse("<html>not json</html>")
                return JSONResponse(
                    {
                        "id": "cmpl-1",
                        "object": "text_completion",
                        "choices": [{"index": 0, "text": "x" * n, "finish_reason": "length"}],
                        "usage": {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": n + 5},
                    }
                )
            finally:
                self._leave()

        async def events() -> Iterator[bytes]:
            try:
                if mode == "junk-sse":
                    yield b"data: {this is not json\n\n"
                    return
                for _ in range(CHUNKS):
                    await asyncio.sleep(self.delay_s)
                    yield ("data: " + json.dumps({"choices": [{"index": 0, "text": "tok"}]}) + "\n\n").encode()
                    if mode == "reset":
                        raise RuntimeError("fake server breaks the connection")
                yield ("data: " + json.dumps({"choices": [], "usage": {"completion_tokens": n}}) + "\n\n").encode()
                yield b"data: [DONE]\n\n"
            finally:
                self._leave()

        return StreamingResponse(events(), media_type="text/event-stream")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/completions", self.complete, methods=["POST"]),
                Route("/v1/chat/completions", self.complete, methods=["POST"]),
            ]
        )


class Served:
    """A FakeServer on uvicorn in a background thread; ``url`` while it runs."""

    def __init__(self, fake: FakeServer) -> None:
        self.fake = fake
        # proto=IPPROTO_TCP, or asyncio would not set TCP_NODELAY on its connections (then a kept-alive
        # connection's answers wait 40 ms on the Nagle/delayed-ACK standoff).
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        # log_config=None: uvicorn's default is a logging.config.dictConfig(), which closes every
        # logging handler in this process; absl's (imported with ray.rllib) then closes the stream
        # it was made with: under pytest, a capture file (see tests/conftest.py).
        config = uvicorn.Config(
            fake.app(),
            log_level="critical",
            log_config=None,
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("fake server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the server and wait for its thread; RuntimeError if it would not end."""
        self.server.should_exit = True
        self.thread.join(timeout=10)
        if self.thread.is_alive():  # connections that would not close in the grace time
            self.server.force_exit = True
            self.thread.join(timeout=5)
        self.sock.close()
        if self.thread.is_alive():
            raise RuntimeError(f"fake server at {self.url} did not stop")


@pytest.fixture
def serve():
    """``serve(FakeServer(...))`` starts a fake server; every one started is stopped at teardown."""
    started: list[Served] = []

    def start(fake: FakeServer) -> Served:
        s = Served(fake)
        started.append(s)
        s.start()
        return s

    yield start
    errors = []
    for s in started:  # every one, even if one of them would not stop
        try:
            s.stop()
        except RuntimeError as exc:
            errors.append(str(exc))
    assert not errors, errors


def observe(capsys, *args: str) -> tuple[int, str]:
    """Run ``blis observe ARGS`` in-process: (exit code, stderr)."""
    try:
        main(["observe", "--no-progress", *args])
        rc = 0
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    return rc, capsys.readouterr().err


def started_us(folder: Path) -> int:
    created = load_trace_v2(folder).header.created_at
    dt = datetime.strptime(created, "%Y-%m-%dT%H:%M:%S.%fZ")
    return int(dt.replace(tzinfo=__import__("datetime").timezone.utc).timestamp()) * 1_000_000 + dt.microsecond


SPEC = """\
version: "1"
seed: 7
category: language
aggregate_rate: 40
num_requests: 16
clients:
  - id: alpha
    tenant_id: tenant-a
    slo_class: realtime
    rate_fraction: 0.5
    streaming: true
    prefix_group: shared-sys
    arrival: {process: poisson}
    input_distribution: {type: constant, params: {value: 40}}
    output_distribution: {type: constant, params: {value: 7}}
  - id: beta
    tenant_id: tenant-b
    slo_class: batch
    rate_fraction: 0.5
    streaming: false
    arrival: {process: poisson}
    input_distribution: {type: constant, params: {value: 200}}
    output_distribution: {type: constant, params: {value: 11}}
"""


def test_spec_workload_is_sent_on_time_and_recorded(serve, capsys, tmp_path, monkeypatch):
    fake = FakeServer()
    server = serve(fake)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "trace"
    monkeypatch.setenv("FAKE_KEY", "sekrit")
    rc, err = observe(
        capsys,
        "--url",
        server.url + "/v1/",
        "--model",
        "fake-model",
        "--out",
        str(out),
        "--api-key-env",
        "FAKE_KEY",
        "--warm-up",
        "2",
        "--",
        "--workload-spec",
        str(spec),
    )
    assert rc == 0, err
    assert "observed 16 requests" in err and "16 ok, 0 errors, 0 timeouts" in err

    trace = load_trace_v2(out)
    h = trace.header
    assert (h.mode, h.warm_up_requests, h.workload_spec) == ("real", 2, str(spec))
    assert (h.server.type, h.server.model, h.server.max_model_len) == ("fakevllm", "fake-model", 4096)
    assert h.network.measured_rtt_ms > 0
    rows = trace.records
    assert [r.request_id for r in rows] == list(range(16))
    want = {r.id: r for r in generate_requests(RunOptions(workload_spec=str(spec)))}
    start = started_us(out)
    for r in rows:
        w = want[f"request_{r.request_id}"]
        client = {"alpha": ("tenant-a", "realtime", True, "shared-sys"), "beta": ("tenant-b", "batch", False, "")}
        assert (r.tenant_id, r.slo_class, r.streaming, r.prefix_group) == client[r.client_id]
        assert (r.status, r.error_message) == ("ok", "")
        assert (r.input_tokens, r.output_tokens, r.arrival_time_us) == (w.n_in, w.n_out, w.arrival)
        assert r.num_chunks == (CHUNKS + 1 if r.streaming else 1)
        assert start <= r.send_time_us <= r.first_chunk_time_us <= r.last_chunk_time_us
        # Sent at its arrival time: never early, and not much late on a busy machine.
        assert r.arrival_time_us - 2_000 <= r.send_time_us - start <= r.arrival_time_us + 500_000
    assert {r.client_id for r in rows} == {"alpha", "beta"}

    # What went over the wire: BLIS's prompt (alpha's 40 tokens after its group's 50-token prefix),
    # the workload's output length, the key from the environment.
    by_prompt = {(b["prompt"], b["max_tokens"], b["stream"]) for b in fake.bodies}
    assert by_prompt == {("Token count: 200", 11, False), ("Token count: 90", 7, True)}
    assert all(b["ignore_eos"] is True and b["model"] == "fake-model" for b in fake.bodies)
    assert all(("stream_options" in b) == b["stream"] for b in fake.bodies)
    assert set(fake.auth) == {"Bearer sekrit"} and set(fake.paths) == {"/v1/completions"}

    # The trace reads back and writes out byte-identically.
    again = tmp_path / "again"
    export_trace_v2(trace, again)
    for name in (HEADER_FILE, DATA_FILE):
        assert (again / name).read_bytes() == (out / name).read_bytes()


def test_observed_trace_replays_as_a_workload(serve, capsys, tmp_path):
    """A real trace sent again (--workload traces on its folder): same requests, same metadata."""
    server = serve(FakeServer())
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("num_requests: 16", "num_requests: 6"))
    first, second = tmp_path / "first", tmp_path / "second"
    rc, err = observe(
        capsys, "--url", server.url, "--model", "m", "--out", str(first), "--", "--workload-spec", str(spec)
    )
    assert rc == 0, err
    rc, err = observe(
        capsys,
        "--url",
        server.url,
        "--model",
        "m",
        "--out",
        str(second),
        "--",
        "--workload",
        "traces",
        "--workload-traces-filepath",
        str(first),
    )
    assert rc == 0, err
    keep = (
        "request_id",
        "client_id",
        "tenant_id",
        "slo_class",
        "prefix_group",
        "streaming",
        "input_tokens",
        "output_tokens",
        "arrival_time_us",
        "num_chunks",
        "status",
    )
    rows = [[tuple(getattr(r, k) for k in keep) for r in load_trace_v2(f).records] for f in (first, second)]
    assert rows[0] == rows[1] and len(rows[0]) == 6


def test_concurrency_bound_and_chat(serve, capsys, tmp_path):
    fake = FakeServer(delay_s=0.02)
    server = serve(fake)
    out = tmp_path / "trace"
    rc, err = observe(
        capsys,
        "--url",
        server.url,
        "--model",
        "fake-model",
        "--out",
        str(out),
        "--api-format",
        "chat",
        "--concurrency",
        "3",
        "--progress",
        "--",
        "--rate",
        "100000",
        "--num-requests",
        "12",
        "--output-tokens",
        "5",
        "--output-tokens-stdev",
        "5",
        "--output-tokens-min",
        "5",
        "--output-tokens-max",
        "5",
    )
    assert rc == 0, err
    assert "12/12 requests" in err  # the progress bar
    assert fake.max_in_flight == 3  # all due at once: exactly the bound in flight
    assert set(fake.paths) == {"/v1/chat/completions"}
    assert all(b["messages"][0]["content"].startswith("Token count: ") and b["stream"] for b in fake.bodies)
    assert all(b["messages"][0]["role"] == "user" and "prompt" not in b for b in fake.bodies)
    rows = load_trace_v2(out).records
    assert len(rows) == 12 and all(r.status == "ok" and r.output_tokens == 5 for r in rows)
    assert all(r.num_chunks == CHUNKS + 1 and r.streaming for r in rows)


@pytest.mark.parametrize(
    "mode, message",
    [
        ("500", "HTTP 500: boom: the engine fell over"),
        ("junk", "response body is not JSON"),
        ("junk-sse", "chunk 1 is not JSON"),
        ("reset", "ClientPayloadError: Response payload is not completed"),
    ],
)
def test_broken_server_gives_error_rows(serve, capsys, tmp_path, mode, message):
    fake = FakeServer(mode=mode, models_status=404)
    server = serve(fake)
    out = tmp_path / "trace"
    stream = "--no-stream" if mode == "junk" else "--stream"
    rc, err = observe(
        capsys,
        "--url",
        server.url,
        "--model",
        "m",
        "--out",
        str(out),
        stream,
        "--",
        "--rate",
        "1000",
        "--num-requests",
        "4",
        "--output-tokens",
        "5",
    )
    assert rc == 1, err  # the run completed, but nothing came back right
    assert "answered HTTP 404; no server details recorded" in err  # a missing /v1/models only warns
    assert "0 ok, 4 errors" in err and f"4 x {message}" in err
    rows = load_trace_v2(out).records
    assert len(rows) == 4
    assert all(r.status == "error" and r.error_message.startswith(message) for r in rows)
    if mode == "500":  # the body's first 200 characters, on one line
        assert len(rows[0].error_message) == len("HTTP 500: ") + 200 and "\n" not in rows[0].error_message
    assert load_trace_v2(out).header.server.type == "openai-compatible"


def test_timeouts_are_recorded(serve, capsys, tmp_path):
    server = serve(FakeServer(mode="slow", delay_s=1.5))
    out = tmp_path / "trace"
    rc, err = observe(
        capsys,
        "--url",
        server.url,
        "--model",
        "m",
        "--out",
        str(out),
        "--timeout",
        "0.3",
        "--",
        "--rate",
        "1000",
        "--num-requests",
        "2",
    )
    assert rc == 1 and "0 ok, 0 errors, 2 timeouts" in err
    rows = load_trace_v2(out).records
    assert [r.status for r in rows] == ["timeout", "timeout"] and all(r.error_message for r in rows)


def test_unreachable_url_writes_nothing(capsys, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "trace"
    rc, err = observe(
        capsys,
        "--url",
        f"http://127.0.0.1:{port}",
        "--model",
        "m",
        "--out",
        str(out),
        "--connect-timeout",
        "2",
        "--",
        "--num-requests",
        "3",
    )
    assert rc == 2
    lines = err.strip().splitlines()
    assert lines == [f"error: --url http://127.0.0.1:{port}: cannot connect (Connection refused)"]
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--url", "localhost:8000"], "--url must be http://HOST[:PORT] or https://HOST[:PORT]"),
        (["--url", "http://"], "--url must be http://HOST[:PORT]"),
        (["--concurrency", "0"], "--concurrency must be >= 1"),
        (
            ["--api-key-env", "BLIS_OBSERVE_NO_SUCH_VAR"],
            "--api-key-env BLIS_OBSERVE_NO_SUCH_VAR: the environment variable",
        ),
        (["--", "--rate", "-1"], "--rate must be a finite value > 0"),
        (["--api-format", "xml"], "--api-format must be completions or chat, got 'xml'"),
        (["--chat", "--api-format", "completions"], "--chat contradicts --api-format completions"),
        (["--prewarm-duration", "-1"], "--prewarm-duration must be a duration >= 0"),
        (["--prewarm-duration", "soon"], "--prewarm-duration must be a duration >= 0"),
        (["--prewarm-duration", "5 days"], "--prewarm-duration must be a duration >= 0"),
        (["--record-itl", "--no-stream"], "--record-itl excludes --no-stream"),
        (["--", "--no-such-flag"], "blis observe: workload flags after --: No such option: --no-such-flag"),
    ],
)
def test_bad_flags_fail_before_sending(capsys, tmp_path, args, message):
    base = ["--url", "http://127.0.0.1:9", "--model", "m", "--out", str(tmp_path / "o")]
    if args[0] == "--url":
        base = base[2:]
    rc, err = observe(capsys, *base, *args)
    assert rc == 2 and message in err and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_workload_metadata_sessions_and_streaming():
    opts = RunOptions(workload_spec="chat-sessions", num_requests=40, explicit=frozenset({"num_requests"}))
    reqs = pending_requests(opts, generate_requests(opts))
    assert len(reqs) == 40 and [r.arrival_us for r in reqs] == sorted(r.arrival_us for r in reqs)
    rounds: dict[str, list[int]] = {}
    for r in reqs:
        assert r.streaming == (r.client_id == "assistant-users")
        assert r.prefix_group == ("assistant-system-prompt" if r.client_id == "assistant-users" else "")
        rounds.setdefault(r.session_id, []).append(r.round_index)
    assert all(v == list(range(len(v))) for v in rounds.values()) and max(map(len, rounds.values())) > 1
    assert not any(r.streaming for r in pending_requests(opts, generate_requests(opts), stream=False))
    plain = pending_requests(RunOptions(num_requests=3), generate_requests(RunOptions(num_requests=3)))
    assert [r.request_id for r in plain] == [0, 1, 2] and all(r.streaming for r in plain)


def test_replay_cancelled_marks_in_flight(serve):
    """The library's stop: nothing more is sent, requests in flight are recorded as interrupted."""
    fake = FakeServer(mode="slow", delay_s=5)
    server = serve(fake)
    reqs = [PendingRequest(i, arrival_us=i * 200_000, input_tokens=10, output_tokens=3) for i in range(10)]

    async def go():
        stop = asyncio.Event()
        async with RealClient(server.url, "m", concurrency=4, timeout_s=30) as client:
            asyncio.get_running_loop().call_later(0.5, stop.set)
            return await client.replay(reqs, stop)

    replay = asyncio.run(asyncio.wait_for(go(), 20))
    assert replay.interrupted and 2 <= len(replay.sent) <= 4
    rows = replay.records()
    assert all((r.status, r.error_message) == ("error", "interrupted") for r in rows)


def test_sigint_writes_partial_trace(serve, tmp_path):
    fake = FakeServer(delay_s=0.1)
    server = serve(fake)
    out = tmp_path / "trace"
    cmd = [
        sys.executable,
        "-m",
        "blis_gym",
        "observe",
        "--url",
        server.url,
        "--model",
        "m",
        "--out",
        str(out),
        "--no-progress",
        "--",
        "--rate",
        "20",
        "--num-requests",
        "200",
        "--output-tokens",
        "5",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        while fake.done < 4:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no answers within 60 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted: recorded" in err and str(out) in err and "error:" not in err
    rows = load_trace_v2(out).records
    assert fake.done <= len(rows) < 200
    ok = [r for r in rows if r.status == "ok"]
    assert len(ok) >= 4 and all(r.num_chunks == CHUNKS + 1 for r in ok)
    assert all((r.status, r.error_message) == ("error", "interrupted") for r in rows if r.status != "ok")


def test_record_itl_writes_chunk_times_that_calibrate_reads(serve, capsys, tmp_path):
    """--record-itl: every request streams (the spec's non-streaming client too) and
    trace_data.itl.csv holds one row per chunk, BLIS's columns, matching the trace's chunk
    counts and first and last chunk times; blis calibrate takes real ITL from it."""
    fake = FakeServer(delay_s=0.004)
    server = serve(fake)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("num_requests: 16", "num_requests: 8"))
    out = tmp_path / "trace"
    rc, err = observe(
        capsys,
        "--url",
        server.url,
        "--model",
        "m",
        "--out",
        str(out),
        "--record-itl",
        "--",
        "--workload-spec",
        str(spec),
    )
    assert rc == 0, err
    itl = out / "trace_data.itl.csv"
    assert f"wrote {itl} ({8 * (CHUNKS + 1)} chunk times)" in err
    assert all(b["stream"] for b in fake.bodies)
    lines = itl.read_text().splitlines()
    assert lines[0] == "request_id,chunk_index,timestamp_us"
    rows = [tuple(map(int, line.split(","))) for line in lines[1:]]
    trace = {r.request_id: r for r in load_trace_v2(out).records}
    assert sorted({rid for rid, _, _ in rows}) == sorted(trace)
    for rid, rec in trace.items():
        assert rec.streaming and rec.status == "ok"
        mine = [(i, t) for r, i, t in rows if r == rid]
        assert [i for i, _ in mine] == list(range(rec.num_chunks)) == list(range(CHUNKS + 1))
        times = [t for _, t in mine]
        assert times == sorted(times)
        assert (times[0], times[-1]) == (rec.first_chunk_time_us, rec.last_chunk_time_us)

    report = tmp_path / "cal.json"
    try:
        main(["calibrate", str(out), "--out", str(report), "--", "--model", "meta-llama/llama-3.1-8b-instruct"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    stdout = capsys.readouterr().out
    assert f"(real ITL from the chunk times in {itl}: 8 requests)" in stdout
    doc = json.loads(report.read_text())
    assert doc["itl_file"] == {
        "path": str(itl),
        "requests": 8,
        "itl_pairs": 8,
        "dropped_negative_gaps": 0,
        "missing": 0,
    }
    per_request = sorted(
        sum(b - a for a, b in zip(ts, ts[1:])) / (len(ts) - 1)
        for ts in ([t for r, _, t in rows if r == rid] for rid in trace)
    )
    assert doc["metrics"]["itl"]["count"] == 8
    assert doc["metrics"]["itl"]["real_p50"] == pytest.approx((per_request[3] + per_request[4]) / 2)


def test_prewarm_requests_are_sent_first_and_not_recorded(serve, capsys, tmp_path):
    fake = FakeServer(delay_s=0.003)
    server = serve(fake)
    out = tmp_path / "trace"
    rc, err = observe(
        capsys,
        "--url",
        server.url,
        "--model",
        "m",
        "--out",
        str(out),
        "--prewarm-duration",
        "400ms",
        "--",
        "--rate",
        "1000",
        "--num-requests",
        "6",
        "--output-tokens",
        "7",
        "--output-tokens-stdev",
        "7",
        "--output-tokens-min",
        "7",
        "--output-tokens-max",
        "7",
    )
    assert rc == 0, err
    assert "prewarming the server for 0.4 s (not recorded)" in err and "prewarm: " in err
    warm = [(t, b) for t, b in zip(fake.arrived_us, fake.bodies) if b["max_tokens"] == 64]
    work = [(t, b) for t, b in zip(fake.arrived_us, fake.bodies) if b["max_tokens"] != 64]
    assert len(warm) >= 8 and len(work) == 6
    assert all(b["prompt"] == "Token count: 256" and b["stream"] is False for _, b in warm)
    rows = load_trace_v2(out).records
    assert [r.request_id for r in rows] == list(range(6)) and all(r.output_tokens == 7 for r in rows)
    # The measurement starts once the prewarm is over: its clock, and every request it sends.
    assert min(t for t, _ in warm) + 350_000 <= started_us(out) <= min(t for t, _ in work)
    assert f"prewarm: {len(warm)} requests" in err


def test_chat_and_itl_against_blis_serve(capsys, tmp_path):
    """The chat API of blis serve, streamed: every answer parses, with its tokens and chunks."""
    from blis_gym.serve.launch import BackgroundServers
    from blis_gym.serve.plan import plan_serve

    model = "meta-llama/llama-3.1-8b-instruct"
    out = tmp_path / "trace"
    with BackgroundServers(plan_serve(RunOptions(model=model))) as (url,):
        rc, err = observe(
            capsys,
            "--url",
            url,
            "--model",
            model,
            "--out",
            str(out),
            "--api-format",
            "chat",
            "--record-itl",
            "--",
            "--rate",
            "50",
            "--num-requests",
            "5",
            "--output-tokens",
            "9",
            "--output-tokens-stdev",
            "9",
            "--output-tokens-min",
            "9",
            "--output-tokens-max",
            "9",
        )
    assert rc == 0, err
    rows = load_trace_v2(out).records
    assert all(r.status == "ok" and r.output_tokens == 9 and r.num_chunks == 10 for r in rows), rows
    assert len((out / "trace_data.itl.csv").read_text().splitlines()) == 1 + 5 * 10

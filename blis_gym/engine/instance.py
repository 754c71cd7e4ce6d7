"""One serving instance: wait queue, running batch, KV cache and its event loop.

The instance is driven from outside (by the cluster loop) one event at a time:
``peek_time`` / ``process_next``. Events are tuples ``(time, kind, request)``.
"""

from __future__ import annotations

import bisect
import logging
from collections import deque
from operator import attrgetter

from ..forking import Forkable, fork_with_tuples
from . import eventq
from .batching import VLLMBatchFormation
from .kvcache import KVCache
from .latency import BlackboxLatency
from .metrics import InstanceMetrics
from .request import COMPLETED, Request
from .tiered_kv import TieredKVCache

log = logging.getLogger("blis_gym")

ARRIVAL, QUEUED, STEP, SCHEDULED, PREEMPTED, LEFT = range(6)
_RUN_SEQ = attrgetter("run_seq")


def _itl_range(req: Request, start: int, end: int) -> None:
    """``req`` got a token in each step of the ITL series ``[start, end)``."""
    r = req.itl_steps
    if r and r[-1] == start:
        r[-1] = end
    else:
        r += (start, end)


def _bucket(buckets: dict, step: int, item: tuple) -> None:
    got = buckets.get(step)
    if got is None:
        buckets[step] = [item]
    else:
        got.append(item)


class Instance(Forkable):
    """A vLLM-like engine replica.

    ``reference_kv=True`` reproduces the reference's KV behaviour exactly,
    including its block leak, KV reserved by preempted requests, and the
    livelocks that follow; it exists for differential tests. The default
    repairs them (see README, "Where we differ from BLIS").
    """

    _FORK_SHARED = frozenset({"former", "latency", "priority", "scheduler"})  # stateless

    def __deepcopy__(self, memo: dict) -> "Instance":
        return fork_with_tuples(self, memo, lists={"events": -1}, maps={"_due": 0, "_claims": 0})

    def __init__(
        self,
        instance_id: str,
        *,
        total_kv_blocks: int,
        block_size: int,
        max_running: int,
        max_scheduled_tokens: int,
        long_prefill_threshold: int,
        latency: BlackboxLatency,
        horizon: int,
        priority=None,
        scheduler=None,
        reference_kv: bool = False,
        speed: float = 1.0,
        cpu_tier=None,
        preemption: str = "fcfs",
    ) -> None:
        self.id = instance_id
        self.speed = speed  # decode speed relative to the fleet's fastest class (routers see it)
        self.tiered = cpu_tier is not None  # cpu_tier: a CPUTierConfig (see tiered_kv)
        if self.tiered:
            self.kv = TieredKVCache(
                total_kv_blocks,
                block_size,
                cpu_tier.blocks,
                cpu_tier.offload_threshold,
                cpu_tier.bandwidth,
                cpu_tier.base_latency,
                reference_rollback=reference_kv,
            )
        else:
            self.kv = KVCache(total_kv_blocks, block_size, reference_rollback=reference_kv)
        self.former = VLLMBatchFormation(
            max_running, max_scheduled_tokens, long_prefill_threshold, visit_evicted=reference_kv, preemption=preemption
        )
        self.latency = latency
        self.horizon = horizon
        self.reference_kv = reference_kv
        self.priority = priority
        self.scheduler = scheduler
        self.clock = 0
        self.events: list = []
        self.waitq: deque[Request] = deque()
        self.running: list[Request] = []
        self.step_pending = False
        self.step_count = 0
        # The running step, as a router watching token streams could know it (observations):
        # when it ends (tick), and input tokens of running requests still to prefill after it.
        self.step_end = 0
        self.prefill_left = 0
        self.metrics = InstanceMetrics()
        # Called with (request, tick) when a request leaves: completed or dropped.
        self.on_departure = None
        # Called with (request, tick) when a request gets its first output token (once).
        self.on_first_token = None
        # Lazy decoding (see step and _sync): requests whose next tokens need no KV work
        # and cannot complete are left untouched for those steps and caught up on demand.
        self.n_lazy = 0
        self._due: dict[int, list] = {}  # step -> [(request, lazy_from)] whose laziness ends
        self._claims: dict[int, list] = {}  # step -> [(request, lazy_from)] whose token opens a block
        self._run_seq = 0
        # Summed (progress - lazy_from) of lazy requests: their true progress at step s sums to
        # this plus n_lazy * s (roofline step times need the decoders' context).
        self._lazy_base = 0
        view = latency.batch_view
        self._by_shape = view == "shape"
        # Lazy requests are not visited, so a model that must see every request rules it out,
        # and so does priority preemption (its victim may be any request of the batch).
        self.lazy_enabled = not reference_kv and view != "requests" and not self.former.by_priority
        self._out_time = latency.output_token_time()
        self._post_decode = latency.post_decode_time()  # trained-physics: added once to E2E
        self._block_size = block_size

    @property
    def lazy_enabled(self) -> bool:
        return self.active is not self.running

    @lazy_enabled.setter
    def lazy_enabled(self, on: bool) -> None:
        """Switch lazy decoding (before the instance runs; the reference mode keeps it off)."""
        if self.running or self.n_lazy:
            raise RuntimeError("lazy decoding can only be switched before the instance runs")
        if on and self.latency.batch_view == "requests":
            raise ValueError("this step-time model must see every request: lazy decoding is unavailable")
        if on and self.former.by_priority:
            raise ValueError("priority preemption may evict any request: lazy decoding is unavailable")
        # The running requests that are not lazy, in batch order: a list of its own when
        # laziness is on (so a step's loops never visit lazy requests), else the batch itself.
        self.active: list[Request] = [] if on else self.running

    def blocks_needed(self, r: Request) -> int:
        """Blocks a request must hold at once: its input, or (ours) input plus all but the
        last output token, which the reference lets fail harmlessly."""
        bs = self._block_size
        if self.reference_kv:
            return (r.n_in + bs - 1) // bs
        return (r.n_in + max(r.n_out, 1) - 1 + bs - 1) // bs

    # --- driving ---------------------------------------------------------
    def has_events(self) -> bool:
        return bool(self.events)

    def peek_time(self) -> int:
        return self.events[0][0]

    def inject(self, req: Request, event_time: int) -> None:
        """Hand a routed request to this instance; it arrives at ``event_time``."""
        eventq.push(self.events, (event_time, ARRIVAL, req))
        self.metrics.register(req)

    def process_next(self) -> int:
        """Run the earliest event; return its kind."""
        t, kind, req = eventq.pop(self.events)
        self.clock = t
        if kind == STEP:
            self.step(t)
        elif kind == ARRIVAL:
            eventq.push(self.events, (t + self.latency.queueing_time(req.n_in), QUEUED, req))
        elif kind == QUEUED:
            self.enqueue(req)
            # As in the reference, this does not mark a step as pending, so two
            # arrivals queued at one instant start two step chains.
            if not self.step_pending:
                eventq.push(self.events, (t, STEP, None))
        return kind

    def receive_prompt_kv(self, req: Request, event_time: int) -> None:
        """Queue a disaggregated request whose prompt KV this instance holds (``hold_prompt``):
        it waits only for a batch slot, and its last prompt token is computed here."""
        req.progress = req.n_in - 1
        req.computed = req.n_in
        req.remote_kv = True
        eventq.push(self.events, (event_time, QUEUED, req))
        self.metrics.register(req)

    def enqueue(self, req: Request) -> None:
        if req.remote_kv:  # checked and counted where its prompt arrived (the prefill pool)
            self.waitq.append(req)
            return
        if req.n_in == 0 and req.n_out == 0:  # nothing to compute (BLIS crashes on these)
            log.warning("dropping request %s: it has no input and no output tokens", req.id)
            self._drop(req)
            return
        need = self.blocks_needed(req)
        if need > self.kv.total:
            log.warning(
                "dropping request %s: it needs %d KV blocks but the cache has only %d", req.id, need, self.kv.total
            )
            self._drop(req)
            return
        self.waitq.append(req)
        self.metrics.total_input_tokens += req.n_in

    # --- one step ----------------------------------------------------------
    def step(self, now: int) -> None:
        self.step_count += 1
        s = self.step_count
        if self.tiered:
            self.kv.clock = now  # offload times, for thrashing
        m = self.metrics
        waitq = self.waitq
        sync = None
        if self.n_lazy:
            for req, since in self._due.pop(s, ()):
                if req.lazy_until and req.lazy_from == since:
                    self._sync(req, s)
                    self._activate(req)
            claims = self._claims.pop(s, None)
            if self.n_lazy:
                tokens, blocks = self._phase1_demand()
                kv = self.kv
                if tokens > self.former.max_tokens or (claims and len(claims) + blocks > kv.total - kv.used):
                    # The budget or the cache may run out mid-batch: run this step the explicit way.
                    for req in self.running:
                        if req.lazy_until:
                            self._sync(req, s)
                            self._activate(req)
                else:
                    if claims:
                        self._claim_due(claims, s)
                    sync = lambda req: self._sync(req, s)  # noqa: E731 - a preemption victim
        elif self._due or self._claims:
            self._due.clear()  # left by requests whose laziness ended early
            self._claims.clear()
        if self.scheduler is not None:
            # Priorities only matter to a reordering scheduler; FCFS runs with none.
            compute = self.priority.compute
            for req in waitq:
                req.priority = compute(req, now)
            if len(waitq) > 1:
                ordered = list(waitq)
                self.scheduler.order(ordered, now)
                waitq.clear()
                waitq.extend(ordered)

        running = self.running
        res = self.former.form(running, waitq, self.kv, sync, self.active, self.n_lazy)
        for req in res.scheduled:
            req.run_seq = self._run_seq
            self._run_seq += 1
        if not self.reference_kv:
            self._resolve_stall(res)
        events = self.events
        for req in res.preempted:
            eventq.push(events, (now + self.latency.preemption_time(), PREEMPTED, req))
        m.preemptions += len(res.preempted)
        sched_delay = self.latency.scheduling_time()
        delays = m.scheduling_delays
        for req in res.scheduled:
            eventq.push(events, (now + sched_delay, SCHEDULED, req))
            delays[req.id] = now + sched_delay - req.arrival
        m.waitq_depths.append(len(waitq))
        m.batch_sizes.append(len(running))

        # Step time, from formation's token counts when lazy requests take part.
        kv = self.kv
        lazy_now = self.n_lazy
        if sync is not None:
            # No request was skipped for lack of budget, so formation counted every token.
            if self._by_shape:
                adv = self.latency.step_time_shape(
                    res.prefills,
                    res.decode_tokens + lazy_now + res.zero_input,
                    res.decode_context + self._lazy_base + lazy_now * s,
                )
            else:
                adv = self.latency.step_time_counts(res.prefill_tokens, res.decode_tokens + lazy_now)
        else:
            adv = self.latency.step_time(running)
        if self.tiered:
            adv += self.kv.take_transfer_latency()  # reloads since the last step (BLIS adds them here)
        itl = adv + self._out_time
        this_itl = m.add_step_itl(itl)  # this step's index in the ITL series
        next_itl = this_itl + 1
        active = self.active
        lazy_ok = active is not running
        bs = kv.block_size
        first_token_at = now + itl
        used = kv.used  # execution does not touch the cache; completions below do
        if used > m.peak_kv_blocks:
            m.peak_kv_blocks = used
        m.kv_blocks_integral += float(used) * float(adv)

        # Execute (prefill chunks advance to their reserved count, decodes by one), then
        # complete. One pass: a request's own TTFT is recorded before its completion, and
        # executing one request never depends on another's completion.
        remaining = []
        keep = remaining.append
        completed = []
        decoded = 0
        prefill_left = 0
        left_at = now + adv
        self.step_end = left_at
        on_departure = self.on_departure
        on_first_token = self.on_first_token
        for req in active:
            n_in = req.n_in
            p = req.progress
            if p < n_in:
                p = req.progress = req.computed
                prefill_left += n_in - p
            else:
                p += 1
                req.progress = p
                decoded += 1
                r = req.itl_steps  # _itl_range(req, this_itl, next_itl), inlined
                if r and r[-1] == this_itl:
                    r[-1] = next_itl
                else:
                    r += (this_itl, next_itl)
            if p == n_in:
                if on_first_token is not None and not req.ttft_set:
                    on_first_token(req, first_token_at)
                req.ttft_set = True
                ttft = req.first_token_time = first_token_at - req.arrival
                m.ttfts[req.id] = float(ttft)
            n_out = req.n_out
            done_at = n_in + (n_out if n_out > 1 else 1) - 1  # progress at completion
            if p == done_at:
                req.state = COMPLETED
                completed.append(req)
                req.itl_steps += (this_itl, next_itl)  # the reference counts the last ITL twice
                if n_out > 0 and not kv.allocate(req, p, p + 1, ()):
                    m.kv_allocation_failures += 1
                kv.release(req)
                eventq.push(events, (left_at, LEFT, req))
                lat = m.complete(req)
                if self._post_decode and n_out > 0:
                    lat += self._post_decode
                    m.e2es[req.id] = float(lat)
                if on_departure is not None:
                    on_departure(req, req.arrival + lat)
            else:
                if lazy_ok and p >= n_in:
                    # Decode steps s+1 .. s+k cannot complete and need no KV work beyond
                    # new blocks for a private decoder, claimed in bulk (_claim_due); for
                    # the others the token must fit the partial last block. Skip the
                    # request until then.
                    tail = req.kv_tail_len
                    if req.private_decode:
                        k = done_at - 1 - p
                        lazy = k > 0
                    else:
                        k = min(bs - 1 - tail, done_at - 1 - p)
                        lazy = tail > 0 and k > 0
                    if lazy and req.kv_blocks:
                        req.lazy_from = s + 1
                        self._lazy_base += p - s - 1
                        req.lazy_until = s + k
                        req.lazy_itl = next_itl
                        self.n_lazy += 1
                        _bucket(self._due, s + k + 1, (req, s + 1))
                        if req.private_decode:
                            first = s + 1 + (bs - tail) % bs  # the step whose token opens a block
                            if first <= s + k:
                                _bucket(self._claims, first, (req, s + 1))
                        continue
                keep(req)
        m.total_output_tokens += decoded + lazy_now
        self.prefill_left = prefill_left

        if not lazy_ok:  # the batch is its own active list
            self.running = self.active = remaining
        else:
            self.active = remaining
            if len(completed) > 8:
                self.running = [r for r in running if r.state != COMPLETED]
            else:
                for req in completed:
                    running.remove(req)
        # Work-conserving: keep stepping while anything runs or waits.
        if self.running or waitq:
            eventq.push(events, (left_at, STEP, None))
            self.step_pending = True
        else:
            self.step_pending = False

    def _resolve_stall(self, res) -> None:
        """Safety net: an empty batch that scheduled nobody while requests wait would repeat for ever.

        With blocks never leaked or held by waiting requests, this only happens
        to a request that cannot fit even in an empty cache: drop it.
        """
        if self.running or not self.waitq or res.scheduled or res.preemption_happened:
            return
        req = self.waitq.popleft()
        log.warning("dropping request %s: it cannot fit in the KV cache", req.id)
        self._drop(req)

    def _drop(self, req: Request) -> None:
        self.metrics.drop(req)
        if self.on_departure is not None:
            self.on_departure(req, self.clock)

    # --- lazy decoding ---------------------------------------------------
    def _phase1_demand(self) -> tuple[int, int]:
        """(tokens, at most how many new KV blocks) batch formation's first phase asks for
        this step from the active requests; lazy requests add one token each."""
        thr = self.former.prefill_threshold
        bs = self.kv.block_size
        tokens = self.n_lazy
        blocks = 0
        for req in self.active:
            need = req.n_in - req.progress
            if need > 0:
                if 0 < thr < need:
                    need = thr
                tokens += need
                blocks += (need + bs - 1) // bs  # a partial last block only lowers this
            elif req.n_out > 0:
                tokens += 1
                blocks += 1
        return tokens, blocks

    def _claim_due(self, claims: list, s: int) -> None:
        """New blocks for the lazy private decoders whose step-``s`` token opens one.

        Formation's first phase only takes blocks from the head of the free list, and the
        checks in ``step`` guarantee it cannot fail, so taking these first instead of in
        batch order evicts the same blocks and changes only which id goes to whom.
        """
        nxt = s + self.kv.block_size
        reqs = []
        later = []
        for c in claims:
            req = c[0]
            until = req.lazy_until
            if until and req.lazy_from == c[1]:  # still in the lazy stretch that scheduled it
                reqs.append(req)
                if nxt <= until:
                    later.append(c)
        if self.tiered:
            reqs = self._claims_in_batch_order(reqs, s)
        self.kv.claim_private(reqs)
        if later:
            self._claims.setdefault(nxt, []).extend(later)

    def _claims_in_batch_order(self, reqs: list, s: int) -> list:
        """With a CPU tier block ids matter (reloads go in id order), so blocks must go out in
        batch order: claim first only for those ahead of every active request that may take
        a block in phase 1; the rest rejoin the batch and claim in turn."""
        bs = self._block_size
        first = None
        for req in self.active:  # in batch order
            if req.progress < req.n_in or bs == 1 or not req.kv_blocks or not req.kv_tail_len:
                first = req.run_seq
                break
        if len(reqs) > 1:
            reqs.sort(key=_RUN_SEQ)
        if first is None or not reqs or reqs[-1].run_seq < first:
            return reqs
        ahead = [r for r in reqs if r.run_seq < first]
        for req in reqs[len(ahead) :]:
            self._sync(req, s)
            self._activate(req)
        return ahead

    def _sync(self, req: Request, upto: int) -> None:
        """Apply the decode steps ``req`` skipped before step ``upto``, and end its laziness."""
        k = min(upto, req.lazy_until + 1) - req.lazy_from
        self._lazy_base -= req.progress - req.lazy_from
        if k > 0:
            req.kv_tail_len = (req.kv_tail_len + k) % self.kv.block_size
            req.computed += k
            req.progress += k
            i = req.lazy_itl
            _itl_range(req, i, i + k)
        req.num_new = 1
        req.lazy_until = 0
        self.n_lazy -= 1

    def _activate(self, req: Request) -> None:
        """Put a request that stopped being lazy back among the active ones, in batch order."""
        bisect.insort(self.active, req, key=_RUN_SEQ)

    def finalize(self) -> None:
        for req in self.running:
            if req.lazy_until:
                self._sync(req, self.step_count + 1)
        m = self.metrics
        m.still_queued = len(self.waitq)
        m.still_running = len(self.running)
        m.sim_ended = min(self.clock, self.horizon)
        m.cache_hit_rate = self.kv.hit_rate()
        if self.tiered:
            m.kv_thrashing_rate = self.kv.thrashing_rate()

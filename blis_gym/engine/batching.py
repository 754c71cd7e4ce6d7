"""vLLM-style batch formation: continuing requests first, then new ones.

Phase 1 gives each running request its next prefill chunk (capped by
``--long-prefill-token-threshold`` and the step's token budget) or one decode
token, evicting from the tail of the batch when the KV cache is full (with
``preemption="priority"``, upstream BLIS's newer option, the least urgent request
by SLO class instead, the latest arrival among equals).
Phase 2 admits waiting requests in queue order, reusing cached prefix blocks,
while the batch has room, the budget lasts and nobody was preempted.

A request whose prefill is fully cached holds no blocks until it decodes,
as in the reference. The reference's Phase 1 also walks the batch as it was
when the step began, so a request evicted in this step is visited again and
may reserve KV blocks while it sits in the wait queue; those blocks can starve
the running requests for ever. We stop at the first evicted request instead;
``visit_evicted=True`` keeps the reference's behaviour for differential tests.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from .request import QUEUED, RUNNING, Request

if TYPE_CHECKING:
    from .kvcache import KVCache


class BatchResult:
    """What one formation changed: who was preempted and who was newly scheduled."""

    __slots__ = (
        "preempted",
        "scheduled",
        "preemption_happened",
        "prefill_tokens",
        "decode_tokens",
        "prefills",
        "decode_context",
        "zero_input",
        "budget_back",
        "shift",
    )

    def __init__(self) -> None:
        self.preempted: list[Request] = []
        self.scheduled: list[Request] = []
        self.preemption_happened = False
        # Tokens scheduled this step (read only when lazy requests take part: their token
        # counts, not the batch, give the step time).
        self.prefill_tokens = 0
        self.decode_tokens = 0
        # The batch's shape for roofline step times: (progress, new tokens) of each prefill,
        # summed progress of the decoders given a token, and zero-input requests scheduled
        # (the reference counts those as decoders at progress 0).
        self.prefills: list[tuple[int, int]] = []
        self.decode_context = 0
        self.zero_input = 0
        # Priority preemption only: tokens given back by victims already scheduled this step,
        # and how many victims sat before the request being served (the walk's index moves).
        self.budget_back = 0
        self.shift = 0


#: Preemption policies: which running request a full cache evicts.
PREEMPTION_POLICIES = ("fcfs", "priority")

# Upstream's default SLO class priorities (higher is more urgent; unknown classes are standard),
# with the reference's realtime and interactive ranked as critical and standard.
SLO_PRIORITY = {
    "critical": 4,
    "realtime": 4,
    "standard": 3,
    "interactive": 3,
    "batch": -1,
    "sheddable": -2,
    "background": -3,
}
STANDARD_PRIORITY = 3


def priority_victim(running: list[Request]) -> int:
    """Index of the least urgent running request: the lowest class priority, then the latest
    arrival, then the one nearest the tail."""
    urgency = SLO_PRIORITY.get
    best = len(running) - 1
    key = (urgency(running[best].slo_class, STANDARD_PRIORITY), -running[best].arrival)
    for i in range(best - 1, -1, -1):
        r = running[i]
        k = (urgency(r.slo_class, STANDARD_PRIORITY), -r.arrival)
        if k < key:
            best, key = i, k
    return best


class VLLMBatchFormation:
    """The vLLM v1 scheduler's batch composition, one step at a time."""

    def __init__(
        self,
        max_running: int,
        max_tokens: int,
        prefill_threshold: int,
        visit_evicted: bool = False,
        preemption: str = "fcfs",
    ) -> None:
        if preemption not in PREEMPTION_POLICIES:
            raise ValueError(f"unknown preemption policy {preemption!r} (valid: {', '.join(PREEMPTION_POLICIES)})")
        self.max_running = max_running
        self.max_tokens = max_tokens
        self.prefill_threshold = prefill_threshold
        self.visit_evicted = visit_evicted
        # Priority eviction may take a request already served this step: the batch walk must
        # see the live list (no lazy requests, no reference snapshot).
        self.by_priority = preemption == "priority"

    def form(
        self,
        running: list[Request],
        waitq: deque,
        kv: "KVCache",
        sync=None,
        active: list | None = None,
        n_lazy: int = 0,
    ) -> BatchResult:
        """Update ``running`` and ``waitq`` in place for this step.

        ``active`` (default: ``running`` itself) lists the running requests in order,
        less ``n_lazy`` lazy ones: mid-block decoders whose token this step is known to
        fit (the caller checked the budget), which only take one token of budget each.
        ``sync(req)`` brings a lazy request up to date before it is preempted.
        """
        if active is None:
            active = running
        res = BatchResult()
        miss = 0
        decode = 0
        decode_context = 0
        prefills = res.prefills
        budget = self.max_tokens - n_lazy
        thr = self.prefill_threshold
        bs_minus_1 = kv.block_size - 1
        visit_evicted = self.visit_evicted
        # A live list: preemption pops its tail, which ends the walk as the reference's
        # "stop at the first evicted request" would; the reference mode walks a snapshot.
        seq = tuple(running) if visit_evicted else active
        i = 0
        while i < len(seq):
            req = seq[i]
            i += 1
            if budget <= 0:
                break
            if req.state != RUNNING and not visit_evicted:
                break  # evicted in this step (evictions take the tail, so the rest are too)
            p = req.progress
            n_new = req.n_in - p
            if n_new > 0:
                if 0 < thr < n_new:
                    n_new = thr
                if n_new > budget:
                    n_new = budget
                if not self._reserve(req, n_new, running, active, waitq, kv, res, sync, i - 1):
                    break
                if res.shift or res.budget_back:
                    i -= res.shift
                    budget += res.budget_back
                    res.shift = res.budget_back = 0
                budget -= n_new
                req.num_new = n_new
                req.computed += n_new
                miss += n_new
                prefills.append((p, n_new))
            elif req.n_out > 0:
                tail = req.kv_tail_len
                if 0 < tail < bs_minus_1 and req.kv_blocks:
                    # Fast path: the token fits the partial last block; nothing to hash or pop.
                    req.kv_tail_len = tail + 1
                elif not self._reserve(req, 1, running, active, waitq, kv, res, sync, i - 1):
                    break
                if res.shift or res.budget_back:
                    i -= res.shift
                    budget += res.budget_back
                    res.shift = res.budget_back = 0
                budget -= 1
                req.num_new = 1
                req.computed += 1
                decode += 1
                decode_context += p

        res.prefill_tokens = miss
        res.decode_tokens = decode
        res.decode_context = decode_context
        if res.preemption_happened:
            return res
        bs = kv.block_size
        max_running = self.max_running
        while waitq and budget > 0 and len(running) < max_running:
            nxt = waitq[0]
            if nxt.remote_kv:
                waitq.popleft()
                budget -= self._admit_remote(nxt, running, active, res)
                continue
            cached = kv.cached_blocks(nxt)
            start = len(cached) * bs
            n_new = nxt.n_in - start
            if 0 < thr < n_new:
                n_new = thr
            if n_new > budget:
                n_new = budget
            if not kv.allocate(nxt, start, start + n_new, cached):
                # Ours: requests behind it whose prompt KV is already held (disaggregated) run
                # anyway; held KV that waits for a slot forever could starve the whole batch.
                budget -= self._admit_remote_behind(waitq, running, active, res, budget, max_running)
                break
            waitq.popleft()
            running.append(nxt)
            if active is not running:
                active.append(nxt)
            res.scheduled.append(nxt)
            budget -= n_new
            nxt.state = RUNNING
            nxt.num_new = n_new
            nxt.computed = n_new + start
            res.prefill_tokens += n_new
            if nxt.n_in:
                prefills.append((nxt.progress, n_new))
            else:
                res.zero_input += 1
        return res

    @staticmethod
    def _admit_remote(req: Request, running: list, active: list, res: BatchResult) -> int:
        """Schedule a disaggregated request whose prompt KV arrived from a prefill instance and is
        held: only its last prompt token is computed here, for the first output token (as vLLM
        does when a whole prompt is cached). Returns the token budget it takes (1)."""
        req.remote_kv = False
        running.append(req)
        if active is not running:
            active.append(req)
        res.scheduled.append(req)
        req.state = RUNNING
        req.num_new = 1
        res.prefill_tokens += 1
        res.prefills.append((req.progress, 1))
        return 1

    def _admit_remote_behind(
        self, waitq: deque, running: list, active: list, res: BatchResult, budget: int, max_running: int
    ) -> int:
        """Admit, in queue order, the held-KV requests behind a head that does not fit; returns the
        budget they take."""
        if not any(r.remote_kv for r in waitq):
            return 0
        taken = 0
        kept = []
        while waitq:
            r = waitq.popleft()
            if r.remote_kv and budget - taken > 0 and len(running) < max_running:
                taken += self._admit_remote(r, running, active, res)
            else:
                kept.append(r)
        waitq.extend(kept)
        return taken

    def _reserve(
        self,
        req: Request,
        n: int,
        running: list,
        active: list,
        waitq: deque,
        kv: "KVCache",
        res: BatchResult,
        sync,
        at: int,
    ) -> bool:
        """Reserve KV for ``n`` more tokens of ``req`` (at index ``at`` of the batch), evicting
        from the batch tail (or by priority) as needed."""
        while not kv.allocate(req, req.progress, req.progress + n, ()):
            if not running:
                return False
            res.preemption_happened = True
            if self.by_priority:
                k = priority_victim(running)
                victim = running.pop(k)
                if k < at:  # already served this step: its tokens come back, the walk shifts
                    at -= 1
                    res.shift += 1
                    res.budget_back += victim.num_new
                    victim.num_new = 0
            else:
                victim = running.pop()
            if victim.lazy_until:
                sync(victim)
            elif active is not running:
                active.pop()  # the last non-lazy request is the batch's last
            res.preempted.append(victim)
            victim.state = QUEUED
            victim.progress = 0
            kv.release(victim)
            victim.computed = 0
            waitq.appendleft(victim)
            if victim is req:
                return False
        return True

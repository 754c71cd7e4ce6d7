"""Closed-loop session replay (``blis replay --session-mode closed-loop``, upstream BLIS's mode).

A trace's multi-turn sessions are replayed as a client would send them: a session's first round
arrives at its recorded time, and each later round ``think`` µs after the previous round
completes (its recorded arrival is ignored). ``think`` is ``--think-time-ms`` when given, else
the gap between the two rounds' recorded arrivals (upstream's default, which for a trace taken
by ``blis observe`` holds the previous round's service time too). A round that does not
complete (rejected or dropped) ends its session; the rounds left count as not arrived.
Requests without a session arrive at their recorded times.
"""

from __future__ import annotations

from typing import Optional, Sequence

from ..engine.request import COMPLETED, Request


class SessionLoop:
    """Holds back every session round after the first and releases each when its predecessor
    completes. Install with :meth:`attach` before the run."""

    def __init__(self, requests: Sequence[Request], think_us: Optional[int] = None) -> None:
        by_session: dict[str, list[Request]] = {}
        for r in requests:
            if r.session_id:
                by_session.setdefault(r.session_id, []).append(r)
        self.next_round: dict[int, tuple[Request, int]] = {}  # id(request) -> (next round, think)
        self.held: list[Request] = []
        for rounds in by_session.values():
            for prev, nxt in zip(rounds, rounds[1:]):
                gap = nxt.arrival - prev.arrival if think_us is None else think_us
                self.next_round[id(prev)] = (nxt, max(gap, 0))
                self.held.append(nxt)
        self.sim = None

    def attach(self, sim) -> None:
        """Take the held rounds out of ``sim``'s arrivals and follow its departures."""
        self.sim = sim
        sim.hold_back(self.held)
        sim.set_departure_hook(self.depart)

    def depart(self, req: Request, tick: int) -> None:
        follow = self.next_round.pop(id(req), None)
        if follow is None or req.state != COMPLETED:
            return
        nxt, think = follow
        nxt.arrival = tick + think
        self.sim.release_held(nxt)

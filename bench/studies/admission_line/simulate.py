"""Admission's line under overload, simulated: the real Admission and SQLite ledger, a fake clock, an
engine that serves each admitted request in a time that grows with the occupancy, and closed-loop
clients that honour Retry-After or retry every few milliseconds. It isolates the policy from the
machine (a CPU shared with other work changes what the real measurement sees).

    python bench/studies/admission_line/simulate.py [--seconds 40] [--clients 6] [--keys]

Prints, per group, time to admission p50/p99, requests, attempts, and the engine's mean occupancy.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from server.admission.gate import Admission, Policy, Ticket
from server.admission.ledger import Ledger
from server.errors import RateLimitError
from server.observability.metrics import ServerMetrics

CAPACITY = 4


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Client:
    name: str
    honours: bool
    keyed: bool
    started: float = 0.0
    attempts: int = 0
    token: str | None = None
    waits: list[float] = field(default_factory=list)
    tries: list[int] = field(default_factory=list)


def service_time(occupancy: int, rng: random.Random, base: float, args_spread: float) -> float:
    return base * (occupancy / CAPACITY) ** 0.5 * rng.uniform(1 - args_spread, 1 + args_spread)


def run(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(Path(tmp) / "ledger.sqlite3")
        adm = Admission(ledger, Policy(CAPACITY, 1_000_000, None, None, None), ServerMetrics(), clock=clock)
        clients = [Client(f"h{i}", True, args.keys) for i in range(args.clients)]
        clients += [Client(f"x{i}", False, args.keys) for i in range(args.clients)]
        events: list[tuple[float, int, str, int, Ticket | None]] = []  # (time, seq, kind, client, ticket)
        seq = 0

        def push(at: float, kind: str, who: int, ticket: Ticket | None = None) -> None:
            nonlocal seq
            seq += 1
            heapq.heappush(events, (at, seq, kind, who, ticket))

        for i, c in enumerate(clients):
            c.started = clock.now
            push(clock.now + rng.uniform(0, 0.5), "try", i)
        end = clock.now + args.seconds
        busy = 0.0
        in_flight = 0
        last = clock.now
        while events and events[0][0] < end:
            at, _, kind, who, ticket = heapq.heappop(events)
            busy += in_flight * (at - last)
            last = clock.now = at
            c = clients[who]
            if kind == "done":
                assert ticket is not None
                adm.release(ticket, 1)
                in_flight -= 1
                c.started = clock.now
                c.attempts = 0
                push(clock.now + args.think, "try", who)
                continue
            c.attempts += 1
            try:
                t = adm.admit(c.name if c.keyed else None, 1, 1, 1, token=c.token if c.honours else None)
            except RateLimitError as refused:
                if not c.honours:
                    push(clock.now + args.hammer_gap, "try", who)
                else:
                    c.token = refused.token or c.token
                    push(clock.now + refused.retry_after, "try", who)
                continue
            in_flight += 1
            c.waits.append(clock.now - c.started)
            c.tries.append(c.attempts)
            c.token = None
            push(clock.now + service_time(in_flight, rng, args.base, args.spread), "done", who, t)
        ledger.close()

    def group(honours: bool) -> dict[str, float | int]:
        waits = sorted(w for c in clients if c.honours == honours for w in c.waits)
        tries = [n for c in clients if c.honours == honours for n in c.tries]
        return {
            "requests": len(waits),
            "p50_s": round(waits[len(waits) // 2], 3),
            "p99_s": round(waits[min(len(waits) - 1, int(0.99 * len(waits)))], 3),
            "attempts_mean": round(statistics.fmean(tries), 1),
        }

    return {
        "keys": args.keys,
        "occupancy_mean": round(busy / args.seconds, 2),
        "honouring": group(True),
        "hammering": group(False),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--keys", action="store_true")
    parser.add_argument("--base", type=float, default=0.4, help="seconds one request takes on a full engine")
    parser.add_argument("--think", type=float, default=0.0)
    parser.add_argument("--spread", type=float, default=0.3, help="service time varies by this share")
    parser.add_argument("--hammer-gap", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=1)
    print(json.dumps(run(parser.parse_args()), indent=2))

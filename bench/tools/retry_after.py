"""Does Retry-After tell the truth, and does honouring it pay? Measured against a running server.

    python bench/tools/retry_after.py --url http://127.0.0.1:8000 [--keys] [--idle 60]
        [--clients 8] [--seconds 40] [--max-tokens 24] [--warm-together 0] [--json OUT.json]

Two phases:
1. After idle: a warm-up of sequential requests (so the server has measured how long one takes),
   then --warm-rounds rounds of --warm-together requests at once (so it has also seen a fuller
   engine, as a server that served traffic before its idle minute has), --idle seconds of
   nothing, then a burst of 3 x --clients honouring clients at once. For every refused one: the
   first Retry-After it was given against its real time to admission.
2. Sustained overload: --clients clients that honour Retry-After (they sleep retry-after-ms, or
   Retry-After in whole seconds with --whole-seconds, and present X-Retry-Token) and --clients that
   ignore it (they retry after --hammer-gap), each in a closed loop for --seconds. Per group: time to
   admission p50/p99 (first attempt to the 200's headers: the server admits before it answers), the
   attempts it took, and, for the honouring one, first Retry-After over real wait.

--keys: every client presents its own API key (`client0` ... as `--api-keys` must list them: the
tool prints the flag), so the server keeps each key's place in line; without it, clients are
anonymous and keep their place with the X-Retry-Token the 429 hands out. Start the server with a
small --max-in-flight so that these clients overload it, e.g.

    python -m server --max-model-len 512 --max-in-flight 4 --port 8000 [--api-keys ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


@dataclass
class Outcome:
    honours: bool
    admitted_after: float  # seconds from the first attempt to the 200's headers
    attempts: int
    first_retry_after: float | None  # seconds the first 429 said (retry-after-ms), None: not refused


@dataclass
class Client:
    http: httpx.AsyncClient
    name: str
    honours: bool
    keys: bool
    whole_seconds: bool
    hammer_gap: float
    max_tokens: int
    outcomes: list[Outcome] = field(default_factory=list)

    async def one(self) -> Outcome:
        body = {
            "messages": [{"role": "user", "content": f"{self.name}: tell me a story"}],
            "max_tokens": self.max_tokens,
            "ignore_eos": True,
            "stream": True,
        }
        headers = {"Authorization": f"Bearer sk-{self.name}"} if self.keys else {}
        start, attempts, first = time.monotonic(), 0, None
        while True:
            attempts += 1
            async with self.http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as resp:
                if resp.status_code == 200:
                    admitted = time.monotonic() - start
                    await resp.aread()
                    return Outcome(self.honours, admitted, attempts, first)
                await resp.aread()
                if resp.status_code != 429:
                    raise RuntimeError(f"{resp.status_code}: {resp.text}")
                exact = float(resp.headers["retry-after-ms"]) / 1000
                first = exact if first is None else first
                if not self.honours:
                    await asyncio.sleep(self.hammer_gap)
                    continue
                if token := resp.headers.get("x-retry-token"):
                    headers = {**headers, "X-Retry-Token": token}
                await asyncio.sleep(float(resp.headers["retry-after"]) if self.whole_seconds else exact)

    async def loop(self, until: float) -> None:
        while time.monotonic() < until:
            self.outcomes.append(await self.one())


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    waits = [o.admitted_after for o in outcomes]
    refused = [o for o in outcomes if o.first_retry_after is not None]
    ratios = [
        o.first_retry_after / o.admitted_after for o in refused if o.first_retry_after and o.admitted_after
    ]
    return {
        "requests": len(outcomes),
        "refused_at_least_once": len(refused),
        "admission_p50_s": pct(waits, 0.5),
        "admission_p99_s": pct(waits, 0.99),
        "admission_mean_s": statistics.fmean(waits) if waits else None,
        "attempts_mean": statistics.fmean(o.attempts for o in outcomes) if outcomes else None,
        "refused_wait_p50_s": pct([o.admitted_after for o in refused], 0.5),
        "first_retry_after_p50_s": pct([o.first_retry_after or 0.0 for o in refused], 0.5),
        "retry_after_over_real_wait_p50": pct(ratios, 0.5),
        "within_2x_share": (sum(0.5 <= r <= 2.0 for r in ratios) / len(ratios)) if ratios else None,
    }


def clients(
    args: argparse.Namespace, http: httpx.AsyncClient, prefix: str, n: int, honours: bool
) -> list[Client]:
    return [
        Client(http, f"{prefix}{i}", honours, args.keys, args.whole_seconds, args.hammer_gap, args.max_tokens)
        for i in range(n)
    ]


async def after_idle(args: argparse.Namespace, http: httpx.AsyncClient) -> dict[str, Any]:
    warm = clients(args, http, "client", 1, True)[0]
    for _ in range(5):
        await warm.one()
    for _ in range(args.warm_rounds if args.warm_together > 1 else 0):
        together = clients(args, http, "client", args.warm_together, True)
        await asyncio.gather(*(c.one() for c in together))
    await asyncio.sleep(args.idle)
    burst = clients(args, http, "client", 3 * args.clients, True)
    outcomes = await asyncio.gather(*(c.one() for c in burst))
    return {
        "warm_together": args.warm_together,
        "idle_s": args.idle,
        "burst": len(burst),
        **summary(list(outcomes)),
    }


async def overload(args: argparse.Namespace, http: httpx.AsyncClient) -> dict[str, Any]:
    honouring = clients(args, http, "client", args.clients, True)
    hammering = clients(args, http, "client", 2 * args.clients, False)[args.clients :]
    until = time.monotonic() + args.seconds
    await asyncio.gather(*(c.loop(until) for c in honouring + hammering))
    return {
        "seconds": args.seconds,
        "honouring": summary([o for c in honouring for o in c.outcomes]),
        "hammering": summary([o for c in hammering for o in c.outcomes]),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=8 * args.clients)
    async with httpx.AsyncClient(base_url=args.url, timeout=300, limits=limits) as http:
        result: dict[str, Any] = {
            "url": args.url,
            "keys": args.keys,
            "whole_seconds": args.whole_seconds,
            "clients_per_group": args.clients,
            "max_tokens": args.max_tokens,
            "hammer_gap_s": args.hammer_gap,
        }
        if args.idle >= 0:
            result["after_idle"] = await after_idle(args, http)
        if args.seconds > 0:
            result["overload"] = await overload(args, http)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--keys", action="store_true", help="each client its own API key, sk-client<i>")
    parser.add_argument("--whole-seconds", action="store_true", help="honour Retry-After, not retry-after-ms")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--idle", type=float, default=60.0, help="-1: skip the after-idle phase")
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--warm-together", type=int, default=0, help="warm-up requests at once (0: none)")
    parser.add_argument("--warm-rounds", type=int, default=3)
    parser.add_argument("--hammer-gap", type=float, default=0.01)
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    if options.keys:
        names = [f"client{i}:sk-client{i}" for i in range(3 * options.clients)]
        print("server flag: --api-keys " + ",".join(names))
    report = asyncio.run(main(options))
    text = json.dumps(report, indent=2)
    print(text)
    if options.json:
        options.json.write_text(text + "\n")

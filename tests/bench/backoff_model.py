"""A model of a group's CloudFormation calls under throttling, to compare retry and pacing
policies at sizes and bucket models the real benchmark cannot run in minutes (issue 18's levers:
"backoff that grows with the throttles seen", "jitter sized to the group", a throttle-gated
variant). A discrete-event simulation, not a measurement:

* N instances start at t = 0; each makes DescribeStackResource, then 2-4 s later (the agent's
  registration 1-3 s + the 1 s settle window, as examples/fleet_sim.rs sleeps) SignalResource;
* CloudFormation admits `rate` requests/s in one token bucket (burst = rate) shared by the two
  actions, or one bucket per action; a throttled call is answered at once (no latency modelled);
* a throttled call is retried after the policy's delay, until it succeeds (no deadline, no
  SDK retry quota: the real runs retry until their deadline, 30 attempts).

The SDK's standard policy is modelled as aws-smithy-runtime computes it: delay = U(0,1) x
min(20 s, 1 s x 2^k) after the k-th retry attempt (`retries/strategy/standard.rs`,
`calculate_exponential_backoff`, initial backoff 1 s, max backoff 20 s). Checked against the
measured baseline (bench/RESULTS.md, 1,000 instances in examples/fleet_sim.rs against moto): the
model gives 5.56x the calls needed and 1.13x the ideal time, the measurement 5.39x and 1.15x.

Run: `scripts/bench --model` (a few seconds), or this file directly.
"""

from __future__ import annotations

import heapq
import random
import statistics
from typing import Any, Callable

# delay(retry attempt k >= 1, rng, action) -> seconds
Policy = Callable[[int, random.Random, str], float]


def sdk_standard(initial: float = 1.0, cap: float = 20.0, mult: float = 2.0) -> Policy:
    """After the k-th failed attempt: U(0,1) x min(cap, initial x mult^(k-1))."""
    return lambda k, r, _a: r.random() * min(cap, initial * mult ** (k - 1))


def gated(group: int, rate: float, headroom: float = 1.1) -> Policy:
    """Throttle-gated pacing: the first call goes at once; only a throttled instance waits once
    for U(0, W), W = headroom x 2 x group / rate (the pace window), then the SDK's backoff."""
    window = headroom * 2 * group / rate
    sdk = sdk_standard()
    return lambda k, r, a: r.random() * window if k == 1 else sdk(k, r, a)


def simulate(n: int, rate: float, policy: Policy, per_action: bool = False,
             first_delay: Callable[[random.Random], float] | None = None,
             seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    buckets: dict[str, tuple[float, float]] = {}

    def admit(action: str, t: float) -> bool:
        key = action if per_action else "all"
        tokens, last = buckets.get(key, (rate, 0.0))
        tokens = min(rate, tokens + (t - last) * rate)
        ok = tokens >= 1
        buckets[key] = (tokens - 1 if ok else tokens, t)
        return ok

    events: list[tuple[float, int, str, int]] = []
    for i in range(n):
        heapq.heappush(events, (first_delay(rng) if first_delay else 0.0, i, "DSR", 0))
    calls = {"DSR": 0, "SR": 0}
    throttled = {"DSR": 0, "SR": 0}
    done: list[float] = []
    max_attempts = 0
    while events:
        t, i, action, k = heapq.heappop(events)
        calls[action] += 1
        if admit(action, t):
            max_attempts = max(max_attempts, k + 1)
            if action == "DSR":
                heapq.heappush(events, (t + 2 + 2 * rng.random(), i, "SR", 0))
            else:
                done.append(t)
        else:
            throttled[action] += 1
            heapq.heappush(events, (t + policy(k + 1, rng, action), i, action, k + 1))
    done.sort()
    ideal = (n if per_action else 2 * n) / rate
    total = sum(calls.values())
    return {"n": n, "buckets": "per-action" if per_action else "shared",
            "last": done[-1], "p50": statistics.median(done), "ideal": ideal,
            "time_ratio": done[-1] / ideal, "calls": total, "calls_ratio": total / (2 * n),
            "throttled": throttled, "max_attempts": max_attempts}


def policies(n: int, rate: float) -> dict[str, tuple[Policy, Callable[[random.Random], float] | None]]:
    """The policies compared: what an instance knows decides what it can do."""
    window = 1.1 * 2 * n / rate
    return {
        # Blind (the classic UserData: no group size), today's behaviour.
        "blind: SDK standard (today, no --group-size)": (sdk_standard(), None),
        # Blind, backoff that grows faster / starts later / is capped higher.
        "blind: backoff x4 from 2 s, cap 120 s": (sdk_standard(2.0, 120.0, 4.0), None),
        "blind: backoff x2 from 8 s, cap 120 s": (sdk_standard(8.0, 120.0), None),
        # The group's size known (--group-size N): pace before the first call (today).
        "--group-size N: wait U(0, W) before the first call (today)":
            (sdk_standard(), lambda r: r.random() * window),
        # The group's size known, but used only once throttled.
        "--group-size N: first call at once, U(0, W) once throttled": (gated(n, rate), None),
        # The group's size known, and the account known to have one bucket per action:
        # --cfn-rate 2 x rate halves the window.
        "--group-size N --cfn-rate 2x: wait U(0, W/2) before the first call":
            (sdk_standard(), lambda r: r.random() * window / 2),
    }


def run(sizes: tuple[int, ...] = (30, 100, 300, 1000), rate: float = 25.0) -> list[dict[str, Any]]:
    out = []
    for n in sizes:
        for per_action in (False, True):
            for name, (policy, first) in policies(n, rate).items():
                r = simulate(n, rate, policy, per_action, first, seed=n)
                r["policy"] = name
                out.append(r)
    return out


if __name__ == "__main__":
    for r in run():
        print(f"N={r['n']:5d} {r['buckets']:10s} {r['policy']:62s} "
              f"time {r['time_ratio']:.2f}x ({r['last']:.1f} s) calls {r['calls_ratio']:.2f}x "
              f"max attempts {r['max_attempts']}")

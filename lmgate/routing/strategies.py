"""How a model picks one deployment among those that may be called now.

Every strategy gets the candidates already filtered (healthy, not throttled, with headroom, not yet
tried by this request) and returns one of them; the router calls it again for the next attempt.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    from lmgate.routing.router import Deployment

Choose = Callable[[Sequence["Deployment"], random.Random], "Deployment"]


def weighted(cands: Sequence[Deployment], rng: random.Random) -> Deployment:
    """A draw in proportion to `weight` (the default)."""
    if len(cands) == 1:
        return cands[0]
    pick = rng.random() * sum(d.weight for d in cands)
    for d in cands:
        pick -= d.weight
        if pick < 0:
            return d
    return cands[-1]


def least_busy(cands: Sequence[Deployment], rng: random.Random) -> Deployment:
    """Fewest calls in flight; ties broken by weight."""
    low = min(d.health.in_flight for d in cands)
    return weighted([d for d in cands if d.health.in_flight == low], rng)


def lowest_latency(cands: Sequence[Deployment], rng: random.Random) -> Deployment:
    """Lowest latency EWMA; a deployment never measured goes first, so each gets measured."""
    unmeasured = [d for d in cands if d.health.latency_ms is None]
    if unmeasured:
        return weighted(unmeasured, rng)
    return min(cands, key=lambda d: d.health.latency_ms)  # type: ignore[arg-type, return-value]


def lowest_cost(cands: Sequence[Deployment], rng: random.Random) -> Deployment:
    """Cheapest catalog price of the deployment's upstream model; unknown prices go last; ties by weight."""
    low = min(d.unit_cost for d in cands)
    return weighted([d for d in cands if d.unit_cost == low], rng)


STRATEGIES: dict[str, Choose] = {
    "weighted": weighted,
    "least-busy": least_busy,
    "lowest-latency": lowest_latency,
    "lowest-cost": lowest_cost,
}

"""Budget periods as ids: "total", "d2025-01-31" (UTC day), "m2025-01" (UTC month).

One definition shared by the limits step (in memory) and the store's spend table, so spend
loaded at start lines up with spend counted since.
"""

from __future__ import annotations

import calendar
import functools
import time

TOTAL = "total"


@functools.lru_cache(maxsize=16)
def _ids_of_day(day: int) -> tuple[str, str, str]:
    """Cached per UTC day number: formatting dates is the dearest part of settling a request."""
    t = time.gmtime(day * 86400)
    return TOTAL, time.strftime("d%Y-%m-%d", t), time.strftime("m%Y-%m", t)


def day_id(ts: float) -> str:
    return _ids_of_day(int(ts // 86400))[1]


def month_id(ts: float) -> str:
    return _ids_of_day(int(ts // 86400))[2]


def period_ids(ts: float) -> tuple[str, str, str]:
    """The three periods a cost at `ts` counts toward: total, its day, its month."""
    return _ids_of_day(int(ts // 86400))


def period_id(period: str, ts: float) -> str:
    """The id of the `total|daily|monthly` period that contains `ts`."""
    if period == "daily":
        return day_id(ts)
    if period == "monthly":
        return month_id(ts)
    return TOTAL


def seconds_to_next(period: str, ts: float) -> float | None:
    """Until the period containing `ts` ends (UTC); None for `total`, which never resets."""
    t = time.gmtime(ts)
    if period == "daily":
        start = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0))
        return start + 86400 - ts
    if period == "monthly":
        year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
        return calendar.timegm((year, month, 1, 0, 0, 0)) - ts
    return None

"""The harness's shared pieces: a log-bucketed latency histogram, an open-loop schedule, result rows.

**Latency without coordinated omission.** A load generator that waits for its previous request, or sends
"as soon as it can" after falling behind, hides exactly the stalls it should measure. Here every send
time is fixed in advance (``schedule``: the n-th send is due at ``start + n / rate``), and a latency is
measured from that *scheduled* time, so a sender that fell behind behind a stall charges the stall to
every message it delayed.

**Histogram.** HDR-style: buckets whose width grows with the value (``significant`` decimal digits of
precision, 2 by default: every recorded value is within 1 % of its bucket), so p99.9 of millions of
samples costs a few thousand integers, and two histograms merge by adding counts.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


class Histogram:
    """Counts of values (milliseconds, say) in logarithmic buckets: relative error ≤ 10**-significant."""

    def __init__(self, *, significant: int = 2) -> None:
        self.growth = 1 + 10.0**-significant
        self.log_growth = math.log(self.growth)
        self.counts: dict[int, int] = {}
        self.total = 0
        self.zeros = 0
        self.max = 0.0

    def record(self, value: float) -> None:
        self.total += 1
        self.max = max(self.max, value)
        if value <= 0:
            self.zeros += 1
            return
        bucket = math.floor(math.log(value) / self.log_growth)
        self.counts[bucket] = self.counts.get(bucket, 0) + 1

    def record_many(self, values: Iterable[float]) -> None:
        for value in values:
            self.record(value)

    def merge(self, other: Histogram) -> None:
        for bucket, count in other.counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + count
        self.total += other.total
        self.zeros += other.zeros
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float | None:
        """The value at quantile ``q`` (0 to 1): the middle of the bucket holding that rank; None if empty."""
        if not self.total:
            return None
        rank = max(1, math.ceil(q * self.total))
        seen = self.zeros
        if seen >= rank:
            return 0.0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                low = self.growth**bucket
                return min(self.max, low * (1 + self.growth) / 2)
        return self.max

    def summary(self, *, digits: int = 2) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "count": self.total,
            "p50": rounded(self.quantile(0.50)),
            "p90": rounded(self.quantile(0.90)),
            "p99": rounded(self.quantile(0.99)),
            "p99.9": rounded(self.quantile(0.999)),
            "max": rounded(self.max) if self.total else None,
        }


def schedule(*, rate: float, count: int, start: float | None = None) -> Iterator[tuple[int, float]]:
    """(n, due) for n in 0..count-1, ``due`` on the ``time.time()`` clock: the open-loop send times, fixed
    before anything is sent. Sleeps until each is due (never skips one that is late)."""
    start = time.time() if start is None else start
    for n in range(count):
        due = start + n / rate
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        yield n, due


async def aschedule(
    *, rate: float, count: int, start: float | None = None
) -> AsyncIterator[tuple[int, float]]:
    """:func:`schedule` for an event loop."""
    start = time.time() if start is None else start
    for n in range(count):
        due = start + n / rate
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        yield n, due


@dataclass
class Row:
    """One line of the table: our figure, the raw floor under it measured in the same run, their ratio.

    ``ratio`` is value / floor. For a rate (higher is better) the target is a lower bound on the ratio;
    for a time or a size (lower is better), an upper bound. ``target`` says which, in words; ``met`` is
    None when no target applies or a figure is missing."""

    name: str
    value: float | None
    unit: str
    floor: float | None
    ratio: float | None
    target: str | None
    met: bool | None = None
    floor_of: str = ""
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


def row(
    name: str,
    *,
    value: float | None,
    unit: str,
    floor: float | None,
    floor_of: str,
    target: str | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
    on: str = "ratio",
    note: str = "",
    detail: dict[str, Any] | None = None,
) -> Row:
    """A row whose target is ``at_least`` or ``at_most`` applied to the ratio (``on="ratio"``), the value
    (``on="value"``), or the value minus the floor (``on="added"``)."""
    ratio = round(value / floor, 3) if value is not None and floor else None
    measured = {
        "ratio": ratio,
        "value": value,
        "added": value - floor if value is not None and floor is not None else None,
    }[on]
    met = None
    if measured is not None and (at_least is not None or at_most is not None):
        met = (at_least is None or measured >= at_least) and (at_most is None or measured <= at_most)
    return Row(
        name=name,
        value=None if value is None else round(value, 3),
        unit=unit,
        floor=None if floor is None else round(floor, 3),
        ratio=ratio,
        target=target,
        met=met,
        floor_of=floor_of,
        note=note,
        detail=detail or {},
    )


def table(rows: list[Row]) -> str:
    """The rows as one fixed-width text table (Markdown-compatible)."""

    def figure(value: float | None) -> str:
        if value is None:
            return "—"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"

    header = ["benchmark", "value", "unit", "floor", "ratio", "target", "met"]
    lines = [
        [
            r.name,
            figure(r.value),
            r.unit,
            figure(r.floor),
            "—" if r.ratio is None else f"{r.ratio:.3g}",
            r.target or "—",
            {True: "yes", False: "NO", None: "—"}[r.met],
        ]
        for r in rows
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=True)]

    def render(cells: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([render(header), separator, *(render(cells) for cells in lines)])


def results_write(rows: list[Row], *, meta: dict[str, Any], path: Path | None = None) -> Path:
    """``bench/results/latest.json``: the list of rows; the run's machine and timing beside it in
    ``latest.meta.json``."""
    path = path or RESULTS / "latest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    path.with_suffix(".meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def last_json(text: str) -> dict[str, Any] | None:
    """The last JSON object a benchmark printed on its standard output (a line starting with ``{`` up to
    the end of that object)."""
    decoder = json.JSONDecoder()
    starts = [i for i, line_start in enumerate(text) if line_start == "{" and (i == 0 or text[i - 1] == "\n")]
    for start in reversed(starts):
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None

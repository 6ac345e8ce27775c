"""Robust statistics of one destination's connection times and sizes.

Medians and median absolute deviations (MAD) rather than means and standard
deviations: a missed beat, a large download in the middle of a beacon or a
sleeping laptop are single outliers that must not hide the rhythm of the rest.
docs/evidence.md (COMMAND_AND_CONTROL_BEACON) explains the score.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from operator import sub

# Size dispersion (MAD / median) at which size regularity no longer adds anything.
SIZE_SCALE = 0.4
# Bytes: sizes are compared against at least this much, so that requests of
# 0, 3 or 10 bytes do not look wildly irregular.
SIZE_FLOOR = 64.0
# Interquartile range of the gaps, relative to their median, at which skew counts fully.
SKEW_SPREAD = 0.1
# Weights of timing, size and symmetry in the score (they sum to 1).
TIME_WEIGHT, SIZE_WEIGHT, SKEW_WEIGHT = 0.5, 0.3, 0.2


def quantile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of an already sorted, non-empty sequence."""
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median_mad(values: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(values)
    middle = quantile(ordered, 0.5)
    return middle, quantile(_deviations(ordered, middle), 0.5)


def _deviations(values: Sequence[float], centre: float) -> list[float]:
    """sorted(abs(v - centre) for v in values), iterated in C rather than in Python."""
    return sorted(map(abs, map(sub, values, [centre] * len(values))))


def bowley(ordered: Sequence[float]) -> float:
    """Quartile skewness in [-1, 1], weighed by how much spread there is to be skewed.

    Gaps that differ by a few tenths of a second (network and scheduler noise on
    a clock-driven beacon) have a skew that is pure chance; it counts in full
    only once the interquartile range reaches SKEW_SPREAD of the median.
    """
    q1, q2, q3 = quantile(ordered, 0.25), quantile(ordered, 0.5), quantile(ordered, 0.75)
    spread = q3 - q1
    if spread <= 0 or q2 <= 0:
        return 0.0
    return (q3 + q1 - 2 * q2) / spread * min(1.0, spread / (SKEW_SPREAD * q2))


@dataclass(frozen=True, slots=True)
class Rhythm:
    """What the beats of one destination look like."""

    beats: int
    span: float  # seconds from the first to the last beat kept
    period: float  # median gap between beats
    gap_mad: float
    time_dispersion: float  # gap_mad / period
    regular: float  # share of gaps within 2 x tolerance of the period
    skew: float  # Bowley skew of the gaps
    size: float  # median bytes sent per beat
    size_dispersion: float  # size MAD / max(size, SIZE_FLOOR)
    score: float  # 0..1, see score()


@dataclass(frozen=True, slots=True)
class Timing:
    """The gaps between beats: what most destinations are turned down on, measured
    before their sizes are (a browser's gaps scatter far beyond the tolerance)."""

    gaps: list[float]  # ascending
    period: float
    gap_mad: float
    regular: float

    @property
    def time_dispersion(self) -> float:
        return self.gap_mad / self.period


def _sorted_gaps(times: Sequence[float]) -> list[float]:
    # times[i + 1] - times[i], computed in C: this runs at every beat of every
    # destination with enough beats.
    return sorted(map(sub, times[1:], times[:-1]))


def timing(times: Sequence[float], tolerance: float) -> Timing | None:
    """The gaps between beats at ``times`` (ascending); None below three beats."""
    if len(times) < 3:
        return None
    gaps = _sorted_gaps(times)
    period = quantile(gaps, 0.5)
    if period <= 0:
        return None
    return _timing(gaps, period, tolerance)


def timely(times: Sequence[float], tolerance: float, shortest: float, longest: float,
           share: float) -> Timing | None:
    """``timing(times, tolerance)`` when its period lies in [shortest, longest], its
    dispersion is within ``tolerance`` and ``share`` of the gaps are regular; else None.

    Nearly every destination judged fails, mostly on the dispersion: the period and
    two bisections of the sorted gaps turn it down before any deviation is computed.
    """
    if len(times) < 3:
        return None
    gaps = _sorted_gaps(times)
    period = quantile(gaps, 0.5)
    if period <= 0 or not shortest <= period <= longest:
        return None
    n = len(gaps)
    # MAD is at least the deviation at the median's lower index, so that many gaps
    # must lie within tolerance x period of the period; and the regular ones within
    # twice that. The bounds are widened a little so that rounding can only let a
    # destination through to the exact computation, never turn one down.
    if (_near(gaps, period, tolerance * period) <= int((n - 1) * 0.5)
            or _near(gaps, period, 2 * tolerance * period) / n < share):
        return None
    t = _timing(gaps, period, tolerance)
    return t if t.time_dispersion <= tolerance and t.regular >= share else None


def _near(ordered: list[float], centre: float, radius: float) -> int:
    """At least the number of ``ordered`` values within ``radius`` of ``centre``."""
    slack = 1e-6 * (abs(radius) + abs(centre))
    return (bisect_right(ordered, centre + radius + slack)
            - bisect_left(ordered, centre - radius - slack))


def _timing(gaps: list[float], period: float, tolerance: float) -> Timing:
    deviations = _deviations(gaps, period)
    gap_mad = quantile(deviations, 0.5)
    # MAD only speaks for the closest half of the gaps; this speaks for the rest.
    regular = bisect_right(deviations, 2 * tolerance * period) / len(gaps)
    return Timing(gaps, period, gap_mad, regular)


def rhythm(times: Sequence[float], sizes: Sequence[float], t: Timing,
           tolerance: float) -> Rhythm:
    """The whole rhythm, given the timing of the same ``times``."""
    size, size_mad = median_mad(sizes)
    rhythm = Rhythm(
        beats=len(times), span=times[-1] - times[0], period=t.period, gap_mad=t.gap_mad,
        time_dispersion=t.time_dispersion, regular=t.regular, skew=bowley(t.gaps), size=size,
        size_dispersion=size_mad / max(size, SIZE_FLOOR), score=0.0,
    )
    return replace(rhythm, score=score(rhythm, tolerance))


def measure(times: Sequence[float], sizes: Sequence[float], tolerance: float) -> Rhythm | None:
    """The rhythm of beats at ``times`` (ascending) sending ``sizes`` bytes each."""
    t = timing(times, tolerance)
    return None if t is None else rhythm(times, sizes, t, tolerance)


def score(r: Rhythm, tolerance: float) -> float:
    """Weighted regularity: timing counts 1 at no dispersion and 1/2 at the tolerance."""
    timing = max(0.0, 1.0 - r.time_dispersion / (2 * tolerance)) if tolerance > 0 else 0.0
    sizes = max(0.0, 1.0 - r.size_dispersion / SIZE_SCALE)
    symmetry = 1.0 - min(1.0, abs(r.skew))
    return TIME_WEIGHT * timing + SIZE_WEIGHT * sizes + SKEW_WEIGHT * symmetry


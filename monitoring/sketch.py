"""A mergeable quantile sketch for non-negative values (latency, time to first token). numpy only: no Django.

The layout of DDSketch (Masson, Rim, Lee: "DDSketch: a fast and fully-mergeable
quantile sketch with relative-error guarantees", VLDB 2019), with a fixed
relative accuracy alpha = 0.01:

    gamma   = (1 + alpha) / (1 - alpha)
    index   i(x) = ceil(ln(x) / ln(gamma))            for x > 0: bucket (gamma^(i-1), gamma^i]
    value   v(i) = 2 * gamma^i / (gamma + 1)           the estimate returned for every x in bucket i
    zeros   counted apart (ln 0 is undefined)

For x in (gamma^(i-1), gamma^i], |v(i) - x| / x <= (gamma - 1) / (gamma + 1) = alpha. Hence the
guarantee: every quantile estimate is within relative error alpha (1 %) of the exact sample
quantile of the same rank (up to floating-point rounding, about 1e-12), and the estimate of a
zero is exactly 0. Counts are exact, so merging (adding counts bucket by bucket) loses nothing:
the merge of two sketches is identical to the sketch of the concatenated samples, which is what
lets an hour's P95 be computed from its minutes' sketches.

Rank rule: quantile(q) of n values is the estimate of the value of rank k = max(1, ceil(q * n))
(1-based) in sorted order: numpy's `np.quantile(x, q, method="inverted_cdf")`, the lower
quantile, never an interpolation between two values.

Storage is sparse (only the buckets that hold values): keys (int64, sorted) and counts (int64)
as numpy arrays, serialised compactly by `to_bytes`. Latencies from 1 ms to 100 s span about
580 buckets; a minute of one version's traffic typically fills a few dozen to a few hundred.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
LOG_GAMMA = math.log(GAMMA)
MAGIC = b"QS1"
# magic, width code of the key deltas, width code of the counts, zero count, number of keys, first key
_HEADER = struct.Struct("<3sBBQIq")
_WIDTHS = (np.dtype("<u1"), np.dtype("<u2"), np.dtype("<u4"), np.dtype("<u8"))


class SketchError(ValueError):
    """Values or bytes the sketch cannot take (negative, NaN, infinite; corrupt blobs)."""


def _checked(values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    # One pass rejects NaN, +-inf and negatives: x >= 0 is False for NaN, x < inf for +inf.
    if arr.size and not np.all((arr >= 0) & (arr < np.inf)):
        raise SketchError("sketch values must be finite and >= 0")
    return arr


def bucket_keys(values: np.ndarray) -> np.ndarray:
    """i(x) = ceil(ln(x) / ln(gamma)) for each x > 0 (int64). Zeros must be taken out first."""
    return np.ceil(np.log(values) / LOG_GAMMA).astype(np.int64)


def bucket_values(keys: np.ndarray) -> np.ndarray:
    """v(i) = 2 * gamma^i / (gamma + 1): the estimate for every value in bucket i."""
    return 2.0 * np.exp(np.asarray(keys, dtype=np.float64) * LOG_GAMMA) / (GAMMA + 1)


def _width_code(largest: int) -> int:
    return 0 if largest < 256 else 1 if largest < 65_536 else 2 if largest < 2**32 else 3


_EMPTY = np.empty(0, dtype=np.int64)
_EMPTY.flags.writeable = False


def _parse(data: bytes | memoryview | None) -> tuple[np.ndarray | None, np.ndarray | None, int]:
    """A stored sketch's (key steps, counts, zeros): the first key then the deltas to the next ones, as int64
    (a cumulative sum gives the keys), and the counts in their stored width. (None, None, zeros) when it has no keys."""
    if not data:
        return None, None, 0
    data = bytes(data)
    try:
        magic, delta_code, count_code, zeros, size, first = _HEADER.unpack_from(data)
    except struct.error:
        raise SketchError("not a sketch: too short") from None
    if magic != MAGIC or delta_code >= len(_WIDTHS) or count_code >= len(_WIDTHS):
        raise SketchError("not a sketch: bad header")
    if size == 0:
        return None, None, zeros
    delta_type, count_type = _WIDTHS[delta_code], _WIDTHS[count_code]
    counts_at = _HEADER.size + (size - 1) * delta_type.itemsize
    if len(data) != counts_at + size * count_type.itemsize:
        raise SketchError(f"not a sketch: {len(data)} bytes do not match its header")
    steps = np.empty(size, dtype=np.int64)
    steps[0] = first
    steps[1:] = np.frombuffer(data, dtype=delta_type, count=size - 1, offset=_HEADER.size)
    return steps, np.frombuffer(data, dtype=count_type, count=size, offset=counts_at), zeros


@dataclass(frozen=True, eq=False)
class QuantileSketch:
    """Counts of values per logarithmic bucket (sparse) plus the count of zeros. Immutable: merging returns a new sketch."""

    keys: np.ndarray = field(default_factory=lambda: _EMPTY)  # sorted, unique, int64 (the empty default is read-only and shared)
    counts: np.ndarray = field(default_factory=lambda: _EMPTY)  # > 0, int64, aligned with keys
    zeros: int = 0

    # --- building ----------------------------------------------------------------------------

    @classmethod
    def from_values(cls, values: np.ndarray) -> QuantileSketch:
        """The sketch of a sample of finite values >= 0 (one np.unique over the bucket keys; no Python loop)."""
        arr = _checked(values)
        positive = arr[arr > 0]
        keys, counts = np.unique(bucket_keys(positive), return_counts=True)
        return cls(keys=keys, counts=counts.astype(np.int64), zeros=int(arr.size - positive.size))

    @classmethod
    def merge_all(cls, sketches: Iterable[QuantileSketch]) -> QuantileSketch:
        """The sketch of the union of the samples: counts added bucket by bucket (exact, order-free)."""
        sketches = [s for s in sketches if s.count]
        if len(sketches) <= 1:
            return sketches[0] if sketches else cls()
        keys, inverse = np.unique(np.concatenate([s.keys for s in sketches]), return_inverse=True)
        counts = np.bincount(inverse, weights=np.concatenate([s.counts for s in sketches]), minlength=keys.size)
        return cls(keys=keys, counts=counts.astype(np.int64), zeros=sum(s.zeros for s in sketches))

    def merge(self, other: QuantileSketch) -> QuantileSketch:
        return QuantileSketch.merge_all([self, other])

    # --- reading -----------------------------------------------------------------------------

    @cached_property
    def count(self) -> int:
        return self.zeros + int(self.counts.sum())

    def quantiles(self, qs: Iterable[float]) -> list[float | None]:
        """quantile(q) for each q, from one cumulative sum (see the module docstring for the rank rule)."""
        qs = [float(q) for q in qs]
        if any(not 0 <= q <= 1 for q in qs):
            raise SketchError("quantiles must be between 0 and 1")
        n = self.count
        if n == 0:
            return [None] * len(qs)
        # The float product numpy's inverted_cdf takes: rank k = ceil(n * q), at least 1.
        ranks = [max(1, math.ceil(n * q)) for q in qs]
        if not self.keys.size:
            return [0.0] * len(qs)
        positions = np.searchsorted(self.zeros + np.cumsum(self.counts), ranks, side="left")
        estimates = bucket_values(self.keys[positions]).tolist()
        return [0.0 if rank <= self.zeros else estimate for rank, estimate in zip(ranks, estimates, strict=True)]

    def quantile(self, q: float) -> float | None:
        """The estimate of the value of rank max(1, ceil(q * n)); None for an empty sketch."""
        return self.quantiles([q])[0]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantileSketch):
            return NotImplemented
        return self.zeros == other.zeros and np.array_equal(self.keys, other.keys) and np.array_equal(self.counts, other.counts)

    # --- storage -----------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """b"" for an empty sketch (the column's default). Otherwise a 25-byte header, then the key
        deltas and the counts, each in the narrowest unsigned width that holds them (usually 1 byte)."""
        size = self.keys.size
        if size == 0:
            return _HEADER.pack(MAGIC, 0, 0, self.zeros, 0, 0) if self.zeros else b""
        deltas = self.keys[1:] - self.keys[:-1]
        delta_code = _width_code(int(deltas.max())) if size > 1 else 0
        count_code = _width_code(int(self.counts.max()))
        header = _HEADER.pack(MAGIC, delta_code, count_code, self.zeros, size, int(self.keys[0]))
        return header + deltas.astype(_WIDTHS[delta_code]).tobytes() + self.counts.astype(_WIDTHS[count_code]).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes | memoryview | None) -> QuantileSketch:
        """The sketch `to_bytes` wrote; b"" (or None) is the empty sketch."""
        steps, counts, zeros = _parse(data)
        if steps is None:
            return cls(zeros=zeros)
        np.cumsum(steps, out=steps)  # int64 in and out: numpy's fast path (a widening cumsum is several times slower)
        return cls(keys=steps, counts=counts.astype(np.int64), zeros=zeros)


# --- many sketches at once ---------------------------------------------------------------------


def _by_group(groups: np.ndarray, keys: np.ndarray, weights: np.ndarray | None, zero_groups: np.ndarray, zero_counts: np.ndarray) -> dict[int, QuantileSketch]:
    """Sketches from (group, key, weight) triples plus zero counts per group, with ONE np.unique.

    Each (group, key) pair is packed into an int64 code (group offset times the key span, plus
    the key offset), so counting is one sort of the pairs however many groups there are; Python
    then only loops over the groups, slicing the sorted result.
    """
    out: dict[int, QuantileSketch] = {}
    if keys.size:
        key_low = int(keys.min())
        span = int(keys.max()) - key_low + 1
        group_low = int(groups.min())
        if (int(groups.max()) - group_low + 1) * span < 2**62:
            ids, dense = None, groups - group_low
        else:  # sparse, huge group ids: number them densely first (one more sort)
            ids, dense = np.unique(groups, return_inverse=True)
        if weights is None:
            codes, counts = np.unique(dense * span + (keys - key_low), return_counts=True)
        else:
            codes, inverse = np.unique(dense * span + (keys - key_low), return_inverse=True)
            counts = np.bincount(inverse, weights=weights, minlength=codes.size)
        counts = counts.astype(np.int64)
        code_groups, code_keys = np.divmod(codes, span)
        code_keys += key_low
        bounds = np.flatnonzero(code_groups[1:] != code_groups[:-1]) + 1
        starts, ends = np.concatenate(([0], bounds)).tolist(), np.concatenate((bounds, [codes.size])).tolist()
        owners = code_groups[starts] + group_low if ids is None else ids[code_groups[starts]]
        for group, start, end in zip(owners.tolist(), starts, ends, strict=True):
            out[group] = QuantileSketch(keys=code_keys[start:end], counts=counts[start:end])
    if zero_groups.size:
        present, inverse = np.unique(zero_groups, return_inverse=True)
        for group, zeros in zip(present.tolist(), np.bincount(inverse, weights=zero_counts).astype(np.int64).tolist(), strict=True):
            if zeros:
                found = out.get(group)
                out[group] = QuantileSketch(zeros=zeros) if found is None else QuantileSketch(keys=found.keys, counts=found.counts, zeros=zeros)
    return out


def sketches_by_group(groups: np.ndarray, values: np.ndarray) -> dict[int, QuantileSketch]:
    """One sketch per distinct group id: {g: QuantileSketch.from_values(values[groups == g])}, in one pass (one sort)."""
    groups = np.asarray(groups, dtype=np.int64).ravel()
    values = _checked(values)
    if groups.size != values.size:
        raise SketchError(f"{groups.size} group ids for {values.size} values")
    positive = values > 0
    zero_groups = groups[~positive]
    return _by_group(groups[positive], bucket_keys(values[positive]), None, zero_groups, np.ones(zero_groups.size))


def merge_by_group(groups: np.ndarray, sketches: Sequence[QuantileSketch]) -> dict[int, QuantileSketch]:
    """The merge of the sketches of each group id ({g: merge_all(s for s, gi in zip(sketches, groups) if gi == g)}), in one pass."""
    groups = np.asarray(groups, dtype=np.int64).ravel()
    if groups.size != len(sketches):
        raise SketchError(f"{groups.size} group ids for {len(sketches)} sketches")
    if not sketches:
        return {}
    sizes = np.fromiter((s.keys.size for s in sketches), dtype=np.int64, count=len(sketches))
    keys = np.concatenate([s.keys for s in sketches])
    counts = np.concatenate([s.counts for s in sketches]).astype(np.float64)
    zeros = np.fromiter((s.zeros for s in sketches), dtype=np.float64, count=len(sketches))
    return _by_group(np.repeat(groups, sizes), keys, counts, groups, zeros)


def merge_blobs_by_group(groups: np.ndarray, blobs: Sequence[bytes | memoryview | None]) -> dict[int, QuantileSketch]:
    """merge_by_group of stored sketches (`to_bytes` blobs) without building a QuantileSketch per blob:
    the headers are read one by one, the keys of all blobs rebuilt with ONE cumulative sum. A page that
    merges a month of hour roll-ups (thousands of blobs) spends its time here."""
    groups = np.asarray(groups, dtype=np.int64).ravel()
    if groups.size != len(blobs):
        raise SketchError(f"{groups.size} group ids for {len(blobs)} sketches")
    parts_keys, parts_counts, sizes, zeros = [], [], [], []
    for blob in blobs:
        steps, counts, zero_count = _parse(blob)
        sizes.append(0 if steps is None else steps.size)
        zeros.append(zero_count)
        if steps is not None:
            parts_keys.append(steps)
            parts_counts.append(counts)
    size_array = np.asarray(sizes, dtype=np.int64)
    if parts_keys:
        running = np.cumsum(np.concatenate((np.zeros(1, dtype=np.int64), *parts_keys)))
        starts = np.cumsum(size_array) - size_array
        # running[start] is the total of every step before the blob's first one (its own first step
        # is the blob's first key, absolute); empty blobs repeat it zero times, wherever they stand.
        keys = running[1:] - np.repeat(running[starts], size_array)
        counts = np.concatenate([c.astype(np.float64) for c in parts_counts])
    else:
        keys, counts = _EMPTY, np.zeros(0)
    return _by_group(np.repeat(groups, size_array), keys, counts, groups, np.asarray(zeros, dtype=np.float64))


def cumulative_counts_by_group(groups: np.ndarray, blobs: Sequence[bytes | memoryview | None], bounds: Sequence[float]) -> dict[int, np.ndarray]:
    """For each group id, the cumulative counts of its stored sketches at increasing `bounds` (same unit as the values),
    then the total: {g: [n(estimate <= b) for b in bounds] + [n]}, a histogram's `le` buckets with +Inf last.

    A value counts at bound b when its bucket's estimate v(i) <= b (zeros always). As bucket i holds
    (gamma^(i-1), gamma^i] and v(i) = 2 gamma^i / (gamma + 1), every value <= b / (1 + alpha) counts and no
    value > b / (1 - alpha) does: each count is the exact count at a bound within about 1 % of b.
    Equal to reading the counts off the merge of the group's sketches, but without merging: one bincount
    over (group, bound index) pairs instead of a sort of every stored key, since only len(bounds) numbers
    per group are wanted.
    """
    groups = np.asarray(groups, dtype=np.int64).ravel()
    if groups.size != len(blobs):
        raise SketchError(f"{groups.size} group ids for {len(blobs)} sketches")
    edges = np.asarray(bounds, dtype=np.float64)
    if edges.size and np.any(np.diff(edges) <= 0):
        raise SketchError("bounds must increase")
    ids, dense = np.unique(groups, return_inverse=True)
    width = edges.size + 1
    parts_keys, parts_counts, sizes, zeros = [], [], [], np.zeros(groups.size)
    for n, blob in enumerate(blobs):
        steps, counts, zeros[n] = _parse(blob)
        sizes.append(0 if steps is None else steps.size)
        if steps is not None:
            parts_keys.append(np.cumsum(steps))
            parts_counts.append(counts.astype(np.float64))
    # Zeros are at or below every bound: column 0. A key lands in the column of the first bound >= its estimate.
    table = np.bincount(dense * width, weights=zeros, minlength=ids.size * width)
    if parts_keys:
        keys = np.concatenate(parts_keys)
        column = np.searchsorted(edges, bucket_values(keys), side="left")
        owner = np.repeat(dense, np.asarray(sizes, dtype=np.int64))
        table += np.bincount(owner * width + column, weights=np.concatenate(parts_counts), minlength=ids.size * width)
    cumulative = np.cumsum(table.reshape(ids.size, width), axis=1).astype(np.int64)
    return {group: cumulative[i] for i, group in enumerate(ids.tolist())}

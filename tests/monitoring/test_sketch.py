"""The quantile sketch against numpy's exact quantiles (method="inverted_cdf": the value of rank ceil(q * n))."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.sketch import ALPHA, QuantileSketch, SketchError, cumulative_counts_by_group, merge_by_group, sketches_by_group

QS = np.linspace(0, 1, 201)
TOLERANCE = ALPHA * (1 + 1e-9)  # the guarantee, plus floating-point rounding at bucket edges


def distributions():
    rng = np.random.default_rng(20_261_120)
    return {
        "lognormal latency": rng.lognormal(4, 1, 20_000),
        "pareto heavy tail": (rng.pareto(0.8, 20_000) + 1) * 5,
        "exponential with 30 % zeros": np.where(rng.random(20_000) < 0.3, 0.0, rng.exponential(200, 20_000)),
        "whole milliseconds, many ties": rng.integers(0, 50, 5_000).astype(float),
        "tiny and huge": np.concatenate([rng.uniform(1e-9, 1e-6, 500), rng.uniform(1e6, 1e9, 500)]),
        "one value": np.array([42.0]),
        "all zeros": np.zeros(10),
    }


def assert_within_alpha(sketch: QuantileSketch, values: np.ndarray, qs=QS) -> None:
    exact = np.quantile(values, qs, method="inverted_cdf")
    estimates = np.array(sketch.quantiles(qs), dtype=float)
    zero = exact == 0
    assert np.all(estimates[zero] == 0)
    relative = np.abs(estimates[~zero] - exact[~zero]) / exact[~zero]
    assert relative.max(initial=0) <= TOLERANCE, (qs[~zero][relative.argmax()], relative.max())


@pytest.mark.parametrize("name", list(distributions()))
def test_sketch_quantiles_are_within_alpha_of_numpy_inverted_cdf(name):
    values = distributions()[name]

    sketch = QuantileSketch.from_values(values)

    assert sketch.count == values.size
    assert_within_alpha(sketch, values)


def test_sketch_rank_rule_on_a_hand_example():
    sketch = QuantileSketch.from_values(np.array([10.0, 20.0, 30.0, 40.0]))

    p0, p25, p26, p50, p100 = sketch.quantiles([0, 0.25, 0.26, 0.5, 1])

    # rank max(1, ceil(q * 4)): 1, 1, 2, 2, 4
    assert p0 == pytest.approx(10, rel=ALPHA) and p25 == p0
    assert p26 == pytest.approx(20, rel=ALPHA) and p50 == p26
    assert p100 == pytest.approx(40, rel=ALPHA)


def test_empty_sketch_has_no_quantiles():
    assert QuantileSketch().quantile(0.5) is None
    assert QuantileSketch.from_values(np.array([])).count == 0
    assert QuantileSketch.from_bytes(b"").quantiles([0.5, 0.95]) == [None, None]


@pytest.mark.parametrize("bad", [[-1.0], [np.nan], [np.inf], [1.0, -0.0001]])
def test_sketch_refuses_negative_and_non_finite_values(bad):
    with pytest.raises(SketchError):
        QuantileSketch.from_values(np.array(bad))


def test_merge_equals_the_sketch_of_the_concatenation():
    rng = np.random.default_rng(1)
    parts = [rng.lognormal(3, 1.5, n) for n in (1, 700, 5_000)] + [np.zeros(30), rng.pareto(1, 2_000) * 100]
    whole = np.concatenate(parts)

    merged = QuantileSketch.merge_all(QuantileSketch.from_values(p) for p in parts)
    pairwise = QuantileSketch.from_values(parts[0]).merge(QuantileSketch.from_values(np.concatenate(parts[1:])))

    assert merged == QuantileSketch.from_values(whole) == pairwise
    assert merged.count == whole.size
    assert_within_alpha(merged, whole)
    assert QuantileSketch.merge_all([]) == QuantileSketch()


@pytest.mark.parametrize("name", list(distributions()))
def test_bytes_round_trip(name):
    sketch = QuantileSketch.from_values(distributions()[name])

    assert QuantileSketch.from_bytes(sketch.to_bytes()) == sketch
    assert QuantileSketch.from_bytes(memoryview(sketch.to_bytes())) == sketch  # PostgreSQL hands bytea back as memoryview


def test_bytes_round_trip_of_wide_counts_and_empty():
    wide = QuantileSketch.from_values(np.concatenate([np.full(70_000, 5.0), np.full(3, 1e12), np.zeros(2)]))

    assert QuantileSketch.from_bytes(wide.to_bytes()) == wide
    assert QuantileSketch().to_bytes() == b""
    assert QuantileSketch.from_bytes(b"") == QuantileSketch()
    with pytest.raises(SketchError):
        QuantileSketch.from_bytes(wide.to_bytes()[:-1])
    with pytest.raises(SketchError):
        QuantileSketch.from_bytes(b"not a sketch at all, but long enough")


def test_sketches_by_group_equal_one_sketch_per_group():
    rng = np.random.default_rng(2)
    groups = rng.integers(0, 50, 30_000) * 1_000_003 - 7  # sparse, negative and positive ids
    values = np.where(rng.random(30_000) < 0.05, 0.0, rng.lognormal(4, 1, 30_000))

    by_group = sketches_by_group(groups, values)

    assert set(by_group) == set(np.unique(groups).tolist())
    for group, sketch in by_group.items():
        chosen = values[groups == group]
        assert sketch.count == chosen.size
        assert_within_alpha(sketch, chosen, qs=[0, 0.5, 0.95, 0.99, 1])


def test_merge_by_group_equals_the_sketch_of_each_groups_values():
    rng = np.random.default_rng(3)
    minute = rng.integers(0, 180, 20_000)
    values = rng.exponential(100, 20_000)
    minutes = sketches_by_group(minute, values)

    hours = merge_by_group(np.array(list(minutes)) // 60, list(minutes.values()))

    for hour, sketch in hours.items():
        chosen = values[minute // 60 == hour]
        assert sketch.count == chosen.size
        assert_within_alpha(sketch, chosen, qs=[0.5, 0.95, 0.99])


def test_merging_stored_blobs_by_group_equals_merging_the_sketches():
    from monitoring.sketch import merge_blobs_by_group, merge_by_group

    rng = np.random.default_rng(5)
    sketches = [QuantileSketch.from_values(np.concatenate([rng.lognormal(3, 1, rng.integers(0, 300)), np.zeros(rng.integers(0, 3))]))
                for _ in range(40)]
    groups = rng.integers(0, 6, 40)
    blobs = [s.to_bytes() for s in sketches]
    blobs[3] = b""  # an empty roll-up column

    got = merge_blobs_by_group(groups, blobs)
    expected = merge_by_group(groups, [QuantileSketch.from_bytes(b) for b in blobs])

    assert got.keys() == expected.keys() and all(got[g] == expected[g] for g in got)


# --- corrupt blobs, bounds, one-sketch merges, values below 1 ----------------------------------


def test_corrupt_blobs_are_refused_with_the_reason():
    good = QuantileSketch.from_values(np.array([3.0, 300.0, 30_000.0])).to_bytes()
    header = bytearray(good)

    with pytest.raises(SketchError, match="^not a sketch: too short$"):
        QuantileSketch.from_bytes(good[:10])
    for position, value in [(0, ord("X")), (3, 4), (4, 4)]:  # magic, then each width code one past the last width
        corrupt = header.copy()
        corrupt[position] = value
        with pytest.raises(SketchError, match="^not a sketch: bad header$"):
            QuantileSketch.from_bytes(bytes(corrupt))
    with pytest.raises(SketchError, match=f"not a sketch: {len(good) + 1} bytes do not match its header"):
        QuantileSketch.from_bytes(good + b"\0")


@pytest.mark.parametrize("q", [-0.01, 1.01, 2.0])
def test_quantiles_outside_0_and_1_are_refused(q):
    sketch = QuantileSketch.from_values(np.array([1.0, 2.0]))

    with pytest.raises(SketchError, match="^quantiles must be between 0 and 1$"):
        sketch.quantile(q)


def test_sketches_that_differ_in_zeros_or_in_buckets_are_not_equal():
    a = QuantileSketch.from_values(np.array([0.0, 5.0, 50.0]))

    assert a != QuantileSketch.from_values(np.array([5.0, 50.0]))  # same buckets, one zero fewer
    assert a != QuantileSketch.from_values(np.array([0.0, 5.0, 500.0]))  # same zeros and counts, other bucket
    assert a != QuantileSketch.from_values(np.array([0.0, 5.0, 50.0, 50.0]))  # same zeros and buckets, other count


def test_merging_one_sketch_or_one_with_empties_gives_that_sketch():
    values = np.array([0.0, 1.5, 70.0, 70.0])
    sketch = QuantileSketch.from_values(values)

    assert QuantileSketch.merge_all([sketch]) == sketch
    assert QuantileSketch.merge_all([QuantileSketch(), sketch, QuantileSketch.from_values(np.array([]))]) == sketch
    assert_within_alpha(QuantileSketch.merge_all([QuantileSketch(), sketch]), values)


def test_counts_are_int64_whichever_way_a_sketch_is_made():
    values = np.array([0.0, 2.0, 2.0, 9.0])
    made = QuantileSketch.from_values(values)
    merged = QuantileSketch.merge_all([made, QuantileSketch.from_values(np.array([4.0]))])

    for sketch in (made, merged, QuantileSketch.from_bytes(made.to_bytes()), sketches_by_group(np.zeros(4, dtype=int), values)[0]):
        assert sketch.counts.dtype == np.int64 and sketch.keys.dtype == np.int64


def test_values_between_0_and_1_are_bucketed_not_counted_as_zeros():
    # Seconds rather than milliseconds: every value is in (0, 1].
    rng = np.random.default_rng(8)
    groups = rng.integers(0, 3, 3_000)
    values = np.concatenate([[1.0, 0.5, 1e-6], rng.uniform(1e-3, 1.0, 2_997)])

    by_group = sketches_by_group(groups, values)

    for group, sketch in by_group.items():
        chosen = values[groups == group]
        assert sketch.zeros == 0 and sketch.count == chosen.size
        assert_within_alpha(sketch, chosen)


def test_merging_blobs_that_hold_only_zeros_or_nothing():
    from monitoring.sketch import merge_blobs_by_group

    blobs = [b"", QuantileSketch.from_values(np.zeros(3)).to_bytes(), None, QuantileSketch.from_values(np.zeros(2)).to_bytes()]

    merged = merge_blobs_by_group(np.array([1, 2, 2, 2]), blobs)

    assert merged == {2: QuantileSketch(zeros=5)}
    assert merged[2].quantiles([0, 0.5, 1]) == [0.0, 0.0, 0.0]


def test_group_ids_and_values_must_pair_up():
    from monitoring.sketch import merge_blobs_by_group

    groups = np.array([1, 2])

    with pytest.raises(SketchError, match="2 group ids for 3 values"):
        sketches_by_group(groups, np.array([1.0, 2.0, 3.0]))
    with pytest.raises(SketchError, match="2 group ids for 3 sketches"):
        merge_by_group(groups, [QuantileSketch()] * 3)
    with pytest.raises(SketchError, match="2 group ids for 3 sketches"):
        merge_blobs_by_group(groups, [b""] * 3)


# The stored layout: "<3sBBQIq" (magic, width code of the key deltas, width code of the counts, zeros,
# number of keys, first key), then the deltas, then the counts, each in the narrowest of u1/u2/u4/u8.
WIDTH_BY_LARGEST = [(255, 1), (256, 2), (65_535, 2), (65_536, 4), (2**32 - 1, 4), (2**32, 8)]


@pytest.mark.parametrize(("largest", "width"), WIDTH_BY_LARGEST)
def test_stored_counts_take_the_narrowest_width_that_holds_them(largest, width):
    sketch = QuantileSketch(keys=np.array([3, 4]), counts=np.array([1, largest]))

    blob = sketch.to_bytes()

    assert len(blob) == 25 + 1 + 2 * width and blob[4] == [1, 2, 4, 8].index(width)
    assert QuantileSketch.from_bytes(blob) == sketch


@pytest.mark.parametrize(("largest", "width"), WIDTH_BY_LARGEST)
def test_stored_key_steps_take_the_narrowest_width_that_holds_them(largest, width):
    sketch = QuantileSketch(keys=np.array([-5, -5 + largest]), counts=np.array([2, 1]))

    blob = sketch.to_bytes()

    assert len(blob) == 25 + width + 2 and blob[3] == [1, 2, 4, 8].index(width)
    assert QuantileSketch.from_bytes(blob) == sketch


def test_stored_bytes_of_small_sketches_byte_for_byte():
    import struct

    assert QuantileSketch(zeros=3).to_bytes() == struct.pack("<3sBBQIq", b"QS1", 0, 0, 3, 0, 0)
    one_key = QuantileSketch(keys=np.array([7]), counts=np.array([2]), zeros=1)
    assert one_key.to_bytes() == struct.pack("<3sBBQIq", b"QS1", 0, 0, 1, 1, 7) + b"\x02"


def test_group_ids_too_far_apart_to_pack_with_the_keys_still_get_their_own_sketches():
    groups = np.array([-(2**62), 2**62, 5, 5, 2**62])
    values = np.array([1.0, 10.0, 100.0, 0.0, 1e6])

    by_group = sketches_by_group(groups, values)

    assert sorted(by_group) == [-(2**62), 5, 2**62]
    for group, sketch in by_group.items():
        chosen = values[groups == group]
        assert sketch.count == chosen.size
        assert_within_alpha(sketch, chosen)


def test_refused_values_say_why():
    with pytest.raises(SketchError, match="^sketch values must be finite and >= 0$"):
        QuantileSketch.from_values(np.array([1.0, -2.0]))


def test_a_window_whose_first_rollup_row_has_no_values_keeps_the_later_rows_quantiles():
    from monitoring.sketch import merge_blobs_by_group

    rng = np.random.default_rng(7)
    ttft = rng.normal(700, 20, 500).clip(1)  # time to first token, ms: only the later rows have any
    blobs = [b"", None, QuantileSketch.from_values(ttft[:200]).to_bytes(), QuantileSketch.from_values(ttft[200:]).to_bytes()]

    merged = merge_blobs_by_group(np.array([1, 1, 1, 1]), blobs)

    assert merged[1].count == 500
    assert_within_alpha(merged[1], ttft, qs=np.array([0.5, 0.95]))


_sketch_values = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)),
    max_size=40,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    parts=st.lists(st.tuples(st.integers(min_value=0, max_value=3), _sketch_values), max_size=12),
    stored_as=st.sampled_from(["bytes", "empty bytes for empty parts", "None for empty parts"]),
)
def test_merging_random_sketches_some_empty_in_any_order_matches_numpy(parts, stored_as):
    from monitoring.sketch import merge_blobs_by_group

    def blob(values):
        if not values and stored_as != "bytes":
            return b"" if stored_as.startswith("empty") else None
        return QuantileSketch.from_values(np.array(values, dtype=float)).to_bytes()

    groups = np.array([group for group, _ in parts], dtype=np.int64)

    by_blobs = merge_blobs_by_group(groups, [blob(values) for _, values in parts])
    by_sketches = merge_by_group(groups, [QuantileSketch.from_values(np.array(values, dtype=float)) for _, values in parts])

    for group in set(groups.tolist()):
        values = np.array([v for g, vs in parts if g == group for v in vs], dtype=float)
        if values.size == 0:
            assert group not in by_blobs or by_blobs[group].count == 0
            continue
        assert by_blobs[group].count == values.size
        assert_within_alpha(by_blobs[group], values)
        assert_within_alpha(by_sketches[group], values)


def test_cumulative_counts_by_group_count_each_value_within_one_percent_of_each_bound():
    rng = np.random.default_rng(5)
    parts = [rng.lognormal(4, 1.5, n).round(2) for n in (400, 0, 90, 1, 250)]
    parts[2][:10] = 0.0
    groups = np.array([7, 7, -3, 7, 12])
    blobs = [QuantileSketch.from_values(part).to_bytes() for part in parts] + [b"", None]
    bounds = [0.5, 5, 10, 25, 50, 100, 250, 1000, 60_000]

    counts = cumulative_counts_by_group(np.concatenate([groups, [7, 40]]), blobs, bounds)

    assert set(counts) == {-3, 7, 12, 40}
    assert counts[40].tolist() == [0] * (len(bounds) + 1)
    for group in (-3, 7, 12):
        values = np.concatenate([part for part, g in zip(parts, groups, strict=True) if g == group])
        low = [(values <= b / (1 + ALPHA)).sum() for b in bounds]
        high = [(values <= b / (1 - ALPHA)).sum() for b in bounds]
        assert all(lo <= n <= hi for lo, n, hi in zip(low, counts[group][:-1], high, strict=True)), group
        assert counts[group][-1] == values.size
    assert counts[-3][0] == 10  # the zeros, at or below every bound


def test_cumulative_counts_by_group_refuse_bounds_out_of_order():
    with pytest.raises(SketchError, match="^bounds must increase$"):
        cumulative_counts_by_group(np.array([1]), [b""], [5, 1])

"""Numbers against their references: roll-up percentiles, ROUGE and edit distance (one process, no Django).

    .venv/bin/python bench/numbers_bench.py        # about 1-2 min; writes bench/results/numbers.json

1. Quantiles. A month (30 days, 43,200 minutes) of latency and time-to-first-token values
   (lognormal, median and traffic following a daily cycle, a slow tail, a few cache hits at 0 ms),
   about 8M raw values (BENCH_NUMBERS_VALUES scales it). Minutes with no values at all: the first
   90 minutes of the month (leading empty blobs for the month, its first day and hour), 1 % of the
   minutes at random, and TTFT has none for the first 6 hours and for 3 % of the minutes more. As the
   roll-up task does: one sketch per minute (`sketch.sketches_by_group`), stored with `to_bytes`
   (b"" when the minute has no value; every minute gets a blob here, the roll-up writes rows only for
   minutes with events, so this is a superset). Then, as the pages do, `merge_blobs_by_group`: the
   minute blobs per hour (stored again as the hour roll-ups), the hour blobs per day and for the
   month (a month page reads hour roll-ups), and the month from the 43,200 minute blobs too. Every
   window's P50/P90/P95/P99/P99.9 is compared with numpy's exact
   `np.quantile(raw values of the window, q, method="inverted_cdf")` (the rank rule of the sketch):
   worst relative error per window kind, goal <= 1 % (the sketch's alpha); counts must be equal.
   Timed: the month merge (720 hour blobs -> one sketch -> 5 quantiles) against np.quantile over the
   month's raw values (median of --repeat runs each).
2. ROUGE-1, ROUGE-2, ROUGE-L on 10,000 (output, reference) rows of generated text (20-200 words,
   sentences with case, punctuation, digits, hyphens, apostrophes and a few accented words; outputs
   are edited copies, reordered copies or unrelated texts, plus 20 edge rows: empty or punctuation
   only): `registry.prompt_checks.text.rouge_n` / `rouge_l` against rouge-score's
   `RougeScorer(["rouge1", "rouge2", "rougeL"])` called directly. Max absolute difference over
   precision, recall and F1; wall time of each loop.
3. Edit distance on 10,000 rows of 500-5,000 characters (slices of generated text; outputs with
   0-30 % character edits, or unrelated): `levenshtein_similarity` against rapidfuzz's
   `Levenshtein.normalized_similarity` called directly. Max absolute difference, wall time of each.

Exits 1 when a percentile is off by more than 1 %, a count differs, or a ROUGE / edit-distance
figure differs by more than 1e-12. Options: --values, --rows, --repeat, --seed, --results.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from importlib import metadata

import numpy as np
from common import BENCH_DIR, REPO_DIR, loadavg, peak_rss_mb, print_table, write_results

sys.path.insert(0, str(REPO_DIR))

SEED = 20_261_205
MINUTES = 30 * 1440
QS = (0.5, 0.9, 0.95, 0.99, 0.999)
QUANTILE_GOAL = 0.01  # the sketch's relative accuracy
EXACT_TOL = 1e-12
TTFT_SHARE = 0.6  # streaming requests report a time to first token


# --- 1. quantiles ---------------------------------------------------------------------------------


def month_values(rng: np.random.Generator, total: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"latency": (minute of each value, values ms), "ttft": (...)}, sorted by minute."""
    minute = np.arange(MINUTES)
    load = np.sin(2 * np.pi * ((minute % 1440) / 1440 - 0.375))  # -1 at 03:00, +1 at 15:00
    weekly = np.where((minute // 1440) % 7 >= 5, 0.6, 1.0)  # quieter weekends
    rate = (1 + 0.7 * load) * weekly
    rate *= total / (1 + TTFT_SHARE) / rate.sum()
    rate[:90] = 0  # the month starts with 90 empty minutes
    rate[rng.random(MINUTES) < 0.01] = 0  # and 1 % of the minutes see no traffic
    requests = rng.poisson(rate)
    of = np.repeat(minute, requests)
    busy = load[of]
    latency = np.exp(rng.normal(np.log(420 * (1 + 0.35 * busy)), 0.55))
    slow = rng.random(of.size) < 0.02
    latency[slow] *= rng.uniform(3, 12, int(slow.sum()))  # a slow tail (retries, long generations)
    latency[rng.random(of.size) < 0.002] = 0.0  # cache hits
    no_ttft_minute = rng.random(MINUTES) < 0.03
    no_ttft_minute[:90 + 6 * 60] = True  # no streaming client during the first 6 hours with traffic
    streams = (rng.random(of.size) < TTFT_SHARE) & ~no_ttft_minute[of]
    ttft = np.minimum(np.exp(rng.normal(np.log(240 * (1 + 0.25 * busy[streams])), 0.45)), latency[streams] + 1)
    return {"latency": (of, latency), "ttft": (of[streams], ttft)}


def window_errors(sketches: dict[int, object], of: np.ndarray, values: np.ndarray, width: int) -> dict:
    """Each window of `width` minutes: the sketch's quantiles against np.quantile over the raw values."""
    from monitoring.sketch import QuantileSketch

    empty = QuantileSketch()
    bounds = np.searchsorted(of, np.arange(0, MINUTES + 1, width))
    worst = dict.fromkeys(QS, 0.0)
    worst_at: dict[float, int] = {}
    count_mismatches = windows = empty_windows = 0
    for w in range(bounds.size - 1):
        raw = values[bounds[w] : bounds[w + 1]]
        sketch = sketches.get(w, empty)
        if sketch.count != raw.size:
            count_mismatches += 1
        if raw.size == 0:
            empty_windows += 1
            continue
        windows += 1
        exact = np.quantile(raw, QS, method="inverted_cdf")
        for q, est, ref in zip(QS, sketch.quantiles(QS), exact.tolist(), strict=True):
            err = (0.0 if est == 0 else float("inf")) if ref == 0 else (float("inf") if est is None else abs(est - ref) / ref)
            if err > worst[q]:
                worst[q], worst_at[q] = err, w
    return {"windows": windows, "empty_windows": empty_windows, "count_mismatches": count_mismatches,
            "worst_rel_error": max(worst.values()), "worst_rel_error_by_q": {str(q): worst[q] for q in QS},
            "worst_window_by_q": {str(q): worst_at.get(q) for q in QS}}


def clocked(fn) -> tuple[tuple[float, float], object]:
    """(wall s, this process's CPU s) of one call, and its result. On a loaded machine the CPU time moves less."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return (time.perf_counter() - wall, time.process_time() - cpu), out


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def bench_quantiles(rng: np.random.Generator, total: int, repeat: int) -> dict:
    from monitoring.sketch import merge_blobs_by_group, sketches_by_group

    t = time.perf_counter()
    data = month_values(rng, total)
    generate_s = time.perf_counter() - t
    minute_ids, hour_ids = np.arange(MINUTES), np.arange(MINUTES // 60)
    out = {"generate_s": round(generate_s, 2), "values": {}, "kinds": {}, "timing": {}}
    for metric, (of, values) in data.items():
        t = time.perf_counter()
        by_minute = sketches_by_group(of, values)
        minute_blobs = [by_minute[m].to_bytes() if m in by_minute else b"" for m in range(MINUTES)]
        sketch_s = time.perf_counter() - t
        t = time.perf_counter()
        by_hour = merge_blobs_by_group(minute_ids // 60, minute_blobs)
        hour_blobs = [by_hour[h].to_bytes() if h in by_hour else b"" for h in range(MINUTES // 60)]
        hour_s = time.perf_counter() - t
        by_day = merge_blobs_by_group(hour_ids // 24, hour_blobs)

        def month_from_hours(blobs=hour_blobs):
            return merge_blobs_by_group(np.zeros(len(blobs), dtype=np.int64), blobs)[0].quantiles(QS)

        def month_from_minutes(blobs=minute_blobs):
            return merge_blobs_by_group(np.zeros(len(blobs), dtype=np.int64), blobs)

        def numpy_month(values=values):
            return np.quantile(values, QS, method="inverted_cdf").tolist()

        merge_s, _ = timed(month_from_hours, repeat)
        numpy_s, _ = timed(numpy_month, repeat)
        minutes_merge_s, by_month_minutes = timed(month_from_minutes, 1)
        by_month = merge_blobs_by_group(np.zeros(len(hour_blobs), dtype=np.int64), hour_blobs)
        kinds = {
            "minute (sketches_by_group, stored)": (merge_blobs_by_group(minute_ids, minute_blobs), 1),
            "hour (60 minute blobs)": (by_hour, 60),
            "day (24 hour blobs)": (by_day, 1440),
            "month (720 hour blobs)": (by_month, MINUTES),
            "month (43,200 minute blobs)": (by_month_minutes, MINUTES),
        }
        t = time.perf_counter()
        out["kinds"][metric] = {kind: window_errors(sketches, of, values, width) for kind, (sketches, width) in kinds.items()}
        check_s = time.perf_counter() - t
        leading = {"minute": int(np.argmax(np.array([bool(b) for b in minute_blobs]))),
                   "hour": int(np.argmax(np.array([bool(b) for b in hour_blobs])))}
        out["values"][metric] = {"raw_values": int(values.size), "empty_minute_blobs": sum(not b for b in minute_blobs),
                                 "empty_hour_blobs": sum(not b for b in hour_blobs), "leading_empty_blobs": leading,
                                 "minute_blob_bytes": sum(map(len, minute_blobs)), "hour_blob_bytes": sum(map(len, hour_blobs))}
        out["timing"][metric] = {"sketch_minutes_s": round(sketch_s, 3), "merge_hours_s": round(hour_s, 3),
                                 "month_merge_720_hour_blobs_s": merge_s, "month_merge_43200_minute_blobs_s": minutes_merge_s,
                                 "numpy_quantile_month_raw_s": numpy_s, "numpy_over_merge": numpy_s / merge_s if merge_s else None,
                                 "check_all_windows_s": round(check_s, 2)}
    return out


# --- 2. and 3. text -------------------------------------------------------------------------------

COMMON = ("the of and to a in is it you that he was for on are with as his they be at one have this from or had by hot word "
          "but what some we can out other were all there when up use your how said an each she which do their time if will way "
          "about many then them write would like so these her long make thing see him two has look more day could go come did "
          "number sound no most people my over know water than call first who may down side been now find any new work part "
          "take get place made live where after back little only round man year came show every good me give our under name "
          "very through just form sentence great think say help low line differ turn cause much mean before move right boy old "
          "too same tell does set three want air well also play small end put home read hand port large spell add even land "
          "here must big high such follow act why ask men change went light kind off need house picture try us again animal "
          "point mother world near build self earth father model prompt latency token request answer score version").split()
SPECIAL = ("state-of-the-art", "don't", "it's", "e-mail", "GPT-4o", "3.5", "2026", "v2", "café", "naïve", "Zürich", "résumé",
           "U.S.", "co-operate", "100%", "$20", "x86_64", "O'Brien", "re-run", "p95")


def make_vocabulary(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Common words, coined rare words (syllables) and special tokens, with Zipf-like weights."""
    syllables = ["ka", "lo", "mi", "ter", "sa", "ven", "dor", "ri", "pla", "nu", "ex", "str", "qua", "bo", "zen", "ti"]
    coined = {"".join(rng.choice(syllables, size=rng.integers(2, 5))) for _ in range(3000)}
    words = np.array(COMMON + sorted(coined) + list(SPECIAL), dtype=object)
    weights = 1.0 / np.arange(1, words.size + 1) ** 1.05
    weights[-len(SPECIAL):] = weights[len(COMMON)]  # special tokens as frequent as a common-ish word
    return words, weights / weights.sum()


def make_text(rng: np.random.Generator, words: np.ndarray, p: np.ndarray, n_words: int) -> str:
    """n_words words in sentences of 4-24 words: capitalised, with commas and end punctuation, some words in CAPS."""
    picked = words[rng.choice(words.size, size=n_words, p=p)].tolist()
    r = rng.random(n_words).tolist()
    marks = rng.choice([",", ";", ":", " -", " (see"], size=n_words).tolist()
    lengths = rng.integers(4, 25, size=n_words // 4 + 1).tolist()
    ends = rng.choice([".", ".", ".", "!", "?", "...", ".\n"], size=len(lengths)).tolist()
    out, i = [], 0
    for length, end in zip(lengths, ends, strict=True):
        if i >= n_words:
            break
        sentence = picked[i : i + length]
        sentence[0] = sentence[0][:1].upper() + sentence[0][1:]
        for j in range(1, len(sentence) - 1):
            if r[i + j] < 0.08:
                sentence[j] += marks[i + j] if r[i + j] < 0.02 else ","
            elif r[i + j] < 0.1:
                sentence[j] = sentence[j].upper()
        i += len(sentence)
        out.append(" ".join(sentence) + end)
    return " ".join(out)


def edit_words(rng: np.random.Generator, text: str, words: np.ndarray, p: np.ndarray, rate: float) -> str:
    """Drop, substitute, insert and lower-case words at `rate` each; in 30 % of the rows shuffle the words."""
    tokens = text.split(" ")
    r, inserts = rng.random(len(tokens)).tolist(), (rng.random(len(tokens)) < rate).tolist()
    other = iter(words[rng.choice(words.size, size=2 * len(tokens), p=p)].tolist())
    out = []
    for token, x, insert in zip(tokens, r, inserts, strict=True):
        if x < rate:
            continue
        if x < 2 * rate:
            token = next(other)
        elif x < 3 * rate:
            token = token.lower().strip(".,;:!?")
        out.append(token)
        if insert:
            out.append(next(other))
    if rng.random() < 0.3:
        rng.shuffle(out)
    return " ".join(out)


def rouge_rows(rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    words, p = make_vocabulary(rng)
    rows = []
    for i in range(n):
        reference = make_text(rng, words, p, int(rng.integers(20, 201)))
        if i % 500 == 0:  # edge rows: nothing, or punctuation only
            rows.append(("" if i % 1000 == 0 else "... !!! -- ?", reference))
            continue
        kind = rng.random()
        if kind < 0.1:
            output = make_text(rng, words, p, int(rng.integers(20, 201)))
        else:
            output = edit_words(rng, reference, words, p, float(rng.uniform(0.0, 0.25)))
        rows.append((output, reference))
    return rows


def bench_rouge(rows: list[tuple[str, str]]) -> dict:
    from rouge_score import rouge_scorer

    from registry.prompt_checks.text import rouge_l, rouge_n

    (ours_s, ours_cpu), ours = clocked(lambda: [(rouge_n(o, r, 1), rouge_n(o, r, 2), rouge_l(o, r)) for o, r in rows])
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    (ref_s, ref_cpu), theirs = clocked(lambda: [scorer.score(r, o) for o, r in rows])  # score(target, prediction)
    diffs = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for mine, ref in zip(ours, theirs, strict=True):
        for name, score in zip(diffs, mine, strict=True):
            r = ref[name]
            diffs[name] = max(diffs[name], abs(score.precision - r.precision), abs(score.recall - r.recall), abs(score.f1 - r.fmeasure))
    f1 = [ref["rougeL"].fmeasure for ref in theirs]
    return {"rows": len(rows), "max_abs_diff": diffs, "ours_s": ours_s, "rouge_score_s": ref_s, "rouge_score_over_ours": ref_s / ours_s,
            "ours_cpu_s": ours_cpu, "rouge_score_cpu_s": ref_cpu, "rouge_score_over_ours_cpu": ref_cpu / ours_cpu,
            "mean_words": statistics.mean(len(r.split()) for _, r in rows), "rougeL_f1_mean": statistics.mean(f1),
            "rougeL_f1_quartiles": statistics.quantiles(f1, n=4)}


def edit_rows(rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    """References: slices of 500-5,000 characters of one generated corpus; outputs: edited copies or other slices."""
    words, p = make_vocabulary(rng)
    corpus = make_text(rng, words, p, 1_000_000)
    codes = np.frombuffer(corpus.encode("utf-32-le"), dtype=np.uint32)
    alphabet = np.frombuffer("abcdefghijklmnopqrstuvwxyz ETAOIN.,é".encode("utf-32-le"), dtype=np.uint32)
    rows = []
    for _ in range(n):
        size = int(rng.integers(500, 5001))
        start = int(rng.integers(0, codes.size - size))
        ref = codes[start : start + size]
        if rng.random() < 0.1:
            other = int(rng.integers(0, codes.size - 5000))
            out = codes[other : other + int(rng.integers(500, 5001))]
        else:
            rate = float(rng.uniform(0.0, 0.3)) / 3
            r = rng.random(size)
            out = np.where(r < rate, rng.choice(alphabet, size), ref)[(r < rate) | (r >= 2 * rate)]  # substitute, delete
            at = np.flatnonzero(rng.random(out.size) < rate)
            out = np.insert(out, at, rng.choice(alphabet, at.size))  # insert
        rows.append((out.astype(np.uint32).tobytes().decode("utf-32-le"), ref.tobytes().decode("utf-32-le")))
    return rows


def bench_edit(rows: list[tuple[str, str]]) -> dict:
    from rapidfuzz.distance import Levenshtein

    from registry.prompt_checks.text import levenshtein_similarity

    (ours_s, ours_cpu), ours = clocked(lambda: [levenshtein_similarity(o, r) for o, r in rows])
    (ref_s, ref_cpu), theirs = clocked(lambda: [Levenshtein.normalized_similarity(o, r) for o, r in rows])
    lengths = [len(r) for _, r in rows]
    return {"rows": len(rows), "max_abs_diff": max(abs(a - b) for a, b in zip(ours, theirs, strict=True)), "ours_s": ours_s,
            "rapidfuzz_s": ref_s, "ours_over_rapidfuzz": ours_s / ref_s, "ours_cpu_s": ours_cpu, "rapidfuzz_cpu_s": ref_cpu,
            "ours_over_rapidfuzz_cpu": ours_cpu / ref_cpu, "reference_chars": [min(lengths), max(lengths)],
            "mean_chars": statistics.mean(lengths), "similarity_quartiles": statistics.quantiles(theirs, n=4)}


# --- report ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--values", type=int, default=int(os.environ.get("BENCH_NUMBERS_VALUES", 8_000_000)))
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_NUMBERS_ROWS", 10_000)))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--results", default=str(BENCH_DIR / "results" / "numbers.json"))
    args = parser.parse_args()
    started, load_before = time.perf_counter(), loadavg()
    env = {"python": platform.python_version(), "numpy": np.__version__, "rouge-score": metadata.version("rouge-score"),
           "rapidfuzz": metadata.version("rapidfuzz"), "cpus": os.cpu_count(), "machine": platform.machine(), "loadavg_before": load_before}
    print(f"numbers: a month of roll-ups ({args.values:,} values), {args.rows:,} ROUGE rows, {args.rows:,} edit-distance rows; load {load_before}")

    quantiles = bench_quantiles(np.random.default_rng(args.seed), args.values, args.repeat)
    rows = []
    for metric, kinds in quantiles["kinds"].items():
        for kind, r in kinds.items():
            by_q = r["worst_rel_error_by_q"]
            rows.append([f"{metric}: {kind}", f"{r['windows']:,}", r["empty_windows"], r["count_mismatches"],
                         *(f"{100 * by_q[str(q)]:.4f}" for q in QS), f"{100 * r['worst_rel_error']:.4f}"])
    print()
    print("Quantiles of merged roll-up sketches vs np.quantile(raw, q, method='inverted_cdf'): worst relative error, % (goal <= 1 %)")
    print_table(["window", "windows", "empty", "count !=", *(f"P{100 * q:g}" for q in QS), "worst"], rows)
    print()
    for metric, t in quantiles["timing"].items():
        v = quantiles["values"][metric]
        print(f"  {metric}: {v['raw_values']:,} values, {v['empty_minute_blobs']:,} empty minute blobs (first non-empty: minute "
              f"{v['leading_empty_blobs']['minute']}, hour {v['leading_empty_blobs']['hour']}); sketch per minute {t['sketch_minutes_s']:.2f} s, "
              f"hours merged {t['merge_hours_s']:.2f} s; month: merge of 720 hour blobs + 5 quantiles "
              f"{1000 * t['month_merge_720_hour_blobs_s']:.1f} ms vs np.quantile over the raw values {1000 * t['numpy_quantile_month_raw_s']:.0f} ms "
              f"({t['numpy_over_merge']:.1f}x); merge of the 43,200 minute blobs {1000 * t['month_merge_43200_minute_blobs_s']:.0f} ms")

    t = time.perf_counter()
    text_rows = rouge_rows(np.random.default_rng(args.seed + 1), args.rows)
    generate_s = round(time.perf_counter() - t, 2)
    rouge = {**bench_rouge(text_rows), "generate_s": generate_s}
    t = time.perf_counter()
    char_rows = edit_rows(np.random.default_rng(args.seed + 2), args.rows)
    generate_s = round(time.perf_counter() - t, 2)
    edit = {**bench_edit(char_rows), "generate_s": generate_s}
    print()
    print_table(["text measure", "rows", "max |ours - reference|", "ours s (CPU s)", "reference s (CPU s)", "reference / ours (CPU)"], [
        ["ROUGE-1/2/L vs rouge-score RougeScorer", rouge["rows"], f"{max(rouge['max_abs_diff'].values()):.1e}",
         f"{rouge['ours_s']:.2f} ({rouge['ours_cpu_s']:.2f})", f"{rouge['rouge_score_s']:.2f} ({rouge['rouge_score_cpu_s']:.2f})",
         f"{rouge['rouge_score_over_ours']:.1f}x ({rouge['rouge_score_over_ours_cpu']:.1f}x)"],
        ["levenshtein_similarity vs rapidfuzz", edit["rows"], f"{edit['max_abs_diff']:.1e}",
         f"{edit['ours_s']:.2f} ({edit['ours_cpu_s']:.2f})", f"{edit['rapidfuzz_s']:.2f} ({edit['rapidfuzz_cpu_s']:.2f})",
         f"{1 / edit['ours_over_rapidfuzz']:.2f}x ({1 / edit['ours_over_rapidfuzz_cpu']:.2f}x)"],
    ])
    print(f"  ROUGE: {rouge['mean_words']:.0f} reference words on average, ROUGE-L F1 quartiles "
          f"{', '.join(f'{x:.2f}' for x in rouge['rougeL_f1_quartiles'])}; by measure {rouge['max_abs_diff']}")
    print(f"  edit distance: references {edit['reference_chars'][0]:,}-{edit['reference_chars'][1]:,} characters "
          f"(mean {edit['mean_chars']:,.0f}), similarity quartiles {', '.join(f'{x:.2f}' for x in edit['similarity_quartiles'])}")

    worst = max(r["worst_rel_error"] for kinds in quantiles["kinds"].values() for r in kinds.values())
    counts_off = sum(r["count_mismatches"] for kinds in quantiles["kinds"].values() for r in kinds.values())
    failures = [f"a percentile {100 * worst:.3f} % off (goal 1 %)"] if worst > QUANTILE_GOAL + EXACT_TOL else []
    failures += [f"{counts_off} windows whose merged count differs from the raw count"] if counts_off else []
    failures += ["ROUGE differs from rouge-score"] if max(rouge["max_abs_diff"].values()) > EXACT_TOL else []
    failures += ["edit distance differs from rapidfuzz"] if edit["max_abs_diff"] > EXACT_TOL else []
    env["loadavg_after"] = loadavg()
    result = {"environment": env, "seed": args.seed, "quantiles": quantiles, "rouge": rouge, "edit_distance": edit,
              "worst_quantile_rel_error": worst, "goal_quantile_rel_error": QUANTILE_GOAL, "failures": failures,
              "peak_rss_mb": peak_rss_mb(), "wall_s": round(time.perf_counter() - started, 1), "cpu_s": round(time.process_time(), 1)}
    print(f"\n{'FAILED: ' + '; '.join(failures) if failures else 'All numbers within their goals'}; wall {result['wall_s']} s (CPU {result['cpu_s']} s), "
          f"peak RSS {result['peak_rss_mb']} MB, load average {load_before} before, {env['loadavg_after']} after (2 cores, shared)")
    write_results(args.results, result)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""scripts/stats.py on synthetic data with known answers: the order-statistics
interval and its coverage, the stability rule, and the Mann-Whitney U test
(exact and normal, against values published for scipy.stats.mannwhitneyu)."""
import json
import os
import random
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import benchjson  # noqa: E402
import report  # noqa: E402
import stats  # noqa: E402


class MedianInterval(unittest.TestCase):
    def test_median(self):
        self.assertEqual(stats.median([3, 1, 2]), 2)
        self.assertEqual(stats.median([4, 1, 2, 3]), 2.5)

    def test_nine_values_take_the_second_and_eighth(self):
        # P(Bin(9, 1/2) <= 1) = 10/512, so [x(2), x(8)] covers 1 - 20/512.
        low, high, coverage = stats.median_ci([9, 1, 8, 2, 7, 3, 6, 4, 5])
        self.assertEqual((low, high), (2, 8))
        self.assertAlmostEqual(coverage, 1 - 20 / 512)

    def test_ten_values(self):
        self.assertEqual(stats.median_ci(range(1, 11))[:2], (2, 9))
        self.assertEqual(stats.median_ci(range(1, 16))[:2], (4, 12))  # P(Bin(15,.5)<=3) = 0.0176

    def test_too_few_values_give_the_range_and_say_so(self):
        low, high, coverage = stats.median_ci([5, 1, 3, 2, 4])
        self.assertEqual((low, high), (1, 5))
        self.assertAlmostEqual(coverage, 1 - 2 / 32)
        self.assertEqual(stats.median_ci([7]), (7, 7, 0.0))

    def test_coverage_holds_on_skewed_noise(self):
        # The interval is distribution-free: on exponential noise it covers
        # the true median (ln 2) at least 95% of the time (seeded, 2000 draws).
        rng = random.Random(11)
        hits = 0
        for _ in range(2000):
            low, high, _ = stats.median_ci([rng.expovariate(1.0) for _ in range(9)])
            hits += low <= 0.6931471805599453 <= high
        self.assertGreaterEqual(hits / 2000, 0.94)


class Stability(unittest.TestCase):
    def test_narrow_quiet_figure_is_stable(self):
        f = stats.summarise([100, 101, 99, 100, 102, 98, 100, 101, 99], [False] * 9)
        self.assertTrue(f["stable"])
        self.assertEqual(f["value"], 100)

    def test_wide_interval_is_unstable(self):
        f = stats.summarise([100, 130, 70, 100, 125, 80, 100, 90, 110])
        self.assertFalse(f["stable"])

    def test_disturbed_repetitions_make_it_unstable(self):
        values = [100] * 9
        self.assertTrue(stats.summarise(values, [True] * 3 + [False] * 6)["stable"])
        self.assertFalse(stats.summarise(values, [True] * 4 + [False] * 5)["stable"])

    def test_ratios_use_an_absolute_bound(self):
        self.assertTrue(stats.is_stable(3.0, 2.96, 3.04, ratio=True))
        self.assertFalse(stats.is_stable(3.0, 2.85, 3.15, ratio=True))  # 5% relative, but ±0.15
        self.assertFalse(stats.is_stable(None, 1, 2))

    def test_overlap(self):
        a, b = {"low": 1, "high": 2}, {"low": 1.5, "high": 3}
        self.assertTrue(stats.overlaps(a, b))
        self.assertFalse(stats.overlaps(a, {"low": 2.5, "high": 3}))


class MannWhitney(unittest.TestCase):
    def test_separated_samples_exact(self):
        u, p = stats.mann_whitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
        self.assertEqual(u, 0)
        self.assertAlmostEqual(p, 2 / 252)  # scipy: 0.007937

    def test_interleaved_samples_exact(self):
        u, p = stats.mann_whitney([1, 3, 5, 7, 9], [2, 4, 6, 8, 10])
        self.assertEqual(u, 10)
        self.assertAlmostEqual(p, 0.6904761904761905)  # scipy: 0.690476

    def test_ties_use_the_normal_approximation(self):
        u, p = stats.mann_whitney([1, 1, 2, 2], [3, 3, 4, 4])
        self.assertEqual(u, 0)
        self.assertAlmostEqual(p, 0.026518721959430752, places=6)  # scipy asymptotic: 0.02652

    def test_identical_samples(self):
        self.assertEqual(stats.mann_whitney([1.0] * 5, [1.0] * 5)[1], 1.0)

    def test_a_shift_is_found_and_noise_is_not(self):
        rng = random.Random(5)
        a = [rng.gauss(100, 2) for _ in range(9)]
        self.assertLess(stats.mann_whitney(a, [x * 1.2 for x in a])[1], 0.01)
        b = [rng.gauss(100, 2) for _ in range(9)]
        self.assertGreater(stats.mann_whitney(a, b)[1], 0.01)

    def test_empty_side_is_an_error(self):
        with self.assertRaises(ValueError):
            stats.mann_whitney([], [1])


def fake_reps(p50s_us, disturbed=0):
    """A bench.json's repetitions of one Paired benchmark, as benchjson reads them."""
    return {"Paired/tcp/64": [{"name": "Paired/tcp/64", "p50_ns": v * 1e3, "p99_ns": v * 2e3, "raw_p50_ns": 10e3,
                               "ratio": v / 10, "disturbed": 1 if i < disturbed else 0}
                              for i, v in enumerate(p50s_us)]}


class Figures(unittest.TestCase):
    def test_a_figure_is_the_median_of_its_repetitions_with_its_interval(self):
        rows = benchjson.figures(fake_reps([12, 11, 13, 12, 12, 11, 13, 12, 12]), ["tcp"], [64])
        f = {r[2]: r[4] for r in rows}
        self.assertEqual(f["rtt_p50"]["value"], 12)
        self.assertEqual((f["rtt_p50"]["low"], f["rtt_p50"]["high"]), (11, 13))
        self.assertAlmostEqual(f["rtt_ratio"]["value"], 1.2)
        self.assertEqual(f["baseline_rtt_p50"]["value"], 10)

    def test_diff_finds_a_shift_and_ignores_noise(self):
        before = benchjson.figures(fake_reps([10, 10.2, 9.9, 10.1, 10, 10.05, 9.95, 10.1, 9.9]), ["tcp"], [64])
        after = benchjson.figures(fake_reps([12, 12.2, 11.9, 12.1, 12, 12.05, 11.95, 12.1, 11.9]), ["tcp"], [64])
        text = report.diff(before, after)
        self.assertIn("rtt_p50", text)
        self.assertIn("+20.0%", text)
        self.assertIn("changed significantly", text)
        same = report.diff(before, benchjson.figures(fake_reps([10.1, 9.9, 10, 10.2, 9.95, 10, 10.05, 9.9, 10.1]),
                                                      ["tcp"], [64]))
        self.assertIn("0 figure(s) changed significantly", same)

    def test_diff_notes_a_host_speed_shift_between_runs(self):
        def run(mb_per_s):  # the memcpy rows of one run, as benchjson.figures makes them
            return [("memcpy", size, "memcpy_throughput", "MB/s", {"value": v, "values": [v] * 5, "stable": True})
                    for size, v in ((65536, 47000), (1048576, mb_per_s))]
        text = report.host_speed_difference(run(31300), run(29700))  # -5.1%, the largest size decides
        self.assertIn("Host speed differed", text)
        self.assertIn("1 MiB", text)
        self.assertIn("-5%", text)
        self.assertEqual(report.host_speed_difference(run(31300), run(30000)), "")  # -4.2%: within the slack
        self.assertEqual(report.host_speed_difference(run(31300), []), "")  # no probe in one run: nothing said

    def test_large_absolute_figures_are_stable_only_while_the_host_held_still(self):
        # 15 repetitions: the interval is [x(4), x(12)] of the sorted values.
        def probe(half):  # memcpy MB/s whose interval is 30000 ±half
            return [30000 - half] * 4 + [30000] * 7 + [30000 + half] * 4

        def stream(half):  # a 1 MiB stream's MB/s, 10000 ±half
            return [10000 - half] * 4 + [10000] * 7 + [10000 + half] * 4

        def reps(probe_half, stream_half, size=1048576):
            bps = [{"name": f"Baseline/memcpy/{size}", "bytes_per_second": v * 1e6} for v in probe(probe_half)]
            st = [{"name": f"Stream/unix/{size}", "bytes_per_second": v * 1e6} for v in stream(stream_half)]
            return {f"Baseline/memcpy/{size}": bps, f"Stream/unix/{size}": st}

        def stream_figure(rows):
            return next(r[4] for r in rows if r[2] == "stream_throughput")

        # The probe wandered ±6%: the stream, ±3% on its own, is unstable too.
        f = stream_figure(benchjson.figures(reps(1800, 300), ["unix"], [1048576]))
        self.assertFalse(f["stable"])
        self.assertTrue(f["host_unstable"])
        self.assertAlmostEqual(f["host_share"], 0.06)
        # The probe within ±4.1% (and the stream within ±3%): stable. The two
        # are not added: the stream's own interval already saw the host move.
        f = stream_figure(benchjson.figures(reps(1230, 300), ["unix"], [1048576]))
        self.assertTrue(f["stable"])
        self.assertNotIn("host_unstable", f)
        # A figure unstable on its own stays so, and is not counted as the host's.
        f = stream_figure(benchjson.figures(reps(1800, 900), ["unix"], [1048576]))
        self.assertFalse(f["stable"])
        self.assertNotIn("host_unstable", f)
        # Below 64 KiB the probe is not applied, however much it wandered.
        f = stream_figure(benchjson.figures(reps(3000, 300, size=4096), ["unix"], [4096]))
        self.assertTrue(f["stable"])
        self.assertNotIn("host_share", f)
        # Without a probe at its size a figure keeps its own rule.
        rows = benchjson.figures({k: v for k, v in reps(3000, 300).items() if "memcpy" not in k}, ["unix"], [1048576])
        self.assertTrue(stream_figure(rows)["stable"])
        # REPORT.md says how far the host wandered and how many figures it marked.
        lines = report.host_speed_summary(benchjson.figures(reps(1800, 300), ["unix"], [1048576]))
        self.assertTrue(any("±6.0%" in x and "1 absolute figure(s)" in x for x in lines), lines)

    def test_the_host_probe_is_timed_per_cpu_second(self):
        # A busy loop on the probe's CPU halves the wall-clock throughput of 5
        # of its 15 repetitions, but not the copy: per CPU second the probe
        # held still, and the stream beside it stays stable.
        probe = [{"name": "Baseline/memcpy/1048576", "bytes_per_second": (15e9 if i < 5 else 31e9),
                  "cpu_time": 1048576 / 31e9 * 1e9, "time_unit": "ns"} for i in range(15)]
        stream = [{"name": "Stream/unix/1048576", "bytes_per_second": 10e9} for _ in range(15)]
        rows = benchjson.figures({"Baseline/memcpy/1048576": probe, "Stream/unix/1048576": stream}, ["unix"], [1048576])
        memcpy = next(r[4] for r in rows if r[0] == "memcpy")
        self.assertFalse(memcpy["stable"])  # the wall-clock figure the table shows is unstable ...
        self.assertAlmostEqual(memcpy["cpu_probe"]["value"], 31000, places=0)  # ... its copy speed is not
        self.assertTrue(next(r[4] for r in rows if r[2] == "stream_throughput")["stable"])
        # The same probe slowed per CPU second (the copy itself slower) marks the stream.
        for i in range(5):
            probe[i]["cpu_time"] = 1048576 / 15e9 * 1e9
        rows = benchjson.figures({"Baseline/memcpy/1048576": probe, "Stream/unix/1048576": stream}, ["unix"], [1048576])
        self.assertTrue(next(r[4] for r in rows if r[2] == "stream_throughput")["host_unstable"])

    def test_ratios_do_not_carry_the_host_term(self):
        f = {"value": 1.0, "low": 0.98, "high": 1.02, "stable": True}
        probe = {"value": 100, "low": 80, "high": 120, "stable": False}
        rows = [("memcpy", 1048576, "memcpy_throughput", "MB/s", probe), ("tcp", 1048576, "rtt_ratio", "ratio", f)]
        self.assertEqual(benchjson.host_terms(rows), 0)
        self.assertTrue(f["stable"])

    def test_disturbed_repetitions_flag_the_figure(self):
        rows = benchjson.figures(fake_reps([12] * 9, disturbed=5), ["tcp"], [64])
        self.assertFalse(any(r[4]["stable"] for r in rows))

    def test_disturbed_is_relative_to_the_quietest_repetition_in_older_files(self):
        runs = [{"interference": v} for v in (0.40, 0.42, 0.44, 0.47, 0.60)]
        self.assertEqual(benchjson.disturbed_flags(runs), [False, False, False, True, True])
        self.assertEqual(benchjson.disturbed_flags([{"disturbed": 1}, {"disturbed": 0}]), [True, False])

    def test_disturbed_is_relative_to_the_typical_repetitions_run_delay(self):
        # A stream on one CPU queues 0.43-0.48 of its time by itself; three repetitions met a busy loop.
        # Its `interference` (beyond a per-message allowance longer than a stream's message) reads 0 in
        # all of them: runq_share is what is judged, against the median (0.47), 5 points the bound.
        shares = [0.44, 0.43, 0.46, 0.48, 0.45, 0.47, 0.62, 0.60, 0.55, 0.46, 0.50]
        runs = [{"runq_share": v, "interference": 0.0} for v in shares]
        self.assertEqual(benchjson.delay_flags(runs), [v > 0.53 for v in shares])
        self.assertEqual(sum(benchjson.delay_flags(runs)), 3)
        # Against the quietest repetition (0.43) it would also have flagged 0.50, the stream's own spread.
        self.assertEqual(benchjson.waiting_share(runs[0]), 0.44)
        self.assertEqual(benchjson.waiting_share({"interference": 0.1}), 0.1)
        self.assertIsNone(benchjson.waiting_share({}))
        lines, disturbed, total = report.interference_summary({"Stream/unix/4096": runs})
        self.assertEqual((disturbed, total), (3, 11))
        self.assertTrue(any("median repetition" in line for line in lines), lines)
        self.assertTrue(any("was 47.0%" in line for line in lines), lines)

    def test_placement_flags_judge_against_the_runs_median_probe(self):
        # Stream/shm-spin's own probes agree with each other, but the run's
        # median (110 ns) shows it ran in a costlier placement; one probe of
        # Paired/shm-spin met a briefly faster one.
        reps = {"Paired/shm-spin/64": [{"xcpu_rtt_ns": v, "interference": 0.0} for v in (100, 110, 112, 55)],
                "Paired/shm-spin/4096": [{"xcpu_rtt_ns": v, "interference": 0.0} for v in (105, 115, 120)],
                "Stream/shm-spin/64": [{"xcpu_rtt_ns": v, "interference": 0.0} for v in (390, 400)],
                "Paired/unix/64": [{"interference": 0.0}, {"interference": 0.2}]}
        benchjson.mark_placement_reference(reps)
        self.assertEqual(benchjson.placement_flags(reps["Paired/shm-spin/64"]), [False, False, False, True])
        self.assertEqual(benchjson.placement_flags(reps["Stream/shm-spin/64"]), [True, True])
        self.assertEqual(benchjson.placement_flags(reps["Paired/unix/64"]), [False, False], "no probe, no flag")
        # The figures' stability takes run delay and placement alike.
        self.assertEqual(benchjson.delay_flags(reps["Paired/shm-spin/64"]), [False] * 4)
        self.assertEqual(benchjson.disturbed_flags(reps["Paired/shm-spin/64"]), [False, False, False, True])
        self.assertEqual(benchjson.disturbed_flags(reps["Paired/unix/64"]), [False, True])
        # 1.5x either way is the bound.
        edge = {"x": [{"xcpu_rtt_ns": v} for v in (100, 100, 100, 150, 151, 67, 66)]}
        benchjson.mark_placement_reference(edge)
        self.assertEqual(benchjson.placement_flags(edge["x"]), [False, False, False, False, True, False, True])
        lines = report.placement_summary(reps)
        self.assertTrue(any("Placement:" in line and "median 112 ns" in line and "3 repetition(s)" in line
                            for line in lines), lines)
        self.assertEqual(report.placement_summary({"Paired/unix/64": [{"interference": 0.0}]}), [])
        slow = {"Paired/shm-spin/64": [{"xcpu_rtt_ns": 400}]}
        self.assertIn("not comparable", report.placement_difference(reps, slow))
        self.assertEqual(report.placement_difference(reps, {"Paired/shm-spin/64": [{"xcpu_rtt_ns": 140}]}), "")
        self.assertEqual(report.placement_difference(reps, {"Paired/unix/64": [{}]}), "", "no probe: nothing to say")

    def test_a_rerun_is_judged_against_the_first_runs_placement(self):
        # The first run sat at ~110 ns; a re-run of one benchmark spent wholly at ~400 ns agrees with
        # itself, but not with the run it is to be merged into.
        first = {"Paired/shm-spin/64": [{"xcpu_rtt_ns": v} for v in (100, 110, 112, 120)],
                 "Stream/shm-spin/64": [{"xcpu_rtt_ns": v} for v in (105, 400)]}
        self.assertEqual(benchjson.placement_reference(first), 111)
        self.assertIsNone(benchjson.placement_reference({"Paired/unix/64": [{}]}))
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "retry.json")
            with open(path, "w") as f:
                json.dump({"benchmarks": [{"name": "Stream/shm-spin/64/real_time", "run_type": "iteration",
                                           "real_time": 1.0, "xcpu_rtt_ns": v} for v in (390, 400, 410)]}, f)
            _, own, _ = benchjson.repetitions(path)
            self.assertEqual(benchjson.placement_flags(own["Stream/shm-spin/64"]), [False] * 3)
            _, judged, _ = benchjson.repetitions(path, benchjson.placement_reference(first))
            self.assertEqual(benchjson.placement_flags(judged["Stream/shm-spin/64"]), [True] * 3)

    def test_a_rerun_joins_the_first_passs_undisturbed_repetitions(self):
        def reps(shares, iterations=1000):
            return [{"runq_share": v, "iterations": iterations, "real_time": 1.0} for v in shares]
        # First pass: 4 of 10 disturbed against its median (so it was run again); the re-run's 10 join
        # the 6 quiet ones.
        first = {"Stream/tcp/4096": reps([0.3, 0.9, 0.3, 0.3, 0.9, 0.3, 0.9, 0.3, 0.9, 0.3]),
                 "Paired/unix/64": reps([0.4] * 10, iterations=2),
                 "Paired/fifo/64": reps([0.4] * 10)}
        fresh = {"Stream/tcp/4096": reps([0.31] * 10), "Paired/unix/64": reps([0.41] * 10),
                 "Connect/tcp": reps([0.5] * 5)}
        pooled = benchjson.pool_rerun(first, fresh, {"Stream/tcp/4096", "Paired/unix/64", "Connect/tcp"}, 5)
        self.assertEqual(sorted(pooled), ["Connect/tcp", "Paired/unix/64", "Stream/tcp/4096"])
        self.assertEqual([b["runq_share"] for b in pooled["Stream/tcp/4096"]], [0.3] * 6 + [0.31] * 10)
        # A first pass cut short (2 iterations a repetition) is replaced, not pooled.
        self.assertEqual([b["runq_share"] for b in pooled["Paired/unix/64"]], [0.41] * 10)
        # Few iterations mean cut short only for Paired, Stream and BaselineStream (as needs_rerun says):
        # a Connect run again for disturbance keeps its first pass's quiet repetitions.
        slow = {"Connect/udp": reps([0.4] * 4, iterations=2)}
        joined = benchjson.pool_rerun(slow, {"Connect/udp": reps([0.5] * 4, iterations=2)}, {"Connect/udp"}, 5)
        self.assertEqual(len(joined["Connect/udp"]), 8)
        self.assertTrue(benchjson.cut_short("Stream/tcp/64", reps([0.1], iterations=3), 5))
        self.assertFalse(benchjson.cut_short("Connect/udp", reps([0.1], iterations=3), 5))
        self.assertFalse(benchjson.cut_short("Stream/tcp/64", [], 5))
        # A benchmark only the re-run has keeps the re-run; one not re-run is not touched.
        self.assertEqual(len(pooled["Connect/tcp"]), 5)
        self.assertNotIn("Paired/fifo/64", pooled)

    def test_a_figure_is_taken_from_the_runs_typical_placement(self):
        def paired(p50s, probes):
            return [{"name": "Paired/shm-spin/64/real_time", "run_name": "Paired/shm-spin/64/real_time",
                     "run_type": "iteration", "p50_ns": p, "raw_p50_ns": p / 2, "ratio": 2.0, "interference": 0.0,
                     "xcpu_rtt_ns": x, "real_time": p} for p, x in zip(p50s, probes)]
        # Eight repetitions at 110 ns, four at 400: the figure is the typical eight's median, and a third
        # of the repetitions disturbed leaves it stable.
        runs = paired([260] * 8 + [900] * 4, [110] * 8 + [400] * 4)
        reps = {"Paired/shm-spin/64": runs}
        benchjson.mark_placement_reference(reps)
        f = benchjson.figure(reps, "rtt_p50", "shm-spin", 64)
        self.assertAlmostEqual(f["value"], 0.26)
        self.assertEqual(f["n"], 8)
        self.assertAlmostEqual(f["disturbed_share"], 4 / 12)
        # Too few typical ones left: every repetition counts, and the figure is unstable.
        few = {"Paired/shm-spin/64": paired([260] * 5 + [900] * 4, [110] * 5 + [400] * 4)}
        benchjson.mark_placement_reference(few)
        f = benchjson.figure(few, "rtt_p50", "shm-spin", 64)
        self.assertEqual(f["n"], 9)
        self.assertFalse(f["stable"])

    def test_best_is_marked_only_when_intervals_do_not_overlap(self):
        a = {"value": 10, "low": 9, "high": 11}
        self.assertEqual(report.best_marks([a, {"value": 20, "low": 19, "high": 21}], False), {0: "*"})
        self.assertEqual(report.best_marks([a, {"value": 11.5, "low": 10.5, "high": 12}], False), {0: "=", 1: "="})


class Agreement(unittest.TestCase):
    """#11's criterion for two runs: p50s and throughputs within ±10%, ratios
    within ±0.10, and every mover flagged unstable in one of the runs."""

    def test_counts_figures_and_ratios_against_their_own_bounds(self):
        old = {("tcp", 64, "rtt_p50"): (10.0, True), ("tcp", 64, "stream_throughput"): (100.0, True),
               ("tcp", 64, "rtt_ratio"): (1.20, True), ("tcp", 64, "rtt_p99"): (50.0, True)}
        new = {("tcp", 64, "rtt_p50"): (10.9, True),            # +9%: agrees
               ("tcp", 64, "stream_throughput"): (88.0, False),  # -12%: moves, flagged in the new run
               ("tcp", 64, "rtt_ratio"): (1.35, True),           # +0.15: moves, flagged in neither
               ("tcp", 64, "rtt_p99"): (500.0, True)}            # not a figure the rule covers
        a = stats.agreement(old, new)
        self.assertEqual((a["figures"], a["figures_agree"], a["ratios"], a["ratios_agree"]), (2, 1, 1, 0))
        moved = {m[0][2]: m[3] for m in a["movers"]}
        self.assertEqual(moved, {"stream_throughput": True, "rtt_ratio": False})

    def test_a_ratio_is_judged_in_absolute_terms(self):
        # 0.50 -> 0.59 is +18% but only +0.09: it agrees; 2.0 -> 2.15 is +7.5% but +0.15: it moves.
        a = stats.agreement({("x", 1, "rtt_ratio"): (0.50, True), ("y", 1, "rtt_ratio"): (2.0, True)},
                            {("x", 1, "rtt_ratio"): (0.59, True), ("y", 1, "rtt_ratio"): (2.15, True)})
        self.assertEqual(a["ratios_agree"], 1)
        self.assertEqual([m[0][0] for m in a["movers"]], ["y"])

    def test_the_report_names_unflagged_movers(self):
        before = benchjson.figures(fake_reps([10, 10.2, 9.9, 10.1, 10, 10.05, 9.95, 10.1, 9.9]), ["tcp"], [64])
        after = benchjson.figures(fake_reps([12, 12.2, 11.9, 12.1, 12, 12.05, 11.95, 12.1, 11.9]), ["tcp"], [64])
        text = report.agreement(before, after)
        self.assertIn("0 of 1 round-trip p50 and stream figures within ±10%", text)
        self.assertIn("0 of 1 ipclab/raw ratios within ±0.10", text)  # 1.00 -> 1.20
        self.assertIn("NOT flagged unstable", text)
        self.assertIn("2 of 2 moving figure(s) were not flagged", text)
        self.assertNotIn("moved", report.agreement(before, before))


class KernelLimits(unittest.TestCase):
    """REPORT.md names the queues' per-message limit where it bounds a figure."""

    def test_a_size_above_the_limit_is_explained_with_its_queue_message_count(self):
        facts = {"fs.mqueue.msgsize_max": "8192", "kernel.msgmax": "8192"}
        text = "\n".join(report.limits_section(["tcp", "posix-mq", "sysv-mq"], [64, 65536], facts))
        self.assertIn("### Kernel limits that shape these figures", text)
        # 8192 - 12 bytes of chunk header per queue message: 64 KiB is 9 of them.
        self.assertIn("64 KiB as 9 messages", text)
        self.assertIn("sysctl -w fs.mqueue.msgsize_max=N", text)
        self.assertIn("sysctl -w kernel.msgmax=N", text)
        self.assertIn("RLIMIT_MSGQUEUE", text)

    def test_nothing_is_said_when_every_size_fits_or_no_queue_ran(self):
        facts = {"fs.mqueue.msgsize_max": "65548", "kernel.msgmax": "8192"}
        self.assertEqual(report.limits_section(["posix-mq"], [64, 65536], facts), [])
        self.assertEqual(report.limits_section(["tcp"], [1 << 20], facts), [])
        self.assertEqual(report.limits_section(["posix-mq"], [1 << 20], {"fs.mqueue.msgsize_max": "?"}), [])


if __name__ == "__main__":
    unittest.main()

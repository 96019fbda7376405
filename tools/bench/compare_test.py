"""Tests of //tools/bench:compare on real inputs: the real benchmark binaries
(with tiny filters and times) and the real peer scripts (with tiny sizes)."""

import json
import os
import stat
import statistics
import subprocess
import sys
import tempfile
import unittest

# Import compare.py from the runfiles (Python puts the real directory of this
# file, in the source tree, first on sys.path) and write no __pycache__.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ["TEST_SRCDIR"], "taskfork", "tools",
                                "bench"))
import compare  # pylint: disable=wrong-import-position


def binary(key):
    return compare.rlocation(compare.BINARIES[key])


def script(key):
    return compare.rlocation(compare.PEER_SCRIPTS[key])


def raw_json(key, *args):
    """Runs a benchmark binary and returns its JSON output as text."""
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "out.json")
        subprocess.run([binary(key), "--benchmark_out=" + out,
                        "--benchmark_out_format=json"] + list(args),
                       check=True, cwd=scratch, stdout=subprocess.DEVNULL)
        with open(out) as f:
            return f.read()


class BenchmarkKeyTest(unittest.TestCase):

    def test_drops_modifiers_keeps_threads(self):
        self.assertEqual(compare.benchmark_key("BM_X/threads:4/real_time"),
                         "BM_X/threads:4")
        self.assertEqual(compare.benchmark_key("BM_X/iterations:1"), "BM_X")
        self.assertEqual(compare.benchmark_key("BM_X/iterations:1/repeats:3"),
                         "BM_X")
        self.assertEqual(compare.benchmark_key("BM_X/64/min_time:0.500"),
                         "BM_X/64")


class FiguresTest(unittest.TestCase):

    def test_every_figure_names_benchmarks_the_binaries_have(self):
        listed = {}
        for key in compare.BINARIES:
            out = subprocess.run([binary(key), "--benchmark_list_tests=true"],
                                 check=True, capture_output=True, text=True,
                                 cwd=os.environ.get("TEST_TMPDIR"))
            listed[key] = {compare.benchmark_key(line.strip())
                           for line in out.stdout.splitlines() if line.strip()}
        checked = 0
        for figure in compare.FIGURES:
            for source in (figure.taskfork, figure.peer, figure.floor):
                if source is None:
                    continue
                if source.peer:
                    self.assertIn(source.names[0],
                                  compare.PEER_PATTERNS[source.binary],
                                  figure.name)
                    continue
                for name in source.names:
                    self.assertIn(name, listed[source.binary],
                                  "%s: %s" % (figure.name, source.binary))
                    checked += 1
        self.assertGreater(checked, 30)

    def test_every_package_has_a_figure_with_a_target(self):
        with_target = {f.package for f in compare.FIGURES if f.targets}
        self.assertEqual(with_target, set(compare.BINARIES) | {"gtest"})
        self.assertEqual({f.package for f in compare.FIGURES},
                         set(compare.PACKAGES))


class RunBenchmarkTest(unittest.TestCase):

    def test_runs_and_parses_a_real_binary(self):
        context, runs = compare.run_benchmark(
            "serialize", binary("serialize"),
            ["--benchmark_filter=Record", "--benchmark_min_time=0.01"], 120)
        self.assertEqual(set(runs), {
            "BM_Encode_Record", "BM_Encode_Record_LargeBuffer",
            "BM_Decode_Record", "BM_Build_Record",
            "BM_Protobuf_Encode_Record", "BM_Protobuf_Decode_Record"})
        for run in runs.values():
            self.assertGreater(run.real_ns, 0)
            self.assertGreater(run.cpu_ns, 0)
            self.assertEqual(run.repetitions, 1)
        self.assertGreater(runs["BM_Encode_Record"].get("bytes"), 100)
        self.assertIn("num_cpus", context)
        with self.assertRaises(KeyError):
            runs["BM_Encode_Record"].get("no_such_counter")

    def test_takes_the_median_of_repetitions(self):
        text = raw_json("serialize", "--benchmark_filter=BM_Memcpy_Blob1M",
                        "--benchmark_min_time=0.01",
                        "--benchmark_repetitions=3")
        _, runs = compare.parse_benchmark_json(text, "serialize")
        entries = json.loads(text)["benchmarks"]
        iterations = [b["real_time"] for b in entries
                      if b["run_type"] == "iteration"]
        self.assertEqual(len(iterations), 3)
        run = runs["BM_Memcpy_Blob1M"]
        self.assertEqual(run.repetitions, 3)
        unit = compare._TIME_UNIT_NS[entries[0]["time_unit"]]
        self.assertAlmostEqual(run.real_ns, statistics.median(iterations) * unit,
                               delta=1e-6 * run.real_ns)
        self.assertGreater(run.get("bytes_per_second"), 0)

    def test_a_reported_error_fails_naming_the_benchmark(self):
        data = json.loads(raw_json("serialize", "--benchmark_filter=Record",
                                   "--benchmark_min_time=0.01"))
        data["benchmarks"][1]["error_occurred"] = True
        data["benchmarks"][1]["error_message"] = "fork failed"
        with self.assertRaises(compare.Failure) as e:
            compare.parse_benchmark_json(json.dumps(data), "//x:y")
        self.assertIn("//x:y reported errors", str(e.exception))
        self.assertIn(data["benchmarks"][1]["name"] + ": fork failed",
                      str(e.exception))

    def test_output_that_is_not_json_fails(self):
        with self.assertRaises(compare.Failure) as e:
            compare.parse_benchmark_json("Running ...", "//x:y")
        self.assertIn("not Google Benchmark JSON", str(e.exception))

    def test_a_failing_binary_fails_naming_it(self):
        with self.assertRaises(compare.Failure) as e:
            compare.run_benchmark("//serialize:serialize_benchmark",
                                  binary("serialize"), ["--no_such_flag"], 60)
        self.assertIn("//serialize:serialize_benchmark exited with status 1",
                      str(e.exception))

    def test_a_crashing_binary_fails_naming_the_signal(self):
        with tempfile.TemporaryDirectory() as scratch:
            crasher = os.path.join(scratch, "crasher")
            with open(crasher, "w") as f:
                f.write("#!/bin/sh\necho about to crash\nkill -SEGV $$\n")
            os.chmod(crasher, stat.S_IRWXU)
            with self.assertRaises(compare.Failure) as e:
                compare.run_benchmark("crasher", crasher, [], 60)
        self.assertIn("crasher was killed by SIGSEGV", str(e.exception))
        self.assertIn("about to crash", str(e.exception))


class PeerTest(unittest.TestCase):

    def test_every_peer_script_runs_and_parses(self):
        modes = ["taskfork", "taskfork_sharded", "ctest", "ctest_discover",
                 "direct"]
        gtest_args, gtest_metrics = compare.gtest_args(modes)
        # GoogleTest's sample10 leaks on purpose (ListenersTest.LeaksWater):
        # under LeakSanitizer (the asan configs) the suite runs without leak
        # detection.
        if "ASAN_OPTIONS" in os.environ:
            gtest_args = gtest_args + [
                "--env=ASAN_OPTIONS=%s:detect_leaks=0" %
                os.environ["ASAN_OPTIONS"]]
        tiny = {"pickle": ["--repeat", "1", "--number", "10"],
                "fork_mp": ["--repeat", "1", "--number", "2",
                            "--pcall_number", "1"],
                "ipc_mp": ["--seconds", "0.05"],
                "gtest": ["--repetitions=1", "--env=MANY_GTESTS_TESTS=5"] +
                         gtest_args}
        self.assertEqual(set(tiny), set(compare.PEER_SCRIPTS))
        for key, args in tiny.items():
            metrics = gtest_metrics if key == "gtest" else None
            values = compare.run_peer(key, script(key), args, 300,
                                      metrics=metrics)
            self.assertEqual(set(values),
                             set(metrics or compare.PEER_PATTERNS[key]), key)
            for metric, value in values.items():
                self.assertGreater(value, 0, "%s %s" % (key, metric))
        self.assertEqual(len(gtest_metrics), 1 + 2 * len(modes))
        # Units: a fork takes microseconds, not nanoseconds or seconds.
        self.assertGreater(compare.run_peer(
            "fork_mp", script("fork_mp"),
            tiny["fork_mp"], 300)["start_join_ns"], 10e3)

    def test_a_failing_script_fails_naming_it(self):
        with self.assertRaises(compare.Failure) as e:
            compare.run_peer("pickle", script("pickle"), ["--no-such-flag"], 60)
        self.assertIn("serialize_pickle.py exited with status 2",
                      str(e.exception))

    def test_unexpected_output_fails_naming_the_metric(self):
        with self.assertRaises(compare.Failure) as e:
            compare.parse_peer_output("pickle", "hello", "serialize_pickle.py")
        self.assertIn("serialize_pickle.py: no dumps_ns", str(e.exception))


class GtestTest(unittest.TestCase):

    OUTPUT = """suite: 11 binaries, 3052 tests, 3 repetitions (medians)
taskfork          wall 0.4673 s  per test 153113 ns  tests 3052
ctest             wall 0.2354 s  per test 77115 ns  tests 3052
ctest_discover    wall 85.9068 s  per test 28147696 ns  tests 3052
direct            wall 0.1101 s  per test 36071 ns  tests 3052
"""

    def test_parses_the_modes_that_ran(self):
        _, metrics = compare.gtest_args(["taskfork", "ctest"])
        values = compare.parse_peer_output("gtest", self.OUTPUT, "gtest_ctest.py",
                                           metrics)
        self.assertEqual(values, {"tests_count": 3052,
                                  "taskfork_per_test_ns": 153113,
                                  "taskfork_wall_ns": 0.4673e9,
                                  "ctest_per_test_ns": 77115,
                                  "ctest_wall_ns": 0.2354e9})
        _, metrics = compare.gtest_args(["taskfork_sharded"])
        with self.assertRaises(compare.Failure) as e:
            compare.parse_peer_output("gtest", self.OUTPUT, "gtest_ctest.py",
                                      metrics)
        self.assertIn("gtest_ctest.py: no taskfork_sharded_per_test_ns",
                      str(e.exception))

    def test_modes_follow_the_selected_figures(self):
        def modes(*packages):
            return compare.gtest_modes(
                [f for f in compare.FIGURES if f.package in packages])
        self.assertEqual(modes("gtest"),
                         ["taskfork", "ctest", "ctest_discover", "direct"])
        self.assertEqual(modes("gtest_sharded"),
                         ["taskfork_sharded", "ctest", "direct"])
        self.assertEqual(modes("gtest", "gtest_sharded"),
                         list(compare.GTEST_MODES))
        self.assertEqual(modes("serialize"), [])

    def test_rows_name_the_test_count_and_compare_with_ctest(self):
        values = compare.parse_peer_output("gtest", self.OUTPUT, "x",
                                           compare.gtest_args(
                                               ["taskfork", "ctest",
                                                "ctest_discover", "direct"])[1])
        results = compare.Results(peers={"gtest": values})
        rows = compare.make_rows(
            results, [f for f in compare.FIGURES if f.package == "gtest"])
        self.assertEqual(results.failures, [])
        self.assertEqual(
            [r.name for r in rows],
            ["3052 GoogleTest tests, 11 binaries, vs ctest per binary, per test",
             "3052 GoogleTest tests vs ctest + gtest_discover_tests, per test"])
        self.assertAlmostEqual(rows[0].ratios["peer"], 153113 / 77115)
        self.assertEqual(rows[0].met, [False])
        self.assertAlmostEqual(rows[1].ratios["peer"], 153113 / 28147696)
        self.assertEqual(rows[1].met, [True])
        self.assertAlmostEqual(rows[1].ratios["floor"], 153113 / 36071)
        cells = compare.row_cells(rows[1])
        self.assertEqual(cells[2], "153 us")
        self.assertEqual(cells[3], "28.1 ms (ctest -j2, gtest_discover_tests)")
        self.assertEqual(cells[-2:], ["faster than ctest", "met"])
        report = compare.all_benchmarks_markdown(results)
        self.assertIn("| gtest_ctest.py | tests_count | 3052 | | | |", report)
        self.assertIn("| gtest_ctest.py | ctest_discover_wall_ns | 85.9 s |",
                      report)

    def test_strict_target(self):
        target = compare.Target("peer", "<", 1.0, "faster")
        self.assertTrue(target.met({"peer": 0.99}))
        self.assertFalse(target.met({"peer": 1.0}))
        self.assertIsNone(target.met({"peer": None}))


class TableTest(unittest.TestCase):

    def setUp(self):
        _, runs = compare.run_benchmark(
            "serialize", binary("serialize"),
            ["--benchmark_filter=Record|Blob1M", "--benchmark_min_time=0.01"],
            120)
        self.results = compare.Results(benchmarks={"serialize": runs},
                                       peers={"pickle": {"round_trip_ns": 0,
                                                         "round_trip_cpu_ns": 1e9,
                                                         "dumps_ns": 0,
                                                         "loads_ns": 0}})
        self.runs = runs
        self.figures = [f for f in compare.FIGURES if f.package == "serialize"]

    def test_ratios_and_targets(self):
        rows = compare.make_rows(self.results, self.figures)
        self.assertEqual(self.results.failures, [])
        self.assertEqual(len(rows), 5)
        ours = (self.runs["BM_Encode_Record"].cpu_ns +
                self.runs["BM_Decode_Record"].cpu_ns)
        protobuf = (self.runs["BM_Protobuf_Encode_Record"].cpu_ns +
                    self.runs["BM_Protobuf_Decode_Record"].cpu_ns)
        self.assertAlmostEqual(rows[0].taskfork, ours)
        self.assertAlmostEqual(rows[0].ratios["peer"], ours / protobuf)
        self.assertEqual(rows[0].met, [ours / protobuf <= 1.0])
        # A pickle round trip of one second: >= 10x slower, met.
        self.assertAlmostEqual(rows[1].ratios["peer"], ours / 1e9)
        self.assertEqual(rows[1].met, [True])
        build = self.runs["BM_Build_Record"].cpu_ns
        self.assertAlmostEqual(rows[1].floor, build)
        # Decode against the floor: a figure without a target.
        decode = self.runs["BM_Decode_Record"].cpu_ns
        self.assertAlmostEqual(rows[2].ratios["floor"], decode / build)
        self.assertEqual(rows[2].met, [])
        blob = self.runs["BM_Encode_Blob1M"].cpu_ns
        memcpy = self.runs["BM_Memcpy_Blob1M"].cpu_ns
        self.assertAlmostEqual(rows[3].ratios["floor"], blob / memcpy)
        self.assertIsNone(rows[3].ratios["peer"])

    def test_rates_compare_higher_is_better(self):
        figure = compare.Figure(
            "x", "rate", compare.RATE, "items",
            compare.bm("serialize", "BM_Memcpy_Blob1M", field="bytes_per_second"),
            floor=compare.bm("serialize", "BM_Encode_Blob1M",
                             field="bytes_per_second", label="f"),
            targets=(compare.Target("floor", ">=", 1e-9, "tiny"),
                     compare.Target("value", ">=", 1e30, "huge")))
        (row,) = compare.make_rows(self.results, [figure])
        self.assertEqual(row.met, [True, False])
        cells = compare.row_cells(row)
        self.assertEqual(cells[-1], "met; NOT met")
        self.assertIn("/s (f)", cells[4])

    def test_a_missing_benchmark_is_a_failure_not_a_crash(self):
        figure = compare.Figure("x", "missing", compare.TIME, "",
                                compare.bm("serialize", "BM_NoSuch"))
        (row,) = compare.make_rows(self.results, [figure])
        self.assertIsNone(row.taskfork)
        self.assertEqual(len(self.results.failures), 1)
        self.assertIn("has no benchmark BM_NoSuch", self.results.failures[0])
        self.assertEqual(compare.row_cells(row)[2], "-")

    def test_a_package_not_run_shows_dashes(self):
        rows = compare.make_rows(compare.Results(), compare.FIGURES)
        self.assertTrue(all(r.taskfork is None for r in rows))
        self.assertTrue(all(m is None for r in rows for m in r.met))
        self.assertIn("not measured", compare.summary_line(rows))

    def test_text_and_markdown_tables(self):
        rows = compare.make_rows(self.results, self.figures)
        text = compare.text_table(rows).splitlines()
        self.assertEqual(len(text), 2 + len(rows))
        self.assertTrue(text[0].startswith("package"))
        self.assertIn("record encode+decode vs protobuf (CPU)", text[2])
        self.assertIn("(protobuf)", text[2])
        md = compare.markdown_table(rows).splitlines()
        self.assertEqual(len(md), 2 + len(rows))
        self.assertTrue(all(line.count(" | ") == len(compare.HEADINGS) - 1
                            for line in md[2:]), md)
        report = compare.markdown_report(
            [("date", "now")], ["WARNING: x"], rows, self.results, "cmd")
        self.assertIn("> **WARNING: x**", report)
        self.assertIn("| serialize | BM_Encode_Record |", report)
        self.assertIn("## How to reproduce", report)


class FormatTest(unittest.TestCase):

    def test_units(self):
        self.assertEqual(compare.format_time(950), "950 ns")
        self.assertEqual(compare.format_time(1500), "1.50 us")
        self.assertEqual(compare.format_time(3.24e6), "3.24 ms")
        self.assertEqual(compare.format_time(29.2e9), "29.2 s")
        self.assertEqual(compare.format_rate(4.7e9, "bytes"), "4.70 GB/s")
        self.assertEqual(compare.format_rate(62.7e3, "items"), "62.7 k msg/s")
        self.assertEqual(compare.format_rate(420e3, "events"), "420 k ev/s")
        self.assertEqual(compare.format_ratio(0.0123), "0.01x")
        self.assertEqual(compare.format_ratio(0.00123), "0.0012x")
        self.assertEqual(compare.format_ratio(None), "-")

    def test_load_warning(self):
        self.assertIsNone(compare.load_warning("1.50 1 1", "2.00 1 1", 2))
        warning = compare.load_warning("11.43 10 10", "1.00 1 1", 2)
        self.assertIn("load average (11.43 before, 1.00 after) exceeded the 2 "
                      "cores", warning)

    def test_build_warnings(self):
        self.assertEqual(compare.build_warnings("opt", {}), [])
        (warning,) = compare.build_warnings("fastbuild", {})
        self.assertIn("built with -c fastbuild, not -c opt", warning)
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"\0__asan_init\0")
            f.flush()
            self.assertEqual(compare.sanitizers_in(f.name), ["AddressSanitizer"])
            self.assertIn("AddressSanitizer",
                          compare.build_warnings("opt", {"x": f.name})[0])


if __name__ == "__main__":
    unittest.main()

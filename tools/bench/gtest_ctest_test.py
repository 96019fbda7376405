"""Tests of tools/bench/gtest_ctest.py on the real suites: the runner, ctest
(CMake's gtest_discover_tests included) and the GoogleTest binaries, with a
few trivial tests so that each run takes a second or two."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ["TEST_SRCDIR"], "taskfork", "tools",
                                "bench"))
import gtest_ctest  # pylint: disable=wrong-import-position

ROOT = os.environ["TEST_SRCDIR"]
SCRIPT = os.path.join(ROOT, "taskfork", "tools", "bench", "gtest_ctest.py")
RUNNER = os.path.join(ROOT, "taskfork", "runner", "runner")
MANY = os.path.join(ROOT, "taskfork", "tools", "bench", "many_gtests")


def sample(n):
    return os.path.join(ROOT, "googletest_samples", "sample%d_unittest" % n)


def harness(*args, binaries=(1, 9)):
    """Runs gtest_ctest.py on many_gtests (20 tests) and the given samples."""
    argv = [sys.executable, SCRIPT, "--runner=" + RUNNER,
            "--binary=" + MANY, "--shard_binary=" + MANY,
            "--env=MANY_GTESTS_TESTS=20",
            "--repetitions=1"]
    argv += ["--binary=" + sample(n) for n in binaries] + list(args)
    return subprocess.run(argv, capture_output=True, text=True,
                          cwd=os.environ["TEST_TMPDIR"], timeout=300)


class HarnessTest(unittest.TestCase):

    def test_every_mode_runs_the_same_tests(self):
        proc = harness(
            "--modes=taskfork,taskfork_sharded,ctest,ctest_discover,direct")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        lines = proc.stdout.splitlines()
        # sample1: 6 tests; sample9: 2 of 3 (CustomOutputTest.Fails is
        # filtered out); many_gtests: 20.
        self.assertEqual(lines[0],
                         "suite: 3 binaries, 28 tests, 1 repetitions (medians)")
        self.assertEqual([l.split()[0] for l in lines[1:]],
                         ["taskfork", "taskfork_sharded", "ctest",
                          "ctest_discover", "direct"])
        for line in lines[1:]:
            fields = line.split()
            self.assertEqual(fields[1], "wall")
            wall = float(fields[2])
            per_test = float(fields[6])
            self.assertGreater(wall, 0)
            self.assertAlmostEqual(per_test, wall / 28 * 1e9, delta=1e-3 * per_test + 1)
            self.assertEqual(fields[-2:], ["tests", "28"])

    def test_a_failing_test_fails_the_mode_naming_it(self):
        # Without the default filter, sample9's CustomOutputTest.Fails runs.
        # sample9's main() discounts it (exit status 0): only its GoogleTest
        # report tells, and the harness reads every one.
        for mode, message in (
                ("taskfork", "taskfork exited with status 1"),
                ("ctest", "ctest: 1 of 3 tests failed in "),
                ("ctest_discover", "ctest_discover: 1 of 1 tests failed in "),
                ("direct", "direct: 1 of 3 tests failed in ")):
            proc = harness("--modes=" + mode, "--gtest_filter=*")
            self.assertEqual(proc.returncode, 1, mode)
            self.assertIn("gtest_ctest: " + message, proc.stderr)
            self.assertEqual(proc.stdout, "", mode)

    def test_usage_errors(self):
        for args, message in (
                (["--modes=bogus"], "unknown mode(s) bogus"),
                (["--shard_binary=/elsewhere/many_gtests",
                  "--modes=taskfork_sharded"],
                 "--shard_binary must be one of the --binary flags"),
                (["--shards=1", "--modes=taskfork_sharded"],
                 "--shards must be at least 2"),
                (["--env=NOEQUALS"], "--env wants KEY=VALUE"),
                (["--binary=/nonexistent/gtest"],
                 "/nonexistent/gtest is not an executable file"),
                (["--binary=" + sample(1)],
                 "two binaries have the same file name"),
                (["--repetitions=0"], "--repetitions must be at least 1")):
            proc = harness(*args)
            self.assertEqual(proc.returncode, 2, args)
            self.assertIn(message, proc.stderr, args)

    def test_many_gtests_rejects_a_bad_count(self):
        for value in ("x", "0", "12abc", "99999999999"):
            proc = subprocess.run([MANY], capture_output=True, text=True,
                                  env=dict(os.environ, MANY_GTESTS_TESTS=value))
            self.assertEqual(proc.returncode, 2, value)
            self.assertIn('many_gtests: MANY_GTESTS_TESTS="%s" is not a number '
                          'of tests in 1..1000000' % value, proc.stderr)
        proc = subprocess.run([MANY, "--gtest_list_tests"], capture_output=True,
                              text=True, check=True,
                              env=dict(os.environ, MANY_GTESTS_TESTS="7"))
        self.assertEqual(proc.stdout.count("  Passes/"), 7)
        env = dict(os.environ)
        env.pop("MANY_GTESTS_TESTS", None)
        proc = subprocess.run([MANY, "--gtest_list_tests"], capture_output=True,
                              text=True, check=True, env=env)
        self.assertEqual(proc.stdout.count("  Passes/"), 3000)


class FakeMode:

    def __init__(self, name, counts):
        self.name = name
        self.counts = list(counts)

    def run(self):
        return self.counts.pop(0)


class MeasureTest(unittest.TestCase):

    def test_alternates_and_returns_each_run(self):
        order = []

        class Recording(FakeMode):
            def run(self):
                order.append(self.name)
                return 5

        walls, tests = gtest_ctest.measure(
            [Recording("a", []), Recording("b", []), Recording("c", [])], 3)
        self.assertEqual(tests, 5)
        self.assertEqual(order, ["a", "b", "c", "b", "c", "a", "c", "a", "b"])
        self.assertEqual({k: len(v) for k, v in walls.items()},
                         {"a": 3, "b": 3, "c": 3})

    def test_modes_that_ran_different_numbers_fail_naming_them(self):
        with self.assertRaises(gtest_ctest.HarnessError) as e:
            gtest_ctest.measure([FakeMode("taskfork", [28]),
                                 FakeMode("ctest", [27])], 1)
        self.assertEqual(str(e.exception), "the modes ran different numbers "
                         "of tests: taskfork 28, ctest 27")

    def test_a_mode_whose_count_changes_fails_naming_it(self):
        with self.assertRaises(gtest_ctest.HarnessError) as e:
            gtest_ctest.measure([FakeMode("direct", [28, 29])], 2)
        self.assertEqual(str(e.exception), "direct ran 28 tests, then 29")


class ParsersTest(unittest.TestCase):

    def test_job_spec_shards_only_the_shard_binary(self):
        spec = gtest_ctest.job_spec(["/a/many", "/b/s1"], "/a/many", 3)
        self.assertIn('task { id: "many" command { argv: "/a/many" gtest: true '
                      'shards: 3 } }', spec)
        self.assertIn('task { id: "s1" command { argv: "/b/s1" gtest: true } }',
                      spec)
        self.assertIn("max_parallel: 2", spec)
        self.assertNotIn("shards", gtest_ctest.job_spec(["/a/many"], "", 0))
        self.assertIn(r'argv: "/a \"b\"\\c"',
                      gtest_ctest.job_spec(['/a "b"\\c'], "", 0))

    def test_ctest_summary(self):
        self.assertEqual(gtest_ctest.parse_ctest_summary(
            "...\n100% tests passed, 0 tests failed out of 3052\n", "x"), 3052)
        with self.assertRaises(gtest_ctest.HarnessError) as e:
            gtest_ctest.parse_ctest_summary(
                "99% tests passed, 1 tests failed out of 3\n", "ctest")
        self.assertIn("ctest: 1 of 3 tests failed", str(e.exception))
        with self.assertRaises(gtest_ctest.HarnessError) as e:
            gtest_ctest.parse_ctest_summary("No tests were found!!!", "ctest")
        self.assertIn("ctest: no summary line", str(e.exception))

    def test_gtest_reports(self):
        with tempfile.TemporaryDirectory() as d:
            good = os.path.join(d, "good.json")
            with open(good, "w") as f:
                json.dump({"tests": 4, "failures": 0, "errors": 0}, f)
            bad = os.path.join(d, "bad.json")
            with open(bad, "w") as f:
                json.dump({"tests": 4, "failures": 1, "errors": 0}, f)
            self.assertEqual(gtest_ctest.count_gtest_json([good, good], "x"), 8)
            with self.assertRaises(gtest_ctest.HarnessError) as e:
                gtest_ctest.count_gtest_json([good, bad], "direct")
            self.assertIn("direct: 1 of 4 tests failed in " + bad,
                          str(e.exception))
            missing = os.path.join(d, "missing.json")
            with self.assertRaises(gtest_ctest.HarnessError) as e:
                gtest_ctest.count_gtest_json([missing], "ctest")
            self.assertIn("ctest: no GoogleTest JSON in " + missing,
                          str(e.exception))
            xml = os.path.join(d, "t.xml")
            with open(xml, "w") as f:
                f.write('<testsuites tests="1" failures="0" errors="0"/>')
            self.assertEqual(gtest_ctest.count_gtest_xml([xml], "x"), 1)
            with open(xml, "w") as f:
                f.write('<testsuites tests="1" failures="1" errors="0"/>')
            with self.assertRaises(gtest_ctest.HarnessError) as e:
                gtest_ctest.count_gtest_xml([xml], "ctest_discover")
            self.assertIn("ctest_discover: 1 of 1 tests failed", str(e.exception))
            with open(xml, "w") as f:
                f.write("<testsuites")
            with self.assertRaises(gtest_ctest.HarnessError) as e:
                gtest_ctest.count_gtest_xml([xml], "ctest_discover")
            self.assertIn("ctest_discover: no GoogleTest XML in " + xml,
                          str(e.exception))

    def test_taskfork_results(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "results.json")
            with open(path, "w") as f:
                json.dump({"report": {"summary": {"passed": 3, "total": 4}}}, f)
            with self.assertRaises(gtest_ctest.HarnessError) as e:
                gtest_ctest.count_taskfork_results(path, "taskfork")
            self.assertIn("taskfork: 1 of 4 tests did not pass (%s)" % path,
                          str(e.exception))
            with open(path, "w") as f:
                f.write("{}")
            with self.assertRaises(gtest_ctest.HarnessError) as e:
                gtest_ctest.count_taskfork_results(path, "taskfork")
            self.assertIn("taskfork: cannot read the summary of " + path,
                          str(e.exception))


if __name__ == "__main__":
    unittest.main()

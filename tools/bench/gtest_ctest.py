#!/usr/bin/env python3
"""GoogleTest suites run by taskfork's runner and by `ctest -j2`.

  gtest_ctest.py --runner=PATH --binary=PATH [--binary=PATH ...]
                 [--shard_binary=PATH --shards=2] [--repetitions=5]
                 [--modes=taskfork,taskfork_sharded,ctest,ctest_discover,direct]

The same GoogleTest binaries, two at a time, in each mode:
  taskfork          the runner (--runner) on a generated job spec: one
                    `gtest: true` command task per binary, max_parallel 2
  taskfork_sharded  the same, with --shard_binary's task split into
                    `shards: N` processes (GTEST_TOTAL_SHARDS/SHARD_INDEX)
  ctest             `ctest -j2` on a CMake project with one add_test per
                    binary
  ctest_discover    `ctest -j2` on a CMake project where CMake's own
                    gtest_discover_tests (GoogleTest module, DISCOVERY_MODE
                    PRE_TEST on imported executables: the very same binaries)
                    made one ctest test per GoogleTest test
  direct            the binaries started directly, two at a time, by this
                    script (the floor: no harness at all)

Every mode has each test process write a GoogleTest report (JSON; XML under
gtest_discover_tests, whose XML_OUTPUT_DIR gives every test its own file), so
each does the same work per test and the counts are checked from them. Setup (CMake configure, test
discovery, spec files) is outside the timing. The modes alternate within each
repetition, in a rotating order; the figures are medians.

Prints, per mode, `<mode> wall <s> s per test <ns> ns tests <n>`. Exits 1,
naming the mode, when a mode fails, a test fails, or the modes ran different
numbers of tests.

GoogleTest's sample9 has a test that fails on purpose (CustomOutputTest.Fails,
which its own main() discounts); every mode runs with GTEST_FILTER excluding
it (--gtest_filter), so that a passing run means every test passed.
"""

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from typing import Dict, List, Sequence, Tuple

MODES = ("taskfork", "taskfork_sharded", "ctest", "ctest_discover", "direct")

# The test that fails on purpose in GoogleTest's sample9_unittest.
GTEST_FILTER = "-CustomOutputTest.Fails"


class HarnessError(Exception):
    """A mode failed; the message names it and what to look at."""


def test_name(binary: str) -> str:
    return os.path.basename(binary)


def tail(text: str, lines: int = 20) -> str:
    return "\n".join("    " + l for l in text.rstrip().splitlines()[-lines:])


def run(argv: Sequence[str], what: str, cwd: str, timeout_s: float,
        env: Dict[str, str]) -> str:
    """Runs argv; returns its output. Raises HarnessError naming `what` on a
    non-zero exit, a timeout or a failure to start."""
    try:
        proc = subprocess.run(list(argv), cwd=cwd, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise HarnessError("%s did not finish within %.0f s: %s" %
                           (what, timeout_s, " ".join(argv)))
    except OSError as e:
        raise HarnessError("%s could not start %s: %s" % (what, argv[0], e))
    output = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise HarnessError("%s exited with status %d: %s\n%s" % (
            what, proc.returncode, " ".join(argv), tail(output)))
    return output


# ---------------------------------------------------------------------------
# Counting what ran.


def count_gtest_json(paths: Sequence[str], what: str) -> int:
    """Tests run in --gtest_output=json files; HarnessError on a missing or
    unreadable file or a failed test."""
    total = 0
    for path in paths:
        try:
            with open(path) as f:
                data = json.load(f)
            tests, failures = int(data["tests"]), int(data["failures"])
            errors = int(data.get("errors", 0))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise HarnessError("%s: no GoogleTest JSON in %s (%s)" %
                               (what, path, e))
        if failures or errors:
            raise HarnessError("%s: %d of %d tests failed in %s" %
                               (what, failures + errors, tests, path))
        total += tests
    return total


def count_taskfork_results(results_json: str, what: str) -> int:
    """Passed sections (one per GoogleTest test) of a runner's results.json;
    HarnessError if any section did not pass."""
    try:
        with open(results_json) as f:
            summary = json.load(f)["report"]["summary"]
        passed, total = int(summary["passed"]), int(summary["total"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise HarnessError("%s: cannot read the summary of %s (%s)" %
                           (what, results_json, e))
    if passed != total:
        raise HarnessError("%s: %d of %d tests did not pass (%s)" %
                           (what, total - passed, total, results_json))
    return total


def count_gtest_xml(paths: Sequence[str], what: str) -> int:
    """Tests run in --gtest_output=xml files, as count_gtest_json."""
    total = 0
    for path in paths:
        try:
            root = ElementTree.parse(path).getroot()
            tests, failures = int(root.get("tests")), int(root.get("failures"))
            errors = int(root.get("errors", 0))
        except (OSError, ElementTree.ParseError, TypeError, ValueError) as e:
            raise HarnessError("%s: no GoogleTest XML in %s (%s)" %
                               (what, path, e))
        if failures or errors:
            raise HarnessError("%s: %d of %d tests failed in %s" %
                               (what, failures + errors, tests, path))
        total += tests
    return total


_CTEST_SUMMARY = re.compile(
    r"(\d+)% tests passed, (\d+) tests failed out of (\d+)")


def parse_ctest_summary(output: str, what: str) -> int:
    """The number of tests in ctest's summary line, all of which passed."""
    m = _CTEST_SUMMARY.search(output)
    if m is None:
        raise HarnessError("%s: no summary line in ctest's output:\n%s" %
                           (what, tail(output)))
    failed, total = int(m.group(2)), int(m.group(3))
    if failed:
        raise HarnessError("%s: %d of %d tests failed:\n%s" %
                           (what, failed, total, tail(output)))
    return total


# ---------------------------------------------------------------------------
# The modes: each has a setup (untimed) and a run (timed) that returns the
# number of GoogleTest tests that ran, all passed.


def job_spec(binaries: Sequence[str], shard_binary: str, shards: int) -> str:
    lines = ["# Generated by tools/bench/gtest_ctest.py.",
             'name: "gtest_suites"', "max_parallel: 2",
             'default_timeout: "10m"']
    for b in binaries:
        sharded = " shards: %d" % shards if b == shard_binary else ""
        # JSON's string escapes are valid protobuf text format.
        lines.append("task { id: %s command { argv: %s gtest: true%s } }" %
                     (json.dumps(test_name(b)), json.dumps(b), sharded))
    return "\n".join(lines) + "\n"


class Mode:
    name = ""

    def __init__(self, args, scratch: str, env: Dict[str, str]):
        self.args = args
        self.dir = os.path.join(scratch, self.name)
        self.env = env
        os.makedirs(self.dir)

    def setup(self) -> None:
        pass

    def run(self) -> int:
        raise NotImplementedError


class Taskfork(Mode):
    name = "taskfork"
    shards = 0

    def setup(self):
        self.spec = os.path.join(self.dir, "gtest_suites.textpb")
        with open(self.spec, "w") as f:
            f.write(job_spec(self.args.binary,
                             self.args.shard_binary if self.shards else "",
                             self.shards))
        self.runs = os.path.join(self.dir, "runs")

    def run(self):
        shutil.rmtree(self.runs, ignore_errors=True)
        run([self.args.runner, "--runinfo_dir=" + self.runs, "--no_progress",
             self.spec], self.name, self.dir, self.args.timeout, self.env)
        found = [d for d in os.listdir(self.runs) if d != "latest"]
        if len(found) != 1:
            raise HarnessError("%s: expected one run directory in %s, found %s"
                               % (self.name, self.runs, found))
        return count_taskfork_results(
            os.path.join(self.runs, found[0], "results.json"), self.name)


class TaskforkSharded(Taskfork):
    name = "taskfork_sharded"

    @property
    def shards(self):
        return self.args.shards


def cmake_quote(s: str) -> str:
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


class Ctest(Mode):
    """ctest -j2 over a CMake project (configured once, untimed)."""
    name = "ctest"

    def cmake_lists(self) -> str:
        lines = ["cmake_minimum_required(VERSION 3.16)",
                 "project(gtest_suites NONE)", "enable_testing()"]
        for b in self.args.binary:
            lines.append("add_test(NAME %s COMMAND %s %s)" % (
                test_name(b), cmake_quote(b), cmake_quote(
                    "--gtest_output=json:" + self.json_path(b))))
        return "\n".join(lines) + "\n"

    def json_path(self, binary: str) -> str:
        return os.path.join(self.dir, "json", test_name(binary) + ".json")

    def setup(self):
        source = os.path.join(self.dir, "src")
        self.build = os.path.join(self.dir, "build")
        os.makedirs(source)
        with open(os.path.join(source, "CMakeLists.txt"), "w") as f:
            f.write(self.cmake_lists())
        run([self.args.cmake, "-S", source, "-B", self.build],
            self.name + " (cmake configure)", self.dir, self.args.timeout,
            self.env)
        # -N lists the tests without running them; for ctest_discover it
        # also runs the discovery (each binary's --gtest_list_tests) once.
        output = run([self.args.ctest, "-N"], self.name + " (ctest -N)",
                     self.build, self.args.timeout, self.env)
        m = re.search(r"Total Tests: (\d+)", output)
        if m is None or int(m.group(1)) == 0:
            raise HarnessError("%s: ctest -N lists no tests:\n%s" %
                               (self.name, tail(output)))

    def ctest(self) -> str:
        return run([self.args.ctest, "-j2", "--no-tests=error"], self.name,
                   self.build, self.args.timeout, self.env)

    def run(self):
        shutil.rmtree(os.path.join(self.dir, "json"), ignore_errors=True)
        ran = parse_ctest_summary(self.ctest(), self.name)
        if ran != len(self.args.binary):
            raise HarnessError("%s: ctest ran %d tests for %d binaries" %
                               (self.name, ran, len(self.args.binary)))
        return count_gtest_json([self.json_path(b) for b in self.args.binary],
                                self.name)


class CtestDiscover(Ctest):
    name = "ctest_discover"

    def cmake_lists(self) -> str:
        lines = ["cmake_minimum_required(VERSION 3.16)",
                 "project(gtest_suites NONE)", "enable_testing()",
                 "include(GoogleTest)"]
        for b in self.args.binary:
            target = test_name(b)
            lines += [
                "add_executable(%s IMPORTED)" % target,
                "set_property(TARGET %s PROPERTY IMPORTED_LOCATION %s)" % (
                    target, cmake_quote(b)),
                # XML_OUTPUT_DIR: each test writes <suite>.<test>.xml there.
                "gtest_discover_tests(%s DISCOVERY_MODE PRE_TEST "
                "DISCOVERY_TIMEOUT 60 XML_OUTPUT_DIR %s)" % (
                    target, cmake_quote(self.xml_dir())),
            ]
        return "\n".join(lines) + "\n"

    def xml_dir(self) -> str:
        return os.path.join(self.dir, "xml")

    def run(self):
        shutil.rmtree(self.xml_dir(), ignore_errors=True)
        ran = parse_ctest_summary(self.ctest(), self.name)
        # Test names with '/' (parameterized tests) make subdirectories.
        files = [os.path.join(d, f) for d, _, names in os.walk(self.xml_dir())
                 for f in names]
        in_xml = count_gtest_xml(files, self.name)
        if in_xml != ran or len(files) != ran:
            raise HarnessError(
                "%s: ctest ran %d tests, their %d XML reports hold %d" %
                (self.name, ran, len(files), in_xml))
        return ran


class Direct(Mode):
    """The binaries started by this script, at most two at a time."""
    name = "direct"

    def run_one(self, binary: str) -> str:
        path = os.path.join(self.dir, "json", test_name(binary) + ".json")
        run([binary, "--gtest_output=json:" + path], self.name, self.dir,
            self.args.timeout, self.env)
        return path

    def run(self):
        shutil.rmtree(os.path.join(self.dir, "json"), ignore_errors=True)
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            paths = list(pool.map(self.run_one, self.args.binary))
        return count_gtest_json(paths, self.name)


MODE_CLASSES = {m.name: m for m in (Taskfork, TaskforkSharded, Ctest,
                                    CtestDiscover, Direct)}


def measure(modes: Sequence[Mode], repetitions: int, progress=None
            ) -> Tuple[Dict[str, List[float]], int]:
    """Runs every mode `repetitions` times, alternating in a rotating order;
    returns (mode -> wall seconds of each run, tests per run). HarnessError
    if the modes (or two runs of one mode) ran different numbers of tests."""
    walls: Dict[str, List[float]] = {m.name: [] for m in modes}
    counts: Dict[str, int] = {}
    for rep in range(repetitions):
        order = list(modes[rep % len(modes):]) + list(modes[:rep % len(modes)])
        for mode in order:
            started = time.monotonic()
            ran = mode.run()
            walls[mode.name].append(time.monotonic() - started)
            if progress:
                progress("%s: %d tests in %.2f s" % (mode.name, ran,
                                                     walls[mode.name][-1]))
            if mode.name in counts and counts[mode.name] != ran:
                raise HarnessError("%s ran %d tests, then %d" %
                                   (mode.name, counts[mode.name], ran))
            counts[mode.name] = ran
            if len(set(counts.values())) > 1:
                raise HarnessError("the modes ran different numbers of tests: "
                                   + ", ".join("%s %d" % kv
                                               for kv in counts.items()))
    return walls, (next(iter(counts.values())) if counts else 0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--runner", required=True,
                        help="the taskfork runner binary (//runner)")
    parser.add_argument("--binary", action="append", required=True,
                        help="a GoogleTest binary (repeat the flag)")
    parser.add_argument("--shard_binary", default="",
                        help="the --binary that taskfork_sharded shards")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated, of: " + ", ".join(MODES))
    parser.add_argument("--gtest_filter", default=GTEST_FILTER,
                        help="GTEST_FILTER of every mode (default: %(default)s)")
    parser.add_argument("--env", action="append", default=[],
                        help="KEY=VALUE added to every mode's environment "
                        "(repeat the flag)")
    parser.add_argument("--cmake", default="cmake")
    parser.add_argument("--ctest", default="ctest")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds for each step")
    parser.add_argument("--verbose", action="store_true",
                        help="print each run's test count and wall time")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODE_CLASSES]
    if unknown or not modes:
        parser.error("--modes: unknown mode(s) %s (known: %s)" %
                     (", ".join(unknown) or "(none given)", ", ".join(MODES)))
    if args.repetitions < 1:
        parser.error("--repetitions must be at least 1")
    args.binary = [os.path.abspath(b) for b in args.binary]
    args.runner = os.path.abspath(args.runner)
    if args.shard_binary:
        args.shard_binary = os.path.abspath(args.shard_binary)
    for b in [args.runner] + args.binary:
        if not os.access(b, os.X_OK):
            parser.error("%s is not an executable file" % b)
    if "taskfork_sharded" in modes:
        if args.shard_binary not in args.binary:
            parser.error("--shard_binary must be one of the --binary flags "
                         "(the taskfork_sharded mode shards it)")
        if args.shards < 2:
            parser.error("--shards must be at least 2")
    if len({test_name(b) for b in args.binary}) != len(args.binary):
        parser.error("--binary: two binaries have the same file name")

    env = dict(os.environ)
    env["GTEST_FILTER"] = args.gtest_filter
    for item in args.env:
        key, equals, value = item.partition("=")
        if not key or not equals:
            parser.error("--env wants KEY=VALUE, got %r" % item)
        env[key] = value
    progress = ((lambda m: print(m, file=sys.stderr, flush=True))
                if args.verbose else None)
    with tempfile.TemporaryDirectory(prefix="taskfork_gtest_ctest.") as scratch:
        try:
            instances = [MODE_CLASSES[m](args, scratch, env) for m in modes]
            for mode in instances:
                mode.setup()
            walls, tests = measure(instances, args.repetitions, progress)
        except HarnessError as e:
            print("gtest_ctest: %s" % e, file=sys.stderr)
            return 1
    print("suite: %d binaries, %d tests, %d repetitions (medians)" %
          (len(args.binary), tests, args.repetitions))
    for name in modes:
        wall = statistics.median(walls[name])
        print("%-17s wall %.4f s  per test %.0f ns  tests %d" %
              (name, wall, wall / tests * 1e9, tests))
    return 0


if __name__ == "__main__":
    sys.exit(main())

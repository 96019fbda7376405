#!/usr/bin/env python3
"""compare: every taskfork benchmark next to its peer and its physical floor.

  tools/bazel run -c opt //tools/bench:compare              # full: medians of 5
  tools/bazel run -c opt //tools/bench:compare -- --quick   # about two minutes

Runs each package's Google Benchmark binary (built by Bazel as runfiles of
this target, in whatever -c the command line chose: figures need `-c opt`,
and the table header warns when the binaries are not optimized) with JSON
output, the Python peer scripts in tools/bench/ (multiprocessing, pickle)
and tools/bench/gtest_ctest.py (GoogleTest suites: the runner against
ctest -j2), one after the other, then prints ONE table: figure, taskfork, peer,
floor, taskfork/peer, taskfork/floor, target and whether it is met, under a
header naming the machine, the load average before and after, the date and
the git commit. Full mode also writes the table as Markdown to
docs/BENCHMARKS.md in the workspace (--output changes the path).

Timing never fails the run. A benchmark binary that crashes, exits non-zero,
reports an error (SkipWithError) or lacks a benchmark the table needs, and a
peer script that fails or prints something unparseable, make it exit 1 after
printing what it could, naming what failed.
"""

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

WORKSPACE = "taskfork"

# The benchmark binaries: key -> runfiles path (under the workspace).
BINARIES = {
    "serialize": "serialize/serialize_benchmark",
    "fork": "fork/process_benchmark",
    "ipc": "ipc/ipc_benchmark",
    "tasklog": "tasklog/tasklog_benchmark",
    "reporter": "reporter/reporter_benchmark",
    "runner": "runner/runner_benchmark",
}

# The Python peer scripts: key -> runfiles path.
PEER_SCRIPTS = {
    "pickle": "tools/bench/serialize_pickle.py",
    "fork_mp": "tools/bench/fork_multiprocessing.py",
    "ipc_mp": "tools/bench/ipc_multiprocessing.py",
    "gtest": "tools/bench/gtest_ctest.py",
}

# The GoogleTest suites gtest_ctest.py runs with the runner and with ctest:
# runfiles paths of the runner, of GoogleTest's own samples (repository
# @googletest_samples) and of the binary of thousands of trivial tests, which
# the sharded mode splits.
GTEST_RUNNER = "taskfork/runner/runner"
GTEST_MANY = "taskfork/tools/bench/many_gtests"
GTEST_SUITES = [GTEST_MANY] + [
    "googletest_samples/sample%d_unittest" % n for n in range(1, 11)]

# gtest_ctest.py's modes, in its order; each prints a wall time and the wall
# time per test.
GTEST_MODES = ("taskfork", "taskfork_sharded", "ctest", "ctest_discover",
               "direct")

TIME = "time"  # nanoseconds per operation: lower is better
RATE = "rate"  # per second: higher is better


class Failure(Exception):
    """A benchmark binary or peer script failed; the message names it."""


# ---------------------------------------------------------------------------
# Run settings.


@dataclasses.dataclass
class Settings:
    quick: bool
    benchmark_args: List[str]
    runner_tasks: int
    runner_args: List[str]
    peer_args: Dict[str, List[str]]
    timeout_s: float

    def describe(self) -> str:
        return ("benchmarks `%s`; runner_benchmark `--tasks=%d %s`; %s" % (
            " ".join(self.benchmark_args), self.runner_tasks,
            " ".join(self.runner_args),
            "; ".join("%s `%s`" % (os.path.basename(PEER_SCRIPTS[k]),
                                   " ".join(v))
                      for k, v in self.peer_args.items())))


def make_settings(quick: bool, runner_tasks: Optional[int] = None) -> Settings:
    if quick:
        return Settings(
            quick=True,
            benchmark_args=["--benchmark_min_time=0.1",
                            "--benchmark_repetitions=1"],
            runner_tasks=runner_tasks or 200,
            runner_args=["--benchmark_repetitions=1"],
            peer_args={
                "gtest": ["--repetitions=1", "--env=MANY_GTESTS_TESTS=300"],
                "pickle": ["--repeat", "3", "--number", "2000"],
                "fork_mp": ["--repeat", "2", "--number", "20",
                            "--pcall_number", "1"],
                "ipc_mp": ["--seconds", "0.5"],
            },
            timeout_s=300)
    return Settings(
        quick=False,
        benchmark_args=["--benchmark_min_time=0.5",
                        "--benchmark_repetitions=5",
                        "--benchmark_enable_random_interleaving=true"],
        runner_tasks=runner_tasks or 1000,
        runner_args=["--benchmark_repetitions=3",
                     "--benchmark_enable_random_interleaving=true"],
        peer_args={
            "gtest": ["--repetitions=3"],
            "pickle": ["--repeat", "7", "--number", "20000"],
            "fork_mp": ["--repeat", "5", "--number", "200",
                        "--pcall_number", "5"],
            "ipc_mp": ["--seconds", "3"],
        },
        timeout_s=3600)


# ---------------------------------------------------------------------------
# Google Benchmark JSON.

_NAME_MODIFIERS = re.compile(
    r"/(real_time|manual_time|iterations:\d+|repeats:\d+|min_time:[^/]+)")
_TIME_UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def benchmark_key(name: str) -> str:
    """BM_X/threads:4/real_time -> BM_X/threads:4 (modifiers that do not
    change what is measured are dropped; arguments and threads are kept)."""
    return _NAME_MODIFIERS.sub("", name)


@dataclasses.dataclass
class BenchmarkRun:
    """One benchmark's figures: the median over repetitions, or its one run."""
    name: str
    real_ns: float
    cpu_ns: float
    fields: Dict[str, float]  # items_per_second, bytes_per_second, counters
    repetitions: int

    def get(self, field: str) -> float:
        if field == "real_ns":
            return self.real_ns
        if field == "cpu_ns":
            return self.cpu_ns
        if field not in self.fields:
            raise KeyError("%s has no field %r (has %s)" %
                           (self.name, field, ", ".join(sorted(self.fields))))
        return self.fields[field]


_NOT_FIELDS = {
    "name", "family_index", "per_family_instance_index", "run_name",
    "run_type", "repetitions", "repetition_index", "threads", "iterations",
    "real_time", "cpu_time", "time_unit", "aggregate_name", "aggregate_unit",
    "error_occurred", "error_message", "label",
}


def parse_benchmark_json(text: str, what: str) -> Tuple[dict, Dict[str, BenchmarkRun]]:
    """Parses --benchmark_out_format=json output: (context, key -> run).

    With repetitions, takes the "median" aggregate; without, the iteration
    run. Raises Failure naming `what` if any run reports an error or the
    output is not benchmark JSON.
    """
    try:
        data = json.loads(text)
        entries = data["benchmarks"]
        context = data.get("context", {})
    except (ValueError, KeyError, TypeError) as e:
        raise Failure("%s: output is not Google Benchmark JSON (%s)" % (what, e))
    errors = ["%s: %s" % (b.get("name"), b.get("error_message", "error"))
              for b in entries if b.get("error_occurred")]
    if errors:
        raise Failure("%s reported errors: %s" % (what, "; ".join(sorted(set(errors)))))
    iterations: Dict[str, List[dict]] = {}
    medians: Dict[str, dict] = {}
    for b in entries:
        key = benchmark_key(b.get("run_name", b["name"]))
        if b.get("run_type", "iteration") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[key] = b
        else:
            iterations.setdefault(key, []).append(b)
    runs: Dict[str, BenchmarkRun] = {}
    for key, its in iterations.items():
        b = medians.get(key, its[0])
        scale = _TIME_UNIT_NS[b.get("time_unit", "ns")]
        fields = {k: float(v) for k, v in b.items()
                  if k not in _NOT_FIELDS and isinstance(v, (int, float))}
        runs[key] = BenchmarkRun(name=key, real_ns=b["real_time"] * scale,
                                 cpu_ns=b["cpu_time"] * scale, fields=fields,
                                 repetitions=len(its))
    return context, runs


def run_benchmark(what: str, binary: str, args: Sequence[str],
                  timeout_s: float, log=None) -> Tuple[dict, Dict[str, BenchmarkRun]]:
    """Runs one benchmark binary with JSON output to a file; returns
    parse_benchmark_json's result. Raises Failure on a crash, a non-zero exit,
    a timeout or a reported error.

    JSON goes to --benchmark_out, not stdout: the binaries print their own
    ratio summaries through custom console reporters, which ignore
    --benchmark_format."""
    with tempfile.TemporaryDirectory(prefix="taskfork_compare.") as scratch:
        out = os.path.join(scratch, "out.json")
        argv = [binary, "--benchmark_out=" + out,
                "--benchmark_out_format=json"] + list(args)
        try:
            proc = subprocess.run(argv, cwd=scratch, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout_s,
                                  env=child_environment())
        except subprocess.TimeoutExpired:
            raise Failure("%s did not finish within %.0f s: %s" %
                          (what, timeout_s, " ".join(argv)))
        except OSError as e:
            raise Failure("%s could not start: %s" % (what, e))
        output = proc.stdout.decode("utf-8", "replace")
        if log is not None:
            log.write(output)
        if proc.returncode != 0:
            raise Failure("%s %s: %s\n%s" % (
                what, describe_exit(proc.returncode), " ".join(argv),
                tail(output)))
        try:
            with open(out) as f:
                text = f.read()
        except OSError as e:
            raise Failure("%s wrote no JSON (%s)" % (what, e))
    return parse_benchmark_json(text, what)


def child_environment() -> Dict[str, str]:
    """This process's environment plus RUNFILES_DIR, so a binary finds its
    own data (runner_benchmark's peer script) in this target's runfiles."""
    env = dict(os.environ)
    root = runfiles_root(required=False)
    if root and "RUNFILES_DIR" not in env and "TEST_SRCDIR" not in env:
        env["RUNFILES_DIR"] = root
    return env


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return "was killed by %s" % signal.Signals(-code).name
        except ValueError:
            return "was killed by signal %d" % -code
    return "exited with status %d" % code


def tail(text: str, lines: int = 30) -> str:
    return "\n".join("    " + l for l in text.rstrip().splitlines()[-lines:])


# ---------------------------------------------------------------------------
# The Python peers: each script prints a small text report; these patterns
# read it (compare_test runs every script and checks they still match).

_NUMBER = r"([0-9.]+(?:[eE][-+]?[0-9]+)?)"

PEER_PATTERNS: Dict[str, Dict[str, Tuple[str, float]]] = {
    # metric -> (regex with one number, scale to ns or to per-second)
    "pickle": {
        "dumps_ns": (r"pickle\.dumps\s+real\s+" + _NUMBER + r" ns", 1.0),
        "loads_ns": (r"pickle\.loads\s+real\s+" + _NUMBER + r" ns", 1.0),
        "round_trip_ns": (r"round trip\s+real\s+" + _NUMBER + r" ns", 1.0),
        "round_trip_cpu_ns": (r"round trip\s+real\s+[0-9.]+ ns\s+cpu\s+" +
                              _NUMBER + r" ns", 1.0),
    },
    "fork_mp": {
        "start_join_ns": (r"Process start\+join\s+real\s+" + _NUMBER + r" us", 1e3),
        "pcall_100_ns": (r"pcall of 100 \(Process\+Queue\)\s+real\s+" + _NUMBER +
                         r" us", 1e3),
    },
    "gtest": dict(
        [("tests_count", (r"suite: \d+ binaries, " + _NUMBER + r" tests", 1.0))] +
        [(mode + "_per_test_ns", (r"(?m)^" + mode + r"\s+wall [0-9.]+ s\s+"
                                  r"per test " + _NUMBER + r" ns", 1.0))
         for mode in GTEST_MODES] +
        [(mode + "_wall_ns", (r"(?m)^" + mode + r"\s+wall " + _NUMBER + " s",
                              1e9))
         for mode in GTEST_MODES]),
    "ipc_mp": {
        "queue_64b_per_s": (r"python_multiprocessing_Queue_64B\s+" + _NUMBER +
                            r" items/s", 1.0),
        "pipe_round_trip_per_s": (r"python_multiprocessing_Pipe_RoundTrip_64B\s+" +
                                  _NUMBER + r" items/s", 1.0),
    },
}


def parse_peer_output(key: str, text: str, what: str,
                      metrics: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """The `metrics` (default: all of PEER_PATTERNS[key]) in a peer script's
    output; Failure naming the first one missing."""
    values = {}
    for metric, (pattern, scale) in PEER_PATTERNS[key].items():
        if metrics is not None and metric not in metrics:
            continue
        m = re.search(pattern, text)
        if m is None:
            raise Failure("%s: no %s in its output (pattern %r):\n%s" %
                          (what, metric, pattern, tail(text)))
        values[metric] = float(m.group(1)) * scale
    return values


def run_peer(key: str, script: str, args: Sequence[str], timeout_s: float,
             log=None, metrics: Optional[Sequence[str]] = None) -> Dict[str, float]:
    what = os.path.basename(script)
    argv = [sys.executable, script] + list(args)
    with tempfile.TemporaryDirectory(prefix="taskfork_compare.") as scratch:
        try:
            proc = subprocess.run(argv, cwd=scratch, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise Failure("%s did not finish within %.0f s" % (what, timeout_s))
    output = proc.stdout.decode("utf-8", "replace")
    if log is not None:
        log.write(output)
    if proc.returncode != 0:
        raise Failure("%s %s: %s\n%s" % (what, describe_exit(proc.returncode),
                                         " ".join(argv), tail(output)))
    return parse_peer_output(key, output, what, metrics)


def gtest_modes(figures: Sequence["Figure"]) -> List[str]:
    """The gtest_ctest.py modes the figures' sources name, in its order."""
    metrics = {source.names[0] for f in figures
               for source in (f.taskfork, f.peer, f.floor)
               if source is not None and source.peer and source.binary == "gtest"}
    return [m for m in GTEST_MODES if m + "_per_test_ns" in metrics or
            m + "_wall_ns" in metrics]


def gtest_args(modes: Sequence[str]) -> Tuple[List[str], List[str]]:
    """gtest_ctest.py's arguments for `modes` (runfiles paths of the runner
    and the suites) and the metrics its output then has."""
    root = runfiles_root()
    args = ["--runner=" + os.path.join(root, GTEST_RUNNER),
            "--modes=" + ",".join(modes),
            "--shard_binary=" + os.path.join(root, GTEST_MANY)]
    args += ["--binary=" + os.path.join(root, b) for b in GTEST_SUITES]
    metrics = ["tests_count"] + [m + suffix for m in modes
                                 for suffix in ("_per_test_ns", "_wall_ns")]
    return args, metrics


# ---------------------------------------------------------------------------
# The figures.


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a number comes from: the sum of fields of benchmark runs, or a
    peer script metric (`binary` is then the peer key)."""
    binary: str
    names: Tuple[str, ...]
    field: str = "real_ns"
    peer: bool = False
    label: str = ""  # short name shown next to the value (peer / floor)

    def value(self, results: "Results") -> Optional[float]:
        if self.peer:
            metrics = results.peers.get(self.binary)
            return None if metrics is None else metrics[self.names[0]]
        runs = results.benchmarks.get(self.binary)
        if runs is None:
            return None
        total = 0.0
        for name in self.names:
            if name not in runs:
                raise Failure("%s has no benchmark %s (it has %s)" % (
                    BINARIES[self.binary], name, ", ".join(sorted(runs))))
            total += runs[name].get(self.field)
        return total

    def describe(self) -> str:
        if self.peer:
            return "%s: %s" % (os.path.basename(PEER_SCRIPTS[self.binary]),
                               self.names[0])
        field = "" if self.field == "real_ns" else " " + self.field
        return " + ".join(self.names) + field


def bm(binary: str, *names: str, field: str = "real_ns", label: str = "") -> Source:
    return Source(binary, tuple(names), field, False, label)


def py(key: str, metric: str, label: str) -> Source:
    return Source(key, (metric,), "", True, label)


def inverse_rate(source: Source) -> Source:
    """Marks a per-second metric to be shown as time per item."""
    return dataclasses.replace(source, field=source.field + "@inverse")


@dataclasses.dataclass(frozen=True)
class Target:
    against: str  # "peer", "floor" (ratio taskfork/against) or "value"
    op: str       # "<", "<=" or ">="
    bound: float
    text: str

    def met(self, ratios: Dict[str, Optional[float]]) -> Optional[bool]:
        x = ratios.get(self.against)
        if x is None:
            return None
        if self.op == "<":
            return x < self.bound
        return x <= self.bound if self.op == "<=" else x >= self.bound


@dataclasses.dataclass(frozen=True)
class Figure:
    package: str
    name: str
    kind: str  # TIME (ns per operation) or RATE (per second)
    unit: str  # for RATE: "items", "bytes", "events", "lines"
    taskfork: Source
    peer: Optional[Source] = None
    floor: Optional[Source] = None
    targets: Tuple[Target, ...] = ()
    note: str = ""


FIGURES: Tuple[Figure, ...] = (
    # //serialize: the record is serialize/bench_record.h's (a name, a
    # callsign, a 4-string tuple) + 100 int64 +
    # a 10-entry map<string, double>.
    # One process, CPU-bound: CPU time, which a loaded machine inflates less
    # than wall-clock time.
    Figure("serialize", "record encode+decode vs protobuf (CPU)", TIME, "",
           bm("serialize", "BM_Encode_Record", "BM_Decode_Record", field="cpu_ns"),
           peer=bm("serialize", "BM_Protobuf_Encode_Record",
                   "BM_Protobuf_Decode_Record", field="cpu_ns", label="protobuf"),
           targets=(Target("peer", "<=", 1.0, "<= 1x protobuf"),)),
    Figure("serialize", "record encode+decode vs pickle (CPU)", TIME, "",
           bm("serialize", "BM_Encode_Record", "BM_Decode_Record", field="cpu_ns"),
           peer=py("pickle", "round_trip_cpu_ns", "Python pickle"),
           floor=bm("serialize", "BM_Build_Record", field="cpu_ns",
                    label="building the record by hand"),
           targets=(Target("peer", "<=", 0.1, "pickle >= 10x slower"),),
           note="pickle.dumps + pickle.loads, best of the script's repeats; "
                "the floor builds the decoded value with no parsing at all"),
    Figure("serialize", "record decode vs building it by hand (CPU)", TIME, "",
           bm("serialize", "BM_Decode_Record", field="cpu_ns"),
           floor=bm("serialize", "BM_Build_Record", field="cpu_ns",
                    label="building the record by hand")),
    Figure("serialize", "encode 1 MiB blob (CPU)", TIME, "",
           bm("serialize", "BM_Encode_Blob1M", field="cpu_ns"),
           floor=bm("serialize", "BM_Memcpy_Blob1M", field="cpu_ns",
                    label="memcpy"),
           targets=(Target("floor", "<=", 2.0, "<= 2x memcpy"),)),
    Figure("serialize", "decode 1 MiB blob (CPU)", TIME, "",
           bm("serialize", "BM_Decode_Blob1M", field="cpu_ns"),
           floor=bm("serialize", "BM_Memcpy_Blob1M", field="cpu_ns",
                    label="memcpy"),
           targets=(Target("floor", "<=", 2.0, "<= 2x memcpy"),)),
    # //fork.
    Figure("fork", "Process start+join (trivial child)", TIME, "",
           bm("fork", "BM_Process_StartJoin"),
           peer=py("fork_mp", "start_join_ns", "Python Process"),
           floor=bm("fork", "BM_RawFork_ExitWait", label="raw fork"),
           targets=(Target("floor", "<=", 1.3, "<= 1.3x raw fork"),
                    Target("peer", "<=", 1 / 15, "Python >= 15x slower"))),
    Figure("fork", "Process start+join, child returns the record", TIME, "",
           bm("fork", "BM_Process_StartJoin_Result"),
           floor=bm("fork", "BM_RawFork_ExitWait", label="raw fork")),
    Figure("fork", "Pcall of 100 trivial calls", TIME, "",
           bm("fork", "BM_Pcall_100"),
           peer=py("fork_mp", "pcall_100_ns", "Python Process+Queue"),
           floor=bm("fork", "BM_RawFork_100", label="100 raw forks"),
           targets=(Target("floor", "<=", 1.5, "<= 1.5x 100 raw forks"),)),
    # //ipc: two processes unless noted.
    Figure("ipc", "Queue 64 B, 1 producer -> 1 consumer", RATE, "items",
           bm("ipc", "BM_Queue_64B", field="items_per_second"),
           peer=bm("ipc", "BM_BoostMessageQueue_64B", field="items_per_second",
                   label="Boost message_queue"),
           floor=bm("ipc", "BM_RawRing_64B", field="items_per_second",
                    label="raw shm ring"),
           targets=(Target("peer", ">=", 2.0, ">= 2x Boost"),
                    Target("floor", ">=", 0.25, ">= 0.25x ring"))),
    Figure("ipc", "Queue 64 B vs Python Queue", RATE, "items",
           bm("ipc", "BM_Queue_64B", field="items_per_second"),
           peer=py("ipc_mp", "queue_64b_per_s", "Python Queue"),
           targets=(Target("peer", ">=", 50.0, ">= 50x Python"),)),
    Figure("ipc", "Pipe 64 B, one direction", RATE, "items",
           bm("ipc", "BM_Pipe_64B", field="items_per_second"),
           floor=bm("ipc", "BM_RawRing_64B", field="items_per_second",
                    label="raw shm ring"),
           targets=(Target("floor", ">=", 0.5, ">= 0.5x ring"),)),
    Figure("ipc", "Queue 64 B, 2 producers -> 2 consumers", RATE, "items",
           bm("ipc", "BM_Queue_2x2_64B", field="items_per_second"),
           floor=bm("ipc", "BM_RawRing_64B", field="items_per_second",
                    label="raw shm ring (1->1)")),
    Figure("ipc", "Queue 4 KiB messages", RATE, "bytes",
           bm("ipc", "BM_Queue_4K", field="bytes_per_second"),
           floor=bm("ipc", "BM_Memcpy_1M", field="bytes_per_second",
                    label="memcpy, hot")),
    Figure("ipc", "Queue 1 MiB messages, zero-copy Consume", RATE, "bytes",
           bm("ipc", "BM_Queue_1M_Consume", field="bytes_per_second"),
           floor=bm("ipc", "BM_Memcpy_1M", field="bytes_per_second",
                    label="memcpy, hot"),
           targets=(Target("floor", ">=", 0.5, ">= 0.5x memcpy"),),
           note="the consumer gets each message in place (one copy, by the "
                "producer)"),
    Figure("ipc", "Queue 1 MiB, Consume reading every byte", RATE, "bytes",
           bm("ipc", "BM_Queue_1M_ConsumeRead", field="bytes_per_second"),
           floor=bm("ipc", "BM_Memcpy_1M", field="bytes_per_second",
                    label="memcpy, hot"),
           note="the consumer also reads all of it: memory bandwidth"),
    Figure("ipc", "Queue 1 MiB messages, Get (copied out)", RATE, "bytes",
           bm("ipc", "BM_Queue_1M", field="bytes_per_second"),
           floor=bm("ipc", "BM_Memcpy_1M", field="bytes_per_second",
                    label="memcpy, hot"),
           note="a second copy, into the consumer's own buffer"),
    Figure("ipc", "Queue 1 MiB vs memcpy of a 64 MiB set", RATE, "bytes",
           bm("ipc", "BM_Queue_1M", field="bytes_per_second"),
           floor=bm("ipc", "BM_Memcpy_1M_Uncached", field="bytes_per_second",
                    label="memcpy, 64 MiB"),
           note="memcpy that misses the caches, as a copy between processes does"),
    Figure("ipc", "Pipe round trip 64 B", TIME, "",
           bm("ipc", "BM_Pipe_RoundTrip_64B"),
           peer=bm("ipc", "BM_KernelPipe_RoundTrip_64B", label="kernel pipe"),
           targets=(Target("peer", "<=", 0.1, "kernel pipe >= 10x slower"),)),
    Figure("ipc", "Pipe round trip 64 B vs Python Pipe", TIME, "",
           bm("ipc", "BM_Pipe_RoundTrip_64B"),
           peer=inverse_rate(py("ipc_mp", "pipe_round_trip_per_s",
                                "Python Pipe"))),
    # //tasklog.
    Figure("tasklog", "LOG(INFO) to the task's file, 1 thread", RATE, "lines",
           bm("tasklog", "BM_TaskLog_Logging", field="items_per_second"),
           peer=bm("tasklog", "BM_Glog_FileLogging", field="items_per_second",
                   label="glog file"),
           targets=(Target("peer", ">=", 0.9, ">= 0.9x glog"),)),
    Figure("tasklog", "LOG(INFO) to the task's file, 4 threads", RATE, "lines",
           bm("tasklog", "BM_TaskLog_Logging/threads:4", field="items_per_second"),
           peer=bm("tasklog", "BM_Glog_FileLogging/threads:4",
                   field="items_per_second", label="glog file"),
           targets=(Target("peer", ">=", 0.9, ">= 0.9x glog"),)),
    # //reporter.
    Figure("reporter", "events applied, 8 client processes", RATE, "events",
           bm("reporter", "BM_Reporter_Events_8Clients", field="events/s"),
           floor=bm("reporter", "BM_RawUnixSocket_Events", field="events/s",
                    label="raw Unix socket"),
           targets=(Target("value", ">=", 200e3, ">= 200k ev/s"),
                    Target("floor", ">=", 0.5, ">= 0.5x socket"))),
    Figure("reporter", "events applied, 1 client process", RATE, "events",
           bm("reporter", "BM_Reporter_Events_1Client", field="events/s"),
           floor=bm("reporter", "BM_RawUnixSocket_Events", field="events/s",
                    label="raw Unix socket")),
    Figure("reporter", "events applied, 1 client over loopback TCP", RATE,
           "events",
           bm("reporter", "BM_Reporter_Events_1Client_Tcp", field="events/s"),
           peer=bm("reporter", "BM_Reporter_Events_1Client", field="events/s",
                   label="the same over the Unix socket")),
    # //runner: N no-op function tasks, max_parallel 2, end to end.
    Figure("runner", "job of {runner_tasks} no-op tasks, 2 at a time, per task",
           TIME, "",
           bm("runner", "BM_Runtime_Tasks", field="us_per_task@us"),
           peer=bm("runner", "BM_PythonMultiprocessing_Tasks",
                   field="us_per_task@us", label="Python multiprocessing"),
           floor=bm("runner", "BM_RawFork_Tasks", field="us_per_task@us",
                    label="raw fork"),
           targets=(Target("floor", "<=", 3.0, "<= 3x raw fork"),
                    Target("peer", "<=", 0.1, "Python >= 10x slower"))),
    # GoogleTest suites (GoogleTest's 10 samples and many_gtests, {gtest_tests}
    # tests in 11 binaries), 2 at a time, wall time per test: the runner's
    # `gtest: true` tasks against ctest -j2 (tools/bench/gtest_ctest.py).
    Figure("gtest", "{gtest_tests} GoogleTest tests, 11 binaries, vs ctest "
           "per binary, per test", TIME, "",
           py("gtest", "taskfork_per_test_ns", ""),
           peer=py("gtest", "ctest_per_test_ns", "ctest -j2, a test per binary"),
           floor=py("gtest", "direct_per_test_ns", "the binaries alone"),
           targets=(Target("peer", "<", 1.0, "faster than ctest"),)),
    Figure("gtest", "{gtest_tests} GoogleTest tests vs ctest + "
           "gtest_discover_tests, per test", TIME, "",
           py("gtest", "taskfork_per_test_ns", ""),
           peer=py("gtest", "ctest_discover_per_test_ns",
                   "ctest -j2, gtest_discover_tests"),
           floor=py("gtest", "direct_per_test_ns", "the binaries alone"),
           targets=(Target("peer", "<", 1.0, "faster than ctest"),)),
    Figure("gtest_sharded", "{gtest_tests} GoogleTest tests, many_gtests in "
           "2 shards, vs ctest per binary, per test", TIME, "",
           py("gtest", "taskfork_sharded_per_test_ns", ""),
           peer=py("gtest", "ctest_per_test_ns", "ctest -j2, a test per binary"),
           floor=py("gtest", "direct_per_test_ns", "the binaries alone")),
)

# What --only selects: the benchmark binaries and the GoogleTest suite rows
# (gtest_sharded: the runner's `shards` of one task's GoogleTest binary).
PACKAGES = list(BINARIES) + ["gtest", "gtest_sharded"]


# ---------------------------------------------------------------------------
# Results -> rows.


@dataclasses.dataclass
class Results:
    benchmarks: Dict[str, Dict[str, BenchmarkRun]] = dataclasses.field(default_factory=dict)
    contexts: Dict[str, dict] = dataclasses.field(default_factory=dict)
    peers: Dict[str, Dict[str, float]] = dataclasses.field(default_factory=dict)
    failures: List[str] = dataclasses.field(default_factory=list)
    runner_tasks: int = 0  # tasks per job in the runner benchmark


def source_value(source: Source, results: Results) -> Optional[float]:
    """The value in the figure's base unit: ns (TIME) or per second (RATE)."""
    field = source.field
    inverse = field.endswith("@inverse")
    field = field[:-len("@inverse")] if inverse else field
    scale = 1.0
    if field.endswith("@us"):
        field, scale = field[:-3], 1e3
    value = dataclasses.replace(source, field=field).value(results)
    if value is None:
        return None
    if inverse:
        return 1e9 / value if value > 0 else float("inf")
    return value * scale


@dataclasses.dataclass
class Row:
    figure: Figure
    name: str
    taskfork: Optional[float]
    peer: Optional[float]
    floor: Optional[float]
    ratios: Dict[str, Optional[float]]
    met: List[Optional[bool]]


def make_rows(results: Results, figures: Sequence[Figure] = FIGURES) -> List[Row]:
    rows = []
    for f in figures:
        def get(source):
            if source is None:
                return None
            try:
                return source_value(source, results)
            except Failure as e:
                if str(e) not in results.failures:
                    results.failures.append(str(e))
                return None
        t, p, fl = get(f.taskfork), get(f.peer), get(f.floor)
        ratios = {
            "peer": t / p if t is not None and p else None,
            "floor": t / fl if t is not None and fl else None,
            "value": t,
        }
        name = f.name.replace("{runner_tasks}", str(results.runner_tasks or "N"))
        tests = results.peers.get("gtest", {}).get("tests_count")
        name = name.replace("{gtest_tests}", "%d" % tests if tests else "N")
        rows.append(Row(f, name, t, p, fl, ratios,
                        [g.met(ratios) for g in f.targets]))
    return rows


# ---------------------------------------------------------------------------
# Formatting.


def _sig(x: float) -> str:
    """Three significant digits, no exponent."""
    if x >= 100:
        return "%.0f" % x
    if x >= 10:
        return "%.1f" % x
    return "%.2f" % x


def format_time(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return "%s %s" % (_sig(ns / scale), unit)
    return "%s ns" % _sig(ns)


def format_rate(per_s: float, unit: str) -> str:
    if unit == "bytes":
        for suffix, scale in (("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)):
            if per_s >= scale:
                return "%s %s" % (_sig(per_s / scale), suffix)
        return "%s B/s" % _sig(per_s)
    short = {"items": "msg/s", "events": "ev/s", "lines": "lines/s"}.get(unit, "/s")
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if per_s >= scale:
            return "%s %s %s" % (_sig(per_s / scale), prefix, short)
    return "%s %s" % (_sig(per_s), short)


def format_value(figure: Figure, value: Optional[float]) -> str:
    if value is None:
        return "-"
    if figure.kind == TIME:
        return format_time(value)
    return format_rate(value, figure.unit)


def format_ratio(x: Optional[float]) -> str:
    if x is None:
        return "-"
    return "%sx" % (_sig(x) if x >= 0.01 else "%.4f" % x)


def row_cells(row: Row) -> List[str]:
    f = row.figure

    def labelled(source, value):
        if source is None:
            return "-"
        return "%s (%s)" % (format_value(f, value), source.label)

    met = []
    for target, ok in zip(f.targets, row.met):
        met.append("n/a" if ok is None else "met" if ok else "NOT met")
    return [
        f.package,
        row.name,
        format_value(f, row.taskfork),
        labelled(f.peer, row.peer),
        labelled(f.floor, row.floor),
        format_ratio(row.ratios["peer"]) if f.peer else "-",
        format_ratio(row.ratios["floor"]) if f.floor else "-",
        "; ".join(t.text for t in f.targets) or "-",
        "; ".join(met) or "-",
    ]


HEADINGS = ["package", "figure", "taskfork", "peer", "floor", "tf/peer",
            "tf/floor", "target", "met"]


def text_table(rows: Sequence[Row]) -> str:
    cells = [HEADINGS] + [row_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADINGS))]
    lines = []
    for n, c in enumerate(cells):
        lines.append("  ".join(x.ljust(w) for x, w in zip(c, widths)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: Sequence[Row]) -> str:
    def esc(s):
        return s.replace("|", "\\|")
    lines = ["| " + " | ".join(HEADINGS) + " |",
             "|" + "---|" * len(HEADINGS)]
    for r in rows:
        cells = row_cells(r)
        cells[-1] = cells[-1].replace("NOT met", "**NOT met**")
        lines.append("| " + " | ".join(esc(c) for c in cells) + " |")
    return "\n".join(lines)


def summary_line(rows: Sequence[Row]) -> str:
    met = sum(1 for r in rows for m in r.met if m)
    not_met = sum(1 for r in rows for m in r.met if m is False)
    unknown = sum(1 for r in rows for m in r.met if m is None)
    text = "targets: %d met, %d not met" % (met, not_met)
    if unknown:
        text += ", %d not measured" % unknown
    return text


def all_benchmarks_markdown(results: Results) -> str:
    lines = ["| binary | benchmark | real time | CPU time | rate | counters |",
             "|---|---|---|---|---|---|"]
    for key in BINARIES:
        for name, run in sorted(results.benchmarks.get(key, {}).items()):
            rate = []
            if "items_per_second" in run.fields:
                rate.append(format_rate(run.fields["items_per_second"], "items"))
            if "bytes_per_second" in run.fields:
                rate.append(format_rate(run.fields["bytes_per_second"], "bytes"))
            counters = ", ".join(
                "%s=%s" % (k, _sig(v)) for k, v in sorted(run.fields.items())
                if k not in ("items_per_second", "bytes_per_second"))
            lines.append("| %s | %s | %s | %s | %s | %s |" % (
                key, name, format_time(run.real_ns), format_time(run.cpu_ns),
                ", ".join(rate) or "-", counters or "-"))
    for key, metrics in results.peers.items():
        for metric, value in sorted(metrics.items()):
            if metric.endswith("_ns"):
                shown = format_time(value)
            elif metric.endswith("_count"):
                shown = "%d" % value
            else:
                shown = format_rate(value, "items")
            lines.append("| %s | %s | %s | | | |" % (
                os.path.basename(PEER_SCRIPTS[key]), metric, shown))
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The machine and the build.


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    return "%.2f %.2f %.2f" % os.getloadavg()


def load_warning(before: str, after: str, cores: int) -> Optional[str]:
    """A warning when the 1-minute load average before or after the run
    exceeded the number of cores: other work then shared the CPUs."""
    peak = max(float(before.split()[0]), float(after.split()[0]))
    if peak <= cores:
        return None
    return ("WARNING: the load average (%s before, %s after) exceeded the %d "
            "cores: other work shared the CPUs, so wall-clock and "
            "cross-process figures are depressed and noisy; re-run on an idle "
            "machine." % (before.split()[0], after.split()[0], cores))


def git_commit(workspace: Optional[str]) -> str:
    if not workspace:
        return "unknown (not run by `bazel run`)"
    try:
        head = subprocess.run(["git", "-C", workspace, "rev-parse", "HEAD"],
                              capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", workspace, "status", "--porcelain",
             "--untracked-files=no"],
            capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (git failed in %s)" % workspace
    return head + (" (with uncommitted changes)" if dirty else "")


_SANITIZER_MARKS = {b"__asan_init": "AddressSanitizer",
                    b"__tsan_init": "ThreadSanitizer",
                    b"__ubsan_handle_": "UndefinedBehaviorSanitizer",
                    b"__msan_init": "MemorySanitizer"}


def sanitizers_in(binary: str) -> List[str]:
    """Sanitizer runtimes a binary references (its symbol names)."""
    try:
        with open(binary, "rb") as f:
            data = f.read()
    except OSError:
        return []
    return sorted({name for mark, name in _SANITIZER_MARKS.items() if mark in data})


def build_warnings(compilation_mode: str, binaries: Dict[str, str]) -> List[str]:
    warnings = []
    if compilation_mode != "opt":
        warnings.append(
            "WARNING: the benchmark binaries were built with -c %s, not -c opt: "
            "these figures do not describe taskfork (run `tools/bazel run -c opt "
            "//tools/bench:compare`)." % compilation_mode)
    found = set()
    for path in binaries.values():
        found.update(sanitizers_in(path))
    if found:
        warnings.append("WARNING: the benchmark binaries are built with %s: "
                        "figures are not meaningful." % ", ".join(sorted(found)))
    return warnings


# ---------------------------------------------------------------------------
# Main.


def runfiles_root(required: bool = True) -> Optional[str]:
    for var in ("RUNFILES_DIR", "TEST_SRCDIR"):
        root = os.environ.get(var)
        if root and os.path.isdir(os.path.join(root, WORKSPACE)):
            return root
    here = os.path.abspath(__file__)
    marker = ".runfiles" + os.sep
    if marker in here:
        return here[:here.index(marker) + len(marker) - 1]
    if not required:
        return None
    sys.exit("compare: cannot find the runfiles tree; run it with "
             "`tools/bazel run //tools/bench:compare`")


def rlocation(path: str) -> str:
    return os.path.join(runfiles_root(), WORKSPACE, path)


def read_compilation_mode() -> str:
    try:
        with open(rlocation("tools/bench/compilation_mode.txt")) as f:
            return f.read().strip() or "unknown"
    except OSError:
        return "unknown"


def run_all(settings: Settings, only: Optional[Sequence[str]], log,
            progress: Callable[[str], None]) -> Results:
    results = Results(runner_tasks=settings.runner_tasks)
    for key, path in BINARIES.items():
        if only and key not in only:
            continue
        args = list(settings.benchmark_args)
        if key == "runner":
            args = ["--tasks=%d" % settings.runner_tasks] + settings.runner_args
        what = "//" + path.replace("/", ":", 1)
        progress("running %s %s" % (what, " ".join(args)))
        started = time.monotonic()
        try:
            context, runs = run_benchmark(what, rlocation(path), args,
                                          settings.timeout_s, log)
            results.benchmarks[key] = runs
            results.contexts[key] = context
        except Failure as e:
            results.failures.append(str(e))
        progress("  %.0f s" % (time.monotonic() - started))
    figures = [f for f in FIGURES if not only or f.package in only]
    needed = {source.binary for f in figures
              for source in (f.taskfork, f.peer, f.floor)
              if source is not None and source.peer}
    for key, path in PEER_SCRIPTS.items():
        if key not in needed:
            continue
        args = settings.peer_args[key]
        metrics = None
        shown = " ".join(args)
        if key == "gtest":
            modes = gtest_modes(figures)
            extra, metrics = gtest_args(modes)
            args = args + extra
            shown += " --modes=" + ",".join(modes)
        progress("running %s %s" % (path, shown))
        started = time.monotonic()
        try:
            results.peers[key] = run_peer(key, rlocation(path), args,
                                          settings.timeout_s, log, metrics)
        except Failure as e:
            results.failures.append(str(e))
        progress("  %.0f s" % (time.monotonic() - started))
    return results


def report_header(settings: Settings, compilation_mode: str, load_before: str,
                  load_after: str, started: datetime.datetime, seconds: float,
                  commit: str) -> List[Tuple[str, str]]:
    uname = platform.uname()
    affinity = len(os.sched_getaffinity(0))
    return [
        ("date", started.strftime("%Y-%m-%d %H:%M UTC")),
        ("commit", commit),
        ("machine", "%s; %d cores (%d usable); %s %s" % (
            cpu_model(), os.cpu_count() or 0, affinity, uname.system,
            uname.release)),
        ("load average", "%s before, %s after (1, 5, 15 min)" % (
            load_before, load_after)),
        ("build", "-c %s; Python %s" % (compilation_mode,
                                       platform.python_version())),
        ("mode", "%s (%s); took %.0f s" % (
            "quick" if settings.quick else "full", settings.describe(), seconds)),
    ]


NOTES = """\
- taskfork, peer and floor are measured on this machine in one run. Times are
  wall-clock per operation (lower is better), except in rows marked (CPU):
  single-process, CPU-bound figures in CPU time, which a loaded machine
  inflates less; rates are per second of wall-clock time (higher is better).
  tf/peer and tf/floor are taskfork's figure divided by the other's, in the
  row's unit: below 1 is faster for times, above 1 is faster for rates.
- Benchmark figures are medians over repetitions (full mode) or one run
  (--quick); the Python peers report the best of their repeats, which favours
  the peer. Floors: fork + _exit + waitpid, a minimal spinning shared-memory
  ring, a Unix socket whose reader discards the bytes, memcpy.
- gtest rows: the wall time of a whole GoogleTest suite (GoogleTest's samples
  and many_gtests, 2 at a time) divided by its number of tests, medians of 3
  runs alternating between the modes (one run, 300 of many_gtests' tests,
  with --quick): the runner with one `gtest: true` task per binary against
  `ctest -j2` with one test per binary and with CMake's gtest_discover_tests
  (a test per GoogleTest test, discovery not timed); the floor starts the
  binaries directly (tools/bench/gtest_ctest.py, tools/README.md).
- A shared or loaded machine depresses cross-process figures (spinning peers
  and rings most): compare the load averages above before trusting a ratio."""


def markdown_report(header, warnings, rows, results, command) -> str:
    parts = ["# taskfork benchmarks", "",
             "Every figure below comes from one run of `%s` (file written by "
             "it; do not edit by hand)." % command, ""]
    for w in warnings:
        parts += ["> **%s**" % w, ""]
    parts += ["| | |", "|---|---|"]
    parts += ["| %s | %s |" % (k, v.replace("|", "\\|")) for k, v in header]
    parts += ["", markdown_table(rows), "", summary_line(rows) + ".", "",
              "Notes:", "", NOTES, "",
              "## How to reproduce", "",
              "```sh",
              "tools/bazel run -c opt //tools/bench:compare            "
              "# full run (medians), writes docs/BENCHMARKS.md",
              "tools/bazel run -c opt //tools/bench:compare -- --quick "
              "# about two minutes, prints the table only",
              "```", "",
              "Run it on an otherwise idle machine. Each package's README "
              "names its benchmark binary, which can also be run alone "
              "(`tools/bazel run -c opt //ipc:ipc_benchmark`).", "",
              "## Every benchmark of this run", "",
              all_benchmarks_markdown(results), ""]
    return "\n".join(parts)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--quick", action="store_true",
                        help="bounded run (about two minutes): short "
                        "min_time, one repetition, 200 runner tasks")
    parser.add_argument("--output", default=None,
                        help="write the Markdown report here (relative to "
                        "the directory bazel run was called from); default "
                        "in full mode: docs/BENCHMARKS.md in the workspace; "
                        "'-' for none")
    parser.add_argument("--only", default="",
                        help="comma-separated packages to run (e.g. "
                        "serialize,ipc; gtest and gtest_sharded are the "
                        "GoogleTest suite rows); the report is then not "
                        "written by default")
    parser.add_argument("--runner_tasks", type=int, default=None,
                        help="tasks per runner benchmark job (default 1000, "
                        "200 with --quick)")
    parser.add_argument("--verbose", action="store_true",
                        help="also print every binary's and script's output")
    args = parser.parse_args(argv)
    only = [p for p in args.only.split(",") if p]
    unknown = [p for p in only if p not in PACKAGES]
    if unknown:
        parser.error("--only: unknown package(s) %s (known: %s)" % (
            ", ".join(unknown), ", ".join(PACKAGES)))

    settings = make_settings(args.quick, args.runner_tasks)
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    cwd = os.environ.get("BUILD_WORKING_DIRECTORY", os.getcwd())
    output = args.output
    if output is None and not args.quick and not only:
        output = os.path.join(workspace, "docs", "BENCHMARKS.md") if workspace else None
    if output == "-":
        output = None
    if output is not None:
        output = os.path.join(cwd, output)

    compilation_mode = read_compilation_mode()
    binaries = {k: rlocation(p) for k, p in BINARIES.items()}
    warnings = build_warnings(compilation_mode, binaries)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = load_average()
    t0 = time.monotonic()

    def progress(message):
        print("compare: " + message, file=sys.stderr, flush=True)

    log = sys.stderr if args.verbose else None
    for w in warnings:
        progress(w)
    results = run_all(settings, only, log, progress)
    seconds = time.monotonic() - t0
    load_after = load_average()
    overloaded = load_warning(load_before, load_after, os.cpu_count() or 1)
    if overloaded:
        warnings.append(overloaded)

    figures = [f for f in FIGURES if not only or f.package in only]
    rows = make_rows(results, figures)
    header = report_header(settings, compilation_mode, load_before, load_after,
                           started, seconds, git_commit(workspace))
    print()
    print("taskfork benchmarks")
    for w in warnings:
        print(w)
    for k, v in header:
        print("  %-13s %s" % (k + ":", v))
    print()
    print(text_table(rows))
    print()
    print(summary_line(rows) + " (timing never fails this run)")

    if results.failures:
        print()
        print("FAILED (%d):" % len(results.failures))
        for failure in results.failures:
            print("  " + failure)
        if output:
            print("not writing %s: the run failed" % output)
        return 1
    if output:
        flags = (["--quick"] if args.quick else []) + (
            ["--only=" + ",".join(only)] if only else [])
        command = "tools/bazel run -c %s //tools/bench:compare%s" % (
            compilation_mode, (" -- " + " ".join(flags)) if flags else "")
        os.makedirs(os.path.dirname(output), exist_ok=True)
        tmp = output + ".tmp"
        with open(tmp, "w") as f:
            f.write(markdown_report(header, warnings, rows, results, command))
        os.replace(tmp, output)
        print("wrote " + output)
    return 0


if __name__ == "__main__":
    sys.exit(main())

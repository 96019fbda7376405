#!/usr/bin/env python3
"""Times Python multiprocessing (fork context): Process start+join, and pcall.

The peers of //fork:process_benchmark on this machine:
  - Process start+join: multiprocessing.get_context("fork").Process with a
    trivial target, start() then join() (BM_Process_StartJoin's peer);
  - a 100-call pcall equivalent: 100 fork Processes started at once, each
    putting (index, result) on a multiprocessing Queue; the parent gets the
    100 results (in argument order by index) and joins every child, the way
    pyATS's Pcall does (BM_Pcall_100's peer).
With --benchmark_binary it also runs the C++ benchmark and prints the ratios,
so both sides come from one run on one machine:

  tools/bazel build -c opt //fork:process_benchmark
  python3 tools/bench/fork_multiprocessing.py \\
      --benchmark_binary=bazel-bin/fork/process_benchmark
"""

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time

CTX = multiprocessing.get_context("fork")
CALLS = 100


def noop():
    pass


def start_join():
    p = CTX.Process(target=noop)
    p.start()
    p.join()
    if p.exitcode != 0:
        raise RuntimeError("child exit code %r" % p.exitcode)


def child_labor(index, queue):
    queue.put((index, index))  # pyATS's ChildLabor puts (index, ok, result)


def pcall_100():
    queue = CTX.Queue()
    children = [CTX.Process(target=child_labor, args=(i, queue))
                for i in range(CALLS)]
    for c in children:
        c.start()
    results = [None] * CALLS
    for _ in range(CALLS):  # drain before joining (no pipe deadlock)
        index, value = queue.get()
        results[index] = value
    for c in children:
        c.join()
    queue.close()
    queue.join_thread()
    if results != list(range(CALLS)):
        raise RuntimeError("wrong results")


def cpu_seconds():
    """CPU time of this process and its reaped children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def best_ns_per_op(fn, repeat, number):
    """Best (lowest) wall-clock and CPU (parent + children) ns per call."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), cpu_seconds()
        for _ in range(number):
            fn()
        t1, c1 = time.perf_counter(), cpu_seconds()
        best_wall = min(best_wall, (t1 - t0) * 1e9 / number)
        best_cpu = min(best_cpu, (c1 - c0) * 1e9 / number)
    return best_wall, best_cpu


def run_cpp(binary, repetitions):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            [binary, "--benchmark_out=" + out.name,
             "--benchmark_out_format=json",
             "--benchmark_repetitions=%d" % repetitions],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out.name) as f:
            results = json.load(f)
    runs = {}
    for b in results["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
        name = b["name"].split("/")[0]
        wall = b["real_time"] * scale
        cpu = b["cpu_time"] * scale + b.get("child_cpu_us", 0) * 1e3
        old = runs.get(name, (float("inf"), float("inf")))
        runs[name] = (min(old[0], wall), min(old[1], cpu))
    # best real-time and CPU (parent + children) ns per iteration
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark_binary",
                        help="path to process_benchmark (built with -c opt)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--number", type=int, default=200,
                        help="start+join operations per repeat")
    parser.add_argument("--pcall_number", type=int, default=5,
                        help="100-call pcalls per repeat")
    args = parser.parse_args()

    sj = best_ns_per_op(start_join, args.repeat, args.number)
    pc = best_ns_per_op(pcall_100, args.repeat, args.pcall_number)
    print("Python %s multiprocessing, fork context (best of %d; real, and "
          "CPU of parent + children):" % (sys.version.split()[0], args.repeat))
    print("  Process start+join           real %10.1f us  cpu %10.1f us" %
          (sj[0] / 1e3, sj[1] / 1e3))
    print("  pcall of %d (Process+Queue) real %10.1f us  cpu %10.1f us" %
          (CALLS, pc[0] / 1e3, pc[1] / 1e3))
    if not args.benchmark_binary:
        return
    cpp = run_cpp(args.benchmark_binary, args.repeat)
    print("C++ //fork:process_benchmark (best of %d repetitions):" % args.repeat)
    for name in ("BM_RawFork_ExitWait", "BM_Process_StartJoin",
                 "BM_Process_StartJoin_Result", "BM_RawFork_100",
                 "BM_Pcall_100"):
        if name in cpp:
            print("  %-28s real %10.1f us  cpu %10.1f us" %
                  (name, cpp[name][0] / 1e3, cpp[name][1] / 1e3))
    print("Ratios Python / C++ (target for start+join >= 15), real and cpu:")
    for label, py, name in (("Process start+join", sj, "BM_Process_StartJoin"),
                            ("pcall of 100", pc, "BM_Pcall_100")):
        if name in cpp:
            print("  %-19s real %.1fx  cpu %.1fx" %
                  (label + ":", py[0] / cpp[name][0], py[1] / cpp[name][1]))


if __name__ == "__main__":
    main()

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


def best_ns_per_op(fn, repeat, number):
    """Best (lowest) wall-clock nanoseconds per call over `repeat` runs."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) * 1e9 / number)
    return best


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
        runs[name] = min(runs.get(name, float("inf")), b["real_time"] * scale)
    return runs  # best real-time ns per iteration over the repetitions


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
    print("Python %s multiprocessing, fork context (best of %d):" %
          (sys.version.split()[0], args.repeat))
    print("  Process start+join          %10.1f us" % (sj / 1e3))
    print("  pcall of %d (Process+Queue) %10.1f us" % (CALLS, pc / 1e3))
    if not args.benchmark_binary:
        return
    cpp = run_cpp(args.benchmark_binary, args.repeat)
    print("C++ //fork:process_benchmark (best of %d repetitions):" % args.repeat)
    for name in ("BM_RawFork_ExitWait", "BM_Process_StartJoin",
                 "BM_Process_StartJoin_Result", "BM_RawFork_100",
                 "BM_Pcall_100"):
        if name in cpp:
            print("  %-28s %10.1f us" % (name, cpp[name] / 1e3))
    print("Ratios (Python / C++; target for start+join >= 15):")
    if "BM_Process_StartJoin" in cpp:
        print("  Process start+join: %.1fx" % (sj / cpp["BM_Process_StartJoin"]))
    if "BM_Pcall_100" in cpp:
        print("  pcall of 100:       %.1fx" % (pc / cpp["BM_Pcall_100"]))


if __name__ == "__main__":
    main()

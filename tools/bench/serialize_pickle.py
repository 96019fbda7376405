#!/usr/bin/env python3
"""Times Python's pickle.dumps/loads of the serialize benchmark record.

The record is the one //serialize:serialize_benchmark uses (a name, a
callsign, a 4-string tuple, 100 int64 values and a 10-entry str->float dict). With
--benchmark_binary it also runs the C++ benchmark's record benchmarks and
prints the ratio of pickle's round trip to taskfork::serialize's and
protobuf's, so both come from one run on one machine:

  tools/bazel build -c opt //serialize:serialize_benchmark
  python3 tools/bench/serialize_pickle.py \\
      --benchmark_binary=bazel-bin/serialize/serialize_benchmark
"""

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
import time


def make_record():
    return dict(
        name="tony stark",
        callsign="ironman",
        also_known_as=("genius", "billionaire", "playboy", "philanthropist"),
        values=[i * 12345 for i in range(100)],
        scores={"key%d" % i: i * 0.5 for i in range(10)},
    )


def best_ns_per_op(fn, repeat, number):
    """Best (lowest) wall and CPU nanoseconds per call over `repeat` runs."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for _ in range(number):
            fn()
        wall1, cpu1 = time.perf_counter(), time.process_time()
        best_wall = min(best_wall, (wall1 - wall0) * 1e9 / number)
        best_cpu = min(best_cpu, (cpu1 - cpu0) * 1e9 / number)
    return best_wall, best_cpu


def run_cpp(binary):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            [binary, "--benchmark_filter=Record", "--benchmark_out=" + out.name,
             "--benchmark_out_format=json"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results = json.load(open(out.name))
    runs = {}
    for b in results["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
        runs[b["name"]] = (b["real_time"] * scale, b["cpu_time"] * scale)
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark_binary",
                        help="path to serialize_benchmark (built with -c opt)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args()

    record = make_record()
    data = pickle.dumps(record)
    assert pickle.loads(data) == record
    dumps = best_ns_per_op(lambda: pickle.dumps(record), args.repeat, args.number)
    loads = best_ns_per_op(lambda: pickle.loads(data), args.repeat, args.number)
    print("Python %s pickle (protocol %d), record of %d bytes:" %
          (sys.version.split()[0], pickle.DEFAULT_PROTOCOL, len(data)))
    print("  pickle.dumps  real %8.0f ns  cpu %8.0f ns" % dumps)
    print("  pickle.loads  real %8.0f ns  cpu %8.0f ns" % loads)
    pickle_rt = (dumps[0] + loads[0], dumps[1] + loads[1])
    print("  round trip    real %8.0f ns  cpu %8.0f ns" % pickle_rt)
    if not args.benchmark_binary:
        return 0

    runs = run_cpp(args.benchmark_binary)
    for label, enc, dec in (
            ("taskfork::serialize", "BM_Encode_Record", "BM_Decode_Record"),
            ("protobuf", "BM_Protobuf_Encode_Record", "BM_Protobuf_Decode_Record")):
        rt = (runs[enc][0] + runs[dec][0], runs[enc][1] + runs[dec][1])
        print("%-20s round trip real %8.0f ns  cpu %8.0f ns; "
              "pickle / it: real %.1fx  cpu %.1fx" %
              (label, rt[0], rt[1], pickle_rt[0] / rt[0], pickle_rt[1] / rt[1]))
    if "BM_Build_Record" in runs:
        # The floor: the decoded value built by hand, without any parsing
        # (and without the encode half of a round trip).
        floor = runs["BM_Build_Record"]
        print("%-20s            real %8.0f ns  cpu %8.0f ns; "
              "pickle / it: real %.1fx  cpu %.1fx" %
              ("build by hand", floor[0], floor[1], pickle_rt[0] / floor[0],
               pickle_rt[1] / floor[1]))
    print("(target: taskfork::serialize at least 10x faster than pickle)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

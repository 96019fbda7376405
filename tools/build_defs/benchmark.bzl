"""taskfork_cc_benchmark: a Google Benchmark binary plus a smoke test of it.

    taskfork_cc_benchmark(
        name = "queue_benchmark",
        srcs = ["queue_benchmark.cc"],
        deps = [":queue"],
    )

makes `:queue_benchmark` (cc_binary, run it with `bazel run -c opt`) and
`:queue_benchmark_smoke_test`, which runs every benchmark in it for a minimal
time under `bazel test //...`, so a benchmark that crashes or errors fails the
suite while timing never does. The binary is visible to //tools/bench, whose
`compare` harness runs every benchmark (pass `visibility` to change that).
"""

load("//tools/build_defs:copts.bzl", "TASKFORK_COPTS")

def taskfork_cc_benchmark(name, srcs, deps = [], data = [], smoke_args = [], **kwargs):
    kwargs.setdefault("visibility", ["//tools/bench:__pkg__"])
    native.cc_binary(
        name = name,
        srcs = srcs,
        copts = TASKFORK_COPTS,
        data = data,
        deps = deps + ["@com_github_google_benchmark//:benchmark"],
        **kwargs
    )
    native.sh_test(
        name = name + "_smoke_test",
        size = "small",
        srcs = ["//tools/build_defs:benchmark_smoke_test.sh"],
        args = ["$(rootpath :%s)" % name] + smoke_args,
        data = [":" + name] + data,
    )

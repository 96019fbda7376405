"""taskfork_cc_fuzz_test: one libFuzzer target that is also a regression test.

    taskfork_cc_fuzz_test(
        name = "serialize_fuzzer",
        srcs = ["serialize_fuzzer.cc"],   # defines LLVMFuzzerTestOneInput
        corpus = glob(["testdata/serialize_fuzzer/*"]),
        deps = [":serialize"],
    )

- `bazel test //...` builds it with the default compiler and runs every corpus
  file through LLVMFuzzerTestOneInput once (fuzz_replay_main.cc): the corpus is
  a regression suite, and the target cannot rot.
- `bazel run --config=fuzz //pkg:name -- -max_total_time=600 $PWD/pkg/corpus`
  builds it with clang and libFuzzer (+ASan, LeakSanitizer, UBSan) and fuzzes
  from the corpus directory (new findings are written there; commit the
  useful ones).
- The test is tagged "fuzz": tools/ci/fuzz.sh finds every fuzz target with
  `bazel query 'attr(tags, "\\bfuzz\\b", tests(//...))'` and fuzzes each for a
  bounded time from a copy of its corpus.
"""

load("//tools/build_defs:copts.bzl", "TASKFORK_COPTS")

def taskfork_cc_fuzz_test(name, srcs, corpus, deps = [], size = "small", tags = [], **kwargs):
    corpus_dirs = {("/".join(f.split("/")[:-1]) or "."): None for f in corpus}
    if len(corpus_dirs) != 1:
        fail("%s: the corpus must be the files of one directory" % name)
    corpus_dir = native.package_name() + "/" + corpus_dirs.keys()[0]
    native.cc_test(
        name = name,
        srcs = srcs,
        size = size,
        tags = tags + ["fuzz"],
        copts = TASKFORK_COPTS,
        data = corpus,
        env = {"TASKFORK_FUZZ_CORPUS": corpus_dir},
        linkopts = select({
            "//tools/build_defs:fuzzing": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        deps = deps + select({
            "//tools/build_defs:fuzzing": [],
            "//conditions:default": ["//tools/build_defs:fuzz_replay_main"],
        }),
        **kwargs
    )

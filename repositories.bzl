"""taskfork_dependencies(): every external repository taskfork needs.

Call it from the WORKSPACE of any repository that depends on taskfork:

    local_repository(name = "taskfork", path = "...")
    load("@taskfork//:repositories.bzl", "taskfork_dependencies")
    taskfork_dependencies()

It maps Debian's system packages (see tools/bazel for the list) to the
repository names the upstream projects use. A repository that already exists
(declared earlier in the WORKSPACE) is left alone.
"""

load(
    "//third_party:system_repos.bzl",
    "debian_abseil_repository",
    "debian_cc_repository",
    "debian_protobuf_repository",
    "offline_coverage_tools_repository",
    "rules_cc_shim_repository",
)

def _maybe(rule, name, **kwargs):
    if name not in native.existing_rules():
        rule(name = name, **kwargs)

def taskfork_dependencies():
    _maybe(rules_cc_shim_repository, name = "rules_cc")
    _maybe(
        native.local_repository,
        name = "rules_java",
        path = "/usr/share/bazel/rules/java",
    )
    _maybe(
        native.local_repository,
        name = "platforms",
        path = "/usr/share/bazel/tools/platforms",
    )
    _maybe(
        native.local_repository,
        name = "bazel_skylib",
        path = "/usr/share/bazel/tools/skylib",
    )
    _maybe(offline_coverage_tools_repository, name = "remote_coverage_tools")
    _maybe(debian_abseil_repository, name = "com_google_absl")
    _maybe(
        debian_cc_repository,
        name = "com_google_googletest",
        build_file = Label("//third_party:googletest.BUILD"),
    )
    _maybe(
        debian_cc_repository,
        name = "googletest_samples",
        build_file = Label("//third_party:googletest_samples.BUILD"),
        include_dirs = {"/usr/src/googletest/googletest/samples": "samples"},
        package = "googletest",
    )
    _maybe(
        debian_cc_repository,
        name = "com_github_google_benchmark",
        build_file = Label("//third_party:benchmark.BUILD"),
    )
    _maybe(
        debian_cc_repository,
        name = "com_github_google_glog",
        build_file = Label("//third_party:glog.BUILD"),
    )
    _maybe(
        debian_cc_repository,
        name = "com_github_gflags_gflags",
        build_file = Label("//third_party:gflags.BUILD"),
    )
    _maybe(debian_protobuf_repository, name = "com_google_protobuf")
    _maybe(
        debian_cc_repository,
        name = "zlib",
        build_file = Label("//third_party:zlib.BUILD"),
    )
    _maybe(
        debian_cc_repository,
        name = "libxml2",
        build_file = Label("//third_party:libxml2.BUILD"),
        include_dirs = {"/usr/include/libxml2/libxml": "include/libxml"},
        package = "libxml2-dev",
    )
    _maybe(
        debian_cc_repository,
        name = "libarchive",
        build_file = Label("//third_party:libarchive.BUILD"),
    )

"""Repository rules that expose Debian's system packages to Bazel.

Nothing here downloads: headers come from /usr/include (the compiler's default
search path), libraries from the system linker path, link flags from the
packages' own pkg-config files where they ship them.
"""

# Upstream Abseil label -> pkg-config module (Debian ships one absl_<target>.pc
# per upstream target). A target missing here is a build error naming it; add
# it with the .pc file of the same name in /usr/lib/x86_64-linux-gnu/pkgconfig.
_ABSL_TARGETS = {
    "absl/algorithm": ["algorithm", "container:algorithm_container"],
    "absl/base": [
        "base",
        "config",
        "core_headers",
        "dynamic_annotations",
        "endian",
        "log_severity",
        "prefetch",
    ],
    "absl/cleanup": ["cleanup"],
    "absl/container": [
        "btree",
        "fixed_array",
        "flat_hash_map",
        "flat_hash_set",
        "inlined_vector",
        "node_hash_map",
        "node_hash_set",
    ],
    "absl/debugging": [
        "failure_signal_handler",
        "leak_check",
        "stacktrace",
        "symbolize",
    ],
    "absl/flags": [
        "flag:flags",
        "marshalling:flags_marshalling",
        "parse:flags_parse",
        "reflection:flags_reflection",
        "usage:flags_usage",
    ],
    "absl/functional": ["any_invocable", "bind_front", "function_ref"],
    "absl/hash": ["hash"],
    "absl/memory": ["memory"],
    "absl/meta": ["type_traits"],
    "absl/numeric": ["bits", "int128"],
    "absl/random": [
        "bit_gen_ref:random_bit_gen_ref",
        "distributions:random_distributions",
        "random:random_random",
    ],
    "absl/status": ["status", "statusor"],
    "absl/strings": ["cord", "str_format", "strings"],
    "absl/synchronization": ["synchronization"],
    "absl/time": ["time"],
    "absl/types": [
        "any",
        "compare",
        "optional",
        "span",
        "variant",
    ],
    "absl/utility": ["utility"],
}

def _pkg_config(ctx, args, module):
    result = ctx.execute(["pkg-config"] + args + [module])
    if result.return_code != 0:
        fail(("pkg-config %s %s failed (%s). Install the Debian package " +
              "that ships %s.pc (tools/bazel does this).") %
             (" ".join(args), module, result.stderr.strip(), module))
    return result.stdout.strip()

def _pkg_config_libs(ctx, module, static):
    """Link flags of `module`; with `static`, Abseil's own static archives.

    `pkg-config --static` lists the module's whole closure of Abseil
    libraries in dependency order, so each target's flags link on their own
    whatever Bazel puts before or after them. -l:libabsl_x.a names the
    archive (Debian ships both); every other flag (-lrt, -latomic, -pthread)
    stays as pkg-config gives it.
    """
    if not static:
        return [f for f in _pkg_config(ctx, ["--libs"], module).split(" ") if f]
    libdir = _pkg_config(ctx, ["--variable=libdir"], module)
    libs = []
    for flag in _pkg_config(ctx, ["--static", "--libs"], module).split(" "):
        if flag.startswith("-labsl_"):
            archive = "lib%s.a" % flag[2:]
            if not ctx.path("%s/%s" % (libdir, archive)).exists:
                fail("%s/%s is missing: install Debian's libabsl-dev" %
                     (libdir, archive))
            flag = "-l:" + archive
        if flag:
            libs.append(flag)
    return libs

# Static archives with --dynamic_mode=off (see third_party/README.md).
_STATIC_SETTING = """config_setting(
    name = "link_static",
    values = {"dynamic_mode": "off"},
    visibility = ["//visibility:public"],
)
"""

def _debian_abseil_repository_impl(ctx):
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD", _STATIC_SETTING)
    for package, entries in _ABSL_TARGETS.items():
        rules = ['package(default_visibility = ["//visibility:public"])\n']
        for entry in entries:
            name, _, module = entry.partition(":")
            module = "absl_" + (module or name)
            rules.append(
                ("cc_library(\n    name = %r,\n    linkopts = select({\n" +
                 "        \"//:link_static\": %r,\n" +
                 "        \"//conditions:default\": %r,\n    }),\n)\n") %
                (name, _pkg_config_libs(ctx, module, True),
                 _pkg_config_libs(ctx, module, False)),
            )
        ctx.file(package + "/BUILD", "\n".join(rules))

debian_abseil_repository = repository_rule(
    implementation = _debian_abseil_repository_impl,
    doc = "@com_google_absl from Debian's libabsl-dev (upstream label names).",
    environ = ["PKG_CONFIG_PATH"],
    local = True,
)

def _debian_cc_repository_impl(ctx):
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.symlink(ctx.attr.build_file, "BUILD")
    for system, inside in ctx.attr.include_dirs.items():
        if not ctx.path(system).exists:
            fail("%s is missing: install the Debian package %s" %
                 (system, ctx.attr.package))
        ctx.symlink(system, inside)

debian_cc_repository = repository_rule(
    implementation = _debian_cc_repository_impl,
    doc = "A system library described by a BUILD file of link flags.",
    attrs = {
        "build_file": attr.label(mandatory = True, allow_single_file = True),
        # Header directories outside the compiler's default path (system
        # path -> path in the repository, which the BUILD file exports).
        "include_dirs": attr.string_dict(),
        "package": attr.string(doc = "Debian package named in errors"),
    },
)

_WELL_KNOWN_PROTOS = [
    "any",
    "api",
    "descriptor",
    "duration",
    "empty",
    "field_mask",
    "source_context",
    "struct",
    "timestamp",
    "type",
    "wrappers",
]

def _debian_protobuf_repository_impl(ctx):
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    for proto in _WELL_KNOWN_PROTOS:
        path = "google/protobuf/%s.proto" % proto
        system = ctx.path("/usr/include/" + path)
        if not system.exists:
            fail("%s is missing: install Debian's libprotobuf-dev" % system)
        ctx.symlink(system, path)
    ctx.symlink(Label("//third_party:protobuf.BUILD"), "BUILD")

debian_protobuf_repository = repository_rule(
    implementation = _debian_protobuf_repository_impl,
    doc = "@com_google_protobuf from Debian's libprotobuf-dev and protoc.",
    local = True,
)

_RULES_CC_DEFS = '''"""Native C++ rules under @rules_cc's names (Bazel 4.2.3 has them built in)."""
cc_binary = native.cc_binary
cc_import = native.cc_import
cc_library = native.cc_library
cc_proto_library = native.cc_proto_library
cc_shared_library = getattr(native, "cc_shared_library", None)
cc_test = native.cc_test
cc_toolchain = native.cc_toolchain
cc_toolchain_suite = native.cc_toolchain_suite
fdo_prefetch_hints = native.fdo_prefetch_hints
fdo_profile = native.fdo_profile
objc_import = native.objc_import
objc_library = native.objc_library
'''

def _rules_cc_shim_repository_impl(ctx):
    ctx.file("WORKSPACE", 'workspace(name = "rules_cc")\n')
    ctx.file("BUILD", "")
    ctx.file("cc/BUILD", "")
    ctx.file("cc/defs.bzl", _RULES_CC_DEFS)

rules_cc_shim_repository = repository_rule(
    implementation = _rules_cc_shim_repository_impl,
    doc = "@rules_cc for Bazel 4.2.3 (Debian's bazel-rules-cc is too new).",
)

_NO_COVERAGE = """#!/bin/sh
echo "coverage is not available offline (no @remote_coverage_tools)" >&2
exit 1
"""

def _offline_coverage_tools_repository_impl(ctx):
    ctx.file("WORKSPACE", 'workspace(name = "remote_coverage_tools")\n')
    ctx.file("unavailable.sh", _NO_COVERAGE, executable = True)
    ctx.file("BUILD", """package(default_visibility = ["//visibility:public"])
sh_binary(name = "coverage_report_generator", srcs = ["unavailable.sh"])
sh_binary(name = "lcov_merger", srcs = ["unavailable.sh"])
""")

offline_coverage_tools_repository = repository_rule(
    implementation = _offline_coverage_tools_repository_impl,
    doc = "Stands in for @remote_coverage_tools, which Bazel would download.",
)

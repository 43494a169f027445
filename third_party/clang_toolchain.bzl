"""A second local C++ toolchain, clang-14, beside the default gcc one.

Bazel 4 configures @local_config_cc from the CC environment variable, so
switching compilers through --repo_env=CC would re-run that rule and rebuild
everything each time a build alternates between gcc and clang. This rule runs
Bazel's own autoconfiguration (cc_autoconf_impl, the code behind
@local_config_cc) with clang-14 in place of gcc, into a repository of its own.
`--crosstool_top=@local_config_clang//:toolchain` (the `clang` config in
.bazelrc) selects it; the default build never reads it.
"""

load("@bazel_tools//tools/cpp:cc_configure.bzl", "cc_autoconf_impl")

def _clang_toolchain_impl(ctx):
    clang = ctx.which("clang-14")
    if clang == None:
        # Only clang builds fetch this repository; the default build never
        # needs clang.
        fail("clang-14 is not installed: run tools/setup.sh")
    cc_autoconf_impl(ctx, overriden_tools = {"gcc": str(clang)})

clang_toolchain = repository_rule(
    implementation = _clang_toolchain_impl,
    local = True,
    configure = True,
)

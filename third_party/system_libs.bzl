"""A repository of cc_library targets for Debian's system libraries.

Each target links what `pkg-config --libs` prints for its packages, so the
full Abseil link line comes along (a bare -lgrpc++ fails on absl::Mutex).
Headers live in /usr/include, which the compiler searches already (libpq's
in its postgresql/ folder: `#include <postgresql/libpq-fe.h>`).
"""

_LIBS = {
    "grpc": (["grpc++", "protobuf"], ["-lgrpc++_reflection"]),
    "protobuf": (["protobuf"], []),
    "absl": (["absl_status", "absl_statusor", "absl_strings", "absl_str_format", "absl_synchronization", "absl_time", "absl_random_random", "absl_flat_hash_map", "absl_flat_hash_set", "absl_flags", "absl_flags_parse"], []),
    "rdkafka": (["rdkafka++", "rdkafka"], []),
    "prometheus": (["prometheus-cpp-pull", "prometheus-cpp-core"], []),
    "sqlite": (["sqlite3"], []),
    "openssl": (["openssl"], []),
    "gtest": (["gtest", "gmock"], []),
    "gtest_main": (["gtest_main", "gmock"], []),
    "benchmark": (["benchmark"], ["-lbenchmark_main"]),
    "fasttext": (["fasttext"], []),
    "magic": (["libmagic"], []),
    "curl": (["libcurl"], []),
    "libpq": (["libpq"], []),
    "jemalloc": (["jemalloc"], []),
}

def _pkg_config(ctx, args):
    result = ctx.execute(["pkg-config"] + args)
    if result.return_code != 0:
        fail("pkg-config %s failed (run tools/setup.sh first): %s" % (" ".join(args), result.stderr))
    return result.stdout.strip()

def _system_libs_impl(ctx):
    build = ['package(default_visibility = ["//visibility:public"])', ""]
    for name, (packages, extra) in _LIBS.items():
        libs = _pkg_config(ctx, ["--libs"] + packages).split(" ")
        build.append("cc_library(")
        build.append('    name = "%s",' % name)
        build.append("    linkopts = %s," % repr([l for l in libs if l] + extra + ["-lpthread"]))
        build.append(")")
        build.append("")
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD", "\n".join(build))

system_libs = repository_rule(
    implementation = _system_libs_impl,
    local = True,
    environ = ["PKG_CONFIG_PATH"],
)

"""cc_fuzz_test: a libFuzzer target that is also a test of its corpus.

A fuzz target defines LLVMFuzzerTestOneInput (and optionally
LLVMFuzzerInitialize). Built with --config=asan it links libFuzzer
(-fsanitize=fuzzer on top of the config's ASan, UBSan and coverage
instrumentation); tools/fuzz.sh runs it to search for new inputs. As a test,
in every configuration, it runs each file of its seed corpus once: under
asan with libFuzzer (-runs=0), otherwise with a plain main
(//third_party/fuzzing:replay_main). So the default gcc build checks that
every seed and every past crash input still passes.
"""

def cc_fuzz_test(name, srcs, deps = [], corpus = "corpus", data = [], tags = [], **kwargs):
    """Declares a fuzz target `name` with its seed corpus folder `corpus`.

    Args:
      name: the target's name.
      srcs: sources, one of which defines LLVMFuzzerTestOneInput.
      deps: libraries the target uses.
      corpus: folder of seed inputs in this package (one file per input).
      data: other files the target reads at run time.
      tags: extra tags; "fuzz" is always added (tools/fuzz.sh finds targets by it).
      **kwargs: passed to cc_test (size, timeout, ...).
    """
    seeds = native.glob([corpus + "/**"])
    if not seeds:
        fail("cc_fuzz_test %s: no seed inputs in %s/" % (name, corpus))
    native.cc_test(
        name = name,
        srcs = srcs,
        deps = deps + select({
            "//third_party/fuzzing:libfuzzer": [],
            "//conditions:default": ["//third_party/fuzzing:replay_main"],
        }),
        linkopts = select({
            "//third_party/fuzzing:libfuzzer": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        data = seeds + data,
        args = ["-runs=0", native.package_name() + "/" + corpus],
        tags = ["fuzz"] + tags,
        **kwargs
    )

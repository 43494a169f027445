"""cc_fuzz_test: a libFuzzer target that is also a test of its corpus.

A fuzz target defines LLVMFuzzerTestOneInput (and optionally
LLVMFuzzerInitialize). Built with --config=asan it links libFuzzer
(-fsanitize=fuzzer on top of the config's ASan, UBSan and coverage
instrumentation); tools/fuzz.sh runs it to search for new inputs. As a test,
in every configuration, it runs each input of its seed corpus once: under
asan with libFuzzer (-runs=0), otherwise with a plain main
(//third_party/fuzzing:replay_main). So the default gcc build checks that
every seed and every past crash input still passes.

Targets whose input is a protocol buffer (fuzz_cc_proto) keep their seeds as
readable .textproto files, which the build encodes with protoc: a seed that
no longer matches the message fails the build instead of silently fuzzing
nothing.
"""

load("//third_party:proto.bzl", "package_cc_proto")

def fuzz_cc_proto(name, src, deps = []):
    """A cc_library of one fuzz-only .proto of this package.

    The proto imports Switchboard's protos by their path under //proto (e.g.
    "switchboard/sessions/v1/sessions_service.proto"); C++ code includes the
    generated header by its path in the workspace
    ("services/sessions/fuzz/x.pb.h").

    Args:
      name: the cc_library's name.
      src: the .proto file, in this package.
      deps: switchboard_cc_proto targets whose protos `src` imports.
    """
    package_cc_proto(name = name, src = src, deps = deps, testonly = True)

def cc_fuzz_test(
        name,
        srcs,
        deps = [],
        corpus = "corpus",
        seed_proto = None,
        seed_message = None,
        data = [],
        tags = [],
        **kwargs):
    """Declares a fuzz target `name` with its seed corpus folder `corpus`.

    Args:
      name: the target's name.
      srcs: sources, one of which defines LLVMFuzzerTestOneInput.
      deps: libraries the target uses.
      corpus: folder of seed inputs in this package, one file per input.
        Files ending in .textproto are `seed_message` in text format and are
        encoded at build time; any other file is an input as it is.
      seed_proto: a fuzz_cc_proto target defining `seed_message`.
      seed_message: the full name of the message .textproto seeds hold.
      data: other files the target reads at run time.
      tags: extra tags; "fuzz" is always added (tools/fuzz.sh finds targets
        by it).
      **kwargs: passed to cc_test (size, timeout, ...).
    """
    package = native.package_name()
    raw = native.glob([corpus + "/**"], exclude = [corpus + "/**/*.textproto"])
    textprotos = native.glob([corpus + "/**/*.textproto"])
    if not raw and not textprotos:
        fail("cc_fuzz_test %s: no seed inputs in %s/" % (name, corpus))
    if textprotos and not (seed_proto and seed_message):
        fail("cc_fuzz_test %s: .textproto seeds need seed_proto and seed_message" % name)

    corpora = []
    seeds = list(raw)
    if raw:
        corpora.append(package + "/" + corpus)
    if textprotos:
        encoded_dir = name + "_seeds"
        encoded = [encoded_dir + "/" + t[len(corpus) + 1:-len(".textproto")] for t in textprotos]
        native.genrule(
            name = name + "_encode_seeds",
            testonly = True,
            srcs = textprotos + [seed_proto + "_src", seed_proto + "_protos"],
            outs = encoded,
            cmd = " && ".join([
                ("protoc -I. -Iproto -I/usr/include --encode=%s $(location %s_src) " +
                 "< $(location %s) > $(location %s)") % (seed_message, seed_proto, t, e)
                for t, e in zip(textprotos, encoded)
            ]),
        )
        seeds += encoded
        corpora.append(package + "/" + encoded_dir)

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
        args = ["-runs=0"] + corpora,
        tags = ["fuzz"] + tags,
        **kwargs
    )

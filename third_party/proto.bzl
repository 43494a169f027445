"""C++ code generation for Switchboard's protos with Debian's protoc.

Bazel 4's native proto rules need a downloaded @com_google_protobuf, so a
genrule calls the system protoc and grpc_cpp_plugin instead. Imports are
relative to //proto, e.g. "switchboard/presence/v1/presence_service.proto",
and so are the generated headers' include paths.
"""

def switchboard_cc_proto(name, srcs, deps = [], grpc = False):
    """Generates `name`, a cc_library of srcs' messages (and services).

    Args:
      name: the cc_library's name.
      srcs: .proto files in this package.
      deps: other switchboard_cc_proto targets that srcs import.
      grpc: whether srcs define services that need gRPC stubs.
    """
    base = [s[:-len(".proto")] for s in srcs]
    hdrs = [b + ".pb.h" for b in base]
    ccs = [b + ".pb.cc" for b in base]
    if grpc:
        hdrs += [b + ".grpc.pb.h" for b in base]
        ccs += [b + ".grpc.pb.cc" for b in base]
    dep_protos = [d + "_protos" for d in deps]

    native.filegroup(
        name = name + "_protos",
        srcs = srcs + dep_protos,
        visibility = ["//visibility:public"],
    )
    grpc_flags = "--grpc_out=$(GENDIR)/proto --plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin) " if grpc else ""
    native.genrule(
        name = name + "_gen",
        srcs = srcs + dep_protos,
        outs = hdrs + ccs,
        cmd = "protoc -Iproto -I/usr/include --cpp_out=$(GENDIR)/proto " + grpc_flags +
              " ".join(["$(location %s)" % s for s in srcs]),
    )
    native.cc_library(
        name = name,
        srcs = ccs,
        hdrs = hdrs,
        strip_include_prefix = "/proto",
        deps = deps + ["@system//:grpc" if grpc else "@system//:protobuf"],
        visibility = ["//visibility:public"],
    )

def package_cc_proto(name, src, deps = [], testonly = False):
    """A cc_library of one .proto kept beside the code that uses it.

    For messages that are no API (a store's record, a fuzz target's input):
    they stay out of //proto, which documents the services. The proto
    imports Switchboard's protos by their path under //proto (e.g.
    "switchboard/bot/v1/bot_service.proto"); C++ code includes the generated
    header by its path in the workspace ("services/bot/dialogue_record.pb.h").
    Also defines `name`_src (the .proto alone) and `name`_protos (with its
    imports).

    Args:
      name: the cc_library's name.
      src: the .proto file, in this package.
      deps: switchboard_cc_proto targets whose protos `src` imports.
      testonly: for protos only tests and fuzz targets use.
    """
    base = src[:-len(".proto")]
    native.genrule(
        name = name + "_gen",
        testonly = testonly,
        srcs = [src] + [d + "_protos" for d in deps],
        outs = [base + ".pb.h", base + ".pb.cc"],
        cmd = "protoc -I. -Iproto -I/usr/include --cpp_out=$(GENDIR) $(location %s)" % src,
    )
    native.filegroup(
        name = name + "_src",
        testonly = testonly,
        srcs = [src],
    )
    native.filegroup(
        name = name + "_protos",
        testonly = testonly,
        srcs = [src] + [d + "_protos" for d in deps],
    )
    native.cc_library(
        name = name,
        testonly = testonly,
        srcs = [base + ".pb.cc"],
        hdrs = [base + ".pb.h"],
        deps = deps + ["@system//:protobuf"],
    )

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

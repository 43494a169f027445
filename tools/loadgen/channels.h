#pragma once

#include <grpcpp/grpcpp.h>

namespace switchboard::loadgen {

// Arguments for the i-th of several channels to one server that must each
// get a TCP connection of their own: gRPC would otherwise share one
// connection between identical channels, and every call and stream of the
// load generator would queue on it.
grpc::ChannelArguments DistinctChannelArguments(int i);

}  // namespace switchboard::loadgen

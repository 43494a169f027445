#include "tools/loadgen/channels.h"

namespace switchboard::loadgen {

grpc::ChannelArguments DistinctChannelArguments(int i) {
  grpc::ChannelArguments args;
  // A distinct argument and a local subchannel pool: one TCP connection per
  // channel.
  args.SetInt("switchboard.loadgen.channel", i);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  return args;
}

}  // namespace switchboard::loadgen

// Holds a range of loopback ports for a shell test (ReservedPort, for
// scripts that cannot hold a socket themselves): finds a base with
// base+OFFSET reserved for every OFFSET given, prints the base on a line of
// its own, then holds the ports until its standard input ends. Run it as a
// coprocess, so that the ports are held exactly as long as the script:
//
//   coproc PORTS { "$root/libs/testing/hold_ports" 1 2 2001 2002; }
//   read -r base <&"${PORTS[0]}"
//   ... start servers on base+1, base+2, base+2001, base+2002 ...
//
// Exit status 2 for bad arguments, 1 if no base was found.
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "absl/strings/numbers.h"
#include "libs/testing/reserved_port.h"

int main(int argc, char** argv) {
  std::vector<int> offsets;
  for (int i = 1; i < argc; ++i) {
    int offset = 0;
    if (!absl::SimpleAtoi(argv[i], &offset) || offset < 0 || offset > 10000) {
      std::fprintf(stderr, "usage: hold_ports OFFSET... (offsets 0 to 10000)\n");
      return 2;
    }
    offsets.push_back(offset);
  }
  if (offsets.empty()) {
    std::fprintf(stderr, "usage: hold_ports OFFSET... (offsets 0 to 10000)\n");
    return 2;
  }
  for (int attempt = 0; attempt < 200; ++attempt) {
    // A kernel-picked port anchors the search, away from fixed ranges.
    const int base = switchboard::testing::ReservedPort().port() % 20000 + 20000;
    std::vector<switchboard::testing::ReservedPort> held;
    bool all = true;
    for (int offset : offsets) {
      held.emplace_back(base + offset);
      all = all && held.back().held();
    }
    if (!all) continue;
    std::printf("%d\n", base);
    std::fflush(stdout);
    char buffer[256];
    while (read(STDIN_FILENO, buffer, sizeof(buffer)) > 0) {
    }
    return 0;
  }
  std::fprintf(stderr, "hold_ports: no base with all ports free\n");
  return 1;
}

// switchboard: the command-line client for people. See tools/cli/cli.cc
// (`switchboard help`).
#include <iostream>
#include <string>
#include <vector>

#include "tools/cli/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  switchboard::cli::Io io{std::cin, std::cout, std::cerr};
  return switchboard::cli::Run(args, io);
}

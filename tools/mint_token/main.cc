#include <iostream>

#include "libs/clock/clock.h"
#include "tools/mint_token/mint.h"

int main(int argc, char** argv) {
  return switchboard::mint_token::Run(argc, argv,
                                      switchboard::RealClock()->Now(),
                                      std::cout, std::cerr);
}

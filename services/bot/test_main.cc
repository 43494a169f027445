// The main of the bot's tests. Debian's libfasttext.so also exports a
// `main` (the fasttext command-line tool's), which wins over the one in
// libgtest_main.so when both are shared libraries; a main in the test's own
// objects always wins.
#include "gtest/gtest.h"

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

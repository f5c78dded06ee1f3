// FUZZ_CHECK(cond, message...): the fuzz targets' assertion. A violated property prints the
// condition, the place and the message parts (absl::StrCat arguments) to stderr and aborts, which
// libFuzzer reports as a crash and saves the input for. Active in every build type (unlike
// assert). Header-only; any thread.
#ifndef MLASERVE_TESTS_FUZZ_FUZZ_CHECK_H_
#define MLASERVE_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"

#define FUZZ_CHECK(cond, ...)                                                               \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      const std::string fuzz_check_message = absl::StrCat("" __VA_OPT__(, ) __VA_ARGS__);   \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: %s\n", __FILE__, __LINE__, #cond, \
                   fuzz_check_message.c_str());                                             \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

#endif  // MLASERVE_TESTS_FUZZ_FUZZ_CHECK_H_

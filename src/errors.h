#pragma once
// The library reports every failure on bad input as bitnet::Error; tools turn it into a one-line
// message and a non-zero exit code. Nothing in the library aborts on bad input.
#include <stdexcept>
#include <string>

namespace bitnet {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A malformed or unsupported model file. The message names the offending item.
struct FormatError : Error {
  using Error::Error;
};

}  // namespace bitnet

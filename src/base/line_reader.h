#pragma once
// Input that arrives line by line (the interactive chat's turns) is read with a bound: a stream
// with no newline (`< /dev/zero`, a runaway pipe) would otherwise grow one line without end.
#include <cstddef>
#include <istream>
#include <string>

namespace bitnet {

enum class LineStatus {
  Line,     // `line` holds the next line (without its '\n' and a '\r' before it)
  TooLong,  // more than max_bytes came without a newline; `line` holds the first max_bytes, the
            // next byte is left unread
  End,      // end of input with nothing read (a last line without '\n' comes back as Line)
};

LineStatus read_bounded_line(std::istream& in, size_t max_bytes, std::string& line);

}  // namespace bitnet

#include "base/line_reader.h"

namespace bitnet {

LineStatus read_bounded_line(std::istream& in, size_t max_bytes, std::string& line) {
  line.clear();
  std::streambuf* buf = in.rdbuf();
  bool any = false;
  for (;;) {
    const int c = buf ? buf->sgetc() : std::char_traits<char>::eof();
    if (c == std::char_traits<char>::eof()) {
      in.setstate(std::ios::eofbit);
      if (!any) return LineStatus::End;
      break;
    }
    any = true;
    if (c == '\n') {
      buf->sbumpc();
      break;
    }
    if (line.size() == max_bytes) return LineStatus::TooLong;  // the byte stays unread
    line.push_back(char(c));
    buf->sbumpc();
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return LineStatus::Line;
}

}  // namespace bitnet

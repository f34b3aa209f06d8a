#pragma once
// llama.cpp's -e / --escape: backslash escapes in a prompt given on the command line.
#include <string>
#include <string_view>

namespace bitnet {

// \n \r \t \a \b \f \v \\ \' \" \? \0 and \xHH (one or two hex digits) become the byte they name;
// a backslash before anything else, or at the end, stays as it is.
std::string process_escapes(std::string_view text);

}  // namespace bitnet

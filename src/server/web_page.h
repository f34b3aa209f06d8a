#pragma once
// The built-in web page served at GET /: a chat box and a live view of the server's metrics.
// Compiled into the binary (web_page.cpp) so the server needs no files at run time.
namespace bitnet::server {

extern const char* const kIndexHtml;

}  // namespace bitnet::server

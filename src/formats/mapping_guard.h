#pragma once
// Model files are memory-mapped; if one shrinks while mapped (truncated, or overwritten in place by
// a shorter file), touching its pages past the new end raises SIGBUS, which would kill the process
// with no word of why. Guarded mappings turn that into a one-line error naming the file and exit
// status 1. (A file replaced by rename keeps its old inode mapped and is unaffected; one rewritten
// in place at the same size changes the weights silently — no cheap check can tell.)
#include <cstddef>
#include <string>

namespace bitnet {

// Registers [addr, addr + len) as the mapping of `path` (at most 64 at once; more are not guarded).
void guard_mapping(const void* addr, size_t len, const std::string& path);
void unguard_mapping(const void* addr);

}  // namespace bitnet

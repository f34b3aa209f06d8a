#include "formats/mapping_guard.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>

namespace bitnet {

namespace {

struct Guarded {
  std::atomic<uintptr_t> begin{0}, end{0};
  char message[640];  // written before `end` is published; read by the handler only when in range
  size_t length = 0;
};
constexpr int kSlots = 64;
Guarded g_slots[kSlots];
std::mutex g_mutex;  // registration only; the handler reads the atomics

void on_sigbus(int sig, siginfo_t* info, void*) {
  const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (Guarded& s : g_slots) {
    const uintptr_t b = s.begin.load(std::memory_order_acquire), e = s.end.load(std::memory_order_acquire);
    if (b != 0 && addr >= b && addr < e) {
      [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, s.message, s.length);
      _exit(1);
    }
  }
  // Not a model file: the default action, as if no handler were installed.
  signal(sig, SIG_DFL);
}

void install_handler() {
  struct sigaction sa {};
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, nullptr);
}

}  // namespace

void guard_mapping(const void* addr, size_t len, const std::string& path) {
  static std::once_flag installed;
  std::call_once(installed, install_handler);
  std::lock_guard lock(g_mutex);
  for (Guarded& s : g_slots) {
    if (s.begin.load() != 0) continue;
    std::string text = "error: the model file " + path +
                       " changed while in use (truncated or rewritten in place); restart with an intact file\n";
    if (text.size() > sizeof(s.message)) text = text.substr(0, sizeof(s.message) - 1) + "\n";
    std::memcpy(s.message, text.data(), text.size());
    s.length = text.size();
    s.end.store(reinterpret_cast<uintptr_t>(addr) + len, std::memory_order_release);
    s.begin.store(reinterpret_cast<uintptr_t>(addr), std::memory_order_release);
    return;
  }
}

void unguard_mapping(const void* addr) {
  std::lock_guard lock(g_mutex);
  for (Guarded& s : g_slots)
    if (s.begin.load() == reinterpret_cast<uintptr_t>(addr)) {
      s.begin.store(0, std::memory_order_release);
      s.end.store(0, std::memory_order_release);
    }
}

}  // namespace bitnet

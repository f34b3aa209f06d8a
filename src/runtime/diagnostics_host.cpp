// Host probes for the diagnostics report: /proc and /sys readers, a bind test, a spawn test.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "kernels/cpu_features.h"
#include "runtime/diagnostics.h"

extern char** environ;

namespace bitnet {
namespace {

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  const auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// Value after "key :" in /proc/cpuinfo style text, first occurrence.
std::string field(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const auto colon = line.find(':');
    if (colon != std::string::npos && trim(line.substr(0, colon)) == key) return trim(line.substr(colon + 1));
  }
  return "";
}

bool has_word(const std::string& list, const std::string& word) {
  std::istringstream in(list);
  for (std::string w; in >> w;)
    if (w == word) return true;
  return false;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::optional<uint64_t> read_u64(const std::string& path) {
  std::ifstream in(path);
  uint64_t v = 0;
  if (in >> v) return v;
  return std::nullopt;  // missing, or "max"
}

}  // namespace

CpuInfo probe_cpu() {
  CpuInfo c;
  utsname u{};
  if (uname(&u) == 0) c.arch = u.machine;
  const std::string info = slurp("/proc/cpuinfo");
  c.model = field(info, "model name");
  if (c.model.empty()) c.model = field(info, "Hardware");
  if (c.model.empty()) c.model = field(info, "CPU part").empty() ? "unknown" : "ARM CPU part " + field(info, "CPU part");
  const auto& f = kernels::cpu_features();
  c.avx2 = f.avx2 && f.fma && f.f16c;
  c.avx512f = f.avx512f;
  c.avx512_vnni = f.avx512vnni && f.avx512bw && f.avx512vl;
  c.avx_vnni = f.avxvnni;
  const std::string arm = field(info, "Features");  // aarch64: "fp asimd ... asimddp ..."
  c.neon = c.arch == "aarch64" || has_word(arm, "asimd") || has_word(arm, "neon");
  c.dotprod = has_word(arm, "asimddp");
  c.kernel = kernels::reference_kernels() ? "reference" : std::string(kernels::isa_name(kernels::active_isa()));
  return c;
}

MemoryInfo probe_memory() {
  MemoryInfo m;
  const std::string info = slurp("/proc/meminfo");
  auto kib = [&](const char* key) {
    const std::string v = field(info, key);  // "123456 kB"
    return v.empty() ? uint64_t(0) : uint64_t(std::stoull(v)) * 1024;
  };
  m.total = kib("MemTotal");
  m.available = kib("MemAvailable");
  m.limit_source = "MemAvailable";
  // cgroup v2, then v1: a container's limit can be far below the host's free memory.
  for (const auto& [limit, usage] : {std::pair{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
                                     std::pair{"/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                               "/sys/fs/cgroup/memory/memory.usage_in_bytes"}}) {
    const auto l = read_u64(limit), u = read_u64(usage);
    if (!l || !u || *l >= m.total) continue;
    const uint64_t left = *l > *u ? *l - *u : 0;
    if (left < m.available) {
      m.available = left;
      m.limit_source = std::string("cgroup ") + limit;
    }
    break;
  }
  return m;
}

GpuInfo probe_gpu() {
  GpuInfo g;
  std::error_code ec;
  const std::filesystem::path gpus = "/proc/driver/nvidia/gpus";
  if (std::filesystem::is_directory(gpus, ec))
    for (const auto& e : std::filesystem::directory_iterator(gpus, ec)) {
      const std::string model = field(slurp((e.path() / "information").string()), "Model");
      g.devices.push_back(model.empty() ? e.path().filename().string() : model);
    }
  std::string version = slurp("/proc/driver/nvidia/version");
  g.driver = trim(version.substr(0, version.find('\n')));
  for (const char* dir : {"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/local/cuda/lib64"})
    if (std::filesystem::exists(std::string(dir) + "/libcuda.so.1", ec)) g.cuda_library = true;
  return g;
}

std::string port_problem(const std::string& host, int port) {
  if (port < 1 || port > 65535) return "port " + std::to_string(port) + " is outside 1..65535";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  const std::string h = host == "localhost" ? "127.0.0.1" : host;
  if (inet_pton(AF_INET, h.c_str(), &addr.sin_addr) != 1) return "host " + host + " is not an IPv4 address";
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return std::string("cannot create a socket: ") + std::strerror(errno);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));  // as the server will
  std::string problem;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    problem = "cannot bind " + host + ":" + std::to_string(port) + ": " + std::strerror(errno);
  close(fd);
  return problem;
}

std::string binary_problem(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return "not found: " + path;
  if (access(path.c_str(), X_OK) != 0) return "not executable: " + path;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::string arg0 = path, arg1 = "--help";
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = 0;
  const int err = posix_spawn(&pid, path.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) return "cannot start " + path + ": " + std::strerror(err);
  int status = 0;
  // A binary that hangs on --help is as broken as one that crashes; never wait forever.
  for (int i = 0; i < 1000; ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
      return path + " --help failed (" +
             (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                : "signal " + std::to_string(WTERMSIG(status))) + ")";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return path + " --help did not finish within 10 s";
}

std::string self_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "." : exe.parent_path().string();
}

}  // namespace bitnet

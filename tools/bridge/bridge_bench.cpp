// bridge_bench: shmring-bridge against raw ZeroMQ between two network
// namespaces joined by a veth pair (docs/bridge.md, "Benchmark"). Needs root.
//
//   bridge_bench [--reps R] [--records64 N] [--records4k N] [--samples N]
//
// Cases, interleaved R times (the machine may be loaded by others; the
// report gives the median of each case and the ratios of medians):
//   throughput/bridge/<bytes>        producer -> ring -> send bridge => recv bridge -> ring -> consumer
//   throughput/zmq_batched/<bytes>   PUSH packs records into 64 KiB messages (the bridge's batch format), PULL unpacks
//   throughput/zmq_per_record/64     one ZeroMQ message per record
//   latency/bridge/64                one record at a time, ring -> bridge -> ring, one way (default --batch-us 200)
//   latency/bridge_batch_us0/64      the same with --batch-us 0 (send as soon as the ring is empty)
//   latency/zmq_oneway/64            one PUSH message at a time, one way
//   latency/zmq_roundtrip/64         PUSH/PULL ping-pong, full round trip
// Every receiver checks each record's sequence number and checksum; only
// records that pass count.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "shmring/shmring.hpp"

#ifndef SHMRING_BRIDGE_BIN
#error "SHMRING_BRIDGE_BIN must name the shmring-bridge binary"
#endif

namespace {

using namespace std::chrono_literals;
using shmring::Errc;

std::int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);  // one clock for every namespace of the host
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

int sh(const std::string& cmd) {
  const int st = std::system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// Record: u64 seq, u64 checksum, then filler derived from seq.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
void fill(std::byte* p, std::size_t n, std::uint64_t seq, std::int64_t ts = 0) {
  std::uint64_t sum = mix(seq);
  for (std::size_t i = 16; i + 8 <= n; i += 8) {
    const std::uint64_t w = (i == 16 && ts != 0) ? static_cast<std::uint64_t>(ts) : seq * 31 + i;
    std::memcpy(p + i, &w, 8);
    sum += w;
  }
  std::memcpy(p, &seq, 8);
  std::memcpy(p + 8, &sum, 8);
}
bool check(const std::byte* p, std::size_t n, std::uint64_t expect_seq) {
  if (n < 16) return false;
  std::uint64_t seq, sum, s;
  std::memcpy(&seq, p, 8);
  std::memcpy(&sum, p + 8, 8);
  s = mix(seq);
  for (std::size_t i = 16; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    s += w;
  }
  return seq == expect_seq && s == sum;
}

struct Shared {
  std::atomic<std::int64_t> t_start{0}, t_end{0};
  std::atomic<std::uint64_t> ok{0}, bad{0};
  std::atomic<std::uint64_t> arrived{0};
  std::int64_t lat[200000];
};

Shared* g_sh = nullptr;
std::string g_ns_a, g_ns_b;

pid_t spawn(const std::string& ns, const std::function<int()>& fn) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (!ns.empty()) {
      const int fd = open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) _exit(120);
    }
    _exit(fn());
  }
  return pid;
}
pid_t spawn_bridge(const std::string& ns, std::vector<std::string> args) {
  return spawn(ns, [&] {
    const int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    std::vector<char*> argv;
    static std::string bin = SHMRING_BRIDGE_BIN;
    argv.push_back(bin.data());
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    return 122;
  });
}
int reap(pid_t p) {
  int st = 0;
  waitpid(p, &st, 0);
  return st;
}
void stop(pid_t p) {
  kill(p, SIGTERM);
  reap(p);
}

void reset_shared() {
  g_sh->t_start = 0;
  g_sh->t_end = 0;
  g_sh->ok = 0;
  g_sh->bad = 0;
  g_sh->arrived = 0;
}

// ---- bridge cases ------------------------------------------------------------

struct Rings {
  std::string a, b;
  explicit Rings(std::size_t cap) {
    a = "/bridge_bench." + std::to_string(getpid()) + ".a";
    b = "/bridge_bench." + std::to_string(getpid()) + ".b";
    shmring::Config cfg;
    cfg.capacity = cap;
    (void)shmring::create(a, cfg);
    (void)shmring::create(b, cfg);
  }
  ~Rings() {
    (void)shmring::unlink(a);
    (void)shmring::unlink(b);
    unlink(("/dev/shm" + a + ".bridge-send").c_str());
  }
};

double bridge_throughput(std::size_t size, std::uint64_t n) {
  reset_shared();
  Rings r(8 << 20);
  const pid_t rb = spawn_bridge(g_ns_b, {"recv", "tcp://10.201.0.2:5556", r.b});
  const pid_t sb = spawn_bridge(g_ns_a, {"send", r.a, "tcp://10.201.0.2:5556"});
  const pid_t cons = spawn("", [&] {
    auto c = shmring::Consumer::open(r.b);
    if (!c) return 1;
    for (std::uint64_t i = 0; i < n;) {
      auto v = c->peek(1s);
      if (!v) continue;
      (check(v->data(), v->size(), i) ? g_sh->ok : g_sh->bad).fetch_add(1, std::memory_order_relaxed);
      ++i;
      (void)c->release(i % 64 == 0 ? shmring::Publish::now : shmring::Publish::later);
    }
    g_sh->t_end = now_ns();
    return 0;
  });
  const pid_t prod = spawn("", [&] {
    auto p = shmring::Producer::open(r.a);
    if (!p) return 1;
    g_sh->t_start = now_ns();
    for (std::uint64_t i = 0; i < n; ++i) {
      auto w = p->reserve(size, 10s);
      if (!w) return 2;
      fill(w->data(), size, i);
      (void)p->commit(size, (i + 1) % 64 == 0 || i + 1 == n ? shmring::Publish::now : shmring::Publish::later);
    }
    return 0;
  });
  reap(prod);
  reap(cons);
  stop(sb);
  stop(rb);
  if (g_sh->bad != 0 || g_sh->ok != n) return 0;
  return double(n) * 1e9 / double(g_sh->t_end - g_sh->t_start);
}

double bridge_latency(std::uint64_t samples, bool batch0, std::vector<std::int64_t>* lat) {
  Rings r(1 << 20);
  const pid_t rb = spawn_bridge(g_ns_b, {"recv", "tcp://10.201.0.2:5557", r.b});
  std::vector<std::string> sargs{"send", r.a, "tcp://10.201.0.2:5557"};
  if (batch0) sargs.insert(sargs.end(), {"--batch-us", "0"});
  const pid_t sb = spawn_bridge(g_ns_a, sargs);
  lat->clear();
  {
    auto p = shmring::Producer::open(r.a);
    auto c = shmring::Consumer::open(r.b);
    for (std::uint64_t i = 0; p && c && i < samples + 100; ++i) {
      std::byte rec[64];
      const std::int64_t t0 = now_ns();
      fill(rec, sizeof rec, i, t0);
      (void)p->send(rec, 10s);
      auto v = c->peek(10s);
      if (!v) break;
      const std::int64_t t1 = now_ns();
      if (!check(v->data(), v->size(), i)) break;
      (void)c->release();
      if (i >= 100) lat->push_back(t1 - t0);  // the first 100: connection warm-up
    }
  }
  stop(sb);
  stop(rb);
  return 0;
}

// ---- raw ZeroMQ cases -----------------------------------------------------------

void* zsock(void* ctx, int type, int hwm) {
  void* s = zmq_socket(ctx, type);
  zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
  zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
  return s;
}

double zmq_throughput(std::size_t size, std::uint64_t n, bool batched) {
  reset_shared();
  const pid_t pull = spawn(g_ns_b, [&] {
    void* ctx = zmq_ctx_new();
    void* s = zsock(ctx, ZMQ_PULL, batched ? 16 : 1000);
    zmq_bind(s, "tcp://10.201.0.2:5558");
    zmq_msg_t m;
    zmq_msg_init(&m);
    std::uint64_t i = 0;
    while (i < n) {
      if (zmq_msg_recv(&m, s, 0) < 0) continue;
      const auto* d = static_cast<const std::byte*>(zmq_msg_data(&m));
      const std::size_t len = zmq_msg_size(&m);
      if (!batched) {
        (check(d, len, i) ? g_sh->ok : g_sh->bad).fetch_add(1, std::memory_order_relaxed);
        ++i;
        continue;
      }
      for (std::size_t off = 0; off + 4 <= len && i < n;) {
        std::uint32_t rl;
        std::memcpy(&rl, d + off, 4);
        off += 4;
        (off + rl <= len && check(d + off, rl, i) ? g_sh->ok : g_sh->bad).fetch_add(1, std::memory_order_relaxed);
        off += rl;
        ++i;
      }
    }
    g_sh->t_end = now_ns();
    zmq_msg_close(&m);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return 0;
  });
  const pid_t push = spawn(g_ns_a, [&] {
    void* ctx = zmq_ctx_new();
    void* s = zsock(ctx, ZMQ_PUSH, batched ? 16 : 1000);
    zmq_connect(s, "tcp://10.201.0.2:5558");
    std::vector<std::byte> buf;
    buf.reserve(65536 + 64 + size);
    g_sh->t_start = now_ns();
    for (std::uint64_t i = 0; i < n; ++i) {
      if (!batched) {
        std::byte rec[64];
        fill(rec, sizeof rec, i);
        zmq_send(s, rec, sizeof rec, 0);
        continue;
      }
      if (!buf.empty() && buf.size() + 4 + size > 65536) {
        zmq_send(s, buf.data(), buf.size(), 0);
        buf.clear();
      }
      const std::size_t at = buf.size();
      buf.resize(at + 4 + size);
      const std::uint32_t rl = static_cast<std::uint32_t>(size);
      std::memcpy(buf.data() + at, &rl, 4);
      fill(buf.data() + at + 4, size, i);
    }
    if (!buf.empty()) zmq_send(s, buf.data(), buf.size(), 0);
    zmq_close(s);
    zmq_ctx_term(ctx);  // lingers until everything left
    return 0;
  });
  reap(push);
  reap(pull);
  if (g_sh->bad != 0 || g_sh->ok != n) return 0;
  return double(n) * 1e9 / double(g_sh->t_end - g_sh->t_start);
}

void zmq_latency(std::uint64_t samples, bool roundtrip, std::vector<std::int64_t>* lat) {
  reset_shared();
  const std::uint64_t total = samples + 100;
  const pid_t far = spawn(g_ns_b, [&] {
    void* ctx = zmq_ctx_new();
    void* in = zsock(ctx, ZMQ_PULL, 1000);
    void* out = zsock(ctx, ZMQ_PUSH, 1000);
    zmq_bind(in, "tcp://10.201.0.2:5559");
    zmq_bind(out, "tcp://10.201.0.2:5560");
    std::byte rec[64];
    for (std::uint64_t i = 0; i < total; ++i) {
      if (zmq_recv(in, rec, sizeof rec, 0) != 64) return 1;
      const std::int64_t t1 = now_ns();
      std::int64_t t0;
      std::memcpy(&t0, rec + 16, 8);
      if (!check(rec, sizeof rec, i)) return 2;
      if (roundtrip) {
        zmq_send(out, rec, sizeof rec, 0);
      } else {
        if (i < 200000) g_sh->lat[i] = t1 - t0;
        g_sh->arrived.store(i + 1, std::memory_order_release);
      }
    }
    int z = 0;
    zmq_setsockopt(out, ZMQ_LINGER, &z, sizeof z);
    zmq_close(in);
    zmq_close(out);
    zmq_ctx_term(ctx);
    return 0;
  });
  const pid_t near = spawn(g_ns_a, [&] {
    void* ctx = zmq_ctx_new();
    void* out = zsock(ctx, ZMQ_PUSH, 1000);
    void* in = zsock(ctx, ZMQ_PULL, 1000);
    zmq_connect(out, "tcp://10.201.0.2:5559");
    zmq_connect(in, "tcp://10.201.0.2:5560");
    std::byte rec[64];
    for (std::uint64_t i = 0; i < total; ++i) {
      const std::int64_t t0 = now_ns();
      fill(rec, sizeof rec, i, t0);
      zmq_send(out, rec, sizeof rec, 0);
      if (roundtrip) {
        if (zmq_recv(in, rec, sizeof rec, 0) != 64) return 1;
        if (i < 200000) g_sh->lat[i] = now_ns() - t0;
      } else {
        while (g_sh->arrived.load(std::memory_order_acquire) <= i) {
        }
      }
    }
    int z = 0;
    zmq_setsockopt(out, ZMQ_LINGER, &z, sizeof z);
    zmq_close(in);
    zmq_close(out);
    zmq_ctx_term(ctx);
    return 0;
  });
  reap(near);
  reap(far);
  lat->assign(g_sh->lat + 100, g_sh->lat + std::min<std::uint64_t>(total, 200000));
}

std::int64_t pct(std::vector<std::int64_t> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * double(v.size())))];
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 3;
  std::uint64_t n64 = 5'000'000, n4k = 200'000, samples = 20'000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const unsigned long long v = std::strtoull(argv[i + 1], nullptr, 10);
    if (a == "--reps") reps = static_cast<int>(v);
    else if (a == "--records64") n64 = v;
    else if (a == "--records4k") n4k = v;
    else if (a == "--samples") samples = std::min<std::uint64_t>(v, 199'000);
    else {
      std::fprintf(stderr, "usage: bridge_bench [--reps R] [--records64 N] [--records4k N] [--samples N]\n");
      return 2;
    }
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "bridge_bench: needs root (network namespaces)\n");
    return 1;
  }
  void* mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  g_sh = new (mem) Shared;
  const std::string id = std::to_string(getpid());
  g_ns_a = "bbench-" + id + "-a";
  g_ns_b = "bbench-" + id + "-b";
  const std::string va = "vbb" + id + "a", vb = "vbb" + id + "b";
  const bool ok = sh("ip netns add " + g_ns_a) == 0 && sh("ip netns add " + g_ns_b) == 0 &&
                  sh("ip link add " + va + " type veth peer name " + vb) == 0 &&
                  sh("ip link set " + va + " netns " + g_ns_a) == 0 && sh("ip link set " + vb + " netns " + g_ns_b) == 0 &&
                  sh("ip -n " + g_ns_a + " addr add 10.201.0.1/30 dev " + va) == 0 &&
                  sh("ip -n " + g_ns_b + " addr add 10.201.0.2/30 dev " + vb) == 0 &&
                  sh("ip -n " + g_ns_a + " link set " + va + " up") == 0 &&
                  sh("ip -n " + g_ns_b + " link set " + vb + " up") == 0 &&
                  sh("ip -n " + g_ns_a + " link set lo up") == 0 && sh("ip -n " + g_ns_b + " link set lo up") == 0;
  std::map<std::string, std::vector<double>> tput;
  std::map<std::string, std::vector<std::int64_t>> lat;
  if (ok) {
    std::printf("bridge_bench: %d interleaved repetitions; 64 B: %llu records, 4 KiB: %llu records, %llu latency "
                "samples; veth between two network namespaces\n",
                reps, (unsigned long long)n64, (unsigned long long)n4k, (unsigned long long)samples);
    std::fflush(stdout);
    for (int r = 0; r < reps; ++r) {
      tput["throughput/bridge/64"].push_back(bridge_throughput(64, n64));
      tput["throughput/zmq_batched/64"].push_back(zmq_throughput(64, n64, true));
      tput["throughput/zmq_per_record/64"].push_back(zmq_throughput(64, n64, false));
      tput["throughput/bridge/4096"].push_back(bridge_throughput(4096, n4k));
      tput["throughput/zmq_batched/4096"].push_back(zmq_throughput(4096, n4k, true));
      std::vector<std::int64_t> v;
      bridge_latency(samples, false, &v);
      lat["latency/bridge/64"].insert(lat["latency/bridge/64"].end(), v.begin(), v.end());
      bridge_latency(samples, true, &v);
      lat["latency/bridge_batch_us0/64"].insert(lat["latency/bridge_batch_us0/64"].end(), v.begin(), v.end());
      zmq_latency(samples, false, &v);
      lat["latency/zmq_oneway/64"].insert(lat["latency/zmq_oneway/64"].end(), v.begin(), v.end());
      zmq_latency(samples, true, &v);
      lat["latency/zmq_roundtrip/64"].insert(lat["latency/zmq_roundtrip/64"].end(), v.begin(), v.end());
      std::printf("rep %d done\n", r + 1);
      std::fflush(stdout);
    }
    for (auto& [k, v] : tput) {
      std::printf("%-32s median %10.0f records/s  (", k.c_str(), median(v));
      for (double x : v) std::printf(" %.0f", x);
      std::printf(" )\n");
    }
    auto m = [&](const char* k) { return median(tput[k]); };
    std::printf("ratio bridge/zmq_batched 64 B:      %.2f\n", m("throughput/bridge/64") / m("throughput/zmq_batched/64"));
    std::printf("ratio bridge/zmq_batched 4 KiB:     %.2f\n", m("throughput/bridge/4096") / m("throughput/zmq_batched/4096"));
    std::printf("ratio bridge/zmq_per_record 64 B:   %.2f\n", m("throughput/bridge/64") / m("throughput/zmq_per_record/64"));
    for (auto& [k, v] : lat)
      std::printf("%-32s p50 %8.1f us  p99 %8.1f us  (%zu samples)\n", k.c_str(), pct(v, 0.5) / 1e3,
                  pct(v, 0.99) / 1e3, v.size());
  } else {
    std::fprintf(stderr, "bridge_bench: cannot set up the network namespaces\n");
  }
  sh("ip netns del " + g_ns_a);
  sh("ip netns del " + g_ns_b);
  return ok ? 0 : 1;
}

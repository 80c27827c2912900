// Robustness: inspect --json and verify, the real binary, on at least 10,000
// randomly damaged objects (mutated valid headers of every kind, damaged data
// areas, truncations at random lengths, random bytes). Every object must get
// a result (a batch deadline kills a hang; a crash names the object), with
// an exit code of the documented set, one stderr line exactly when it fails,
// JSON that parses, and inspect and verify agreeing. SHMRING_FUZZ_SEED and
// SHMRING_FUZZ_ITERATIONS override the seed and the count.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "json.hpp"
#include "layout.hpp"
#include "run.hpp"
#include "shmring/ring.hpp"
#include "support/shm_raw.hpp"
#include "support/test_support.hpp"

namespace {

using namespace shmtool_test;
using shmring::Errc;
namespace sd = shmring::detail;

std::span<const std::byte> bytes_of(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

// Valid images of every kind, with records in them, wrapped indices, skip
// records, and live-looking attach entries.
std::vector<std::vector<std::byte>> base_images() {
  std::vector<std::vector<std::byte>> out;
  struct K {
    shmring::Kind kind;
    shmring::WaitStrategy wait;
  };
  for (K k : {K{shmring::Kind::spsc, shmring::WaitStrategy::futex}, K{shmring::Kind::spsc, shmring::WaitStrategy::sem},
              K{shmring::Kind::mpmc, shmring::WaitStrategy::futex}, K{shmring::Kind::mpmc, shmring::WaitStrategy::spin},
              K{shmring::Kind::locked, shmring::WaitStrategy::futex},
              K{shmring::Kind::locked, shmring::WaitStrategy::sem}}) {
    const std::string name = shmring::test::unique_ring_name("base");
    shmring::test::ShmGuard guard(name);
    shmring::Config cfg;
    cfg.kind = k.kind;
    cfg.wait = k.wait;
    cfg.capacity = 4096;
    cfg.slot_size = k.kind == shmring::Kind::mpmc ? 64 : 0;
    if (shmring::create(name, cfg) != Errc::ok) continue;
    {
      auto p = shmring::Producer::open(name);
      auto c = shmring::Consumer::open(name);
      if (!p.ok() || !c.ok()) continue;
      std::mt19937 rng(static_cast<unsigned>(out.size()) + 1);
      char buf[4096];
      // Go around the ring a few times (skip records, wrapped indices), then
      // leave some records in it.
      for (int i = 0; i < 300; ++i) {
        const std::size_t len = rng() % (k.kind == shmring::Kind::mpmc ? 64 : 700);
        (void)p->send(bytes_of(std::string(len, static_cast<char>('a' + i % 26))), shmring::Timeout::try_once());
        if (i < 280) (void)c->recv(std::as_writable_bytes(std::span(buf)), shmring::Timeout::try_once());
      }
      out.push_back(shmring::test::read_object(name));
    }
    // A copy with attach entries as the handles left them (freed on close,
    // so plant two: ours, alive, and a dead one).
    std::vector<std::byte> with_peers = out.back();
    auto* h = reinterpret_cast<sd::Header*>(with_peers.data());
    h->attach[0].state = sd::attach_word(::getpid(), 1, sd::kPhaseAttached);
    h->attach[0].pid = ::getpid();
    h->attach[0].role = 1;
    h->attach[0].start_time = 1;  // wrong start time: "dead (reused pid)"
    h->attach[3].state = sd::attach_word(1, 2, sd::kPhaseClaiming);
    out.push_back(std::move(with_peers));
  }
  return out;
}

std::uint64_t special(std::mt19937_64& rng, std::uint64_t near) {
  switch (rng() % 10) {
    case 0: return 0;
    case 1: return ~std::uint64_t{0};
    case 2: return std::uint64_t{1} << (rng() % 64);
    case 3: return near + (rng() % 17) - 8;
    case 4: return near * 2;
    case 5: return rng() & 0xffffffffu;
    case 6: return 4096;
    case 7: return (std::uint64_t{1} << 40) + 4096;
    default: return rng();
  }
}

std::vector<std::byte> mutate(const std::vector<std::vector<std::byte>>& bases, std::mt19937_64& rng, int* kind_out) {
  const int kind = static_cast<int>(rng() % 10);
  *kind_out = kind;
  if (kind == 0) {  // random bytes, random length
    std::vector<std::byte> v(rng() % 3 == 0 ? rng() % 64 : rng() % 16384);
    for (auto& b : v) b = static_cast<std::byte>(rng());
    if (v.size() >= 8 && rng() % 2 == 0) std::memcpy(v.data(), sd::kMagic, 8);  // our magic, garbage after
    return v;
  }
  std::vector<std::byte> v = bases[rng() % bases.size()];
  auto put64 = [&](std::size_t off, std::uint64_t x) {
    if (off + 8 <= v.size()) std::memcpy(v.data() + off, &x, 8);
  };
  auto get64 = [&](std::size_t off) {
    std::uint64_t x = 0;
    if (off + 8 <= v.size()) std::memcpy(&x, v.data() + off, 8);
    return x;
  };
  auto put32 = [&](std::size_t off, std::uint32_t x) {
    if (off + 4 <= v.size()) std::memcpy(v.data() + off, &x, 4);
  };
  const int rounds = kind == 9 ? 2 + static_cast<int>(rng() % 4) : 1;
  for (int round = 0; round < rounds; ++round) {
    const int k = kind == 9 ? 1 + static_cast<int>(rng() % 7) : kind;
    switch (k) {
      case 1: {  // flip bytes in the header
        const int n = 1 + static_cast<int>(rng() % 8);
        for (int i = 0; i < n; ++i) v[rng() % 4096] ^= static_cast<std::byte>(1 + rng() % 255);
        break;
      }
      case 2: {  // an identity field set to a special value
        const std::size_t off = (rng() % 16) * 8;
        if (rng() % 2) put64(off, special(rng, get64(off)));
        else put32(off + 4 * (rng() % 2), static_cast<std::uint32_t>(special(rng, get64(off))));
        break;
      }
      case 3: {  // indices and counters
        static const std::size_t offs[] = {128, 136, 256, 264};
        const std::size_t off = offs[rng() % 4];
        put64(off, special(rng, get64(off)));
        break;
      }
      case 4: {  // the data area: record headers, slot words, lengths
        const int n = 1 + static_cast<int>(rng() % 6);
        for (int i = 0; i < n && v.size() > 4104; ++i) {
          const std::size_t off = 4096 + ((rng() % (v.size() - 4104)) & ~std::size_t{7});
          if (rng() % 2) put64(off, special(rng, get64(off)));
          else put32(off, static_cast<std::uint32_t>(rng()));
        }
        break;
      }
      case 5: {  // the attach table, role words, wait words, lock block
        static const std::size_t regions[][2] = {{1024, 2048}, {3072, 128}, {384, 256}, {768, 256}, {640, 128}};
        const auto& r = regions[rng() % 5];
        const std::size_t off = r[0] + ((rng() % r[1]) & ~std::size_t{7});
        put64(off, rng() % 3 == 0 ? sd::attach_word(static_cast<std::int32_t>(rng()), static_cast<std::uint32_t>(rng() % 4),
                                                   rng() % 4)
                                  : special(rng, get64(off)));
        break;
      }
      case 6:  // truncate at a random length
        v.resize(rng() % (v.size() + 1));
        break;
      case 7:  // grow or shrink a little (size disagrees with the header)
        v.resize(static_cast<std::size_t>(
            std::max<std::int64_t>(1, static_cast<std::int64_t>(v.size()) + static_cast<std::int64_t>(rng() % 8193) - 4096)));
        break;
      default: break;
    }
  }
  return v;
}

bool write_image(const std::string& name, const std::vector<std::byte>& v) {
  const int fd = ::open(shmring::test::shm_path(name).c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return false;
  bool ok = ::ftruncate(fd, 0) == 0;
  if (ok && !v.empty()) ok = ::pwrite(fd, v.data(), v.size(), 0) == static_cast<ssize_t>(v.size());
  ok = ok && ::ftruncate(fd, static_cast<off_t>(v.size())) == 0;
  ::close(fd);
  return ok;
}

std::uint64_t env_u64(const char* name, std::uint64_t dflt) {
  const char* s = std::getenv(name);
  return s != nullptr && *s != '\0' ? std::strtoull(s, nullptr, 10) : dflt;
}

// One object's outcome, from a batch record or a single run.
struct Outcome {
  int code = -1;
  std::string out, err;
  int err_lines() const {
    int n = 0;
    for (char c : err) n += c == '\n';
    return n;
  }
};

// Splits the batch output ("@@ code outlen errlen\n" + out + err per object).
std::vector<Outcome> parse_batch(const std::string& s) {
  std::vector<Outcome> v;
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t nl = s.find('\n', i);
    if (s.compare(i, 3, "@@ ") != 0 || nl == std::string::npos) break;
    Outcome o;
    unsigned long long ol = 0, el = 0;
    if (std::sscanf(s.c_str() + i, "@@ %d %llu %llu", &o.code, &ol, &el) != 3) break;
    i = nl + 1;
    if (i + ol + el > s.size()) break;
    o.out = s.substr(i, ol);
    o.err = s.substr(i + ol, el);
    i += ol + el;
    v.push_back(std::move(o));
  }
  return v;
}

// Removes every /dev/shm entry starting with the prefix.
class PrefixCleanup {
 public:
  explicit PrefixCleanup(std::string prefix) : prefix_(std::move(prefix)) {}
  ~PrefixCleanup() {
    for (const auto& n : shmring::test::leftover_objects())
      if (n.rfind(prefix_, 0) == 0) ::unlink(("/dev/shm/" + n).c_str());
  }

 private:
  std::string prefix_;
};

// inspect --json and verify over N damaged objects. The objects are made in
// batches of kBatch; each batch is examined by one `inspect --batch-stdin
// --json` and one `verify --batch-stdin` process (the same code as a single
// run, object after object: see run_batch in tools/shmtool/cmd_inspect.cpp),
// and every 25th object also by separate single-run processes, whose output
// must be identical to the batch's.
TEST(ShmtoolFuzz, InspectAndVerifySurviveDamagedObjects) {
  const auto bases = base_images();
  ASSERT_GE(bases.size(), 12u);
  const std::uint64_t iterations = env_u64("SHMRING_FUZZ_ITERATIONS", shmring::test::scaled(10000, 1000));
  const std::uint64_t seed = env_u64("SHMRING_FUZZ_SEED", static_cast<std::uint64_t>(::time(nullptr)));
  std::printf("fuzz: %llu objects, seed %llu (SHMRING_FUZZ_SEED and SHMRING_FUZZ_ITERATIONS reproduce)\n",
              static_cast<unsigned long long>(iterations), static_cast<unsigned long long>(seed));
  // Objects per batch and worker: every name is held by a ShmGuard (its
  // table has 256 slots), so even a watchdog kill leaves nothing behind.
  constexpr std::uint64_t kBatch = 100;
  const std::string base = shmring::test::unique_ring_name("fz");
  PrefixCleanup cleanup(base.substr(1));
  std::mutex mu;
  std::map<std::string, std::uint64_t> statuses;
  std::vector<std::string> failures;
  std::uint64_t singles = 0, processes = 0;
  double slowest_batch = 0;
  std::atomic<std::uint64_t> next_batch{0};
  const auto start = std::chrono::steady_clock::now();
  auto report = [&](std::string f) {
    std::lock_guard<std::mutex> l(mu);
    if (failures.size() < 10) failures.push_back(std::move(f));
  };
  auto work = [&](int w) {
    std::vector<std::unique_ptr<shmring::test::ShmGuard>> guards;
    for (std::uint64_t k = 0; k < kBatch; ++k)
      guards.push_back(std::make_unique<shmring::test::ShmGuard>(base + "_" + std::to_string(w) + "_" + std::to_string(k)));
    for (;;) {
      const std::uint64_t b0 = next_batch.fetch_add(1) * kBatch;
      if (b0 >= iterations) break;
      const std::uint64_t n = std::min(kBatch, iterations - b0);
      std::vector<std::string> names;
      std::vector<int> kinds;
      std::vector<std::size_t> sizes;
      std::string list;
      for (std::uint64_t k = 0; k < n; ++k) {
        std::mt19937_64 rng(seed * 1000003 + b0 + k);
        int kind = 0;
        const auto image = mutate(bases, rng, &kind);
        const std::string name = base + "_" + std::to_string(w) + "_" + std::to_string(k);
        if (!write_image(name, image)) {
          report("cannot write " + name);
          return;
        }
        names.push_back(name);
        kinds.push_back(kind);
        sizes.push_back(image.size());
        list += name + "\n";
      }
      const RunOptions opts = RunOptions().in(list).deadline_ms(120000);
      const ToolRun ins = run_tool({"inspect", "--batch-stdin", "--json"}, opts);
      const ToolRun ver = run_tool({"verify", "--batch-stdin"}, opts);
      const auto in_out = parse_batch(ins.out);
      const auto ve_out = parse_batch(ver.out);
      {
        std::lock_guard<std::mutex> l(mu);
        processes += 2;
        slowest_batch = std::max({slowest_batch, ins.seconds, ver.seconds});
      }
      for (const ToolRun* r : {&ins, &ver}) {
        const auto& got = r == &ins ? in_out : ve_out;
        if (!r->exited() || r->code != 0 || got.size() != n) {
          const std::size_t culprit = got.size();
          report(std::string(r == &ins ? "inspect" : "verify") + " batch ended early (" + r->describe().substr(0, 300) +
                 ") at object " + std::to_string(b0 + culprit) + " (mutation " +
                 (culprit < n ? std::to_string(kinds[culprit]) : std::string("?")) + ", seed " + std::to_string(seed) +
                 ")");
        }
      }
      for (std::uint64_t k = 0; k < n && k < in_out.size() && k < ve_out.size(); ++k) {
        const Outcome& in = in_out[k];
        const Outcome& ve = ve_out[k];
        std::string bad, status = "?";
        for (const Outcome* o : {&in, &ve}) {
          const char* what = o == &in ? "inspect" : "verify";
          if (o->code != 0 && o->code != 4) bad += std::string(what) + " exit code " + std::to_string(o->code) + "\n";
          if (o->err_lines() != (o->code == 0 ? 0 : 1))
            bad += std::string(what) + ": " + std::to_string(o->err_lines()) + " stderr lines for exit " +
                   std::to_string(o->code) + "\n";
        }
        if (in.code != ve.code)
          bad += "inspect exit " + std::to_string(in.code) + " but verify exit " + std::to_string(ve.code) + "\n";
        try {
          const Json doc = parse_json(in.out);
          status = doc["ring"]["status"].str;
          if (doc["ring"]["exit_code"].i64() != in.code) bad += "JSON exit_code disagrees with the exit status\n";
        } catch (const std::exception& e) {
          bad += std::string("inspect --json output does not parse: ") + e.what() + "\n";
        }
        if ((b0 + k) % 25 == 0) {
          // The same object through a single real run: identical results.
          const ToolRun one = run_tool({"inspect", names[k], "--json"}, RunOptions().deadline_ms(10000));
          const ToolRun vone = run_tool({"verify", names[k]}, RunOptions().deadline_ms(10000));
          if (!one.exited() || one.code != in.code || one.out != in.out || one.err != in.err)
            bad += "single inspect run differs from the batch: " + one.describe().substr(0, 600) + "\n";
          if (!vone.exited() || vone.code != ve.code || vone.out != ve.out || vone.err != ve.err)
            bad += "single verify run differs from the batch: " + vone.describe().substr(0, 600) + "\n";
          std::lock_guard<std::mutex> l(mu);
          singles += 2;
        }
        {
          std::lock_guard<std::mutex> l(mu);
          ++statuses[status];
        }
        if (!bad.empty())
          report("object " + std::to_string(b0 + k) + " (mutation " + std::to_string(kinds[k]) + ", seed " +
                 std::to_string(seed) + ", " + std::to_string(sizes[k]) + " bytes): " + bad + in.out.substr(0, 800) +
                 in.err);
      }
    }
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w) threads.emplace_back(work, w);
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string summary;
  std::uint64_t total = 0;
  for (const auto& [s, n] : statuses) {
    summary += " " + s + "=" + std::to_string(n);
    total += n;
  }
  std::printf(
      "fuzz: %llu objects x (inspect --json + verify) in %.1f s: %llu batch processes (slowest %.2f s) + %llu "
      "single runs; statuses:%s\n",
      static_cast<unsigned long long>(total), secs, static_cast<unsigned long long>(processes), slowest_batch,
      static_cast<unsigned long long>(singles), summary.c_str());
  for (const auto& f : failures) ADD_FAILURE() << f;
  EXPECT_EQ(total, iterations);
  // The mutations must reach deep: valid rings, corrupt ones and foreign ones.
  EXPECT_GT(statuses["corrupt"], 0u);
  EXPECT_GT(statuses["foreign"], 0u);
  EXPECT_GT(statuses["ready"] + statuses["stale"], 0u);
}

}  // namespace

// Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/):
// real ring images of every kind and wait strategy (empty, holding records,
// with attached handles), damaged variants, structured inputs for
// fuzz_consume and command lines for fuzz_shmtool_args.
//
//   make_seeds DIR      (tools/fuzz --make-seeds runs it into tests/fuzz/corpus)
#include <sys/mman.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "layout.hpp"
#include "shmring/ring.hpp"

using namespace shmring;

namespace {

std::string g_dir;

void put(const std::string& target, const std::string& file, const void* p, std::size_t n) {
  const std::string d = g_dir + "/" + target;
  ::mkdir(d.c_str(), 0755);
  std::ofstream(d + "/" + file, std::ios::binary).write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
}

std::vector<unsigned char> image(const std::string& name) {
  std::vector<unsigned char> v;
  const int fd = ::shm_open(name.c_str(), O_RDONLY, 0);
  if (fd < 0) return v;
  struct stat st {};
  ::fstat(fd, &st);
  v.resize(static_cast<std::size_t>(st.st_size));
  if (::pread(fd, v.data(), v.size(), 0) != static_cast<ssize_t>(v.size())) v.clear();
  ::close(fd);
  return v;
}

void ring_images() {
  const Kind kinds[] = {Kind::spsc, Kind::mpmc, Kind::locked};
  const WaitStrategy waits[] = {WaitStrategy::futex, WaitStrategy::spin, WaitStrategy::sem};
  for (Kind k : kinds) {
    for (WaitStrategy w : waits) {
      const std::string tag = std::string(to_string(k)) + "-" + to_string(w);
      const std::string name = fuzz::ring_name(tag.c_str());
      ::shm_unlink(name.c_str());
      Config cfg;
      cfg.kind = k;
      cfg.wait = w;
      cfg.capacity = 4096;
      if (k == Kind::mpmc) cfg.slot_size = 48;
      if (create(name, cfg) != Errc::ok) continue;
      auto emit = [&](const char* what) {
        const auto v = image(name);
        for (const char* t : {"fuzz_segment", "fuzz_shmtool_file"}) put(t, tag + "-" + what, v.data(), v.size());
      };
      emit("empty");
      {
        auto p = Producer::open(name);
        auto c = Consumer::open(name);
        if (p && c) {
          for (int i = 0; i < 40; ++i) {
            char rec[32];
            const int n = std::snprintf(rec, sizeof rec, "record %d", i);
            (void)p->send(std::as_bytes(std::span<const char>(rec, static_cast<std::size_t>(n))), Timeout::try_once());
          }
          for (int i = 0; i < 10; ++i) {
            if (!c->peek(Timeout::try_once())) break;
            (void)c->release();
          }
          emit("attached");
        }
      }
      emit("closed");
      // Damaged: a truncated header, and a wrong magic.
      auto v = image(name);
      if (v.size() > 2048) {
        put("fuzz_segment", tag + "-truncated", v.data(), 2048);
        put("fuzz_shmtool_file", tag + "-truncated", v.data(), 2048);
        v[0] ^= 0xff;
        put("fuzz_segment", tag + "-badmagic", v.data(), v.size());
      }
      ::shm_unlink(name.c_str());
    }
  }
}

void consume_inputs() {
  for (unsigned kind = 0; kind < 3; ++kind) {
    for (unsigned after = 0; after < 2; ++after) {
      // header: mode, prefill, slot, patches
      std::vector<unsigned char> in = {static_cast<unsigned char>(kind | (after << 4)), 20, 3, 0};
      for (unsigned char op : {0, 1, 2, 3, 4, 9, 5, 0, 0, 0, 1, 2, 3, 4, 17, 5, 0, 0, 0, 0, 0, 0})
        in.push_back(op);
      put("fuzz_consume", "kind" + std::to_string(kind) + "-after" + std::to_string(after) + "-clean", in.data(),
          in.size());
      // One patch over the producer line (tail, records) and one over the
      // consumer line (head), then reads.
      std::vector<unsigned char> d = {static_cast<unsigned char>(kind | (after << 4)), 20, 3, 2};
      for (unsigned char b : {128, 0, 8, 0xf0, 0xff, 0, 0, 0, 0, 0, 0}) d.push_back(b);
      for (unsigned char b : {0, 1, 8, 0x10, 0, 0, 0, 0, 0, 0, 0}) d.push_back(b);
      for (int i = 0; i < 12; ++i) d.push_back(static_cast<unsigned char>(i % 6));
      put("fuzz_consume", "kind" + std::to_string(kind) + "-after" + std::to_string(after) + "-indices", d.data(),
          d.size());
      // A patch into the data area (record headers / slots).
      std::vector<unsigned char> r = {static_cast<unsigned char>(kind | (after << 4)), 20, 3, 1};
      for (unsigned char b : {0, 16, 16}) r.push_back(b);
      for (int i = 0; i < 16; ++i) r.push_back(static_cast<unsigned char>(0x41 + i));
      for (int i = 0; i < 12; ++i) r.push_back(static_cast<unsigned char>(i % 6));
      put("fuzz_consume", "kind" + std::to_string(kind) + "-after" + std::to_string(after) + "-data", r.data(),
          r.size());
    }
  }
}

void arg_inputs() {
  using namespace std::literals;
  // Arguments separated by NUL, as the target splits them (the sv literals
  // keep the embedded NULs).
  const std::string_view lines[] = {
      "list"sv,
      "list\0--json"sv,
      "inspect\0r"sv,
      "inspect\0/r\0--json"sv,
      "verify\0r"sv,
      "create\0r\0--kind\0spsc\0--capacity\0004k"sv,
      "create\0r\0--kind=mpmc\0--capacity=64k\0--slot-size\00048\0--wait\0sem\0--mode\0000660"sv,
      "create\0r\0--kind\0locked\0--capacity\0001M\0--wait=spin"sv,
      "reset\0r\0--force"sv,
      "rm\0r\0--force"sv,
      "push\0--help"sv,
      "pop\0r\0--count\0003\0--timeout-ms\0000\0-h"sv,
      "watch\0r\0--interval\00050\0--count\0001\0--help"sv,
      "help\0create"sv,
      "--help"sv,
      "bogus\0x"sv,
  };
  int i = 0;
  for (std::string_view l : lines) put("fuzz_shmtool_args", "args" + std::to_string(i++), l.data(), l.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds DIR\n");
    return 2;
  }
  g_dir = argv[1];
  ::mkdir(g_dir.c_str(), 0755);
  ring_images();
  consume_inputs();
  arg_inputs();
  return 0;
}

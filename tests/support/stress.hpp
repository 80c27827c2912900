// One stress body for every face of the library (the C++ handles, the C
// API, and internal endpoints sharing one mapping) and every way of moving
// records (zero-copy, copying, batched). A producer writes `count` records
// from the payload oracle; a consumer checks each one's sequence, length and
// checksum, and that nothing follows the last. Run them in forked processes
// (multiprocess tests) or in threads (threaded tests).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "shmring/error.hpp"

namespace shmring::test {

// Which API drives the ring.
enum class Face {
  cpp,       // shmring::Producer / shmring::Consumer, each with its own mapping
  c,         // shmring_* C API
  endpoint,  // internal detail::Endpoint pair on ONE mapping (threads only):
             // ThreadSanitizer then sees the ring's real acquire/release pairs
};
// How records move.
enum class Mode {
  zero_copy,  // reserve/commit, peek/release, each published at once
  copy,       // send/recv
  batched,    // commit/release deferred, published by a flush every `batch` records
};

const char* to_string(Face f) noexcept;
const char* to_string(Mode m) noexcept;

struct StressParams {
  std::string ring;
  std::uint64_t count = 0;
  std::uint32_t min_len = 1;
  std::uint32_t max_len = 0;  // 0: the ring's max_record()
  Face face = Face::cpp;
  Mode mode = Mode::zero_copy;
  std::uint32_t batch = 16;
  std::uint64_t seed = 0x5eed;
  // Bound on every blocking call, so that a bug fails instead of hanging.
  std::chrono::milliseconds call_timeout{20'000};
};

struct StressOutcome {
  std::string error;  // empty on success
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  std::int64_t elapsed_ns = 0;
};

// The producer's or consumer's side of a ring, behind one interface.
class ProducerPort {
 public:
  virtual ~ProducerPort() = default;
  virtual Errc reserve(std::size_t n, std::byte** p, std::int64_t timeout_ns) = 0;
  virtual Errc commit(std::size_t n, bool publish_now) = 0;
  virtual Errc flush() = 0;
  virtual Errc send(const std::byte* p, std::size_t n, std::int64_t timeout_ns) = 0;
  virtual std::size_t max_record() const = 0;
};

class ConsumerPort {
 public:
  virtual ~ConsumerPort() = default;
  virtual Errc peek(const std::byte** p, std::size_t* n, std::int64_t timeout_ns) = 0;
  virtual Errc release(bool publish_now) = 0;
  virtual Errc flush() = 0;
  virtual Errc recv(std::byte* buf, std::size_t cap, std::size_t* n, std::int64_t timeout_ns) = 0;
  virtual std::size_t max_record() const = 0;
};

// Opens one side through the cpp or c face (not endpoint).
std::unique_ptr<ProducerPort> open_producer_port(Face face, const std::string& ring, Errc* err);
std::unique_ptr<ConsumerPort> open_consumer_port(Face face, const std::string& ring, Errc* err);

// Both sides through internal endpoints that share the producer's mapping.
// The consumer port must not outlive the producer port (EndpointPair keeps
// the order right).
struct EndpointPair {
  std::unique_ptr<ProducerPort> producer;
  std::unique_ptr<ConsumerPort> consumer;
  ~EndpointPair();
};
Errc open_endpoint_pair(const std::string& ring, EndpointPair* out);

// The bodies. They never throw and never call gtest macros (they may run in
// a forked child).
StressOutcome produce(const StressParams& p, ProducerPort& port);
StressOutcome consume(const StressParams& p, ConsumerPort& port);

// Opens the side named by p.face and runs it: a child process's whole job.
StressOutcome open_and_produce(const StressParams& p);
StressOutcome open_and_consume(const StressParams& p);

}  // namespace shmring::test

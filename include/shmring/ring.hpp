// shmring C++ API: rings in POSIX shared memory, move-only role handles.
//
// Concurrency contract: a Producer or Consumer handle belongs to one thread
// at a time (it is not internally synchronised). Different handles on the
// same ring may live in different threads or processes. For an spsc ring the
// producer's fast path is wait-free; see docs/memory-ordering.md.
#pragma once

#if !defined(__cplusplus) || __cplusplus < 202002L
#error "shmring's C++ headers need C++20 (-std=c++20 or later); from C or an older C++, include <shmring/shmring.h>"
#endif

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "shmring/error.hpp"

namespace shmring {

enum class Kind : std::uint32_t { spsc = 1, mpmc = 2, locked = 3 };
enum class WaitStrategy : std::uint32_t { futex = 1, spin = 2, sem = 3 };
enum class Role : std::uint32_t { producer = 1, consumer = 2 };

// How the peers of a handle (the other role) left since it opened, for a
// handle that got Errc::peer_gone (docs/liveness.md, "Departures"). The
// values are the C API's SHMRING_DEPARTURE_* constants.
//   none    no peer has left since this handle opened
//   closed  every peer that left closed its handle (detached cleanly)
//   died    at least one peer died (killed, crashed, or exited without
//           closing) since this handle opened
enum class Departure : int { none = 0, closed = 1, died = 2 };

const char* to_string(Kind k) noexcept;
const char* to_string(Departure d) noexcept;
const char* to_string(WaitStrategy w) noexcept;
const char* to_string(Role r) noexcept;

struct Config {
  Kind kind = Kind::spsc;
  WaitStrategy wait = WaitStrategy::futex;
  std::size_t capacity = std::size_t{1} << 20;  // data bytes, a power of two
  std::size_t slot_size = 0;                    // mpmc only
  unsigned mode = 0600;                         // applied exactly, whatever the umask
};

// How long a blocking call may wait: try once, a bound, or forever.
class Timeout {
 public:
  // Any std::chrono duration; a negative one means "try once".
  template <class Rep, class Period>
  constexpr Timeout(std::chrono::duration<Rep, Period> d) noexcept  // NOLINT: implicit by design
      : ns_(clamp(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count())) {}
  static constexpr Timeout try_once() noexcept { return Timeout(0, 0); }
  static constexpr Timeout forever() noexcept { return Timeout(-1, 0); }
  // The C API's convention: 0 try, -1 (any negative) forever, >0 nanoseconds.
  static constexpr Timeout from_ns(std::int64_t ns) noexcept { return Timeout(ns < 0 ? -1 : ns, 0); }
  constexpr std::int64_t ns() const noexcept { return ns_; }

 private:
  constexpr Timeout(std::int64_t ns, int) noexcept : ns_(ns) {}
  static constexpr std::int64_t clamp(std::int64_t ns) noexcept { return ns < 0 ? 0 : ns; }
  std::int64_t ns_;
};

struct OpenOptions {
  // How long open waits for a creator that has not finished initialising.
  std::chrono::nanoseconds init_timeout = std::chrono::seconds(1);
};

// Validates the name and creates the ring exclusively (never reuses an
// existing object). On failure nothing is left behind.
Errc create(std::string_view name, const Config& cfg);
Errc unlink(std::string_view name);
// Accepts "/md-feed" or "md-feed"; returns the canonical "/md-feed" form or
// Errc::invalid_argument (with last_error_message() saying why).
Result<std::string> canonical_name(std::string_view name);

namespace detail {
class Endpoint;  // one attached role of one ring (lib/endpoint.hpp)
}

// Whether a commit or release becomes visible to the peer now, or with a
// later call (batching several records into one index store).
enum class Publish : bool { later = false, now = true };

// The writing side. Move-only; closing (destruction) detaches.
class Producer {
 public:
  Producer() noexcept;
  ~Producer();
  Producer(Producer&&) noexcept;
  Producer& operator=(Producer&&) noexcept;
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  static Result<Producer> open(std::string_view name, const OpenOptions& opts = {});

  // Returns n writable bytes inside the ring. A second reserve before commit
  // replaces the first. Errc::too_big when n > max_record(), nothing written.
  Result<std::span<std::byte>> reserve(std::size_t n, Timeout t = Timeout::forever());
  // Makes the first n (<= reserved) bytes one record.
  Errc commit(std::size_t n, Publish p = Publish::now);
  // Publishes every record committed with Publish::later.
  Errc flush();
  // Copying convenience: reserve + memcpy + commit.
  Errc send(std::span<const std::byte> data, Timeout t = Timeout::forever());

  std::size_t max_record() const noexcept;
  Kind kind() const noexcept;
  const std::string& name() const noexcept;
  // True once the ring's name has been removed, or now leads to another
  // object (a ring re-created under the same name): this handle still works
  // with the ring it opened, but nobody can open that ring by name any more.
  // Checked at most once per half liveness period; cheap to call often.
  bool orphaned() const noexcept;
  bool valid() const noexcept { return impl_ != nullptr; }
  // How the consumers left since this producer opened (see Departure).
  // Any caller; reads /proc and may reclaim dead consumers' attach entries
  // (a slow-path call: use it after peer_gone, not per record).
  Departure peer_departure() const noexcept;

 private:
  explicit Producer(std::unique_ptr<detail::Endpoint> e) noexcept;
  std::unique_ptr<detail::Endpoint> impl_;
};

// The reading side. Move-only; closing (destruction) detaches.
class Consumer {
 public:
  Consumer() noexcept;
  ~Consumer();
  Consumer(Consumer&&) noexcept;
  Consumer& operator=(Consumer&&) noexcept;
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  static Result<Consumer> open(std::string_view name, const OpenOptions& opts = {});

  // The next record, in place. Peeking again returns the same record until
  // it is released.
  Result<std::span<const std::byte>> peek(Timeout t = Timeout::forever());
  // Frees the record of the last peek. With Publish::later the space goes
  // back to the producer only at the next release(now) or flush().
  Errc release(Publish p = Publish::now);
  Errc flush();
  // Copying convenience: peek + memcpy + release. Errc::too_big leaves the
  // record in the ring (peek() tells its size).
  Result<std::size_t> recv(std::span<std::byte> out, Timeout t = Timeout::forever());

  std::size_t max_record() const noexcept;
  Kind kind() const noexcept;
  const std::string& name() const noexcept;
  // True once the ring's name has been removed, or now leads to another
  // object (a ring re-created under the same name): this handle still works
  // with the ring it opened, but nobody can open that ring by name any more.
  // Checked at most once per half liveness period; cheap to call often.
  bool orphaned() const noexcept;
  bool valid() const noexcept { return impl_ != nullptr; }
  // How the producers left since this consumer opened (see Departure):
  // after peer_gone, closed means the feed finished, died that it broke.
  Departure peer_departure() const noexcept;

 private:
  explicit Consumer(std::unique_ptr<detail::Endpoint> e) noexcept;
  std::unique_ptr<detail::Endpoint> impl_;
};

}  // namespace shmring

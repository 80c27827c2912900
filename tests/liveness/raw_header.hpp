// A read-write mapping of a ring's header page, bypassing the library, for
// the liveness suite (test binary and helper): watch the waiter counts, read
// the recovery counter, plant attach entries. Header-only, no gtest.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "layout.hpp"  // internal: the shared header format

namespace shmring::live {

inline std::int64_t now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

class RawHeader {
 public:
  explicit RawHeader(const std::string& ring) {
    const int fd = ::shm_open(ring.c_str(), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) return;
    void* p = ::mmap(nullptr, detail::kHeaderSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p != MAP_FAILED) h_ = static_cast<detail::Header*>(p);
  }
  ~RawHeader() {
    if (h_ != nullptr) ::munmap(h_, detail::kHeaderSize);
  }
  RawHeader(const RawHeader&) = delete;
  RawHeader& operator=(const RawHeader&) = delete;

  bool ok() const noexcept { return h_ != nullptr; }
  detail::Header* get() const noexcept { return h_; }

  template <class T>
  static T load(T& w) noexcept {
    return std::atomic_ref<T>(w).load(std::memory_order_acquire);
  }
  template <class T>
  static void store(T& w, T v) noexcept {
    std::atomic_ref<T>(w).store(v, std::memory_order_release);
  }

  std::uint32_t data_waiters() const noexcept { return load(h_->data_wait.waiters); }
  std::uint32_t space_waiters() const noexcept { return load(h_->space_wait.waiters); }
  std::uint64_t tail() const noexcept { return load(h_->prod.tail); }
  std::uint64_t head() const noexcept { return load(h_->cons.head); }
  std::uint64_t recoveries() const noexcept { return load(h_->lock.recoveries); }
  std::uint64_t capacity() const noexcept { return h_->id.capacity; }
  // The peer-death detection bound (ms); read by handles when they open.
  // Tests that look for lost wake-ups raise it, so that a missed wake is
  // not hidden by the sleeps being cut at half of it.
  bool set_liveness_ms(std::uint32_t ms) const noexcept {
    if (h_ == nullptr) return false;
    std::atomic_ref<std::uint32_t>(h_->id.liveness_ms).store(ms, std::memory_order_release);
    return true;
  }

  // Busy-polls until pred() or the timeout, never sleeping: a tight loop for
  // the first ~100 us (so a waiter's announcement is seen within a cache-line
  // transfer, and the send that follows races the waiter's way into
  // FUTEX_WAIT as closely as possible), then with sched_yield.
  template <class Pred>
  static bool poll_until(Pred&& pred, std::int64_t timeout_ns) {
    const std::int64_t start = now_ns();
    const std::int64_t deadline = start + timeout_ns;
    bool yield = false;
    for (unsigned i = 0;; ++i) {
      if (pred()) return true;
      if ((i & 63) == 0) {
        const std::int64_t now = now_ns();
        if (now >= deadline) return pred();
        yield = now - start > 100'000;
      }
      if (yield) ::sched_yield();
#if defined(__x86_64__) || defined(__i386__)
      else __builtin_ia32_pause();
#endif
    }
  }

  // Waits until somebody announced that it sleeps on the data (consumer) or
  // space (producer) line.
  bool wait_data_sleeper(std::int64_t timeout_ns) const {
    return poll_until([&] { return data_waiters() != 0; }, timeout_ns);
  }
  bool wait_space_sleeper(std::int64_t timeout_ns) const {
    return poll_until([&] { return space_waiters() != 0; }, timeout_ns);
  }

 private:
  detail::Header* h_ = nullptr;
};

}  // namespace shmring::live

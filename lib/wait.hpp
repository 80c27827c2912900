// How a blocked call waits and how a publisher wakes it. Internal header.
//
// The ring code calls only Waiter::wait (blocked side) and notify (after a
// release store that may unblock the other side). The strategy is the
// ring's, fixed at creation:
//
//   spin   pause-loop; after 100 us it yields every 64 rounds, so that an
//          oversubscribed machine still makes progress
//   futex  pause-loop for kBusyNs, then sleep on the WaitLine's 32-bit word
//   sem    pause-loop for kBusyNs, then sleep on a process-shared sem_t
//
// The waiter-count protocol (docs/wait-strategies.md) keeps notify() free of
// system calls unless somebody announced that it is going to sleep:
//
//   waiter                                 publisher
//   W1 waiters.fetch_add(1)                P1 index.store(release)
//   W2 s = seq.load(); futex: set bit 0    F-P fence(seq_cst)
//      of seq by CAS (s |= 1)              P2 if waiters.load() != 0:
//   F-W fence(seq_cst)                     P2b  futex: if seq (v) has bit 0:
//   W3 re-check the ring (index load)      P3     CAS seq v -> v+1; FUTEX_WAKE
//   W4 if still blocked: FUTEX_WAIT(seq, s)
//
// F-W and F-P make this a store-buffering pattern: at least one side sees
// the other's store. Either the waiter's W3 sees P1 (it does not sleep), or
// the publisher's P2 sees W1 and P2b sees W2's value or a later one (it
// changes seq and wakes; a W4 after that finds seq != s and returns at
// once, a W4 before it is woken). Bit 0 makes that one wake per
// announcement: publishers that find it clear make no system call. The
// mpmc ring publishes with a seq_cst CAS and skips F-P
// (notify_after_seq_cst_rmw). The full argument is in
// docs/wait-strategies.md.
#pragma once

#include <sched.h>

#include <cstdint>

#include "layout.hpp"
#include "liveness.hpp"
#include "segment.hpp"
#include "shmring/error.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace shmring::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// How long futex and sem waiters spin before they sleep: long enough to
// catch a peer that answers within a round trip, short enough that an idle
// waiter costs nothing measurable.
inline constexpr std::int64_t kBusyNs = 50'000;
// The spin strategy starts yielding after this long.
inline constexpr std::int64_t kSpinYieldAfterNs = 100'000;
inline constexpr int kClockEvery = 64;
// Polls a blocking wait makes before it first reads the clock.
inline constexpr int kQuickPolls = 16;

// Sleeps until the word changes from `seen`, a wake, a signal or the
// absolute CLOCK_MONOTONIC time `until_ns`.
void futex_sleep(std::uint32_t* word, std::uint32_t seen, std::int64_t until_ns) noexcept;
// Returns the number of sleepers woken.
int futex_wake_all(std::uint32_t* word) noexcept;
// A wake found nobody asleep: every 4th time, recount the line's sleepers
// from the attach table (entries of live processes flagged asleep on it) and
// lower a count left too high by a sleeper that was killed.
void note_idle_wake(Header& h, WaitLine& line) noexcept;
void sem_sleep(unsigned char* sem, std::int64_t until_ns) noexcept;
void sem_wake(unsigned char* sem, std::uint32_t waiters) noexcept;

// FUTEX_WAKE and sem_post calls made by this process (tests use it to prove
// the fast path makes none).
std::uint64_t wake_syscalls() noexcept;

// Bit 0 of WaitLine::seq (futex strategy): a waiter announced that it sleeps
// on the current value (W2 sets it), and no publisher has woken it since
// (P3 clears it while it changes the value). Publishers that find it clear
// make no system call even while `waiters` is non-zero: the sleepers it
// counts were already woken and are on their way out (their W5 has not run
// yet), or were killed while asleep. Without it every publish in that
// window was a FUTEX_WAKE that found nobody.
inline constexpr std::uint32_t kSeqSleeperBit = 1;

// P2b/P3, futex: wakes the line's sleepers if one announced itself on the
// current seq value. Called after P2 found waiters != 0.
inline void futex_wake_line(Header& h, WaitLine& line) noexcept {
  // P2b: seq_cst load; after F-P (or P1-RMW), it reads W2's value or a
  // later one whenever the waiter's re-check W3 missed our publication
  // (docs/wait-strategies.md, "Waking once per announcement").
  std::uint32_t v = atom(line.seq).load(std::memory_order_seq_cst);
  if ((v & kSeqSleeperBit) == 0) return;  // nobody announced since the last wake
  // P3: release, pairs with W2 (a waiter that reads the new value also sees
  // our publication). Odd to even: the value changes and the bit clears.
  // A failed CAS means another publisher changed it first (only publishers
  // change an odd value), and that publisher wakes.
  if (!atom(line.seq).compare_exchange_strong(v, v + 1, std::memory_order_release, std::memory_order_relaxed)) return;
  if (futex_wake_all(&line.seq) == 0) note_idle_wake(h, line);
}

// Wakes sleepers of `line` if any announced themselves. Call right after the
// release store that publishes records (or frees space).
inline void notify(WaitStrategy s, Header& h, WaitLine& line, unsigned char* sem) noexcept {
  if (s == WaitStrategy::spin) return;
  // F-P: seq_cst fence, pairs with F-W in Waiter::wait (store-buffering:
  // our index store before it, the waiter's count store before F-W).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // Ordered by F-P/F-W, relaxed is enough.
  const std::uint32_t w = atom(line.waiters).load(std::memory_order_relaxed);
  if (w == 0) return;
  if (s == WaitStrategy::futex) {
    futex_wake_line(h, line);
  } else {
    sem_wake(sem, w);
  }
}

// notify() for a publication made by a seq_cst read-modify-write (the mpmc
// commit and release CASes, labelled P1-RMW). No fence: P1-RMW and the
// seq_cst load P2s are both in the single total order S, and the waiter's
// F-W fence orders its re-check, so the store-buffering argument holds
// without F-P (docs/wait-strategies.md, "Publishing with a seq_cst RMW").
// On x86 the CAS is already a locked instruction; the fence F-P would drain
// the store buffer a second time for nothing.
inline void notify_after_seq_cst_rmw(WaitStrategy s, Header& h, WaitLine& line, unsigned char* sem) noexcept {
  if (s == WaitStrategy::spin) return;
  // P2s: seq_cst load, pairs with W1/F-W (the caller's P1-RMW precedes it in S).
  const std::uint32_t w = atom(line.waiters).load(std::memory_order_seq_cst);
  if (w == 0) return;
  if (s == WaitStrategy::futex) {
    futex_wake_line(h, line);
  } else {
    sem_wake(sem, w);
  }
}

class Waiter {
 public:
  Waiter(WaitStrategy s, Header* h, WaitLine* line, unsigned char* sem, PeerWatch* peer,
         std::uint64_t* sleep_flag) noexcept
      : s_(s), line_(line), sem_(sem), peer_(peer), reset_gen_(&h->id.reset_gen), sleep_flag_(sleep_flag),
        sleep_bit_(line == &h->data_wait ? 1u : 2u),
        // R-A1 (see Endpoint): the generation this handle attached under.
        gen_(atom(h->id.reset_gen).load(std::memory_order_acquire)) {}

  // Calls ready() until it returns anything but would_block; returns
  // would_block (timeout 0), timed_out, reset, or peer_gone when the peer
  // rule of docs/liveness.md says nobody is left to unblock us. The call's
  // deadline is fixed once, by the first clock read of the call (ready()
  // may make it through fix_deadline before it blocks), and every later
  // step of the call, ready()'s included, is bounded by that one deadline.
  template <class Ready>
  Errc wait(Ready&& ready, std::int64_t timeout_ns) {
    deadline_ = 0;
    Errc e = ready();
    if (e != Errc::would_block) return e;
    if (timeout_ns != 0) {
      // A few polls before the first clock read: under traffic most waits
      // end here, and a clock read (27-90 ns on this VM's kvm-clock) would
      // be a large part of a record's cost. The deadline then starts up to
      // kQuickPolls polls (< 1-2 us) late, far inside a timed wait's
      // scheduling slack.
      for (int i = 0; i < kQuickPolls; ++i) {
        cpu_relax();
        e = ready();
        if (e != Errc::would_block) return e;
      }
    }
    std::int64_t now = monotonic_ns();
    if (peer_gone(now, ready, &e)) return e;
    if (timeout_ns == 0) return Errc::would_block;
    const std::int64_t deadline = fix_deadline(now, timeout_ns);
    if (now >= deadline) return Errc::timed_out;
    const std::int64_t start = now;
    const std::int64_t busy_until = s_ == WaitStrategy::spin ? INT64_MAX : now + kBusyNs;
    // Busy phase.
    for (int i = 1;; ++i) {
      cpu_relax();
      e = ready();
      if (e != Errc::would_block) return e;
      if (i % kClockEvery == 0) {
        now = monotonic_ns();
        if (now >= deadline) return Errc::timed_out;
        if (peer_gone(now, ready, &e)) return e;
        if (now >= busy_until) break;
        if (now - start >= kSpinYieldAfterNs) ::sched_yield();
      }
    }
    // Sleep phase (futex, sem), each sleep bounded by the liveness period.
    for (;;) {
      const std::int64_t until = peer_ ? std::min(deadline, now + peer_->period_ns()) : deadline;
      // Flag ourselves asleep in our attach entry (for note_idle_wake's
      // recount); W1's seq_cst RMW orders it before the count.
      if (sleep_flag_) atom(*sleep_flag_).fetch_or(sleep_bit_, std::memory_order_relaxed);
      // W1: announce; seq_cst, and F-W below pairs with F-P in notify().
      atom(line_->waiters).fetch_add(1, std::memory_order_seq_cst);
      // W2: acquire, pairs with P3 in futex_wake_line (a waiter that reads a
      // woken value also sees that publication). futex: set the sleeper bit
      // on the current value (acq_rel CAS; if another waiter set it, its
      // value is ours too). Sequenced before F-W, so a publisher whose P2b
      // reads an older value is seen by our W3.
      std::uint32_t seen = atom(line_->seq).load(std::memory_order_acquire);
      while (s_ == WaitStrategy::futex && (seen & kSeqSleeperBit) == 0 &&
             !atom(line_->seq).compare_exchange_weak(seen, seen | kSeqSleeperBit, std::memory_order_acq_rel,
                                                     std::memory_order_acquire)) {
      }
      if (s_ == WaitStrategy::futex) seen |= kSeqSleeperBit;
      std::atomic_thread_fence(std::memory_order_seq_cst);  // F-W
      e = ready();  // W3
      if (e == Errc::would_block) {
        if (s_ == WaitStrategy::futex) {
          futex_sleep(&line_->seq, seen, until);  // W4
        } else {
          sem_sleep(sem_, until);
        }
      }
      // Only the count matters here; no data is published through it.
      atom(line_->waiters).fetch_sub(1, std::memory_order_relaxed);
      if (sleep_flag_) atom(*sleep_flag_).fetch_and(~sleep_bit_, std::memory_order_relaxed);
      // A forced reset wakes every sleeper: end the wait before touching
      // the ring (advisory here; ready() makes the conclusive check, RG-1,
      // after each index load).
      if (e == Errc::would_block && atom(*reset_gen_).load(std::memory_order_relaxed) != gen_) return Errc::reset;
      if (e == Errc::would_block) e = ready();
      if (e != Errc::would_block) return e;
      now = monotonic_ns();
      if (now >= deadline) return Errc::timed_out;
      if (peer_gone(now, ready, &e)) return e;
    }
  }

  // The running call's absolute CLOCK_MONOTONIC deadline: fixed by the
  // first caller (now + timeout_ns; INT64_MAX for a negative timeout) and
  // returned unchanged to every later one until the next wait(). ready()
  // uses it to bound a blocking step of its own (the locked kind's timed
  // mutex lock); the first clock read of a call comes before anything in
  // it can block, so the deadline starts at most a few polls late.
  std::int64_t fix_deadline(std::int64_t now, std::int64_t timeout_ns) noexcept {
    if (deadline_ == 0) deadline_ = timeout_ns < 0 ? INT64_MAX : now + timeout_ns;
    return deadline_;
  }

 private:
  template <class Ready>
  bool peer_gone(std::int64_t now, Ready& ready, Errc* e) {
    // Advisory, relaxed (see Endpoint::was_reset): a forced reset ends the wait.
    if (atom(*reset_gen_).load(std::memory_order_relaxed) != gen_) {
      *e = Errc::reset;
      return true;
    }
    if (peer_ == nullptr || !peer_->due(now) || !peer_->gone(now)) return false;
    // Records committed before the peer died are delivered first.
    *e = ready();
    if (*e == Errc::would_block) *e = Errc::peer_gone;
    return true;
  }

  WaitStrategy s_;
  WaitLine* line_;
  unsigned char* sem_;
  PeerWatch* peer_;
  std::uint32_t* reset_gen_;
  std::uint64_t* sleep_flag_;
  std::uint64_t sleep_bit_;
  std::uint32_t gen_;
  std::int64_t deadline_ = 0;
};

}  // namespace shmring::detail

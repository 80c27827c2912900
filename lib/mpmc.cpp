// The mpmc ring: fixed slots, any number of producers and consumers,
// lock-free, with recovery from processes that die (or stall) holding a slot.
// docs/mpmc.md has the full argument; the short version:
//
// Tickets. prod.tail is the next producer ticket, cons.head the next
// consumer ticket (64-bit, free-running). Ticket t uses slot t & (n-1) in lap
// t >> log2(n).
//
// Slot word (one 64-bit atomic per slot; all transitions are CAS):
//
//   bits 63..24 lap (40 bits, compared modulo 2^40)
//   bits 23..8  owner: attach entry (5 bits) + 11 bits of its generation
//   bits  7..0  state
//
//     EMPTY(L) --producer CAS--> WRITING(L, p) --commit CAS--> FULL(L)
//        ^                           |                            |
//        |                  p dead: consumer CAS          consumer CAS
//        |                  p stalled: --> ABANDONED(L,p)         v
//        +------- release CAS (lap L+1) ------------------- READING(L, c)
//                 (c dead: a producer CAS, the record is dropped;
//                  c stalled: a producer CAS --> ABANDONED(L+1, c),
//                  the record is dropped, c's release acknowledges)
//
// The claim itself writes the claimer's identity (one CAS), so there is no
// moment at which a slot is taken but its taker unknown. A ticket counter is
// advanced only after its slot was claimed, or to skip a slot quarantined as
// ABANDONED; anybody may help advance it (CAS t -> t+1), so a claimer that
// dies right after its claim does not stop the counter.
//
// Ordering labels (docs/memory-ordering.md):
//   MP-A1 producer: slot word load/CAS (acquire)  pairs with MC-R1
//   MP-R1 producer: commit CAS -> FULL (release)  pairs with MC-A1
//   MC-A1 consumer: slot word load/CAS (acquire)  pairs with MP-R1
//   MC-R1 consumer: release CAS -> EMPTY(L+1) (release) pairs with MP-A1
//   T-R1  ticket advance CAS (release)            pairs with T-A1 loads (acquire)
//   revoke-read  producer: READING -> ABANDONED of a stalled reader (acq_rel),
//                races with MC-R1; consumers' MC-A1 see the quarantine
//   ack   claimer/reader: ABANDONED -> ABANDONED_RELEASED (acq_rel)
//                                                 pairs with MP-A1, MC-A1
#include <cstring>

#include "endpoint.hpp"
#include "hooks.hpp"
#include "wait.hpp"

namespace shmring::detail {

namespace {

// How often a slot held past its time is checked for a dead holder.
constexpr std::int64_t kClaimCheckNs = 1'000'000;

// Steps one try_claim / try_take may take before it hands back to the
// waiter. Honest tickets need at most about a ring's length of skips; a
// forged ticket (a broken or hostile peer wrote prod.tail or cons.head) can
// look 2^39 laps behind the slot words, and helping it forward one slot at
// a time would never return. Returning would_block lets the waiter check the
// deadline and call again (tests/hardening/ticket_test.cpp).
constexpr std::uint64_t max_steps(std::uint64_t slots) noexcept { return 4 * slots + 1024; }

std::uint64_t stride_for(std::uint64_t slot_size) noexcept {
  return (sizeof(SlotHeader) + slot_size + kCacheLine - 1) & ~std::uint64_t{kCacheLine - 1};
}

unsigned log2_of(std::uint64_t pow2) noexcept { return static_cast<unsigned>(__builtin_ctzll(pow2)); }

// Advances a ticket counter from t to t+1 if nobody did yet.
void help_advance(std::uint64_t* counter, std::uint64_t t) noexcept {
  // T-R1: release, pairs with the T-A1 acquire loads of the counter.
  atom(*counter).compare_exchange_strong(t, t + 1, std::memory_order_release, std::memory_order_relaxed);
}

// Common state of both sides: slot addressing, identity, stuck detection.
class MpmcBase : public Endpoint {
 protected:
  MpmcBase(OpenedSegment seg, Attachment att, Role role) noexcept
      : Endpoint(std::move(seg), std::move(att), role),
        n_(seg_.geo.slot_count),
        shift_(log2_of(seg_.geo.slot_count)),
        stride_(stride_for(seg_.geo.slot_size)),
        slot_size_(seg_.geo.slot_size),
        me_(((att_.generation() & 0x7ff) << 5) | static_cast<std::uint64_t>(att_.entry())),
        stall_ns_(std::int64_t{seg_.geo.liveness_ms} * 10 * 1'000'000) {}

  SlotHeader* slot(std::uint64_t t) const noexcept {
    return reinterpret_cast<SlotHeader*>(seg_.data + (t & (n_ - 1)) * stride_);
  }
  std::uint64_t lap(std::uint64_t t) const noexcept { return (t >> shift_) & kLapMask; }

  bool owner_alive(std::uint64_t owner) const noexcept {
    const std::uint32_t entry = owner & 31;
    const AttachEntry& e = seg_.hdr->attach[entry];
    // L-A1: acquire, pairs with L-R1 (the generation was written before).
    const std::uint64_t w = atom(const_cast<std::uint64_t&>(e.state)).load(std::memory_order_acquire);
    if (w == 0) return false;
    const std::uint64_t g = atom(const_cast<std::uint64_t&>(e.generation)).load(std::memory_order_relaxed);
    if ((g & 0x7ff) != (owner >> 5)) return false;  // the entry now belongs to somebody else
    return entry_liveness(*seg_.hdr, entry, w) == Liveness::alive;
  }

  enum class Verdict { wait, dead, stalled };
  // Called while ticket t's slot has stayed at word w: after kClaimCheckNs
  // it checks the holder, and after the stall bound gives up on it. With
  // urgent_ (no peer of the holder's role is alive any more) the holder is
  // checked at once.
  //
  // The first sight of a new (t, w) reads no clock: under traffic the
  // other side is usually mid-record (a consumer sees WRITING, a producer
  // on a full ring sees READING) and is done by the next look, and a clock
  // read per record was ~10% of mpmc's cost. The time stamp is taken at the
  // second sight; the Waiter looks twice per sleep round (after the sleep
  // and at W3), so this delays a verdict by no sleep, only by one poll.
  Verdict judge(std::uint64_t t, std::uint64_t w) noexcept {
    if (t != stuck_t_ || w != stuck_w_) {
      stuck_t_ = t;
      stuck_w_ = w;
      stuck_since_ = 0;  // not stamped yet
      if (!urgent_) return Verdict::wait;
    }
    const std::int64_t now = monotonic_ns();
    if (stuck_since_ == 0) {
      stuck_since_ = now;
      stuck_next_ = now + kClaimCheckNs;
      if (!urgent_) return Verdict::wait;
    } else if (now < stuck_next_ && !urgent_) {
      return Verdict::wait;
    }
    stuck_next_ = now + kClaimCheckNs;
    if (!owner_alive(word_owner(w))) return Verdict::dead;
    if (now - stuck_since_ >= stall_ns_) return Verdict::stalled;
    return Verdict::wait;
  }

  void count(std::uint64_t& stat) noexcept {
    atom(stat).fetch_add(1, std::memory_order_relaxed);  // statistic, rare events only
  }

  void wake_everyone() noexcept {
    notify(seg_.geo.wait, *seg_.hdr, seg_.hdr->data_wait, seg_.hdr->sems.data_sem);
    notify(seg_.geo.wait, *seg_.hdr, seg_.hdr->space_wait, seg_.hdr->sems.space_sem);
  }

  Errc quarantine(std::string why) {
    corrupt_ = true;
    return fail(Errc::corrupt, seg_.name, std::move(why));
  }

  const std::uint64_t n_;
  const unsigned shift_;
  const std::uint64_t stride_;
  const std::uint64_t slot_size_;
  const std::uint64_t me_;
  const std::int64_t stall_ns_;
  std::uint64_t stuck_t_ = ~std::uint64_t{0};
  std::uint64_t stuck_w_ = 0;
  std::int64_t stuck_since_ = 0;
  std::int64_t stuck_next_ = 0;
  bool urgent_ = false;
  bool corrupt_ = false;
};

class MpmcProducer final : public MpmcBase {
 public:
  MpmcProducer(OpenedSegment seg, Attachment att) noexcept
      : MpmcBase(std::move(seg), std::move(att), Role::producer),
        peer_(seg_.hdr, Role::consumer, seg_.geo.liveness_ms, att_.peer_attaches_before()),
        waiter_(seg_.geo.wait, seg_.hdr, &seg_.hdr->space_wait, seg_.hdr->sems.space_sem, &peer_, sleep_flag()) {}

  ~MpmcProducer() override {
    if (has_claim_ && !was_reset()) {
      // Drop the open claim whole: retire the slot to the next lap (MP-R1
      // role: release, nothing was written that anybody may read).
      std::uint64_t w = make_word(lap(claim_), me_, kSlotWriting);
      atom(slot(claim_)->word).compare_exchange_strong(w, make_word(lap(claim_) + 1, 0, kSlotEmpty),
                                                       std::memory_order_release, std::memory_order_relaxed);
      wake_everyone();
    }
  }

  Errc reserve(std::size_t n, std::byte** out, std::int64_t timeout_ns) override {
    if (corrupt_) return Errc::corrupt;
    if (was_reset()) return Errc::reset;
    if (n > slot_size_) return Errc::too_big;
    if (!has_claim_) {
      const Errc e = waiter_.wait([&] { return try_claim(); }, timeout_ns);
      if (e != Errc::ok) return e;
    }
    reserved_n_ = n;  // a second reserve before commit reuses the claimed slot
    *out = reinterpret_cast<std::byte*>(slot(claim_)) + sizeof(SlotHeader);
    return Errc::ok;
  }

  Errc commit(std::size_t n, bool /*publish: every slot is published on its own*/) override {
    if (corrupt_) return Errc::corrupt;
    if (!has_claim_ || n > reserved_n_) return Errc::invalid_argument;
    has_claim_ = false;
    SlotHeader* s = slot(claim_);
    // Ordered before MP-R1 like the payload; a plain field of a slot we own.
    atom(s->len).store(static_cast<std::uint32_t>(n), std::memory_order_relaxed);
    SHMRING_CRASHPOINT("mpmc.commit.before_publish");
    std::uint64_t w = make_word(lap(claim_), me_, kSlotWriting);
    // MP-R1: release (seq_cst: it is also P1-RMW of the wake-up protocol,
    // see notify_after_seq_cst_rmw), publishes the payload and len; pairs
    // with MC-A1.
    if (!atom(s->word).compare_exchange_strong(w, make_word(lap(claim_), 0, kSlotFull), std::memory_order_seq_cst,
                                               std::memory_order_relaxed)) {
      if (word_state(w) == kSlotAbandoned && word_owner(w) == me_) {
        // We stalled and consumers gave up on us: acknowledge, so the
        // quarantined slot can be reused, and report the dropped record.
        // Consumers passing the slot move its lap on (see try_take), so
        // retry until the acknowledgement lands on the current word.
        // ack: acq_rel, releases our late writes into the quarantined slot before
        // it is reused; pairs with MP-A1 (try_claim) and MC-A1 (try_take),
        // the acquire loads that see ABANDONED_RELEASED.
        while (word_state(w) == kSlotAbandoned && word_owner(w) == me_ &&
               !atom(s->word).compare_exchange_weak(w, make_word(word_lap(w), me_, kSlotAbandonedReleased),
                                                    std::memory_order_acq_rel, std::memory_order_relaxed)) {
        }
        wake_everyone();
        return fail(Errc::reset, seg_.name,
                    "claim on slot " + std::to_string(claim_ & (n_ - 1)) +
                        " was revoked after this producer stalled; the record was dropped");
      }
      if (was_reset()) return Errc::reset;
      return quarantine("slot " + std::to_string(claim_ & (n_ - 1)) + " changed under its claimer");
    }
    // No fence: MP-R1 is a seq_cst RMW (P1-RMW).
    notify_after_seq_cst_rmw(seg_.geo.wait, *seg_.hdr, seg_.hdr->data_wait, seg_.hdr->sems.data_sem);
    return Errc::ok;
  }

  Errc flush() override { return corrupt_ ? Errc::corrupt : Errc::ok; }

 private:
  Errc try_claim() {
    for (std::uint64_t step = 0;; ++step) {
      if (step > max_steps(n_)) return Errc::would_block;
      // T-A1: acquire, pairs with T-R1.
      const std::uint64_t t = atom(seg_.hdr->prod.tail).load(std::memory_order_acquire);
      SlotHeader* s = slot(t);
      const std::uint64_t L = lap(t);
      // MP-A1: acquire, pairs with MC-R1: the previous lap's reader is done.
      std::uint64_t w = atom(s->word).load(std::memory_order_acquire);
      // RG-1 (endpoint.hpp): a ticket or word a reset stored is a reset.
      if (was_reset()) return Errc::reset;
      const std::uint64_t st = word_state(w);
      const std::int64_t d = lap_diff(word_lap(w), L);
      if (st > kSlotAbandonedReleased) return quarantine("slot " + std::to_string(t & (n_ - 1)) + " has an unknown state");
      if (d == 0 && st == kSlotEmpty) {
        // The claim: one CAS writes "taken, by me" (acq_rel: MP-A1 again on
        // success; ordered before our payload writes).
        if (!atom(s->word).compare_exchange_strong(w, make_word(L, me_, kSlotWriting), std::memory_order_acq_rel,
                                                   std::memory_order_relaxed))
          continue;
        SHMRING_CRASHPOINT("mpmc.claim.before_advance");
        help_advance(&seg_.hdr->prod.tail, t);
        SHMRING_CRASHPOINT("mpmc.claim");
        claim_ = t;
        has_claim_ = true;
        return Errc::ok;
      }
      if (st == kSlotAbandoned || st == kSlotAbandonedReleased || d > 0 || (d == 0 && st != kSlotEmpty)) {
        // A quarantined slot is skipped; a ticket somebody else claimed (or
        // that is already stale) is helped along. Never run more than a
        // ring's length ahead of the consumers. cons.head is read only
        // here: every consumer writes it on every take, so a load on the
        // fast path would cost a cross-core miss per record.
        // T-A1: acquire, pairs with T-R1.
        const std::uint64_t h = atom(seg_.hdr->cons.head).load(std::memory_order_acquire);
        if (static_cast<std::int64_t>(t - h) >= static_cast<std::int64_t>(n_)) return Errc::would_block;
        help_advance(&seg_.hdr->prod.tail, t);
        continue;
      }
      // d < 0: the slot still holds the previous lap: the ring is full here.
      if (st == kSlotReading) {
        const Verdict v = judge(t, w);
        if (v == Verdict::dead) {
          // The reader died holding the record: it is lost (counted), the
          // slot goes back to us.
          if (atom(s->word).compare_exchange_strong(w, make_word(L, 0, kSlotEmpty), std::memory_order_acq_rel,
                                                    std::memory_order_relaxed)) {
            count(seg_.hdr->roles.dropped_reads);
          }
          continue;
        }
        if (v == Verdict::stalled) {
          // The reader is alive but has held the record past the stall
          // bound: revoke it. The slot is quarantined as ABANDONED(L, c),
          // exactly like a revoked claim of lap L: producers skip ticket t
          // (next iteration), consumers skip it and carry the quarantine
          // from lap to lap, and nobody writes the payload, so the late
          // reader still reads its own record, until it acknowledges in
          // release() or dies. The record is dropped (counted): the
          // consumer ticket has passed it, and the late reader may already
          // have used it, so handing it to another consumer could deliver
          // it twice. The CAS races with the reader's release (MC-R1):
          // exactly one of the two succeeds. revoke-read: acq_rel, MP-A1
          // on success (the reader's take is ordered before it); release
          // for the consumers' MC-A1 loads that see ABANDONED.
          if (atom(s->word).compare_exchange_strong(w, make_word(L, word_owner(w), kSlotAbandoned),
                                                    std::memory_order_acq_rel, std::memory_order_relaxed)) {
            count(seg_.hdr->roles.fenced_reads);
            wake_everyone();
          }
          continue;
        }
      }
      return Errc::would_block;
    }
  }

  PeerWatch peer_;
  Waiter waiter_;
  std::uint64_t claim_ = 0;
  std::size_t reserved_n_ = 0;
  bool has_claim_ = false;
};

class MpmcConsumer final : public MpmcBase {
 public:
  MpmcConsumer(OpenedSegment seg, Attachment att) noexcept
      : MpmcBase(std::move(seg), std::move(att), Role::consumer),
        peer_(seg_.hdr, Role::producer, seg_.geo.liveness_ms, att_.peer_attaches_before()),
        waiter_(seg_.geo.wait, seg_.hdr, &seg_.hdr->data_wait, seg_.hdr->sems.data_sem, &peer_, sleep_flag()) {}

  ~MpmcConsumer() override {
    // A peeked record counts as consumed: its ticket is behind us for good.
    if (has_take_ && !was_reset()) release(true);
  }

  Errc peek(const std::byte** out, std::size_t* n, std::int64_t timeout_ns) override {
    if (corrupt_) return Errc::corrupt;
    if (was_reset()) return Errc::reset;
    if (!has_take_) {
      Errc e = waiter_.wait([&] { return try_take(); }, timeout_ns);
      if (e == Errc::peer_gone) {
        // No producer is attached and alive: a slot still WRITING belongs to
        // a dead claimer. Judge such slots now rather than after
        // kClaimCheckNs, so that records committed behind them are delivered
        // before peer_gone (docs/liveness.md).
        urgent_ = true;
        e = try_take();
        urgent_ = false;
        if (e == Errc::would_block) e = Errc::peer_gone;
      }
      if (e != Errc::ok) return e;
    }
    SHMRING_CRASHPOINT("mpmc.peek");
    *out = reinterpret_cast<const std::byte*>(slot(take_)) + sizeof(SlotHeader);
    *n = take_len_;
    return Errc::ok;
  }

  Errc release(bool /*publish: every slot is released on its own*/) override {
    if (corrupt_) return Errc::corrupt;
    if (!has_take_) return Errc::invalid_argument;
    has_take_ = false;
    SHMRING_CRASHPOINT("mpmc.release.before_publish");
    std::uint64_t w = make_word(lap(take_), me_, kSlotReading);
    // MC-R1: release (seq_cst: also P1-RMW of the wake-up protocol), our
    // reads of the slot are done; pairs with MP-A1.
    if (!atom(slot(take_)->word).compare_exchange_strong(w, make_word(lap(take_) + 1, 0, kSlotEmpty),
                                                         std::memory_order_seq_cst, std::memory_order_relaxed)) {
      if (word_state(w) == kSlotAbandoned && word_owner(w) == me_) {
        // We stalled holding the record and a producer revoked it (see
        // try_claim): the slot was quarantined, so nothing we read was
        // overwritten, but the record counts as dropped. Acknowledge, so
        // the slot can be reused; consumers passing it move its lap on, so
        // retry until the acknowledgement lands on the current word.
        // ack: acq_rel, releases our reads of the slot before its reuse;
        // pairs with MP-A1 (try_claim) and MC-A1 (try_take), the acquire
        // loads that see ABANDONED_RELEASED.
        while (word_state(w) == kSlotAbandoned && word_owner(w) == me_ &&
               !atom(slot(take_)->word)
                    .compare_exchange_weak(w, make_word(word_lap(w), me_, kSlotAbandonedReleased),
                                           std::memory_order_acq_rel, std::memory_order_relaxed)) {
        }
        wake_everyone();
        return fail(Errc::reset, seg_.name,
                    "hold on slot " + std::to_string(take_ & (n_ - 1)) +
                        " was revoked after this consumer stalled between peek and release; the record was dropped");
      }
      if (was_reset()) return Errc::reset;
      return quarantine("slot " + std::to_string(take_ & (n_ - 1)) + " changed under its reader");
    }
    // No fence: MC-R1 is a seq_cst RMW (P1-RMW).
    notify_after_seq_cst_rmw(seg_.geo.wait, *seg_.hdr, seg_.hdr->space_wait, seg_.hdr->sems.space_sem);
    return Errc::ok;
  }

  Errc flush() override { return corrupt_ ? Errc::corrupt : Errc::ok; }

 private:
  bool producers_past(std::uint64_t t) const noexcept {
    // T-A1: acquire, pairs with T-R1.
    const std::uint64_t tail = atom(seg_.hdr->prod.tail).load(std::memory_order_acquire);
    return static_cast<std::int64_t>(tail - t) > 0;
  }

  // Retires ticket t's slot to the next lap (nobody will write it in lap L)
  // and moves the consumer ticket past it. Only a successful CAS may move
  // the ticket: if the word changed (a producer claimed the slot after all),
  // the caller looks again.
  bool retire(SlotHeader* s, std::uint64_t t, std::uint64_t w, std::uint64_t new_word) noexcept {
    // acq_rel: ordered after whatever the slot held; the next lap's producer
    // acquires it (MP-A1).
    if (!atom(s->word).compare_exchange_strong(w, new_word, std::memory_order_acq_rel, std::memory_order_relaxed))
      return false;
    help_advance(&seg_.hdr->cons.head, t);
    return true;
  }

  Errc try_take() {
    for (std::uint64_t step = 0;; ++step) {
      if (step > max_steps(n_)) return Errc::would_block;
      // T-A1: acquire, pairs with T-R1.
      const std::uint64_t t = atom(seg_.hdr->cons.head).load(std::memory_order_acquire);
      SlotHeader* s = slot(t);
      const std::uint64_t L = lap(t);
      // MC-A1: acquire, pairs with MP-R1: a FULL slot's payload is complete.
      std::uint64_t w = atom(s->word).load(std::memory_order_acquire);
      // RG-1 (endpoint.hpp): a ticket or word a reset stored is a reset.
      if (was_reset()) return Errc::reset;
      const std::uint64_t st = word_state(w);
      const std::int64_t d = lap_diff(word_lap(w), L);
      if (st > kSlotAbandonedReleased) return quarantine("slot " + std::to_string(t & (n_ - 1)) + " has an unknown state");
      if (st == kSlotAbandoned || st == kSlotAbandonedReleased) {
        if (d > 0) {
          help_advance(&seg_.hdr->cons.head, t);
          continue;
        }
        if (!producers_past(t)) return Errc::would_block;
        // Quarantined: skip the ticket; reuse the slot once its stalled
        // claimer is gone or has acknowledged. Either way the word moves to
        // lap L+1 by CAS before the head passes t, as for every other slot
        // state: a consumer still holding an older view of this slot (its
        // ticket t-n, or t-2n...) then fails its CAS. Skipping without
        // changing the word let such a consumer retire the slot to a lap
        // whose ticket both sides had passed already, and the ring stopped.
        if (st == kSlotAbandonedReleased || !owner_alive(word_owner(w))) {
          retire(s, t, w, make_word(L + 1, 0, kSlotEmpty));
        } else {
          retire(s, t, w, make_word(L + 1, word_owner(w), kSlotAbandoned));
        }
        continue;
      }
      if (d > 0) {  // the ticket was retired already
        help_advance(&seg_.hdr->cons.head, t);
        continue;
      }
      if (d < 0) return Errc::would_block;  // this lap's producer has not come yet
      switch (st) {
        case kSlotFull: {
          // MC-A1 on success: acquire, pairs with MP-R1.
          if (!atom(s->word).compare_exchange_strong(w, make_word(L, me_, kSlotReading), std::memory_order_acquire,
                                                     std::memory_order_relaxed))
            continue;
          help_advance(&seg_.hdr->cons.head, t);
          // Untrusted: a length beyond the slot is corruption, never a read
          // past it. Written before MP-R1, read after MC-A1.
          const std::uint32_t len = atom(s->len).load(std::memory_order_relaxed);
          take_ = t;
          has_take_ = true;
          if (len > slot_size_) {
            release(true);
            return quarantine("slot " + std::to_string(t & (n_ - 1)) + " holds length " + std::to_string(len) +
                              " beyond the slot size");
          }
          take_len_ = len;
          return Errc::ok;
        }
        case kSlotReading:
          help_advance(&seg_.hdr->cons.head, t);  // another consumer has it
          continue;
        case kSlotEmpty:
          if (!producers_past(t)) return Errc::would_block;
          retire(s, t, w, make_word(L + 1, 0, kSlotEmpty));  // a skipped ticket: nobody fills it this lap
          continue;
        case kSlotWriting: {
          const Verdict v = judge(t, w);
          if (v == Verdict::wait) return Errc::would_block;
          if (v == Verdict::dead) {
            // The claimer died before publishing: nothing it wrote is ever
            // read; the slot is reused from the next lap on.
            if (retire(s, t, w, make_word(L + 1, 0, kSlotEmpty))) count(seg_.hdr->roles.abandoned_claims);
          } else {
            // Alive but stalled past the bound: revoke the claim and keep
            // the slot quarantined until the claimer acknowledges or dies,
            // so its late writes can land nowhere that matters.
            if (retire(s, t, w, make_word(L, word_owner(w), kSlotAbandoned))) count(seg_.hdr->roles.fenced_claims);
          }
          wake_everyone();
          continue;
        }
        default:
          return quarantine("slot state out of range");
      }
    }
  }

  PeerWatch peer_;
  Waiter waiter_;
  std::uint64_t take_ = 0;
  std::size_t take_len_ = 0;
  bool has_take_ = false;
};

}  // namespace

std::uint64_t mpmc_stride(std::uint64_t slot_size) noexcept { return stride_for(slot_size); }

void init_mpmc_slots(std::byte* data, const Geometry& g, std::uint64_t first_ticket) noexcept {
  const std::uint64_t stride = stride_for(g.slot_size);
  const unsigned shift = log2_of(g.slot_count);
  for (std::uint64_t i = 0; i < g.slot_count; ++i) {
    // Ticket first_ticket + i (in order) lands on slot (first_ticket + i) & mask.
    const std::uint64_t t = first_ticket + i;
    auto* s = reinterpret_cast<SlotHeader*>(data + (t & (g.slot_count - 1)) * stride);
    // Before the ring is published (creator) or with nobody attached
    // (reset): relaxed; I-R1 / R-R1 publish it.
    atom(s->word).store(make_word((t >> shift) & kLapMask, 0, kSlotEmpty), std::memory_order_relaxed);
    atom(s->len).store(0, std::memory_order_relaxed);
  }
}

std::unique_ptr<Endpoint> make_mpmc_endpoint(OpenedSegment seg, Attachment att, Role role, Errc* err) {
  *err = Errc::ok;
  if (role == Role::producer) return std::make_unique<MpmcProducer>(std::move(seg), std::move(att));
  return std::make_unique<MpmcConsumer>(std::move(seg), std::move(att));
}

}  // namespace shmring::detail

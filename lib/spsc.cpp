// The spsc ring: variable-length records in one byte array, one producer and
// one consumer. Ordering labels (docs/memory-ordering.md):
//
//   P-R1  producer: tail.store(release)   publishes the records before it
//   C-A1  consumer: tail.load(acquire)    pairs with P-R1
//   C-R1  consumer: head.store(release)   hands the space before it back
//   P-A1  producer: head.load(acquire)    pairs with C-R1 (the consumer's
//                                         reads of that space are finished)
//
// Indices are free-running 64-bit byte counters; the offset in the data area
// is index & (capacity - 1). Every subtraction is unsigned, so the arithmetic
// stays right across the 2^64 wrap (tested by starting near it).
//
//   data area (capacity C)
//   0                 head&mask        tail&mask              C
//   |   free           | rec | rec | rec |      free          |
//                      ^ consumer reads here   ^ producer writes here
//
// A record whose footprint F does not fit between the write offset and the
// end goes to offset 0, and a skip record covers the bytes up to the end.
// Each side keeps a cached copy of the other's index and reloads it only
// when the cache says the ring is full (producer) or empty (consumer), so
// the fast path touches only its own line plus the records themselves.
#include <cstring>

#include "endpoint.hpp"
#include "hooks.hpp"
#include "records.hpp"
#include "wait.hpp"

namespace shmring::detail {

namespace {

class SpscProducer final : public Endpoint {
 public:
  SpscProducer(OpenedSegment seg, Attachment att, std::uint64_t tail, std::uint64_t head) noexcept
      : Endpoint(std::move(seg), std::move(att), Role::producer),
        tail_(&seg_.hdr->prod.tail),
        records_(&seg_.hdr->prod.records),
        head_(&seg_.hdr->cons.head),
        area_{seg_.data, seg_.geo.capacity, seg_.geo.max_record},
        write_pos_(tail),
        published_(tail),
        head_cache_(head),
        peer_(seg_.hdr, Role::consumer, seg_.geo.liveness_ms, att_.peer_attaches_before()),
        waiter_(seg_.geo.wait, seg_.hdr, &seg_.hdr->space_wait, seg_.hdr->sems.space_sem, &peer_, sleep_flag()) {
    // Sole writer of prod.records: relaxed is enough (a statistic).
    records_local_ = atom(*records_).load(std::memory_order_relaxed);
    // We hold the producer role exclusively, so nobody else can be asleep
    // waiting for space: drop a count a killed predecessor left behind.
    atom(seg_.hdr->space_wait.waiters).store(0, std::memory_order_relaxed);
  }

  ~SpscProducer() override { flush(); }

  Errc reserve(std::size_t n, std::byte** out, std::int64_t timeout_ns) override {
    if (corrupt_) return Errc::corrupt;
    if (was_reset()) return Errc::reset;
    if (n > area_.max_record) return Errc::too_big;
    const std::uint64_t need = bytes_needed(area_, write_pos_, n);
    if (write_pos_ + need - head_cache_ > area_.cap) {
      // Staged records must be visible before we wait for the consumer to
      // make room, or it could wait for them forever.
      if (published_ != write_pos_) publish();
      const Errc e = waiter_.wait([&] { return refresh_head(need); }, timeout_ns);
      if (e != Errc::ok) return e;
    }
    // A skip record written here stays invisible until the record after it
    // is published with it.
    const std::uint64_t pos = place_record(area_, write_pos_, n);
    write_pos_ = pos;
    SHMRING_CRASHPOINT("spsc.reserve");
    reserved_pos_ = pos;
    reserved_n_ = n;
    has_reservation_ = true;
    *out = area_.data + (pos & area_.mask()) + sizeof(RecordHeader);
    return Errc::ok;
  }

  Errc commit(std::size_t n, bool publish_now) override {
    if (corrupt_) return Errc::corrupt;
    if (was_reset()) return Errc::reset;
    if (!has_reservation_ || n > reserved_n_) return Errc::invalid_argument;
    SHMRING_CRASHPOINT("spsc.commit.before_header");
    write_record_header(area_, reserved_pos_, n);
    SHMRING_CRASHPOINT("spsc.commit.before_publish");
    write_pos_ = reserved_pos_ + record_footprint(n);
    has_reservation_ = false;
    ++records_local_;
    if (publish_now) publish();
    return Errc::ok;
  }

  Errc flush() override {
    if (corrupt_) return Errc::corrupt;
    if (was_reset()) return Errc::reset;
    if (published_ != write_pos_) publish();
    return Errc::ok;
  }

 private:
  void publish() noexcept {
    // P-R1: release, publishes the payloads and record headers written
    // before it; pairs with C-A1 in SpscConsumer::next_record.
    atom(*tail_).store(write_pos_, std::memory_order_release);
    // Sole writer; a statistic read by shmtool, ordered by nothing.
    atom(*records_).store(records_local_, std::memory_order_relaxed);
    published_ = write_pos_;
    SHMRING_CRASHPOINT("spsc.commit.after_publish");
    notify(seg_.geo.wait, *seg_.hdr, seg_.hdr->data_wait, seg_.hdr->sems.data_sem);
  }

  Errc refresh_head(std::uint64_t need) noexcept {
    // P-A1: acquire, pairs with C-R1 in SpscConsumer::publish: the consumer
    // is done reading the space it handed back.
    const std::uint64_t h = atom(*head_).load(std::memory_order_acquire);
    // RG-1: a reset moves head back (R-R2 pairs with P-A1): that is a
    // reset, not corruption, and our write position is no longer valid.
    if (was_reset()) return Errc::reset;
    // Untrusted: the consumer can never be ahead of what we published, nor
    // more than a capacity behind it, and records are 8-byte aligned.
    if (!indices_sane(area_, h, published_)) {
      corrupt_ = true;
      return fail(Errc::corrupt, seg_.name,
                  "consumer index " + std::to_string(h) + " out of range (tail " + std::to_string(published_) +
                      ")");
    }
    head_cache_ = h;
    return write_pos_ + need - h > area_.cap ? Errc::would_block : Errc::ok;
  }

  std::uint64_t* tail_;
  std::uint64_t* records_;
  std::uint64_t* head_;
  const RingArea area_;
  std::uint64_t write_pos_;   // where the next record goes (after staged ones)
  std::uint64_t published_;   // last value stored to tail
  std::uint64_t head_cache_;  // last value loaded from head
  std::uint64_t reserved_pos_ = 0;
  std::size_t reserved_n_ = 0;
  std::uint64_t records_local_ = 0;
  bool has_reservation_ = false;
  bool corrupt_ = false;
  PeerWatch peer_;
  Waiter waiter_;
};

class SpscConsumer final : public Endpoint {
 public:
  SpscConsumer(OpenedSegment seg, Attachment att, std::uint64_t tail, std::uint64_t head) noexcept
      : Endpoint(std::move(seg), std::move(att), Role::consumer),
        tail_(&seg_.hdr->prod.tail),
        head_(&seg_.hdr->cons.head),
        records_(&seg_.hdr->cons.records),
        area_{seg_.data, seg_.geo.capacity, seg_.geo.max_record},
        read_pos_(head),
        released_(head),
        tail_cache_(tail),
        peer_(seg_.hdr, Role::producer, seg_.geo.liveness_ms, att_.peer_attaches_before()),
        waiter_(seg_.geo.wait, seg_.hdr, &seg_.hdr->data_wait, seg_.hdr->sems.data_sem, &peer_, sleep_flag()) {
    // Sole writer of cons.records: relaxed is enough (a statistic).
    records_local_ = atom(*records_).load(std::memory_order_relaxed);
    // We hold the consumer role exclusively, so nobody else can be asleep
    // waiting for data: drop a count a killed predecessor left behind.
    atom(seg_.hdr->data_wait.waiters).store(0, std::memory_order_relaxed);
  }

  ~SpscConsumer() override { flush(); }

  Errc peek(const std::byte** out, std::size_t* n, std::int64_t timeout_ns) override {
    if (corrupt_) return Errc::corrupt;
    if (was_reset()) return Errc::reset;
    if (!has_peek_) {
      Errc e = next_record();
      if (e == Errc::would_block && timeout_ns != 0) {
        // Hand back deferred releases before sleeping, or a producer waiting
        // for that space would never fill the ring we wait on.
        if (released_ != read_pos_) publish();
      }
      if (e == Errc::would_block) e = waiter_.wait([&] { return next_record(); }, timeout_ns);
      if (e != Errc::ok) return e;
    }
    SHMRING_CRASHPOINT("spsc.peek");
    *out = area_.data + (read_pos_ & area_.mask()) + sizeof(RecordHeader);
    *n = peek_len_;
    return Errc::ok;
  }

  Errc release(bool publish_now) override {
    if (corrupt_) return Errc::corrupt;
    if (was_reset()) return Errc::reset;
    if (!has_peek_) return Errc::invalid_argument;
    SHMRING_CRASHPOINT("spsc.release.before_publish");
    read_pos_ += record_footprint(peek_len_);
    has_peek_ = false;
    ++records_local_;
    if (publish_now) publish();
    return Errc::ok;
  }

  Errc flush() override {
    if (corrupt_) return Errc::corrupt;
    if (was_reset()) return Errc::reset;
    if (released_ != read_pos_) publish();
    return Errc::ok;
  }

 private:
  void publish() noexcept {
    // C-R1: release, hands the space before read_pos_ back to the producer
    // once our reads of it are done; pairs with P-A1 in refresh_head.
    atom(*head_).store(read_pos_, std::memory_order_release);
    // Sole writer; a statistic read by shmtool, ordered by nothing.
    atom(*records_).store(records_local_, std::memory_order_relaxed);
    released_ = read_pos_;
    notify(seg_.geo.wait, *seg_.hdr, seg_.hdr->space_wait, seg_.hdr->sems.space_sem);
  }

  Errc corrupt(std::string cause) {
    corrupt_ = true;
    return fail(Errc::corrupt, seg_.name, std::move(cause));
  }

  // Finds the record at read_pos_ (moving past a skip record), reloading the
  // tail only when the cached copy says the ring is empty.
  Errc next_record() {
    if (read_pos_ == tail_cache_) {
      // C-A1: acquire, pairs with P-R1 in SpscProducer::publish: the
      // records before the tail are completely written.
      const std::uint64_t t = atom(*tail_).load(std::memory_order_acquire);
      // RG-1: a reset moves tail back (R-R2 pairs with C-A1): that is a
      // reset, not corruption, and a tail stored after the reset must not
      // be combined with our position from before it.
      if (was_reset()) return Errc::reset;
      if (!indices_sane(area_, released_, t) || t - read_pos_ > area_.cap) {
        return corrupt("producer index " + std::to_string(t) + " out of range (head " +
                       std::to_string(released_) + ")");
      }
      tail_cache_ = t;
    }
    std::uint32_t len = 0;
    std::string why;
    const Errc e = find_record(area_, &read_pos_, tail_cache_, &len, &why);
    if (e == Errc::corrupt) return corrupt(std::move(why));
    if (e != Errc::ok) return e;
    peek_len_ = len;
    has_peek_ = true;
    return Errc::ok;
  }

  std::uint64_t* tail_;
  std::uint64_t* head_;
  std::uint64_t* records_;
  const RingArea area_;
  std::uint64_t read_pos_;    // start of the next unreleased record
  std::uint64_t released_;    // last value stored to head
  std::uint64_t tail_cache_;  // last value loaded from tail
  std::uint64_t records_local_ = 0;
  std::size_t peek_len_ = 0;
  bool has_peek_ = false;
  bool corrupt_ = false;
  PeerWatch peer_;
  Waiter waiter_;
};

}  // namespace

std::unique_ptr<Endpoint> make_spsc_endpoint(OpenedSegment seg, Attachment att, Role role, Errc* err) {
  Header* h = seg.hdr;
  // Attach-time snapshot of both indices. Acquire pairs with the other
  // side's release (P-R1 / C-R1) so what they published is visible.
  const std::uint64_t tail = atom(h->prod.tail).load(std::memory_order_acquire);
  const std::uint64_t head = atom(h->cons.head).load(std::memory_order_acquire);
  const std::uint64_t cap = seg.geo.capacity;
  if (tail - head > cap || ((tail | head) & (kRecordAlign - 1)) != 0) {
    att.detach();
    *err = fail(Errc::corrupt, seg.name,
                "indices out of range (head " + std::to_string(head) + ", tail " + std::to_string(tail) +
                    ", capacity " + std::to_string(cap) + ")");
    return nullptr;
  }
  *err = Errc::ok;
  if (role == Role::producer) return std::make_unique<SpscProducer>(std::move(seg), std::move(att), tail, head);
  return std::make_unique<SpscConsumer>(std::move(seg), std::move(att), tail, head);
}

}  // namespace shmring::detail

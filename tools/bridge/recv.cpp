// shmring-bridge recv: receives batches, checks their sequence (gaps,
// duplicates, sender restarts) and produces their records into RING,
// creating it from the sender's geometry with --create.
#include <sys/prctl.h>
#include <zmq.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "bridge.hpp"
#include "wire.hpp"

namespace shmring::bridge_tool {

namespace sb = shmring::bridge;
using shmring::Errc;

bool parse_kind(const std::string& k, shmring::Kind* out) {
  if (k == "spsc") *out = shmring::Kind::spsc;
  else if (k == "mpmc") *out = shmring::Kind::mpmc;
  else if (k == "locked") *out = shmring::Kind::locked;
  else return false;
  return true;
}

namespace {

// Creates the ring from the first batch's geometry (overridden by options).
Errc create_ring(const Options& o, const sb::BatchHeader& h) {
  shmring::Config cfg;
  if (!o.kind.empty()) {
    parse_kind(o.kind, &cfg.kind);
  } else if (h.ring_kind == 1 || h.ring_kind == 2 || h.ring_kind == 3) {
    cfg.kind = static_cast<shmring::Kind>(h.ring_kind);
  }
  if (o.wait == "spin") cfg.wait = shmring::WaitStrategy::spin;
  if (o.wait == "sem") cfg.wait = shmring::WaitStrategy::sem;
  const std::uint64_t mr = std::min<std::uint64_t>(h.max_record, std::uint64_t{1} << 30);
  if (cfg.kind == shmring::Kind::mpmc) {
    cfg.slot_size = o.slot_size ? o.slot_size : std::max<std::uint64_t>(8, (mr + 7) & ~std::uint64_t{7});
    cfg.capacity = o.capacity ? o.capacity : std::max<std::size_t>(std::size_t{1} << 20, std::bit_ceil(2 * cfg.slot_size));
  } else {
    // max_record = capacity/2 - 8 (docs/format.md): the same capacity back.
    cfg.capacity = o.capacity ? o.capacity : std::max<std::size_t>(4096, std::bit_ceil(2 * mr + 16));
  }
  const Errc e = shmring::create(o.ring, cfg);
  if (e == Errc::ok)
    log_line("created the ring: %s, capacity %zu%s", shmring::to_string(cfg.kind), cfg.capacity,
             cfg.slot_size ? (", slot size " + std::to_string(cfg.slot_size)).c_str() : "");
  return e;
}

// Counts and reports the records from `expected` to `first_seq` - 1 as a gap.
void count_gap(Stats& s, std::uint64_t expected, std::uint64_t first_seq) {
  ++s.gaps;
  s.gap_records += first_seq - expected;
  log_line("gap: %llu records (seq %llu..%llu) were never received", (unsigned long long)(first_seq - expected),
           (unsigned long long)expected, (unsigned long long)(first_seq - 1));
}

}  // namespace

int run_recv(const Options& o) {
  shmring::Producer prod;
  auto open_ring = [&]() -> Errc {
    auto p = shmring::Producer::open(o.ring);
    if (!p) return p.error();
    prod = std::move(*p);
    return Errc::ok;
  };
  if (Errc e = open_ring(); e != Errc::ok && !(o.create && e == Errc::not_found)) {
    log_line("cannot open the ring as producer: %s", shmring::last_error_message().c_str());
    return e == Errc::not_found ? kExitNotFound : kExitFail;
  }
  Zmq z;
  if (!setup_socket(z, ZMQ_PULL, o, !o.connect || o.bind)) return kExitFail;
  prctl(PR_SET_NAME, "shmring-bridge", 0, 0, 0);

  Stats s;
  StatsPrinter printer(o, false);
  bool have_epoch = false;
  std::uint64_t expected = 0;  // next sequence number of the current epoch
  // Epochs this receiver has seen superseded, newest last: a batch of one of
  // them is a late batch of a dead sender (docs/bridge.md, "Late batches").
  std::vector<std::uint64_t> past_epochs;
  constexpr std::size_t kPastEpochs = 64;
  int rc = 0;
  zmq_msg_t msg;
  zmq_msg_init(&msg);

  while (!g_stop && rc == 0) {
    poll_events(z);
    printer.maybe_print(s, z);
    zmq_pollitem_t it{z.sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, 100) <= 0 || !(it.revents & ZMQ_POLLIN)) continue;
    if (zmq_msg_recv(&msg, z.sock, ZMQ_DONTWAIT) < 0) continue;
    const std::span<const std::byte> m(static_cast<const std::byte*>(zmq_msg_data(&msg)), zmq_msg_size(&msg));
    std::string why;
    const auto hp = sb::parse_batch(m, &why);
    if (!hp) {
      ++s.bad_batches;
      log_line("dropped a malformed batch: %s", why.c_str());
      continue;
    }
    const sb::BatchHeader& h = *hp;
    if (!prod.valid()) {
      Errc e = create_ring(o, h);
      if (e != Errc::ok && e != Errc::exists) {
        log_line("cannot create the ring: %s", shmring::last_error_message().c_str());
        rc = kExitFail;
        break;
      }
      if ((e = open_ring()) != Errc::ok) {
        log_line("cannot open the ring as producer: %s", shmring::last_error_message().c_str());
        rc = kExitFail;
        break;
      }
    }
    // Sequence check (docs/bridge.md, "Gaps").
    std::uint64_t skip = 0;
    if (have_epoch && h.epoch != s.epoch &&
        std::find(past_epochs.begin(), past_epochs.end(), h.epoch) != past_epochs.end()) {
      // A batch its sender handed to TCP before it died, arriving after its
      // successor's first batch on another connection. Its records were
      // counted in the gap at the restart; producing them now would reorder
      // the stream, so they stay lost.
      if (s.late_records == 0 || (s.late_batches & 1023) == 0)
        log_line("dropped a late batch of the earlier epoch %016llx (seq %llu..%llu): counted in the gap",
                 (unsigned long long)h.epoch, (unsigned long long)h.first_seq,
                 (unsigned long long)(h.first_seq + h.count - 1));
      ++s.late_batches;
      s.late_records += h.count;
      continue;
    }
    if (!have_epoch || h.epoch != s.epoch) {
      if (!have_epoch) {
        // The first batch this receiver sees is its baseline: what came
        // before it may have gone to an earlier receiver, which is not this
        // one's to count (docs/bridge.md, "Gaps").
        log_line("first batch: seq %llu of epoch %016llx (which started at seq %llu)", (unsigned long long)h.first_seq,
                 (unsigned long long)h.epoch, (unsigned long long)h.epoch_start_seq);
      } else {
        ++s.epochs;
        log_line("sender restarted (epoch %016llx -> %016llx, seq %llu)", (unsigned long long)s.epoch,
                 (unsigned long long)h.epoch, (unsigned long long)h.first_seq);
        if (h.first_seq > expected) {
          count_gap(s, expected, h.first_seq);
        } else if (h.first_seq < expected) {
          // The sender's state was lost or reset: numbering starts over. Its
          // records are new (a sender never sends a record twice).
          ++s.seq_resets;
          log_line("the sender's sequence went back from %llu to %llu (state file reset?): gaps before this "
                   "point cannot be counted",
                   (unsigned long long)expected, (unsigned long long)h.first_seq);
        }
      }
      if (h.uncertain) {
        s.uncertain_records += h.uncertain;
        log_line("%u records at the restart may or may not have been lost (counted in the gap, as uncertain)",
                 h.uncertain);
      }
      if (have_epoch) {
        if (past_epochs.size() == kPastEpochs) past_epochs.erase(past_epochs.begin());
        past_epochs.push_back(s.epoch);
      }
      have_epoch = true;
      s.epoch = h.epoch;
      expected = h.first_seq;
    } else if (h.first_seq > expected) {
      count_gap(s, expected, h.first_seq);
    } else if (h.first_seq < expected) {
      // Already produced: never again.
      skip = std::min<std::uint64_t>(expected - h.first_seq, h.count);
      s.dup_dropped += skip;
    }
    // Produce the records; a full ring blocks here (back-pressure).
    std::size_t off = sizeof(sb::BatchHeader);
    std::uint32_t done = 0;
    bool gave_up = false;
    for (std::uint32_t i = 0; i < h.count && rc == 0; ++i) {
      std::uint32_t len;
      std::memcpy(&len, m.data() + off, sizeof len);
      off += sb::kRecordPrefix;
      const std::byte* data = m.data() + off;
      off += len;
      if (i < skip) continue;
      while (true) {
        auto r = prod.reserve(len, shmring::Timeout::try_once());
        if (!r && r.error() == Errc::would_block) r = prod.reserve(len, std::chrono::milliseconds(100));
        if (r) {
          std::memcpy(r->data(), data, len);
          const bool last = i + 1 == h.count;
          const Errc e = prod.commit(len, last ? shmring::Publish::now : shmring::Publish::later);
          if (e != Errc::ok) {
            log_line("commit failed: %s", shmring::to_string(e));
            rc = kExitFail;
          }
          break;
        }
        if (r.error() == Errc::too_big) {
          log_line("record seq %llu of %u bytes is larger than the ring's max_record %zu: stopping",
                   (unsigned long long)(h.first_seq + i), len, prod.max_record());
          rc = kExitFail;
          break;
        }
        if (r.error() != Errc::timed_out && r.error() != Errc::peer_gone) {
          log_line("reserve failed: %s", shmring::to_string(r.error()));
          rc = kExitFail;
          break;
        }
        if (g_stop) {
          gave_up = true;  // stopping and the ring stays full
          break;
        }
        poll_events(z);
        printer.maybe_print(s, z);
      }
      if (gave_up || rc != 0) break;
      ++done;
      s.bytes += len;
    }
    if (done + skip < h.count) {
      (void)prod.flush();
      log_line("stopping with %llu records of a batch (seq %llu..%llu) not produced",
               (unsigned long long)(h.count - done - skip), (unsigned long long)(h.first_seq + skip + done),
               (unsigned long long)(h.first_seq + h.count - 1));
    }
    s.records += done;
    ++s.batches;
    expected = h.first_seq + h.count;
    s.next_seq = expected;
    s.lag_ns = real_ns() - h.sent_ns;
  }
  zmq_msg_close(&msg);
  printer.finish(s, z);
  return rc;
}

}  // namespace shmring::bridge_tool

// shmring-bridge: the counters' periodic and final report (--stats, --stats-json).
#include <cstdio>

#include "bridge.hpp"

namespace shmring::bridge_tool {

void StatsPrinter::maybe_print(const Stats& s, const Zmq& z) {
  if (o_.stats_s <= 0) return;
  const std::int64_t now = mono_ns();
  if (now < next_) return;
  next_ = now + to_ns(o_.stats_s);
  print(s, z, false);
}

void StatsPrinter::print(const Stats& s, const Zmq& z, bool final) {
  const std::uint64_t reconnects = z.connects > 0 ? z.connects - 1 : 0;
  if (o_.json) {
    std::printf(
        "{\"role\":\"%s\",\"ring\":\"%s\",\"final\":%s,\"records\":%llu,\"bytes\":%llu,\"batches\":%llu,"
        "\"gaps\":%llu,\"gap_records\":%llu,\"uncertain_records\":%llu,\"epochs\":%llu,\"seq_resets\":%llu,"
        "\"dup_dropped\":%llu,\"late_records\":%llu,\"bad_batches\":%llu,\"reconnects\":%llu,\"disconnects\":%llu,"
        "\"next_seq\":%llu,\"epoch\":\"%016llx\",\"lag_us\":%lld,\"blocked_ms\":%llu}\n",
        send_ ? "send" : "recv", g_ring.c_str(), final ? "true" : "false", (unsigned long long)s.records,
        (unsigned long long)s.bytes, (unsigned long long)s.batches, (unsigned long long)s.gaps,
        (unsigned long long)s.gap_records, (unsigned long long)s.uncertain_records, (unsigned long long)s.epochs,
        (unsigned long long)s.seq_resets, (unsigned long long)s.dup_dropped, (unsigned long long)s.late_records,
        (unsigned long long)s.bad_batches,
        (unsigned long long)reconnects, (unsigned long long)z.disconnects, (unsigned long long)s.next_seq,
        (unsigned long long)s.epoch, (long long)(s.lag_ns / 1000), (unsigned long long)(s.blocked_ns / 1000000));
  } else {
    std::printf("%s %s: records %llu bytes %llu batches %llu gaps %llu (%llu records, %llu uncertain) "
                "reconnects %llu seq %llu lag %lld us%s\n",
                send_ ? "send" : "recv", g_ring.c_str(), (unsigned long long)s.records,
                (unsigned long long)s.bytes, (unsigned long long)s.batches, (unsigned long long)s.gaps,
                (unsigned long long)s.gap_records, (unsigned long long)s.uncertain_records,
                (unsigned long long)reconnects, (unsigned long long)s.next_seq, (long long)(s.lag_ns / 1000),
                final ? " (final)" : "");
  }
  std::fflush(stdout);
}

void StatsPrinter::finish(const Stats& s, Zmq& z) {
  poll_events(z);
  if (enabled()) print(s, z, true);
}

}  // namespace shmring::bridge_tool

#include "mpmc_common.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "endpoint.hpp"  // internal: endpoints, segments, init_mpmc_slots
#include "record.hpp"    // tests/liveness: the record oracle
#include "shmring/shmring.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

extern char** environ;

namespace shmring::mpmc_test {

std::int64_t now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

const char* to_string(Face f) noexcept {
  switch (f) {
    case Face::c: return "c";
    case Face::cpp: return "cpp";
    case Face::ep: return "ep";
  }
  return "?";
}

std::optional<Face> parse_face(std::string_view s) noexcept {
  if (s == "c") return Face::c;
  if (s == "cpp") return Face::cpp;
  if (s == "ep") return Face::ep;
  return std::nullopt;
}

namespace {

const char* rc_name(int rc) { return shmring_strerror(rc); }

std::string rc_text(int rc) { return std::to_string(rc) + " (" + rc_name(rc) + ")"; }

class CProducer final : public ProducerPort {
 public:
  explicit CProducer(shmring_t* r) : r_(r) {}
  ~CProducer() override { shmring_close(r_); }
  int reserve(std::size_t n, std::byte** p, std::int64_t t) override {
    void* v = nullptr;
    const int rc = shmring_reserve(r_, n, &v, t);
    *p = static_cast<std::byte*>(v);
    return rc;
  }
  int commit(std::size_t n) override { return shmring_commit(r_, n); }
  std::size_t max_record() const override { return shmring_max_record(r_); }

 private:
  shmring_t* r_;
};

class CConsumer final : public ConsumerPort {
 public:
  explicit CConsumer(shmring_t* r) : r_(r) {}
  ~CConsumer() override { shmring_close(r_); }
  int peek(const std::byte** p, std::size_t* n, std::int64_t t) override {
    const void* v = nullptr;
    const int rc = shmring_peek(r_, &v, n, t);
    *p = static_cast<const std::byte*>(v);
    return rc;
  }
  int release() override { return shmring_release(r_); }
  std::size_t max_record() const override { return shmring_max_record(r_); }

 private:
  shmring_t* r_;
};

class CppProducer final : public ProducerPort {
 public:
  explicit CppProducer(Producer p) : p_(std::move(p)) {}
  int reserve(std::size_t n, std::byte** p, std::int64_t t) override {
    auto r = p_.reserve(n, Timeout::from_ns(t));
    if (!r) return static_cast<int>(r.error());
    *p = r->data();
    return 0;
  }
  int commit(std::size_t n) override { return static_cast<int>(p_.commit(n)); }
  std::size_t max_record() const override { return p_.max_record(); }

 private:
  Producer p_;
};

class CppConsumer final : public ConsumerPort {
 public:
  explicit CppConsumer(Consumer c) : c_(std::move(c)) {}
  int peek(const std::byte** p, std::size_t* n, std::int64_t t) override {
    auto r = c_.peek(Timeout::from_ns(t));
    if (!r) return static_cast<int>(r.error());
    *p = r->data();
    *n = r->size();
    return 0;
  }
  int release() override { return static_cast<int>(c_.release()); }
  std::size_t max_record() const override { return c_.max_record(); }

 private:
  Consumer c_;
};

class EpProducer final : public ProducerPort {
 public:
  explicit EpProducer(std::unique_ptr<detail::Endpoint> e) : e_(std::move(e)) {}
  int reserve(std::size_t n, std::byte** p, std::int64_t t) override { return static_cast<int>(e_->reserve(n, p, t)); }
  int commit(std::size_t n) override { return static_cast<int>(e_->commit(n, true)); }
  std::size_t max_record() const override { return e_->max_record(); }

 private:
  std::unique_ptr<detail::Endpoint> e_;
};

class EpConsumer final : public ConsumerPort {
 public:
  explicit EpConsumer(std::unique_ptr<detail::Endpoint> e) : e_(std::move(e)) {
    const auto& seg = e_->segment();
    data_ = seg.data;
    stride_ = detail::mpmc_stride(seg.geo.slot_size);
    shift_ = static_cast<unsigned>(__builtin_ctzll(seg.geo.slot_count));
  }
  int peek(const std::byte** p, std::size_t* n, std::int64_t t) override { return static_cast<int>(e_->peek(p, n, t)); }
  int release() override { return static_cast<int>(e_->release(true)); }
  std::size_t max_record() const override { return e_->max_record(); }
  // The record's slot is READING(lap, us) until we release it: its lap and
  // index give the ticket (modulo 2^40 laps).
  std::uint64_t ticket_of(const std::byte* payload) const override {
    const std::byte* slot = payload - sizeof(detail::SlotHeader);
    const auto index = static_cast<std::uint64_t>(slot - data_) / stride_;
    auto* hdr = reinterpret_cast<detail::SlotHeader*>(const_cast<std::byte*>(slot));
    const std::uint64_t w = detail::atom(hdr->word).load(std::memory_order_acquire);
    return (detail::word_lap(w) << shift_) | index;
  }

 private:
  std::unique_ptr<detail::Endpoint> e_;
  const std::byte* data_ = nullptr;
  std::uint64_t stride_ = 0;
  unsigned shift_ = 0;
};

}  // namespace

std::unique_ptr<ProducerPort> open_producer(Face f, const std::string& ring, int* rc) {
  switch (f) {
    case Face::c: {
      shmring_t* r = nullptr;
      *rc = shmring_open(ring.c_str(), SHMRING_PRODUCER, &r);
      return *rc == 0 ? std::make_unique<CProducer>(r) : nullptr;
    }
    case Face::cpp: {
      auto p = Producer::open(ring);
      *rc = static_cast<int>(p.error());
      return p ? std::make_unique<CppProducer>(std::move(*p)) : nullptr;
    }
    case Face::ep: {
      std::unique_ptr<detail::Endpoint> e;
      *rc = static_cast<int>(detail::open_endpoint(ring, Role::producer, {}, &e));
      return *rc == 0 ? std::make_unique<EpProducer>(std::move(e)) : nullptr;
    }
  }
  *rc = SHMRING_EINVAL;
  return nullptr;
}

std::unique_ptr<ConsumerPort> open_consumer(Face f, const std::string& ring, int* rc) {
  switch (f) {
    case Face::c: {
      shmring_t* r = nullptr;
      *rc = shmring_open(ring.c_str(), SHMRING_CONSUMER, &r);
      return *rc == 0 ? std::make_unique<CConsumer>(r) : nullptr;
    }
    case Face::cpp: {
      auto c = Consumer::open(ring);
      *rc = static_cast<int>(c.error());
      return c ? std::make_unique<CppConsumer>(std::move(*c)) : nullptr;
    }
    case Face::ep: {
      std::unique_ptr<detail::Endpoint> e;
      *rc = static_cast<int>(detail::open_endpoint(ring, Role::consumer, {}, &e));
      return *rc == 0 ? std::make_unique<EpConsumer>(std::move(e)) : nullptr;
    }
  }
  *rc = SHMRING_EINVAL;
  return nullptr;
}

namespace {

void write_all(int fd, const void* p, std::size_t n) {
  const auto* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    c += w;
    n -= static_cast<std::size_t>(w);
  }
}

void trace(int fd, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void trace(int fd, const char* fmt, ...) {
  if (fd < 0) return;
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n <= 0) return;
  const std::size_t len = std::min<std::size_t>(static_cast<std::size_t>(n), sizeof buf - 2);
  buf[len] = '\n';
  write_all(fd, buf, len + 1);
}

void busy_for(std::int64_t ns) {
  if (ns <= 0) return;
  const std::int64_t until = now_ns() + ns;
  while (now_ns() < until) {
  }
}

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

}  // namespace

// ---- Producer and consumer bodies ------------------------------------------------------

ProduceResult produce(const ProduceOpts& o) {
  ProduceResult r;
  int rc = 0;
  auto port = open_producer(o.face, o.ring, &rc);
  if (o.on_open) o.on_open(rc);
  if (!port) {
    r.error = "producer open: " + rc_text(rc) + " " + shmring_last_error();
    r.last_rc = rc;
    return r;
  }
  if (o.gate_fd >= 0) {
    char c;
    while (::read(o.gate_fd, &c, 1) < 0 && errno == EINTR) {
    }
  }
  const auto max_len = o.max_len != 0 ? o.max_len : static_cast<std::uint32_t>(port->max_record());
  for (std::uint64_t i = 0; o.count == 0 || i < o.count; ++i) {
    if (o.stop_fd >= 0 && i % 16 == 0 && readable(o.stop_fd)) break;
    const std::uint64_t seq = o.start + i;
    const std::uint32_t len = live::record_len(o.id, seq, o.min_len, max_len);
    trace(o.trace_fd, "claiming %" PRIu64 " %" PRId64, seq, now_ns());
    std::byte* p = nullptr;
    rc = port->reserve(len, &p, o.timeout_ns);
    if (rc != 0) {
      r.error = "reserve of seq " + std::to_string(seq) + ": " + rc_text(rc);
      break;
    }
    live::fill_record(o.id, seq, p, len);
    busy_for(o.hold_ns);
    trace(o.trace_fd, "committing %" PRIu64 " %" PRId64, seq, now_ns());
    rc = port->commit(len);
    if (rc == SHMRING_ERESET && o.reset_fd >= 0) {
      trace(o.reset_fd, "reset %" PRIu64, seq);
      ++r.resets;
      rc = 0;
      continue;
    }
    if (rc != 0) {
      r.error = "commit of seq " + std::to_string(seq) + ": " + rc_text(rc);
      break;
    }
    ++r.sent;
  }
  r.last_rc = rc;
  return r;
}

ConsumeResult consume(const ConsumeOpts& o) {
  ConsumeResult r;
  int rc = 0;
  std::unique_ptr<ConsumerPort> owned;
  ConsumerPort* port = o.port;
  if (port == nullptr) {
    owned = open_consumer(o.face, o.ring, &rc);
    if (o.on_open) o.on_open(rc);
    if (!owned) {
      r.error = "consumer open: " + rc_text(rc) + " " + shmring_last_error();
      r.end_rc = rc;
      return r;
    }
    port = owned.get();
  }
  const auto max_len = o.max_len != 0 ? o.max_len : static_cast<std::uint32_t>(port->max_record());
  int log_fd = -1;
  std::vector<LogEntry> pending;
  if (!o.log_path.empty()) {
    log_fd = ::open(o.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log_fd < 0) {
      r.error = "cannot create " + o.log_path;
      return r;
    }
  }
  auto flush_log = [&] {
    if (log_fd >= 0 && !pending.empty()) write_all(log_fd, pending.data(), pending.size() * sizeof(LogEntry));
    pending.clear();
  };
  Bitmaps bits;
  std::map<std::uint32_t, std::uint64_t> next;  // per producer: lowest acceptable next seq
  for (;;) {
    if (o.count != 0 && r.got >= o.count) break;
    const std::byte* p = nullptr;
    std::size_t n = 0;
    rc = port->peek(&p, &n, o.timeout_ns);
    const std::int64_t ts = now_ns();
    if (rc != 0) break;
    live::RecordView v;
    std::string why;
    if (!live::check_record(p, n, o.min_len, max_len, &v, &why)) {
      r.error = "bad record after " + std::to_string(r.got) + ": " + why;
      break;
    }
    auto it = next.find(v.id);
    if (it != next.end() && v.seq < it->second) {
      r.error = "producer " + std::to_string(v.id) + ": seq " + std::to_string(v.seq) + " after seq " +
                std::to_string(it->second - 1) + " (order broken or duplicate)";
      break;
    }
    next[v.id] = v.seq + 1;
    const LogEntry e{v.id, static_cast<std::uint32_t>(n), v.seq, port->ticket_of(p), ts};
    trace(o.trace_fd, "peeked %u %" PRIu64 " %" PRIu64, v.id, v.seq, e.ticket);
    auto log = [&] {
      if (log_fd < 0) return;
      if (o.sync_log) {
        write_all(log_fd, &e, sizeof e);
      } else {
        pending.push_back(e);
        if (pending.size() >= 4096) flush_log();
      }
    };
    if (o.log_before_release) log();
    busy_for(o.hold_ns);
    rc = port->release();
    if (rc == SHMRING_ERESET && o.revoke_fd >= 0) {
      trace(o.revoke_fd, "revoked %u %" PRIu64, v.id, v.seq);
      ++r.revoked;
      rc = 0;
      continue;
    }
    if (rc != 0) {
      r.error = "release: " + rc_text(rc);
      break;
    }
    ++r.got;
    if (!o.bitmap_path.empty()) set_bit(bits[v.id], v.seq);
    if (!o.log_before_release) log();
  }
  r.end_rc = rc;
  flush_log();
  if (log_fd >= 0) ::close(log_fd);
  if (!o.bitmap_path.empty() && !write_bitmaps(o.bitmap_path, bits) && r.error.empty())
    r.error = "cannot write " + o.bitmap_path;
  const bool normal_end = rc == 0 ? o.count != 0 : rc == SHMRING_EPEERGONE;
  if (r.error.empty() && !normal_end)
    r.error = "consumer stopped after " + std::to_string(r.got) + " records with " + rc_text(rc);
  return r;
}

// ---- Reports -------------------------------------------------------------------------

std::vector<LogEntry> read_log(const std::string& path) {
  std::vector<LogEntry> out;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return out;
  LogEntry e;
  while (std::fread(&e, sizeof e, 1, f) == 1) out.push_back(e);
  std::fclose(f);
  return out;
}

bool write_bitmaps(const std::string& path, const Bitmaps& b) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  bool ok = true;
  for (const auto& [id, words] : b) {
    const std::uint64_t hdr[2] = {id, words.size()};
    ok = ok && std::fwrite(hdr, sizeof hdr, 1, f) == 1;
    ok = ok && (words.empty() || std::fwrite(words.data(), 8, words.size(), f) == words.size());
  }
  return std::fclose(f) == 0 && ok;
}

std::optional<Bitmaps> read_bitmaps(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return std::nullopt;
  Bitmaps b;
  std::uint64_t hdr[2];
  bool ok = true;
  while (std::fread(hdr, sizeof hdr, 1, f) == 1) {
    auto& words = b[static_cast<std::uint32_t>(hdr[0])];
    words.resize(hdr[1]);
    if (hdr[1] != 0 && std::fread(words.data(), 8, hdr[1], f) != hdr[1]) {
      ok = false;
      break;
    }
  }
  std::fclose(f);
  if (!ok) return std::nullopt;
  return b;
}

std::string check_exactly_once(const std::vector<Bitmaps>& per_consumer,
                               const std::map<std::uint32_t, std::uint64_t>& expected) {
  std::ostringstream problems;
  int reported = 0;
  auto problem = [&](const std::string& s) {
    if (reported++ < 8) problems << s << "; ";
  };
  for (std::size_t c = 0; c < per_consumer.size(); ++c) {
    for (const auto& [id, words] : per_consumer[c]) {
      if (expected.count(id) == 0) problem("consumer " + std::to_string(c) + " got records of unknown producer " + std::to_string(id));
    }
  }
  for (const auto& [id, n] : expected) {
    std::uint64_t lost = 0, dup = 0, extra = 0;
    std::uint64_t first_lost = 0, first_dup = 0;
    std::uint64_t words = (n + 63) / 64;
    for (const auto& b : per_consumer) {
      auto it = b.find(id);
      if (it != b.end()) words = std::max<std::uint64_t>(words, it->second.size());
    }
    for (std::uint64_t w = 0; w < words; ++w) {
      std::uint64_t seen = 0, twice = 0;
      for (const auto& b : per_consumer) {
        auto it = b.find(id);
        if (it == b.end() || w >= it->second.size()) continue;
        const std::uint64_t x = it->second[w];
        twice |= seen & x;
        seen |= x;
      }
      const std::uint64_t base = w * 64;
      std::uint64_t valid = ~std::uint64_t{0};
      if (base >= n) valid = 0;
      else if (n - base < 64) valid = (std::uint64_t{1} << (n - base)) - 1;
      const std::uint64_t missing = ~seen & valid;
      if (missing != 0 && lost == 0) first_lost = base + static_cast<std::uint64_t>(__builtin_ctzll(missing));
      if (twice != 0 && dup == 0) first_dup = base + static_cast<std::uint64_t>(__builtin_ctzll(twice));
      lost += static_cast<std::uint64_t>(__builtin_popcountll(missing));
      dup += static_cast<std::uint64_t>(__builtin_popcountll(twice));
      extra += static_cast<std::uint64_t>(__builtin_popcountll(seen & ~valid));
    }
    if (lost != 0) problem("producer " + std::to_string(id) + ": " + std::to_string(lost) + " of " + std::to_string(n) + " records never delivered (first seq " + std::to_string(first_lost) + ")");
    if (dup != 0) problem("producer " + std::to_string(id) + ": " + std::to_string(dup) + " records delivered to two consumers (first seq " + std::to_string(first_dup) + ")");
    if (extra != 0) problem("producer " + std::to_string(id) + ": " + std::to_string(extra) + " records beyond the " + std::to_string(n) + " sent");
  }
  return problems.str();
}

std::string numbered(std::string_view stem, long i, std::string_view ext) {
  return std::string(stem).append(std::to_string(i)).append(ext);
}

// ---- TempDir --------------------------------------------------------------------------

TempDir::TempDir() {
  char tmpl[] = "/tmp/shmring_mpmc_XXXXXX";
  if (::mkdtemp(tmpl) != nullptr) dir_ = tmpl;
}

TempDir::~TempDir() {
  if (dir_.empty()) return;
  if (DIR* d = ::opendir(dir_.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
        ::unlink((dir_ + "/" + e->d_name).c_str());
    }
    ::closedir(d);
  }
  ::rmdir(dir_.c_str());
}

// ---- Proc -------------------------------------------------------------------------------

Proc::Proc(const std::string& program, const std::vector<std::string>& args, const std::string& crash_at) {
  int out[2], in[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return;
  if (::pipe2(in, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return;
  }
  // Everything execve needs is built before fork: the child calls only
  // async-signal-safe functions.
  std::vector<std::string> argv_s{program};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::strncmp(*e, "SHMRING_CRASH_AT=", 17) != 0) env_s.emplace_back(*e);
  if (!crash_at.empty()) env_s.push_back("SHMRING_CRASH_AT=" + crash_at);
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(98);
    const int o = ::fcntl(out[1], F_DUPFD_CLOEXEC, 10);
    const int i = ::fcntl(in[0], F_DUPFD_CLOEXEC, 10);
    if (o < 0 || i < 0 || ::dup2(o, 3) < 0 || ::dup2(i, 0) < 0) ::_exit(97);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(in[0]);
  if (pid < 0) {
    ::close(out[0]);
    ::close(in[1]);
    return;
  }
  pid_ = pid;
  out_fd_ = out[0];
  in_fd_ = in[1];
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

Proc::~Proc() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGCONT);  // a stopped child still dies of SIGKILL; harmless
    ::kill(pid_, SIGKILL);
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  }
  for (int fd : {out_fd_, in_fd_, pidfd_})
    if (fd >= 0) ::close(fd);
}

std::optional<std::string> Proc::line(std::int64_t deadline_ns) {
  for (;;) {
    const auto nl = buf_.find('\n');
    if (nl != std::string::npos) {
      std::string l = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      history_.push_back(l);
      return l;
    }
    if (eof_ || out_fd_ < 0) return std::nullopt;
    const std::int64_t left = deadline_ns - now_ns();
    if (left <= 0) return std::nullopt;
    pollfd p{out_fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left / 1'000'000 + 1, 60'000)));
    if (r <= 0) continue;
    char tmp[8192];
    const ssize_t n = ::read(out_fd_, tmp, sizeof tmp);
    if (n > 0) buf_.append(tmp, static_cast<std::size_t>(n));
    else if (n == 0 || errno != EINTR) eof_ = true;
  }
}

std::optional<std::string> Proc::expect(std::string_view word, std::chrono::milliseconds timeout) {
  const std::int64_t deadline = now_ns() + std::chrono::nanoseconds(timeout).count();
  for (;;) {
    auto l = line(deadline);
    if (!l) return std::nullopt;
    if (l->compare(0, word.size(), word) == 0 && (l->size() == word.size() || (*l)[word.size()] == ' ')) return l;
  }
}

std::string Proc::history_text() const {
  std::string s;
  const std::size_t from = history_.size() > 12 ? history_.size() - 12 : 0;
  if (from > 0) s = "... ";
  for (std::size_t i = from; i < history_.size(); ++i) s += "[" + history_[i] + "] ";
  return s;
}

void Proc::drain(std::chrono::milliseconds timeout) {
  const std::int64_t deadline = now_ns() + std::chrono::nanoseconds(timeout).count();
  while (line(deadline)) {
  }
}

bool Proc::send_byte(char c) {
  if (in_fd_ < 0) return false;
  return ::write(in_fd_, &c, 1) == 1;
}

void Proc::close_stdin() {
  if (in_fd_ >= 0) ::close(in_fd_);
  in_fd_ = -1;
}

void Proc::signal(int sig) {
  if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

bool Proc::ended(std::chrono::milliseconds timeout) {
  if (pid_ <= 0 || reaped_) return true;
  if (pidfd_ < 0) return false;
  const std::int64_t deadline = now_ns() + std::chrono::nanoseconds(timeout).count();
  for (;;) {
    pollfd p{pidfd_, POLLIN, 0};
    const std::int64_t left = deadline - now_ns();
    const int r = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, left / 1'000'000 + 1)));
    if (r > 0) {
      if (ended_ns_ == 0) ended_ns_ = now_ns();
      return true;
    }
    if (now_ns() >= deadline) return false;
  }
}

Proc::Exit Proc::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0 || reaped_) return exit_;
  if (!ended(timeout)) {
    exit_.timed_out = true;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
  }
  int st = 0;
  while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  if (WIFEXITED(st)) {
    exit_.exited = true;
    exit_.code = WEXITSTATUS(st);
  } else if (WIFSIGNALED(st)) {
    exit_.sig = WTERMSIG(st);
  }
  return exit_;
}

std::string Proc::Exit::describe() const {
  std::ostringstream os;
  if (timed_out) os << "killed at the deadline; ";
  if (exited) os << "exit " << code;
  else if (sig != 0) os << "signal " << sig << " (" << ::strsignal(sig) << ")";
  else os << "not reaped";
  return os.str();
}

std::string word_at(const std::string& line, std::size_t i) {
  std::istringstream is(line);
  std::string w;
  for (std::size_t k = 0; is >> w; ++k)
    if (k == i) return w;
  return "";
}

std::int64_t word_int(const std::string& line, std::size_t i) {
  const std::string w = word_at(line, i);
  return w.empty() ? 0 : std::strtoll(w.c_str(), nullptr, 10);
}

// ---- RingView ---------------------------------------------------------------------------

RingView::RingView(const std::string& ring) {
  const int fd = ::shm_open(ring.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size >= static_cast<off_t>(detail::kHeaderSize)) {
    void* p = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) {
      base_ = p;
      size_ = static_cast<std::size_t>(st.st_size);
    }
  }
  ::close(fd);
}

RingView::~RingView() {
  if (base_ != nullptr) ::munmap(base_, size_);
}

std::uint64_t RingView::tail() const noexcept { return detail::atom(header()->prod.tail).load(std::memory_order_acquire); }
std::uint64_t RingView::head() const noexcept { return detail::atom(header()->cons.head).load(std::memory_order_acquire); }
std::uint64_t RingView::abandoned_claims() const noexcept {
  return detail::atom(header()->roles.abandoned_claims).load(std::memory_order_acquire);
}
std::uint64_t RingView::dropped_reads() const noexcept {
  return detail::atom(header()->roles.dropped_reads).load(std::memory_order_acquire);
}
std::uint64_t RingView::fenced_claims() const noexcept {
  return detail::atom(header()->roles.fenced_claims).load(std::memory_order_acquire);
}
std::uint64_t RingView::fenced_reads() const noexcept {
  return detail::atom(header()->roles.fenced_reads).load(std::memory_order_acquire);
}

std::uint64_t RingView::slot_word(std::uint64_t index) const noexcept {
  auto* s = reinterpret_cast<detail::SlotHeader*>(static_cast<std::byte*>(base_) + detail::kHeaderSize +
                                                  index * detail::mpmc_stride(slot_size()));
  return detail::atom(s->word).load(std::memory_order_acquire);
}

bool RingView::start_tickets_at(std::uint64_t t0) const noexcept {
  if (base_ == nullptr) return false;
  // Geometry from the library's own validation of the header.
  detail::Geometry g;
  std::string why;
  if (detail::validate_header(header()->id, size_, &g, &why) != Errc::ok || g.kind != Kind::mpmc) return false;
  detail::init_mpmc_slots(static_cast<std::byte*>(base_) + g.data_offset, g, t0);
  detail::atom(header()->prod.tail).store(t0, std::memory_order_release);
  detail::atom(header()->cons.head).store(t0, std::memory_order_release);
  return true;
}

}  // namespace shmring::mpmc_test

/*
 * External-consumer check: a C program written only against the installed
 * <shmring/shmring.h>, built outside the shmring tree (find_package and
 * pkg-config, see CMakeLists.txt and tools/test-all).
 *
 * It creates an spsc ring, forks, and moves COUNT (default 3,000,000)
 * random-length records from the parent (producer: shmring_reserve, write in
 * place, shmring_commit) to the child (consumer: shmring_peek, check in
 * place, shmring_release). Every record carries its sequence number, its
 * length and a checksum of its payload; the child checks that nothing is
 * lost, duplicated, reordered or torn, and that nothing follows the last
 * record. Lengths and payloads derive from the sequence number, so the
 * child knows what each record must be without trusting the record.
 *
 * Exit status 0 only when every record arrived intact, in order, once.
 * The ring is unlinked on every path: as soon as both sides are attached,
 * and again (harmlessly) on error, on SIGINT/SIGTERM/SIGHUP and on the
 * watchdog's SIGALRM.
 *
 * usage: consumer [COUNT [CAPACITY]]
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmring/shmring.h>

#define TIMEOUT_NS ((int64_t)10 * 1000 * 1000 * 1000) /* a peer this slow is broken */
#define WATCHDOG_S 300u
#define HEADER_BYTES 24u /* seq, len, checksum: 3 x uint64 */

static char g_name[64];
static volatile sig_atomic_t g_armed = 0; /* the parent still owns the name */

static void unlink_ring(void) {
  if (g_armed) {
    shmring_unlink(g_name);
    g_armed = 0;
  }
}

static void on_signal(int sig) {
  /* shmring_unlink is shm_unlink(3) underneath; good enough on the way out. */
  if (g_armed) shmring_unlink(g_name);
  signal(sig, SIG_DFL);
  raise(sig);
}

static int fail(const char *who, const char *what, int rc) {
  fprintf(stderr, "consumer test (%s): %s: %s (%d)", who, what, shmring_strerror(rc), rc);
  if (rc != SHMRING_OK && shmring_last_error()[0] != '\0') fprintf(stderr, " [%s]", shmring_last_error());
  fputc('\n', stderr);
  return 1;
}

/* ---- What record `seq` must be ------------------------------------------- */

static uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* Mostly small records, some medium, a few up to the ring's largest. */
static size_t record_length(uint64_t seq, size_t max_len) {
  const uint64_t r = splitmix64(seq ^ 0x4c454e47ull);
  const uint64_t bucket = r % 1000, v = r >> 10;
  size_t lo, hi;
  if (bucket < 900) {
    lo = HEADER_BYTES; hi = 512;
  } else if (bucket < 995) {
    lo = 513; hi = 8192;
  } else {
    lo = 8193; hi = max_len;
  }
  if (hi > max_len) hi = max_len;
  if (lo > hi) lo = hi;
  return lo + (size_t)(v % (hi - lo + 1));
}

/* Payload bytes: an xorshift stream seeded from seq. */
static void fill_payload(unsigned char *p, size_t n, uint64_t seq) {
  uint64_t s = splitmix64(seq) | 1u;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    memcpy(p + i, &s, 8);
  }
  if (i < n) {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    memcpy(p + i, &s, n - i);
  }
}

static uint64_t checksum(const unsigned char *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull ^ n;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

/* ---- The two sides ---------------------------------------------------------- */

static int run_consumer(uint64_t count, int ready_fd) {
  shmring_t *r = NULL;
  int rc = shmring_open(g_name, SHMRING_CONSUMER, &r);
  if (rc != SHMRING_OK) return fail("consumer", "shmring_open", rc);
  if (write(ready_fd, "R", 1) != 1) {
    shmring_close(r);
    return 1;
  }
  close(ready_fd);
  const size_t max_len = shmring_max_record(r);
  uint64_t bytes = 0;
  for (uint64_t seq = 0; seq < count; ++seq) {
    const void *buf = NULL;
    size_t n = 0;
    rc = shmring_peek(r, &buf, &n, TIMEOUT_NS);
    if (rc != SHMRING_OK) {
      fprintf(stderr, "consumer test: record %llu of %llu never arrived\n", (unsigned long long)seq,
              (unsigned long long)count);
      fail("consumer", "shmring_peek", rc);
      shmring_close(r);
      return 1;
    }
    const unsigned char *p = buf;
    uint64_t h_seq = 0, h_len = 0, h_sum = 0;
    if (n >= HEADER_BYTES) {
      memcpy(&h_seq, p, 8);
      memcpy(&h_len, p + 8, 8);
      memcpy(&h_sum, p + 16, 8);
    }
    const size_t want = record_length(seq, max_len);
    const char *bad = NULL;
    if (n < HEADER_BYTES) bad = "shorter than its header";
    else if (h_seq < seq) bad = "duplicate or reordered record";
    else if (h_seq > seq) bad = "records lost";
    else if (n != want || h_len != n) bad = "wrong length";
    else if (checksum(p + HEADER_BYTES, n - HEADER_BYTES) != h_sum) bad = "torn or corrupt payload";
    if (bad != NULL) {
      fprintf(stderr,
              "consumer test: %s: expected record %llu (%zu bytes), got seq %llu, %zu bytes, header length %llu\n",
              bad, (unsigned long long)seq, want, (unsigned long long)h_seq, n, (unsigned long long)h_len);
      shmring_close(r);
      return 1;
    }
    bytes += n;
    rc = shmring_release(r);
    if (rc != SHMRING_OK) {
      fail("consumer", "shmring_release", rc);
      shmring_close(r);
      return 1;
    }
  }
  /* Nothing may follow the last record: the producer closes after it, so
   * the ring must now report the producer gone (or, at worst, stay empty). */
  const void *buf = NULL;
  size_t n = 0;
  rc = shmring_peek(r, &buf, &n, (int64_t)2 * 1000 * 1000 * 1000);
  shmring_close(r);
  if (rc == SHMRING_OK) {
    fprintf(stderr, "consumer test: an extra record of %zu bytes followed the last one\n", n);
    return 1;
  }
  if (rc != SHMRING_EPEERGONE && rc != SHMRING_ETIMEDOUT) return fail("consumer", "final shmring_peek", rc);
  printf("consumer: %llu records, %llu bytes, all in order and intact; then %s\n", (unsigned long long)count,
         (unsigned long long)bytes, rc == SHMRING_EPEERGONE ? "peer gone (producer closed)" : "timed out waiting");
  return 0;
}

static int run_producer(shmring_t *r, uint64_t count) {
  int rc;
  const size_t max_len = shmring_max_record(r);
  void *buf = NULL;

  /* A record larger than the largest is refused and writes nothing. */
  rc = shmring_reserve(r, max_len + 1, &buf, 0);
  if (rc != SHMRING_ETOOBIG || buf != NULL) {
    fprintf(stderr, "consumer test: reserve of max_record+1 gave %d, expected SHMRING_ETOOBIG\n", rc);
    return 1;
  }

  for (uint64_t seq = 0; seq < count; ++seq) {
    const size_t n = record_length(seq, max_len);
    /* Sometimes reserve more than is committed: commit(n) may be smaller. */
    size_t reserve = n;
    if ((seq % 7) == 3) reserve = n + (size_t)(seq % 61) <= max_len ? n + (size_t)(seq % 61) : max_len;
    rc = shmring_reserve(r, reserve, &buf, TIMEOUT_NS);
    if (rc != SHMRING_OK) {
      fprintf(stderr, "consumer test: reserve of record %llu failed\n", (unsigned long long)seq);
      fail("producer", "shmring_reserve", rc);
      return 1;
    }
    unsigned char *p = buf;
    const uint64_t len = n;
    fill_payload(p + HEADER_BYTES, n - HEADER_BYTES, seq);
    const uint64_t sum = checksum(p + HEADER_BYTES, n - HEADER_BYTES);
    memcpy(p, &seq, 8);
    memcpy(p + 8, &len, 8);
    memcpy(p + 16, &sum, 8);
    rc = shmring_commit(r, n);
    if (rc != SHMRING_OK) {
      fail("producer", "shmring_commit", rc);
      return 1;
    }
  }
  return 0;
}

static uint64_t parse_u64(const char *s, const char *what) {
  char *end = NULL;
  errno = 0;
  const unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-') {
    fprintf(stderr, "usage: consumer [COUNT [CAPACITY]]: bad %s '%s'\n", what, s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  uint64_t count = 3000000;
  size_t capacity = (size_t)1 << 18; /* 256 KiB: records up to 128 KiB, constant wrap-around */
  if (argc > 3) {
    fprintf(stderr, "usage: consumer [COUNT [CAPACITY]]\n");
    return 2;
  }
  if (argc > 1) count = parse_u64(argv[1], "count");
  if (argc > 2) capacity = (size_t)parse_u64(argv[2], "capacity");

  snprintf(g_name, sizeof g_name, "/shmring-consumer-%ld", (long)getpid());
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGALRM};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; ++i) sigaction(sigs[i], &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  shmring_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.kind = SHMRING_SPSC;
  cfg.wait = SHMRING_WAIT_FUTEX;
  cfg.capacity = capacity;
  cfg.mode = 0600;
  int rc = shmring_create(g_name, &cfg);
  if (rc != SHMRING_OK) return fail("parent", "shmring_create", rc);
  g_armed = 1;
  alarm(WATCHDOG_S); /* inherited by nobody: fork clears pending alarms */

  /* The producer attaches before the fork (the child never uses this
   * handle), the consumer right after it; then the name goes at once, and
   * the ring lives only in the two mappings: nothing can be left behind. */
  shmring_t *prod = NULL;
  rc = shmring_open(g_name, SHMRING_PRODUCER, &prod);
  if (rc != SHMRING_OK) {
    fail("producer", "shmring_open", rc);
    unlink_ring();
    return 1;
  }
  int ready[2];
  if (pipe(ready) != 0) {
    perror("consumer test: pipe");
    unlink_ring();
    return 1;
  }
  fflush(stdout);
  const pid_t child = fork();
  if (child < 0) {
    perror("consumer test: fork");
    unlink_ring();
    return 1;
  }
  if (child == 0) {
    g_armed = 0; /* the parent owns the name */
    close(ready[0]);
    alarm(WATCHDOG_S);
    const int status = run_consumer(count, ready[1]);
    fflush(stdout);
    _exit(status);
  }
  close(ready[1]);
  char c = 0;
  const ssize_t got = read(ready[0], &c, 1);
  close(ready[0]);
  unlink_ring();
  int result = 1;
  if (got != 1) {
    fprintf(stderr, "consumer test: the consumer process failed to attach\n");
  } else {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    result = run_producer(prod, count);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (result == 0) {
      const double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
      printf("producer: %llu records committed in %.2f s\n", (unsigned long long)count, s);
    }
  }
  shmring_close(prod); /* the consumer sees the producer gone after the last record */
  int status = 0;
  if (result != 0) kill(child, SIGKILL);
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    if (WIFSIGNALED(status) && result == 0)
      fprintf(stderr, "consumer test: the consumer process died of signal %d\n", WTERMSIG(status));
    result = 1;
  }
  printf("%s\n", result == 0 ? "PASS" : "FAIL");
  return result;
}

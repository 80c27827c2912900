/* Compiled as C: proves shmring.h is a C header and the C entry points link
 * from C. Returns 0 or the line of the first failed check. */
#include <stdint.h>
#include <string.h>

#include "shmring/shmring.h"

#define CHECK(cond) \
  do {              \
    if (!(cond)) {  \
      rc = __LINE__; \
      goto out;     \
    }               \
  } while (0)

int shmring_test_c_roundtrip(const char *name) {
  int rc = 0;
  shmring_t *p = NULL;
  shmring_t *c = NULL;
  shmring_config cfg;
  void *wbuf = NULL;
  const void *rbuf = NULL;
  size_t n = 0;
  char out[64];
  memset(&cfg, 0, sizeof cfg);
  cfg.kind = SHMRING_SPSC;
  cfg.wait = SHMRING_WAIT_FUTEX;
  cfg.capacity = 4096;
  CHECK(shmring_create(name, &cfg) == SHMRING_OK);
  CHECK(shmring_open(name, SHMRING_PRODUCER, &p) == SHMRING_OK && p != NULL);
  CHECK(shmring_open(name, SHMRING_CONSUMER, &c) == SHMRING_OK && c != NULL);
  CHECK(shmring_max_record(p) == 2040);
  CHECK(shmring_reserve(p, 5, &wbuf, 0) == SHMRING_OK && wbuf != NULL);
  memcpy(wbuf, "hello", 5);
  CHECK(shmring_commit(p, 5) == SHMRING_OK);
  CHECK(shmring_send(p, "world!", 6, -1) == SHMRING_OK);
  CHECK(shmring_peek(c, &rbuf, &n, 1000000) == SHMRING_OK && n == 5 && memcmp(rbuf, "hello", 5) == 0);
  CHECK(shmring_release(c) == SHMRING_OK);
  CHECK(shmring_recv(c, out, sizeof out, &n, 0) == SHMRING_OK && n == 6 && memcmp(out, "world!", 6) == 0);
  CHECK(shmring_peek(c, &rbuf, &n, 0) == SHMRING_EWOULDBLOCK);
  CHECK(shmring_strerror(SHMRING_ECORRUPT) != NULL);
out:
  shmring_close(p);
  shmring_close(c);
  shmring_unlink(name);
  return rc;
}

/* Out-of-range enum values, as a C caller (or Rust/Go/Python through the C
 * ABI) may pass them. Building them in C is well defined; in C++ it would
 * not be, so the C++ tests call these. */
int shmring_test_create_with_raw_enums(const char *name, int kind, int wait) {
  shmring_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.kind = (shmring_kind)kind;
  cfg.wait = (shmring_wait)wait;
  cfg.capacity = 4096;
  return shmring_create(name, &cfg);
}

int shmring_test_open_with_raw_role(const char *name, int role, shmring_t **out) {
  return shmring_open(name, (shmring_role)role, out);
}

/*
 * shmring C API: zero-copy ring buffers in POSIX shared memory.
 *
 * A fixed contract (see docs/api.md): names and semantics here are relied on
 * by programs in C, Rust, Go and Python. Every call returns SHMRING_OK (0) or
 * one of the negative SHMRING_E* codes; none of them aborts on bad input.
 *
 * Concurrency: a shmring_t handle belongs to one thread at a time. Any number
 * of processes may hold handles on the same ring, within the limits of its
 * kind (spsc: one producer and one consumer).
 */
#ifndef SHMRING_SHMRING_H
#define SHMRING_SHMRING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
/* In C++ the name shmring is the library's namespace, so the same opaque
 * handle carries another tag there; linkage of the extern "C" functions does
 * not involve the tag, so C and C++ callers share one ABI. */
typedef struct shmring_handle shmring_t;
#else
typedef struct shmring shmring_t;
#endif

/* The _ENUM_MAX_ sentinels are not values to pass: they give each enum the
 * range of an int, so that an out-of-range value from C, Rust or Go is
 * answered with SHMRING_EINVAL instead of being undefined behaviour in C++. */
typedef enum { SHMRING_SPSC, SHMRING_MPMC, SHMRING_LOCKED, SHMRING_KIND_ENUM_MAX_ = 0x7fffffff } shmring_kind;
typedef enum {
  SHMRING_WAIT_FUTEX,
  SHMRING_WAIT_SPIN,
  SHMRING_WAIT_SEM,
  SHMRING_WAIT_ENUM_MAX_ = 0x7fffffff
} shmring_wait;
typedef enum { SHMRING_PRODUCER, SHMRING_CONSUMER, SHMRING_ROLE_ENUM_MAX_ = 0x7fffffff } shmring_role;

typedef struct {
  shmring_kind kind;
  shmring_wait wait;
  size_t capacity;  /* bytes of the data area, a power of two */
  size_t slot_size; /* mpmc only */
  unsigned mode;    /* permission bits, 0 means 0600 */
} shmring_config;

/* Return codes. SHMRING_OK is 0; every error is negative. */
enum {
  SHMRING_OK = 0,
  SHMRING_EWOULDBLOCK = -1, /* try-mode call: ring empty or full right now */
  SHMRING_ETIMEDOUT = -2,   /* the timeout passed first */
  SHMRING_EPEERGONE = -3,   /* no live peer left to empty or fill the ring */
  SHMRING_EBUSY = -4,       /* an exclusive role is held by a live process */
  SHMRING_EEXIST = -5,      /* create: the name is taken */
  SHMRING_ENOENT = -6,      /* no object of that name */
  SHMRING_EPERM = -7,       /* the object's owner or mode forbids it */
  SHMRING_ECORRUPT = -8,    /* not a shmring object, or damaged */
  SHMRING_EVERSION = -9,    /* a shmring object of another layout version */
  SHMRING_ETOOBIG = -10,    /* record larger than the ring or the buffer */
  SHMRING_ERESET = -11,     /* the ring was reset under this handle, or (mpmc) this
                               handle's stalled claim or hold was revoked */
  SHMRING_EINVAL = -12,     /* bad argument (name, size, role, call order) */
  SHMRING_ENOSPC = -13,     /* not enough shared memory to back the ring */
  SHMRING_ESYSTEM = -14     /* another operating-system failure (see last_error) */
};

/* Creates the ring exclusively (never reuses an existing object) and
 * initialises it completely before it becomes visible as ready. */
int shmring_create(const char *name, const shmring_config *cfg);
/* Removes the name; open handles keep working until closed. */
int shmring_unlink(const char *name);
/* Attaches as producer or consumer. Waits up to 1 s for a creator that is
 * still initialising. */
int shmring_open(const char *name, shmring_role role, shmring_t **out);
/* Detaches. Records committed before close stay in the ring. NULL is a no-op. */
void shmring_close(shmring_t *r);

/* timeout_ns: 0 = try once, -1 = wait forever, >0 = wait at most that long */

/* Producer: returns in *buf n writable bytes inside the ring. */
int shmring_reserve(shmring_t *r, size_t n, void **buf, int64_t timeout_ns);
/* Producer: makes the first n (<= reserved) bytes one record, visible now. */
int shmring_commit(shmring_t *r, size_t n);
/* Consumer: *buf, *n = the next record, in place; it stays until released. */
int shmring_peek(shmring_t *r, const void **buf, size_t *n, int64_t timeout_ns);
/* Consumer: frees the record returned by the last peek. */
int shmring_release(shmring_t *r);
/* Copying conveniences built on reserve/commit and peek/release. */
int shmring_send(shmring_t *r, const void *p, size_t n, int64_t timeout_ns);
/* On SHMRING_ETOOBIG the record stays in the ring and *n is its size. */
int shmring_recv(shmring_t *r, void *p, size_t cap, size_t *n, int64_t timeout_ns);
/* Largest payload one record can carry. */
size_t shmring_max_record(const shmring_t *r);
/* Static text for a return code; never NULL. */
const char *shmring_strerror(int code);

/* ---- Additions beyond the fixed contract ---- */

/* Batches: commit a record without making it visible yet; a later
 * shmring_commit or shmring_flush publishes every deferred record with one
 * index store. On the consumer side, shmring_release_deferred frees the
 * peeked record locally (the next peek moves on) and shmring_flush hands all
 * such records back to the producer with one index store. */
int shmring_commit_deferred(shmring_t *r, size_t n);
int shmring_release_deferred(shmring_t *r);
int shmring_flush(shmring_t *r);

/* How the peers of a handle (the other role) left since it opened; meant
 * for a handle that got SHMRING_EPEERGONE, which keeps its meaning. Returns
 * one of the SHMRING_DEPARTURE_* values, or SHMRING_EINVAL for NULL.
 *   NONE    no peer has left since this handle opened
 *   CLOSED  every peer that left closed its handle (shmring_close)
 *   DIED    at least one peer died (killed, crashed, or exited without
 *           shmring_close) since this handle opened
 * Reads /proc and may reclaim dead peers' attach entries: a slow-path call.
 * See docs/liveness.md, "Departures". */
enum { SHMRING_DEPARTURE_NONE = 0, SHMRING_DEPARTURE_CLOSED = 1, SHMRING_DEPARTURE_DIED = 2 };
int shmring_peer_departure(const shmring_t *r);

/* The calling thread's last detailed error message, naming the ring and the
 * cause ("shmring /md-feed: capacity 1000 is not a power of two"). */
const char *shmring_last_error(void);

/* 1 once the ring's name has been removed (or now leads to another object,
 * e.g. a ring re-created under the same name), 0 while it still leads to the
 * ring this handle opened, SHMRING_EINVAL for a NULL handle. The handle keeps
 * working either way. Checked at most once per half liveness period. */
int shmring_orphaned(const shmring_t *r);

#ifdef __cplusplus
}
#endif

#endif /* SHMRING_SHMRING_H */

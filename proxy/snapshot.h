/* The published route snapshot: an immutable, reference-counted pairing of a route table and
 * the router built from it. The main thread builds a snapshot off the request path and
 * publishes it; each worker swaps to it when woken; a request holds a reference for its whole
 * life, so requests in flight finish on the table they started with. The last release frees
 * it. */
#ifndef LEGATE_PROXY_SNAPSHOT_H
#define LEGATE_PROXY_SNAPSHOT_H

#include <stdatomic.h>
#include <stdint.h>

#include "route-t.h"

struct px_router;
struct px_policy;

struct px_snapshot {
    atomic_uint refs;
    struct route_table *table; /* owned */
    struct px_router *router;  /* owned; built from table, borrows its strings */
    struct px_policy *policy;  /* owned; circuit breakers, buckets, counters (policy.h) */
    uint64_t applied_at_ms;    /* wall clock, for /routes */
};

/* Builds a snapshot (refs = 1) taking ownership of table; on failure frees table and returns
 * NULL with a reason in err. */
struct px_snapshot *px_snapshot_new(struct route_table *table, char *err, size_t errlen);
/* Takes another reference; returns s. Safe from any thread; NULL in, NULL out. */
struct px_snapshot *px_snapshot_ref(struct px_snapshot *s);
/* Drops a reference; the last one frees everything. Safe from any thread and on NULL. */
void px_snapshot_release(struct px_snapshot *s);

/* Called by px_snapshot_publish on the main thread after the new snapshot is current; the
 * worker pool registers one that wakes every worker (uv_async_send). */
typedef void (*px_snapshot_publish_cb)(void *arg);
void px_snapshot_on_publish(px_snapshot_publish_cb cb, void *arg);

/* Makes s the current snapshot (takes ownership of the caller's reference) and calls the
 * publish callback. Main thread only. */
void px_snapshot_publish(struct px_snapshot *s);
/* Returns a new reference to the current snapshot, or NULL before the first publish. Any
 * thread. */
struct px_snapshot *px_snapshot_current(void);
/* Drops the current snapshot so that none is current (as before the first publish); the
 * last reference frees it. For shutdown, so leak checkers see a clean exit, and for tests.
 * Main thread only. */
void px_snapshot_clear(void);

#endif

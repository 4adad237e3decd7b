/* Traffic-policy state and decisions of the proxy (policy.c), without sockets: canary
 * choice, retry decisions, circuit-breaker gauges, token buckets, and the counters /metrics
 * shows.
 *
 * State that must outlive a snapshot (a circuit breaker's open connections, a Mapping's token
 * bucket) lives in reference-counted objects keyed by cluster name and by (namespace,
 * Mapping): building a snapshot looks each key up in the current snapshot's policy and shares
 * the object, so a reconfiguration neither resets a limit nor lets requests in flight on the
 * old table escape it. Gauges and buckets are shared by every worker through atomics (one
 * limit per cluster or Mapping for the whole proxy, as Envoy's are per cluster), never locked.
 *
 * Threads: px_policy_build and _free run on the main thread; everything else on any thread. */
#ifndef LEGATE_PROXY_POLICY_H
#define LEGATE_PROXY_POLICY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "route-t.h"

/* Per cluster. The gauges count what is open now; the *_total counters only grow. */
struct px_cstate {
    atomic_uint refs;
    char *name;
    atomic_uint connections;      /* upstream connections open (pooled ones too) */
    atomic_uint pending;          /* requests waiting for a new connection */
    atomic_uint active;           /* requests in progress */
    atomic_uint retries;          /* retries in progress */
    atomic_uint rr;               /* round-robin cursor over the cluster's addresses */
    atomic_ullong overflow_total; /* requests refused by a circuit breaker */
};

/* Per route (namespace/Mapping). */
struct px_rstate {
    atomic_uint refs;
    char *key; /* "namespace/mapping" */
    /* Token bucket: milli-tokens in the low 32 bits, the refill time (ms, wrapping) in the
     * high 32; one compare-and-swap per request. */
    _Atomic uint64_t bucket;
    atomic_ullong requests_total;
    atomic_ullong retries_total;
    atomic_ullong rate_limited_total;
    atomic_ullong overloaded_total;
    atomic_ullong timeouts_total; /* 504s of the proxy's own */
};

struct px_pindex;

/* What one snapshot points at, by cluster and route index. */
struct px_policy {
    struct px_cstate **clusters;
    size_t nclusters;
    struct px_rstate **routes;
    size_t nroutes;
    struct px_pindex *cindex; /* sorted by key, for the next snapshot's lookups */
    struct px_pindex *rindex;
};

/* Builds the policy state for t, sharing the objects of prev (may be NULL) by key, and checks
 * what the router does not: canary groups (group_size within the table, members not leaders
 * themselves). Returns NULL with a reason in err. */
struct px_policy *px_policy_build(const struct route_table *t, const struct px_policy *prev,
                                  char *err, size_t errlen);
/* Safe on NULL. */
void px_policy_free(struct px_policy *p);

/* Takes a reference on a cluster state (for an upstream connection that may outlive its
 * snapshot) / drops it. */
struct px_cstate *px_cstate_ref(struct px_cstate *cs);
void px_cstate_unref(struct px_cstate *cs);
/* An upstream connection counted in cs->connections closed: gives its slot back and drops
 * its reference. Safe on NULL. */
void px_cstate_conn_closed(struct px_cstate *cs);
/* The same for a route state (a request holds one while it lives). */
struct px_rstate *px_rstate_ref(struct px_rstate *rs);
void px_rstate_unref(struct px_rstate *rs);

/* A random number from this thread's generator (xorshift64*, seeded per thread): each worker
 * draws its own, without locking. */
uint64_t px_policy_random(void);
/* The member of leader's canary group (leader itself when it has none) for a draw in
 * [0, 100): members in order, each taking its weight's share. */
const struct route *px_policy_pick(const struct route *leader, uint32_t draw);

/* Circuit-breaker gauge: increments g unless it is already at max. Returns whether it did. */
bool px_gauge_take(atomic_uint *g, uint32_t max);
void px_gauge_give(atomic_uint *g);

/* Token bucket of a Mapping: takes one token at now_ms. Returns true when allowed; otherwise
 * *retry_after_s says when a token will be there (at least 1). */
bool px_bucket_take(_Atomic uint64_t *bucket, const struct route_local_rl *rl, uint64_t now_ms,
                    uint32_t *retry_after_s);
/* A full bucket at now_ms. */
uint64_t px_bucket_full(const struct route_local_rl *rl, uint64_t now_ms);

/* Why an attempt failed without a usable response. */
enum px_failure {
    PX_FAIL_CONNECT,  /* refused, unreachable, DNS, connect timeout */
    PX_FAIL_RESET,    /* closed or reset before the response head */
    PX_FAIL_PROTOCOL, /* an invalid response (a 502 of ours) */
    PX_FAIL_TIMEOUT,  /* per_try_timeout (a 504 of ours) */
};
/* Whether the retry policy retries this failure. */
bool px_retry_failure(const struct route_retry *r, enum px_failure f);

/* Appends the Prometheus text exposition of t's counters and gauges to out. Returns 0 or
 * -E2BIG when out's cap is reached. */
int px_policy_metrics(const struct route_table *t, const struct px_policy *p, struct buf *out);

#endif

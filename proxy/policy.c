#include "policy.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "route_policy.h"
#include "xalloc.h"

/* ---- state objects and their index ---- */

struct pentry {
    const char *key; /* borrowed from the state */
    void *state;
};

struct px_pindex {
    struct pentry *v;
    size_t n;
};

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct pentry *)a)->key, ((const struct pentry *)b)->key);
}

static void *index_find(const struct px_pindex *ix, const char *key)
{
    if (ix == NULL || ix->n == 0)
        return NULL;
    struct pentry k = { key, NULL };
    struct pentry *e = bsearch(&k, ix->v, ix->n, sizeof(k), cmp_entry);
    return e ? e->state : NULL;
}

static struct px_pindex *index_build(struct pentry *v, size_t n)
{
    struct px_pindex *ix = xcalloc(1, sizeof(*ix));
    qsort(v, n, sizeof(*v), cmp_entry);
    /* Keys repeat when states are shared (two routes of one Mapping cannot, but keep the
     * index well-formed whatever the table holds): the first stays. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || strcmp(v[k - 1].key, v[i].key) != 0)
            v[k++] = v[i];
    ix->v = v;
    ix->n = k;
    return ix;
}

struct px_cstate *px_cstate_ref(struct px_cstate *cs)
{
    if (cs != NULL)
        atomic_fetch_add_explicit(&cs->refs, 1, memory_order_relaxed);
    return cs;
}

void px_cstate_conn_closed(struct px_cstate *cs)
{
    if (cs == NULL)
        return;
    px_gauge_give(&cs->connections);
    px_cstate_unref(cs);
}

void px_cstate_unref(struct px_cstate *cs)
{
    if (cs == NULL || atomic_fetch_sub_explicit(&cs->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(cs->name);
    free(cs);
}

struct px_rstate *px_rstate_ref(struct px_rstate *rs)
{
    atomic_fetch_add_explicit(&rs->refs, 1, memory_order_relaxed);
    return rs;
}

void px_rstate_unref(struct px_rstate *rs)
{
    if (rs == NULL || atomic_fetch_sub_explicit(&rs->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(rs->key);
    free(rs);
}

static char *route_key(const struct route *r)
{
    size_t n = strlen(r->ns) + strlen(r->mapping) + 2;
    char *k = xmalloc(n);
    snprintf(k, n, "%s/%s", r->ns, r->mapping);
    return k;
}

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

struct px_policy *px_policy_build(const struct route_table *t, const struct px_policy *prev,
                                  char *err, size_t errlen)
{
    for (size_t i = 0; i < t->nroutes; i++) {
        uint32_t g = t->routes[i].policy->group_size;
        if (g == 0)
            continue;
        if (g < 2 || g > t->nroutes - i) {
            snprintf(err, errlen, "routes[%zu]: group_size %u does not fit the table", i, g);
            return NULL;
        }
        for (size_t k = i + 1; k < i + g; k++)
            if (t->routes[k].policy->group_size != 0) {
                snprintf(err, errlen,
                         "routes[%zu]: a member of the group of routes[%zu] leads a "
                         "group of its own",
                         k, i);
                return NULL;
            }
    }
    struct px_policy *p = xcalloc(1, sizeof(*p));
    p->nclusters = t->nclusters;
    p->clusters = xcalloc(t->nclusters + 1, sizeof(*p->clusters));
    struct pentry *ce = xcalloc(t->nclusters + 1, sizeof(*ce));
    for (size_t i = 0; i < t->nclusters; i++) {
        struct px_cstate *cs = index_find(prev ? prev->cindex : NULL, t->clusters[i].name);
        if (cs != NULL) {
            px_cstate_ref(cs);
        } else {
            cs = xcalloc(1, sizeof(*cs));
            atomic_init(&cs->refs, 1);
            cs->name = xstrdup(t->clusters[i].name);
        }
        p->clusters[i] = cs;
        ce[i] = (struct pentry){ cs->name, cs };
    }
    p->cindex = index_build(ce, t->nclusters);

    uint64_t now = now_ms();
    p->nroutes = t->nroutes;
    p->routes = xcalloc(t->nroutes + 1, sizeof(*p->routes));
    struct pentry *re = xcalloc(t->nroutes + 1, sizeof(*re));
    for (size_t i = 0; i < t->nroutes; i++) {
        const struct route *r = &t->routes[i];
        char *key = route_key(r);
        struct px_rstate *rs = index_find(prev ? prev->rindex : NULL, key);
        if (rs != NULL) {
            px_rstate_ref(rs);
            free(key);
        } else {
            rs = xcalloc(1, sizeof(*rs));
            atomic_init(&rs->refs, 1);
            rs->key = key;
            atomic_init(&rs->bucket, px_bucket_full(&r->policy->local_rl, now));
        }
        p->routes[i] = rs;
        re[i] = (struct pentry){ rs->key, rs };
    }
    p->rindex = index_build(re, t->nroutes);
    return p;
}

static void index_free(struct px_pindex *ix)
{
    if (ix == NULL)
        return;
    free(ix->v);
    free(ix);
}

void px_policy_free(struct px_policy *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nclusters; i++)
        px_cstate_unref(p->clusters[i]);
    for (size_t i = 0; i < p->nroutes; i++)
        px_rstate_unref(p->routes[i]);
    index_free(p->cindex);
    index_free(p->rindex);
    free(p->clusters);
    free(p->routes);
    free(p);
}

/* ---- canaries ---- */

static _Thread_local uint64_t rng_state;

uint64_t px_policy_random(void)
{
    if (rng_state == 0) {
        /* Seeded per thread from the clock and the thread's identity: workers draw apart. */
        uint64_t seed = uv_hrtime() ^ ((uint64_t)(uintptr_t)&rng_state * 0x9e3779b97f4a7c15ull) ^
                        (uint64_t)pthread_self();
        rng_state = seed ? seed : 0x2545f4914f6cdd1dull;
    }
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}

const struct route *px_policy_pick(const struct route *leader, uint32_t draw)
{
    uint32_t n = leader->policy->group_size;
    uint32_t cum = 0;
    for (uint32_t i = 0; i < n; i++) {
        cum += leader[i].policy->weight;
        if (draw < cum)
            return &leader[i];
    }
    return leader;
}

/* ---- circuit breakers ---- */

bool px_gauge_take(atomic_uint *g, uint32_t max)
{
    unsigned v = atomic_load_explicit(g, memory_order_relaxed);
    do {
        if (v >= max)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(g, &v, v + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

void px_gauge_give(atomic_uint *g)
{
    atomic_fetch_sub_explicit(g, 1, memory_order_relaxed);
}

/* ---- token buckets ---- */

#define PACK(tokens, ms) (((uint64_t)(uint32_t)(ms) << 32) | (uint32_t)(tokens))

uint64_t px_bucket_full(const struct route_local_rl *rl, uint64_t now)
{
    return PACK((uint64_t)rl->burst * 1000, now);
}

bool px_bucket_take(_Atomic uint64_t *bucket, const struct route_local_rl *rl, uint64_t now,
                    uint32_t *retry_after_s)
{
    uint64_t cap = (uint64_t)rl->burst * 1000;
    uint64_t old = atomic_load_explicit(bucket, memory_order_relaxed);
    for (;;) {
        uint64_t tokens = old & 0xffffffffu;
        uint32_t elapsed = (uint32_t)now - (uint32_t)(old >> 32);
        /* rps tokens a second is rps milli-tokens a millisecond. */
        uint64_t have = tokens + (uint64_t)elapsed * rl->rps;
        if (have > cap)
            have = cap;
        if (have < 1000) {
            uint64_t wait_ms = (1000 - have + rl->rps - 1) / rl->rps;
            *retry_after_s = (uint32_t)((wait_ms + 999) / 1000);
            if (*retry_after_s == 0)
                *retry_after_s = 1;
            return false;
        }
        if (atomic_compare_exchange_weak_explicit(bucket, &old, PACK(have - 1000, now),
                                                  memory_order_relaxed, memory_order_relaxed))
            return true;
    }
}

/* ---- retries ---- */

bool px_retry_failure(const struct route_retry *r, enum px_failure f)
{
    uint32_t on = r->on;
    if (on & ROUTE_RETRY_5XX)
        return true; /* Envoy's 5xx covers resets, connect failures and timeouts */
    switch (f) {
    case PX_FAIL_CONNECT:
        return (on & (ROUTE_RETRY_CONNECT_FAILURE | ROUTE_RETRY_GATEWAY_ERROR)) != 0;
    case PX_FAIL_RESET:
        return (on & ROUTE_RETRY_RESET) != 0;
    case PX_FAIL_PROTOCOL:
    case PX_FAIL_TIMEOUT:
        return (on & ROUTE_RETRY_GATEWAY_ERROR) != 0;
    }
    return false;
}

/* ---- /metrics ---- */

/* A label value: backslash, quote and newline escaped. */
static int label(struct buf *out, const char *s)
{
    for (; *s; s++) {
        int rc = *s == '\\'   ? buf_append(out, "\\\\", 2)
                 : *s == '"'  ? buf_append(out, "\\\"", 2)
                 : *s == '\n' ? buf_append(out, "\\n", 2)
                              : buf_append(out, s, 1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int route_labels(struct buf *out, const struct route *r)
{
    if (buf_append_str(out, "{namespace=\"") || label(out, r->ns) ||
        buf_append_str(out, "\",service=\"") || label(out, r->svc) ||
        buf_append_str(out, "\",mapping=\"") || label(out, r->mapping) ||
        buf_append_str(out, "\"}"))
        return -E2BIG;
    return 0;
}

int px_policy_metrics(const struct route_table *t, const struct px_policy *p, struct buf *out)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } rmetrics[] = {
        { "legate_route_requests_total",
          "Requests routed to the Mapping (a canary member counts "
          "its own).",
          offsetof(struct px_rstate, requests_total) },
        { "legate_route_retries_total", "Retries the Mapping's retry_policy made.",
          offsetof(struct px_rstate, retries_total) },
        { "legate_route_rate_limited_total", "Requests answered 429 by legate_rate_limit.",
          offsetof(struct px_rstate, rate_limited_total) },
        { "legate_route_overloaded_total", "Requests answered 503 by a circuit breaker.",
          offsetof(struct px_rstate, overloaded_total) },
        { "legate_route_timeouts_total", "Requests answered 504 by the proxy (timeouts).",
          offsetof(struct px_rstate, timeouts_total) },
    };
    static const struct {
        const char *name, *type, *help;
        size_t off;
        bool wide;
    } cmetrics[] = {
        { "legate_cluster_connections", "gauge", "Upstream connections open, pooled ones too.",
          offsetof(struct px_cstate, connections), false },
        { "legate_cluster_pending_requests", "gauge",
          "Requests waiting for a new upstream connection.", offsetof(struct px_cstate, pending),
          false },
        { "legate_cluster_active_requests", "gauge", "Requests in progress.",
          offsetof(struct px_cstate, active), false },
        { "legate_cluster_active_retries", "gauge", "Retries in progress.",
          offsetof(struct px_cstate, retries), false },
        { "legate_cluster_overflow_total", "counter", "Requests refused by a circuit breaker.",
          offsetof(struct px_cstate, overflow_total), true },
    };
    int rc = 0;
    for (size_t m = 0; m < ARRAY_SIZE(rmetrics) && rc == 0; m++) {
        rc = buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", rmetrics[m].name,
                        rmetrics[m].help, rmetrics[m].name);
        for (size_t i = 0; p != NULL && i < t->nroutes && rc == 0; i++) {
            const atomic_ullong *v =
                (const atomic_ullong *)((const char *)p->routes[i] + rmetrics[m].off);
            rc = buf_append_str(out, rmetrics[m].name) || route_labels(out, &t->routes[i]) ||
                 buf_printf(out, " %llu\n", (unsigned long long)atomic_load(v));
        }
    }
    for (size_t m = 0; m < ARRAY_SIZE(cmetrics) && rc == 0; m++) {
        rc = buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", cmetrics[m].name, cmetrics[m].help,
                        cmetrics[m].name, cmetrics[m].type);
        for (size_t i = 0; p != NULL && i < t->nclusters && rc == 0; i++) {
            const char *base = (const char *)p->clusters[i] + cmetrics[m].off;
            unsigned long long v = cmetrics[m].wide ? atomic_load((const atomic_ullong *)base)
                                                    : atomic_load((const atomic_uint *)base);
            rc = buf_printf(out, "%s{cluster=\"", cmetrics[m].name) ||
                 label(out, t->clusters[i].name) || buf_printf(out, "\"} %llu\n", v);
        }
    }
    return rc ? -E2BIG : 0;
}

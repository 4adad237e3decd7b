/* Traffic policy of a client connection's requests (http_policy.h).
 *
 * Gauges. A request holds `active` of its cluster from admission to its end, `pending` while
 * a new upstream connection is being opened for it, and one `retries` slot from its first
 * retry to its end; every upstream connection holds `connections` until it closes
 * (upstream.c). Each hold is taken with px_gauge_take against the cluster's circuit breaker
 * (no limit without one: the gauges still feed /metrics) and given back exactly once, in
 * px_pol_request_end. The request keeps its own references on the cluster and route state:
 * the snapshot it started on may be freed before the request's end is noticed.
 *
 * Timer. One per connection, set to the earliest of the attempt's connect deadline, its
 * per-try deadline and the idle deadline (last byte moved + idle_timeout_ms). Activity only
 * writes a timestamp; the timer, when it fires early, sleeps again for what is left. */
#include "http_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cors.h"
#include "http.h"
#include "log.h"
#include "policy.h"
#include "route_policy.h"
#include "shadow.h"
#include "snapshot.h"
#include "xalloc.h"

struct px_span {
    uint32_t off;
    uint32_t len;
};

struct px_pol {
    uv_timer_t timer;
    uint64_t timer_due; /* loop time the timer fires at, while it is active */
    struct px_conn *c;  /* NULL once the connection closed (the timer is closing) */
    /* The current request. */
    struct px_cstate *cs; /* references, held while the request lives */
    struct px_rstate *rs;
    bool held_active;
    bool held_pending;
    bool held_retry;
    uint32_t retries; /* done for this request */
    uint64_t connect_deadline;
    uint64_t try_deadline;
    uint32_t idle_ms;
    uint64_t last_io;
    int fail_status;    /* 504 after a timeout of ours, else 0 */
    const char *origin; /* the request's allowed CORS origin (in the arena), or NULL */
    size_t origin_len;
    bool cors_done; /* local_headers already hold CORS lines (a preflight's) */
    bool replayable;
    unsigned nspans;
    struct px_span spans[PX_POL_REPLAY_SPANS];
};

static uint64_t now_of(const struct px_conn *c)
{
    return uv_now(&c->w->loop);
}

static const struct route_cluster_policy *cpol(const struct px_conn *c)
{
    return &c->cluster->policy;
}

static void on_timer(uv_timer_t *t);

static void rearm(struct px_pol *pol)
{
    struct px_conn *c = pol->c;
    uint64_t next = UINT64_MAX;
    if (pol->connect_deadline)
        next = pol->connect_deadline;
    if (pol->try_deadline && pol->try_deadline < next)
        next = pol->try_deadline;
    if (pol->idle_ms && c->state != PX_REQ_IDLE && pol->last_io + pol->idle_ms < next)
        next = pol->last_io + pol->idle_ms;
    /* Lazy (px_timer_lazy): one with nothing left to time runs out; on_timer checks every
     * deadline and calls this again for what remains. */
    if (next != UINT64_MAX)
        px_timer_lazy(&pol->timer, &pol->timer_due, next, on_timer);
}

static void on_timer(uv_timer_t *t)
{
    struct px_pol *pol = t->data;
    struct px_conn *c = pol->c;
    if (c == NULL || c->closing || c->lingering)
        return;
    uint64_t now = now_of(c);
    char why[64];
    if (pol->connect_deadline && now >= pol->connect_deadline) {
        pol->connect_deadline = 0;
        if (c->state == PX_REQ_CONNECTING && c->up != NULL) {
            uint32_t ms = cpol(c)->connect_timeout_ms ? cpol(c)->connect_timeout_ms
                                                      : ROUTE_CONNECT_TIMEOUT_DEFAULT_MS;
            snprintf(why, sizeof(why), "no connection within %u ms", ms);
            pol->fail_status = 504;
            px_http_upstream_failed(c, "connect timeout", why);
            return;
        }
    }
    if (pol->try_deadline && now >= pol->try_deadline) {
        pol->try_deadline = 0;
        if ((c->state == PX_REQ_CONNECTING || c->state == PX_REQ_FORWARD) && c->up != NULL &&
            !c->resp_head_sent) {
            snprintf(why, sizeof(why), "no response head within %u ms",
                     c->route->policy->retry.per_try_timeout_ms);
            pol->fail_status = 504;
            px_http_upstream_failed(c, "per-try timeout", why);
            return;
        }
    }
    if (pol->idle_ms && c->state != PX_REQ_IDLE && c->state != PX_REQ_LOCAL &&
        now - pol->last_io >= pol->idle_ms) {
        log_warn("stream idle timeout", "client=%s cluster=%s idle_timeout_ms=%u", c->client_ip,
                 c->cluster ? c->cluster->name : "", pol->idle_ms);
        if (c->resp_head_sent) {
            /* The response has begun: only closing can tell the client. */
            px_http_close(c);
            return;
        }
        if (pol->rs != NULL)
            atomic_fetch_add(&pol->rs->timeouts_total, 1);
        snprintf(why, sizeof(why), "no byte moved for %u ms", pol->idle_ms);
        px_http_respond(c, 504, "stream idle timeout: ", why);
        return;
    }
    rearm(pol);
}

static void on_pol_close(uv_handle_t *h)
{
    free(h->data);
}

/* ---- choosing and admitting ---- */

const struct route *px_pol_pick(struct px_conn *c, const struct route *r)
{
    (void)c;
    if (r->policy->group_size < 2)
        return r;
    return px_policy_pick(r, (uint32_t)(px_policy_random() % 100));
}

/* Appends header lines to the proxy's own answer (c->local_headers, in the arena). */
static void add_local(struct px_conn *c, const char *lines, size_t len)
{
    size_t old = c->local_headers ? strlen(c->local_headers) : 0;
    char *s = px_arena_alloc(&c->arena, old + len + 1);
    if (old)
        memcpy(s, c->local_headers, old);
    memcpy(s + old, lines, len);
    s[old + len] = '\0';
    c->local_headers = s;
}

static void overloaded(struct px_conn *c, struct px_pol *pol, const char *limit)
{
    atomic_fetch_add(&pol->cs->overflow_total, 1);
    atomic_fetch_add(&pol->rs->overloaded_total, 1);
    log_warn("circuit breaker open", "cluster=%s limit=%s", c->cluster->name, limit);
    /* Envoy's header, and ours that says which mechanism answered. */
    static const char hdr[] =
        "x-legate-overloaded: circuit-breaker\r\nx-envoy-overloaded: true\r\n";
    add_local(c, hdr, sizeof(hdr) - 1);
    px_http_respond(c, 503, "upstream overloaded: circuit breaker ", limit);
}

/* The response's CORS lines ride on the route's response edits: the upstream's own lines of
 * those names are replaced. */
static void add_cors_edits(struct px_conn *c, const struct route_cors *cors)
{
    const struct px_h1_edits *old = c->resp_edits;
    size_t orem = old ? old->nremove : 0, oadd = old ? old->nadd : 0;
    char **rem = px_arena_alloc(&c->arena, (orem + 3) * sizeof(*rem));
    struct route_header_add *add = px_arena_alloc(&c->arena, (oadd + 3) * sizeof(*add));
    if (orem)
        memcpy(rem, old->remove, orem * sizeof(*rem));
    if (oadd)
        memcpy(add, old->add, oadd * sizeof(*add));
    for (size_t i = 0; i < 3; i++)
        rem[orem + i] = px_cors_response_names[i];
    size_t n = oadd;
    add[n++] = (struct route_header_add){ (char *)"Access-Control-Allow-Origin",
                                          (char *)c->pol->origin, false };
    if (cors->credentials)
        add[n++] = (struct route_header_add){ (char *)"Access-Control-Allow-Credentials",
                                              (char *)"true", false };
    if (cors->exposed_headers)
        add[n++] = (struct route_header_add){ (char *)"Access-Control-Expose-Headers",
                                              cors->exposed_headers, false };
    struct px_h1_edits *e = px_arena_alloc(&c->arena, sizeof(*e));
    *e = (struct px_h1_edits){ rem, orem + 3, add, n };
    c->resp_edits = e;
}

/* Returns 1 when the request was a preflight and is answered. */
static int cors(struct px_conn *c, struct px_pol *pol)
{
    const struct route_cors *cors = &c->route->policy->cors;
    if (!cors->enabled)
        return 0;
    int oi = px_h1_find(&c->req, "origin", 0);
    if (oi < 0)
        return 0;
    const char *origin = px_h1_at(&c->req, c->req.headers[oi].value);
    size_t len = c->req.headers[oi].value.len;
    if (!px_cors_allowed(cors, origin, len))
        return 0; /* not ours to answer: the upstream sees it as it came (Envoy's way) */
    /* A copy: the head's bytes may leave the read buffer before a late answer of ours. */
    char *copy = px_arena_alloc(&c->arena, len + 1);
    memcpy(copy, origin, len);
    copy[len] = '\0';
    pol->origin = copy;
    pol->origin_len = len;
    if (c->req.ll.method == HTTP_OPTIONS &&
        px_h1_find(&c->req, "access-control-request-method", 0) >= 0) {
        size_t room = px_cors_room(cors, len);
        char *lines = px_arena_alloc(&c->arena, room);
        size_t n = px_cors_preflight_headers(cors, origin, len, lines, room);
        add_local(c, lines, n);
        pol->cors_done = true;
        px_http_respond(c, 200, "CORS preflight answered by the proxy", "");
        return 1;
    }
    add_cors_edits(c, cors);
    return 0;
}

int px_pol_admit(struct px_conn *c)
{
    struct px_pol *pol = c->pol;
    if (pol == NULL) {
        pol = xcalloc(1, sizeof(*pol));
        uv_timer_init(&c->w->loop, &pol->timer);
        pol->timer.data = pol;
        pol->c = c;
        c->pol = pol;
    }
    const struct px_policy *ps = c->snap->policy;
    size_t ri = (size_t)(c->route - c->snap->table->routes);
    size_t ci = (size_t)(c->cluster - c->snap->table->clusters);
    pol->rs = ps->routes[ri];
    pol->cs = px_cstate_ref(ps->clusters[ci]);
    px_rstate_ref(pol->rs);
    const struct route_policy *rp = c->route->policy;
    pol->idle_ms = rp->idle_timeout_ms;
    pol->last_io = now_of(c);
    pol->replayable = rp->retry.on != 0;
    atomic_fetch_add(&pol->rs->requests_total, 1);

    if (cors(c, pol))
        return -1;
    if (rp->local_rl.rps > 0) {
        uint32_t after = 1;
        if (!px_bucket_take(&pol->rs->bucket, &rp->local_rl, now_of(c), &after)) {
            atomic_fetch_add(&pol->rs->rate_limited_total, 1);
            char line[48];
            int n = snprintf(line, sizeof(line), "Retry-After: %u\r\n", after);
            add_local(c, line, (size_t)n);
            px_http_respond(c, 429, "rate limited: ", "legate_rate_limit");
            return -1;
        }
    }
    const struct route_circuit_breakers *cb = &cpol(c)->cb;
    if (!px_gauge_take(&pol->cs->active, cb->set ? cb->max_requests : UINT32_MAX)) {
        overloaded(c, pol, "max_requests");
        return -1;
    }
    pol->held_active = true;
    rearm(pol);
    return 0;
}

/* ---- attempts ---- */

int px_pol_attempt(struct px_conn *c, bool new_conn)
{
    struct px_pol *pol = c->pol;
    if (pol == NULL || pol->cs == NULL)
        return 0;
    const struct route_cluster_policy *cp = cpol(c);
    const struct route_circuit_breakers *cb = &cp->cb;
    uint64_t now = now_of(c);
    if (pol->held_pending) {
        px_gauge_give(&pol->cs->pending);
        pol->held_pending = false;
    }
    pol->fail_status = 0;
    pol->connect_deadline = 0;
    pol->try_deadline = 0;
    if (new_conn) {
        if (!px_gauge_take(&pol->cs->connections, cb->set ? cb->max_connections : UINT32_MAX)) {
            overloaded(c, pol, "max_connections");
            return -1;
        }
        c->up->cs = px_cstate_ref(pol->cs);
        if (!px_gauge_take(&pol->cs->pending, cb->set ? cb->max_pending_requests : UINT32_MAX)) {
            overloaded(c, pol, "max_pending_requests");
            return -1;
        }
        pol->held_pending = true;
        pol->connect_deadline = now + (cp->connect_timeout_ms ? cp->connect_timeout_ms
                                                              : ROUTE_CONNECT_TIMEOUT_DEFAULT_MS);
    }
    if (c->route->policy->retry.per_try_timeout_ms)
        pol->try_deadline = now + c->route->policy->retry.per_try_timeout_ms;
    c->up->resp.allow_101 = c->upgrade_ok;
    rearm(pol);
    return 0;
}

void px_pol_ready(struct px_conn *c)
{
    struct px_pol *pol = c->pol;
    if (pol == NULL)
        return;
    if (pol->held_pending) {
        px_gauge_give(&pol->cs->pending);
        pol->held_pending = false;
    }
    pol->connect_deadline = 0;
    pol->last_io = now_of(c);
    rearm(pol);
}

static enum px_failure failure_of(const char *what)
{
    if (strcmp(what, "connect error") == 0 || strcmp(what, "DNS lookup failed") == 0 ||
        strcmp(what, "connect timeout") == 0)
        return PX_FAIL_CONNECT;
    if (strcmp(what, "per-try timeout") == 0)
        return PX_FAIL_TIMEOUT;
    if (strcmp(what, "sent an invalid response") == 0)
        return PX_FAIL_PROTOCOL;
    return PX_FAIL_RESET;
}

/* The checks every retry needs, then the retry budget (max_retries). */
static bool may_retry(struct px_conn *c, struct px_pol *pol, const char *why)
{
    const struct route_retry *r = &c->route->policy->retry;
    if (c->resp_head_sent || c->timed_out || pol->retries >= r->num_retries)
        return false;
    if (c->body_sent_up && !pol->replayable) {
        log_info("retry skipped", "cluster=%s reason=%s", c->cluster->name,
                 "request body too large to send again");
        return false;
    }
    if (!pol->held_retry) {
        const struct route_circuit_breakers *cb = &cpol(c)->cb;
        if (!px_gauge_take(&pol->cs->retries, cb->set ? cb->max_retries : UINT32_MAX)) {
            atomic_fetch_add(&pol->cs->overflow_total, 1);
            log_warn("retry refused", "cluster=%s limit=max_retries", c->cluster->name);
            return false;
        }
        pol->held_retry = true;
    }
    pol->retries++;
    atomic_fetch_add(&pol->rs->retries_total, 1);
    log_info("retrying", "cluster=%s attempt=%u reason=%s", c->cluster->name, pol->retries + 1,
             why);
    return true;
}

bool px_pol_retry_failure(struct px_conn *c, const char *what)
{
    struct px_pol *pol = c->pol;
    if (pol == NULL || pol->cs == NULL || c->route == NULL || c->route->policy->retry.on == 0)
        return false;
    if (!px_retry_failure(&c->route->policy->retry, failure_of(what)))
        return false;
    return may_retry(c, pol, what);
}

bool px_pol_retry_status(struct px_conn *c, int status)
{
    struct px_pol *pol = c->pol;
    if (pol == NULL || pol->cs == NULL || c->route == NULL ||
        !route_retry_status(&c->route->policy->retry, status))
        return false;
    /* The upstream answered before the whole request left: sending it again could duplicate
     * what was taken. */
    if (!c->req_done || c->up == NULL || c->up->writing)
        return false;
    char why[32];
    snprintf(why, sizeof(why), "status %d", status);
    return may_retry(c, pol, why);
}

int px_pol_failure_status(struct px_conn *c, int status)
{
    struct px_pol *pol = c->pol;
    if (pol == NULL || pol->fail_status == 0)
        return status;
    if (pol->rs != NULL)
        atomic_fetch_add(&pol->rs->timeouts_total, 1);
    return pol->fail_status;
}

void px_pol_local_headers(struct px_conn *c, int status)
{
    struct px_pol *pol = c->pol;
    if (pol == NULL || pol->origin == NULL || pol->cors_done || status == 404 || c->route == NULL)
        return;
    const struct route_cors *cors = &c->route->policy->cors;
    size_t room = px_cors_room(cors, pol->origin_len);
    char *lines = px_arena_alloc(&c->arena, room);
    size_t n = px_cors_response_headers(cors, pol->origin, pol->origin_len, lines, room);
    add_local(c, lines, n);
    pol->cors_done = true;
}

void px_pol_activity(struct px_conn *c)
{
    if (c->pol != NULL && c->pol->idle_ms)
        c->pol->last_io = now_of(c);
}

/* ---- the body, kept for a retry ---- */

void px_pol_record(struct px_conn *c, uint32_t off, uint32_t len)
{
    struct px_pol *pol = c->pol;
    if (pol == NULL || !pol->replayable)
        return;
    if (pol->nspans == PX_POL_REPLAY_SPANS) {
        pol->replayable = false;
        return;
    }
    pol->spans[pol->nspans++] = (struct px_span){ off, len };
}

unsigned px_pol_replay_room(const struct px_conn *c)
{
    return c->pol ? 3 * c->pol->nspans + 1 : 0;
}

unsigned px_pol_replay(struct px_conn *c, uv_buf_t *bufs, unsigned n)
{
    struct px_pol *pol = c->pol;
    /* Only a retry of ours resends: the first attempt's body goes as it is parsed. */
    if (pol == NULL || pol->retries == 0 || !pol->replayable)
        return n;
    bool chunked = px_h1_is_chunked(&c->req);
    for (unsigned i = 0; i < pol->nspans; i++) {
        if (chunked) {
            char *line = px_arena_alloc(&c->arena, PX_H1_CHUNK_LINE);
            bufs[n++] = uv_buf_init(line, (unsigned)px_h1_chunk_line(line, pol->spans[i].len));
        }
        bufs[n++] = uv_buf_init(c->rb->data + pol->spans[i].off, pol->spans[i].len);
        if (chunked)
            bufs[n++] = uv_buf_init((char *)"\r\n", 2);
    }
    if (chunked && c->req_done)
        bufs[n++] = uv_buf_init((char *)PX_H1_LAST_CHUNK, sizeof(PX_H1_LAST_CHUNK) - 1);
    return n;
}

bool px_pol_keep_buffer(struct px_conn *c)
{
    struct px_pol *pol = c->pol;
    if (pol == NULL || !pol->replayable || c->rb == NULL ||
        (c->state != PX_REQ_CONNECTING && c->state != PX_REQ_FORWARD))
        return false;
    if (c->rb->len < PX_RBUF_SIZE)
        return true;
    pol->replayable = false; /* full: the body goes on streaming, without a retry */
    return false;
}

/* ---- the end ---- */

void px_pol_request_end(struct px_conn *c)
{
    px_shadow_abandon(c); /* a copy not sent yet: the request did not get read whole */
    struct px_pol *pol = c->pol;
    if (pol == NULL)
        return;
    if (pol->cs != NULL) {
        if (pol->held_active)
            px_gauge_give(&pol->cs->active);
        if (pol->held_pending)
            px_gauge_give(&pol->cs->pending);
        if (pol->held_retry)
            px_gauge_give(&pol->cs->retries);
        px_cstate_unref(pol->cs);
    }
    if (pol->rs != NULL)
        px_rstate_unref(pol->rs);
    /* Everything after the timer and the owner is the request's. */
    memset((char *)pol + offsetof(struct px_pol, cs), 0,
           sizeof(*pol) - offsetof(struct px_pol, cs));
    /* The timer may run on: with no deadline left, its firing does nothing (rearm). */
}

void px_pol_conn_closed(struct px_conn *c)
{
    struct px_pol *pol = c->pol;
    if (pol == NULL)
        return;
    px_pol_request_end(c);
    c->pol = NULL;
    pol->c = NULL;
    uv_close((uv_handle_t *)&pol->timer, on_pol_close);
}

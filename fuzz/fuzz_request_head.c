/* libFuzzer target: what a client sends the proxy, from bytes to the request forwarded
 * upstream, without sockets.
 *
 * Input: byte 0 holds flags (bit 0: compact the read buffer before every read, as http.c's
 * make_room does when it runs short; bit 1: the table with the Module's settings; bit 2: a peer
 * address that table denies), byte 1 the size of each read (0: everything at once), the rest
 * is the client's byte stream, possibly several pipelined requests. The bytes are appended
 * to a read buffer of the proxy's size read by read and parsed with px_h1_execute (proxy/http1.c:
 * llhttp plus our own checks), as proxy/http.c's pump_request_once drives it. For each head the
 * steps of http.c's on_request_head follow: the target split (px_target_split) and its path
 * normalised (px_path_normalize), the Module's edge checks (px_edge_check), routing against a
 * fixed table, a redirect's Location (px_router_location) or the rewrite (px_router_rewrite)
 * and the upstream head (px_h1_request_head) with the route's header edits. These are the
 * proxy's own px_request_route and px_request_forward (proxy/request.h), which http.c's
 * on_request_head calls too: the fuzzer runs the code the connection runs. Checked:
 *   - the head forwarded upstream, parsed again by the same parser, is one complete head that
 *     ends exactly where it should, with the same method, the rewritten target, one Host (the
 *     one chosen), X-Forwarded-Proto once and X-Forwarded-For once (or not at all when passed
 *     on as received and there was none), chunked framing iff the request had it, the same
 *     Content-Length: the next hop cannot read it differently;
 *   - a normalised path is what target.h promises (no dot segment, no escaped slash, ...) and
 *     normalising it again changes nothing; a Location holds no control character;
 *   - the head's bytes stay unchanged in the buffer while its body is parsed (http1.h);
 *   - body bytes handed out lie within what the call consumed, and a Content-Length body is
 *     exactly the bytes after the head;
 *   - every answer of the proxy's own (refusals, 200 for OPTIONS *, 403, 404, 500) is a
 *     well-formed response;
 *   - the router agrees with the linear scan (fuzz_ref_match). */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arena.h"
#include "buf.h"
#include "fuzz.h"
#include "http1.h"
#include "route.h"
#include "router.h"
#include "target.h"
#include "edge.h"
#include "request.h"
#include "snapshot.h"
#include "xalloc.h"

#define RH_RBUF_SIZE PX_H1_HEAD_MAX /* the proxy's read buffer (proxy/internal.h) */

/* Routes in match order, covering every kind of predicate and action the router has; %s is
 * the Module's settings (table 0: none, Ambassador's defaults; table 1: proxy behind one
 * trusted hop, merged slashes, a deny list). */
static const char rh_snapshot[] =
    "{\"type\":\"snapshot\",\"protocol\":1,\"version\":1,\"errors\":[],%s"
    "\"clusters\":[{\"name\":\"up:80\",\"scheme\":\"http\",\"host\":\"up\",\"port\":80},"
    "{\"name\":\"up:8080\",\"scheme\":\"http\",\"host\":\"up\",\"port\":8080}],"
    "\"routes\":["
    "{\"namespace\":\"f\",\"service\":\"s\",\"mapping\":\"exact\",\"prefix\":\"/exact\","
    "\"prefix_exact\":true,\"cluster\":\"up:80\"},"
    "{\"namespace\":\"f\",\"service\":\"s\",\"mapping\":\"canary\",\"prefix\":\"/api/\","
    "\"headers\":[{\"name\":\"x-canary\",\"value\":\"1\"},{\"name\":\"x-debug\"}],"
    "\"rewrite\":\"/canary/\",\"cluster\":\"up:80\"},"
    "{\"namespace\":\"f\",\"service\":\"s\",\"mapping\":\"api\",\"prefix\":\"/api/\","
    "\"host\":\"example.com\",\"rewrite\":\"/v1/\",\"cluster\":\"up:80\","
    "\"remove_request_headers\":[\"x-debug\",\"cookie\"],"
    "\"add_request_headers\":[{\"name\":\"x-route\",\"value\":\"api\",\"append\":false},"
    "{\"name\":\"x-forwarded-host\",\"value\":\"example.com\",\"append\":true}]},"
    "{\"namespace\":\"f\",\"service\":\"s\",\"mapping\":\"rx\",\"prefix\":\"/rx/[0-9]+/.*\","
    "\"prefix_regex\":true,\"regex_rewrite\":{\"pattern\":\"/rx/([0-9]+)/\","
    "\"substitution\":\"/n/\\\\1/\"},\"cluster\":\"up:80\"},"
    "{\"namespace\":\"f\",\"service\":\"s\",\"mapping\":\"q\",\"prefix\":\"/q\","
    "\"query_parameters\":[{\"name\":\"id\",\"value\":\"[0-9]+\",\"regex\":true}],"
    "\"cluster\":\"up:80\"},"
    "{\"namespace\":\"f\",\"service\":\"s\",\"mapping\":\"old\",\"prefix\":\"/old/\","
    "\"host_redirect\":\"new.example\",\"prefix_redirect\":\"/new/\","
    "\"redirect_response_code\":302,\"cluster\":\"up:80\"},"
    "{\"namespace\":\"f\",\"service\":\"s\",\"mapping\":\"post\",\"prefix\":\"/form\","
    "\"method\":\"POST\",\"host_rewrite\":\"forms.internal\",\"cluster\":\"up:8080\"},"
    "{\"namespace\":\"f\",\"service\":\"s\",\"mapping\":\"case\",\"prefix\":\"/CaSe/\","
    "\"case_sensitive\":false,\"rewrite\":\"/\",\"cluster\":\"up:80\"},"
    "{\"namespace\":\"f\",\"service\":\"s\",\"mapping\":\"root\",\"prefix\":\"/\","
    "\"method\":\"GET|HEAD|POST\",\"method_regex\":true,\"cluster\":\"up:8080\"}]}";

static const char *const rh_settings[2] = {
    "",
    "\"settings\":{\"use_remote_address\":false,\"xff_num_trusted_hops\":1,"
    "\"merge_slashes\":true,\"ip_deny\":[{\"remote\":\"10.0.0.0/8\"},{\"peer\":\"192.0.2.66\"}],"
    "\"server_name\":\"legate\"},",
};

static struct route_table *rh_tables[2];
static struct px_router *rh_routers[2];
static struct fuzz_ref *rh_refs[2];
/* The table of the current input. */
static const struct route_table *rh_table;
static const struct px_router *rh_router;
static const struct fuzz_ref *rh_ref;

static void rh_setup(int which)
{
    if (rh_routers[which] == NULL) {
        char js[sizeof(rh_snapshot) + 256];
        snprintf(js, sizeof(js), rh_snapshot, rh_settings[which]);
        json_object *o = json_tokener_parse(js);
        char err[256] = "";
        FUZZ_CHECK(o != NULL);
        if (route_table_from_json(o, &rh_tables[which], err, sizeof(err)) != 0)
            fuzz_fail(err, __FILE__, __LINE__);
        json_object_put(o);
        rh_routers[which] = px_router_build(rh_tables[which], err, sizeof(err));
        if (rh_routers[which] == NULL)
            fuzz_fail(err, __FILE__, __LINE__);
        rh_refs[which] = fuzz_ref_new(rh_tables[which]);
        FUZZ_CHECK(rh_refs[which] != NULL);
    }
    rh_table = rh_tables[which];
    rh_router = rh_routers[which];
    rh_ref = rh_refs[which];
}

/* A response of the proxy's own must parse as one whole response with its status. */
static void rh_check_local(struct px_arena *a, int status, const char *msg, const char *detail,
                           size_t detail_len, bool keep_alive, bool head_only)
{
    char *s = NULL;
    size_t n = px_h1_local_response(a, status, msg, detail, detail_len, keep_alive, head_only, &s);
    FUZZ_CHECK(n > 0 && n < UINT32_MAX);
    char *copy = xmalloc(n);
    memcpy(copy, s, n);
    struct px_h1_parser q;
    struct px_arena qa;
    px_arena_init(&qa);
    px_h1_init(&q, HTTP_RESPONSE, false);
    q.skip_body = head_only;
    uint32_t used = 0;
    enum px_h1_event ev = px_h1_execute(&q, copy, 0, (uint32_t)n, &qa, &used);
    FUZZ_CHECK(ev == PX_H1_DONE && used == n);
    FUZZ_CHECK(q.ll.status_code == status);
    px_arena_free(&qa);
    free(copy);
}

/* Whether the forwarding code drops header i (what is_dropped in http1.c documents). */
static bool rh_dropped(const struct px_h1_parser *p, uint32_t i)
{
    const char *n = px_h1_at(p, p->headers[i].name);
    size_t len = p->headers[i].name.len;
    if (px_h1_is_hop_by_hop(n, len))
        return true;
    if ((len == 4 && strncasecmp(n, "host", 4) == 0) ||
        (len == 15 && strncasecmp(n, "x-forwarded-for", 15) == 0) ||
        (len == 17 && strncasecmp(n, "x-forwarded-proto", 17) == 0))
        return true;
    if (len == 14 && strncasecmp(n, "content-length", 14) == 0)
        return false;
    return px_h1_connection_lists(p, n, len);
}

static int rh_count(const struct px_h1_parser *q, const char *name)
{
    int n = 0;
    for (int i = px_h1_find(q, name, 0); i >= 0; i = px_h1_find(q, name, (uint32_t)i + 1))
        n++;
    return n;
}

/* The forwarded head, parsed again: the upstream must read what we meant. */
static void rh_check_forward(const struct px_h1_parser *p, const struct px_h1_forward *f,
                             const uv_buf_t *iov, unsigned niov)
{
    struct buf head;
    buf_init(&head, (size_t)1 << 30);
    for (unsigned i = 0; i < niov; i++)
        buf_append(&head, iov[i].base, iov[i].len);
    struct px_h1_parser q;
    struct px_arena qa;
    px_arena_init(&qa);
    px_h1_init(&q, HTTP_REQUEST, true);
    uint32_t used = 0;
    enum px_h1_event ev = px_h1_execute(&q, head.data, 0, (uint32_t)head.len, &qa, &used);
    if (ev == PX_H1_ERROR && q.error_status == 431 && p->nheaders + 4 > PX_H1_HEADERS_MAX) {
        /* The proxy's own cap on header fields, which the upstream need not share. */
        goto out;
    }
    FUZZ_CHECK(ev == PX_H1_HEAD);
    FUZZ_CHECK(used == head.len); /* one head, ending where it should */
    FUZZ_CHECK(q.ll.method == p->ll.method && q.ll.http_major == 1 && q.ll.http_minor == 1);
    FUZZ_CHECK(q.target.len == f->target_len &&
               memcmp(px_h1_at(&q, q.target), f->target, f->target_len) == 0);
    int host = px_h1_find(&q, "host", 0);
    FUZZ_CHECK(host >= 0 && rh_count(&q, "host") == 1);
    FUZZ_CHECK(q.headers[host].value.len == f->host_len &&
               memcmp(px_h1_at(&q, q.headers[host].value), f->host, f->host_len) == 0);
    /* X-Forwarded-For: once, or absent when passed on as received and there was none. */
    bool client_xff = false;
    for (int i = px_h1_find(p, "x-forwarded-for", 0); i >= 0;
         i = px_h1_find(p, "x-forwarded-for", (uint32_t)i + 1))
        client_xff = client_xff || p->headers[i].value.len > 0;
    int xff = rh_count(&q, "x-forwarded-for");
    FUZZ_CHECK(xff == (f->keep_xff && !client_xff ? 0 : 1));
    FUZZ_CHECK(rh_count(&q, "x-forwarded-proto") == 1);
    FUZZ_CHECK(px_h1_is_chunked(&q) == px_h1_is_chunked(p));
    FUZZ_CHECK(q.ll.content_length == p->ll.content_length);
    if (f->edits == NULL) {
        uint32_t kept = 0;
        for (uint32_t i = 0; i < p->nheaders; i++)
            kept += !rh_dropped(p, i);
        FUZZ_CHECK(q.nheaders == kept + 2 + (uint32_t)xff + (px_h1_is_chunked(p) ? 1 : 0));
    }
out:
    px_arena_free(&qa);
    buf_free(&head);
}

/* A Location (or any header value we format from request bytes) must not break the head. */
static void rh_check_header_value(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)v[i] >= 0x20 && (unsigned char)v[i] != 0x7f);
}

/* http.c's on_request_head, minus the connection: the same px_request_route and, for a route,
 * px_request_forward (proxy/request.h) with the table of this input, then the upstream head.
 * What it cannot run: the canary pick (px_pol_pick; the router's match is forwarded), CORS,
 * rate limits and circuit breakers (px_pol_admit), which need a connection and a worker. */
static void rh_on_head(struct px_h1_parser *p, struct px_arena *a, const char *client_ip)
{
    bool is_head = p->ll.method == HTTP_HEAD;
    bool keep_alive = llhttp_should_keep_alive(&p->ll);
    struct px_snapshot snap = { .table = (struct route_table *)rh_table,
                                .router = (struct px_router *)rh_router };
    struct px_verdict v;
    px_request_route(p, &snap, client_ip, a, &v);
    if (v.path != NULL)
        fuzz_check_normalized(p->target.len, v.path, v.path_len, rh_table->settings.merge_slashes);
    if (v.edge != NULL) {
        FUZZ_CHECK(memchr(v.edge->client, '\0', sizeof(v.edge->client)) != NULL);
        FUZZ_CHECK(strcmp(v.edge->proto, "http") == 0 || strcmp(v.edge->proto, "https") == 0);
        if (!v.edge->denied && !v.edge->redirect_https) {
            /* Routed (or 404): the router agrees with the linear scan over the table. */
            const char *method = llhttp_method_name((llhttp_method_t)p->ll.method);
            struct px_request_view view = { .method = method,
                                            .method_len = strlen(method),
                                            .path = v.path,
                                            .path_len = v.path_len,
                                            .query = v.query,
                                            .query_len = v.query_len,
                                            .host = v.host,
                                            .host_len = v.host_len,
                                            .headers = v.headers,
                                            .nheaders = v.nheaders };
            long idx = fuzz_check_match(rh_router, rh_ref, &view);
            if (idx < 0)
                FUZZ_CHECK(v.kind == PX_VERDICT_ANSWER && v.status == 404);
            else
                FUZZ_CHECK(v.kind == PX_VERDICT_ROUTE && v.route == &rh_table->routes[idx]);
        }
    }
    if (v.kind == PX_VERDICT_ROUTE) {
        struct px_h1_forward f;
        if (px_request_forward(&v, v.route, rh_table, rh_router, client_ip, a, &f) == 0) {
            FUZZ_CHECK(f.host != NULL && f.host_len > 0 && f.target_len > 0);
            uv_buf_t *iov = NULL;
            unsigned niov = px_h1_request_head(p, &f, a, &iov);
            FUZZ_CHECK(niov >= 2 && niov <= 2 + 2 * p->nheaders + 1);
            rh_check_forward(p, &f, iov, niov);
            return;
        }
    }
    if (v.kind == PX_VERDICT_REDIRECT) {
        FUZZ_CHECK(v.status == 301 || v.status == 302 || v.status == 303 || v.status == 307 ||
                   v.status == 308);
        FUZZ_CHECK(v.location != NULL && v.location_len > 0);
        rh_check_header_value(v.location, v.location_len);
        return;
    }
    FUZZ_CHECK(v.kind == PX_VERDICT_ANSWER && v.msg != NULL);
    FUZZ_CHECK(!v.close || v.status == 400);
    rh_check_local(a, v.status, v.msg, v.detail, v.detail_len, keep_alive && !v.close, is_head);
}

struct rh_conn {
    char *buf;
    uint32_t len, off;
    struct px_h1_parser p;
    struct px_arena arena;
    bool in_request; /* between the head and the end of the message */
    char *head;      /* copy of the head's bytes, to check they stay */
    uint32_t head_len;
    uint64_t body;       /* body bytes handed out for the current message */
    const char *cl_body; /* Content-Length body expected: the bytes after the head */
    uint64_t cl_len;
};

static void rh_check_head_intact(const struct rh_conn *c)
{
    if (c->in_request)
        FUZZ_CHECK(memcmp(c->buf + c->p.start, c->head, c->head_len) == 0);
}

/* http.c's make_room while no request is being forwarded: drop what is parsed, keep an
 * unfinished head from its start. */
static void rh_compact(struct rh_conn *c)
{
    if (c->in_request)
        return;
    uint32_t keep = c->p.begun ? c->p.start : c->off;
    if (keep == 0)
        return;
    memmove(c->buf, c->buf + keep, c->len - keep);
    c->len -= keep;
    c->off -= keep;
    if (c->p.begun)
        px_h1_shift(&c->p, keep);
}

/* One execute call; returns false once the connection would be closed. */
static bool rh_step(struct rh_conn *c, const char *stream, uint32_t stream_pos,
                    const char *client_ip)
{
    uint32_t from = c->off, used = 0;
    enum px_h1_event ev = px_h1_execute(&c->p, c->buf, c->off, c->len, &c->arena, &used);
    FUZZ_CHECK(used <= c->len - from);
    c->off += used;
    if (ev == PX_H1_ERROR) {
        int st = c->p.error_status;
        FUZZ_CHECK(st == 400 || st == 405 || st == 414 || st == 431 || st == 501 || st == 505);
        FUZZ_CHECK(c->p.error_reason != NULL && c->p.error_reason[0] != '\0');
        char msg[64];
        snprintf(msg, sizeof(msg), "%s: ", px_h1_reason(st));
        rh_check_local(&c->arena, st, msg, c->p.error_reason, strlen(c->p.error_reason), false,
                       false);
        return false;
    }
    if (c->p.body_len > 0) {
        FUZZ_CHECK(c->in_request);
        FUZZ_CHECK(c->p.body_off >= from && c->p.body_off + c->p.body_len <= from + used);
        if (c->cl_body != NULL)
            FUZZ_CHECK(c->body + c->p.body_len <= c->cl_len &&
                       memcmp(c->buf + c->p.body_off, c->cl_body + c->body, c->p.body_len) == 0);
        c->body += c->p.body_len;
    }
    rh_check_head_intact(c);
    if (ev == PX_H1_HEAD) {
        FUZZ_CHECK(!c->in_request && c->p.head_done);
        c->in_request = true;
        c->head_len = c->off - c->p.start;
        c->head = xmalloc(c->head_len + 1);
        memcpy(c->head, c->buf + c->p.start, c->head_len);
        c->body = 0;
        c->cl_body = NULL;
        if (!px_h1_is_chunked(&c->p) && c->p.ll.content_length > 0) {
            /* The stream position of the head's end: the body follows it there. */
            c->cl_body = stream + stream_pos - (c->len - c->off);
            c->cl_len = c->p.ll.content_length;
        }
        rh_on_head(&c->p, &c->arena, client_ip);
        px_h1_resume(&c->p);
    } else if (ev == PX_H1_DONE) {
        FUZZ_CHECK(c->in_request);
        if (c->cl_body != NULL)
            FUZZ_CHECK(c->body == c->cl_len);
        c->in_request = false;
        free(c->head);
        c->head = NULL;
        px_arena_reset(&c->arena);
        px_h1_next(&c->p);
    }
    return true;
}

int fuzz_request_head(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    fuzz_logs(size & 1);
    rh_setup((data[0] >> 1) & 1);
    bool eager = data[0] & 1;
    /* The peer: a client, or (bit 2) an address the deny list of table 1 names. */
    const char *client_ip = data[0] & 4 ? "192.0.2.66" : "2001:db8::7";
    size_t chunk = data[1] ? data[1] : RH_RBUF_SIZE;
    const char *stream = (const char *)data + 2;
    uint32_t slen = (uint32_t)(size - 2 < UINT32_MAX / 2 ? size - 2 : UINT32_MAX / 2);

    struct rh_conn c = { .buf = xmalloc(RH_RBUF_SIZE) };
    px_arena_init(&c.arena);
    px_h1_init(&c.p, HTTP_REQUEST, true);
    uint32_t pos = 0;
    bool open = true, kick = false;
    unsigned idle = 0;
    while (open) {
        bool fed = false;
        if (c.off == c.len && !kick) {
            /* Parsed all it had: the next read, into what room the buffer has. */
            if (pos == slen)
                break;
            if (eager || c.len == RH_RBUF_SIZE)
                rh_compact(&c);
            size_t n = slen - pos;
            if (n > chunk)
                n = chunk;
            if (n > RH_RBUF_SIZE - c.len)
                n = RH_RBUF_SIZE - c.len;
            if (n == 0)
                break; /* full during a body: the proxy waits for the upstream here */
            memcpy(c.buf + c.len, stream + pos, n);
            c.len += (uint32_t)n;
            pos += (uint32_t)n;
            fed = true;
        }
        /* After a head the parser runs once more even with nothing new (http.c's kick):
         * a message without a body ends there. */
        bool was_in = c.in_request;
        uint32_t before = c.off;
        open = rh_step(&c, stream, pos, client_ip);
        kick = c.in_request && !was_in;
        idle = !fed && c.off == before && c.in_request == was_in ? idle + 1 : 0;
        FUZZ_CHECK(idle < 4); /* no progress without new bytes: the parser is stuck */
    }
    if (open) {
        enum px_h1_event ev = px_h1_finish(&c.p);
        FUZZ_CHECK(ev == PX_H1_MORE || ev == PX_H1_DONE || ev == PX_H1_ERROR);
        if (ev == PX_H1_MORE)
            FUZZ_CHECK(!c.in_request);
    }
    free(c.head);
    px_arena_free(&c.arena);
    free(c.buf);
    return 0;
}

FUZZ_ENTRY(fuzz_request_head)

/* Tests for proxy/http1.c: the HTTP/1 message layer (head recording and the checks on top of
 * llhttp, head building for both legs, chunk framing, the proxy's own responses). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "harness.h"
#include "http1.h"
#include "xalloc.h"

/* A parse of one byte string held in a writable buffer, as the proxy's read buffers are. */
struct fixture {
    struct px_h1_parser p;
    struct px_arena a;
    char *buf;
    uint32_t len;
    uint32_t off;
};

static void fx_init(struct fixture *f, llhttp_type_t type, bool pause_on_head, const char *s,
                    size_t n)
{
    px_h1_init(&f->p, type, pause_on_head);
    px_arena_init(&f->a);
    f->buf = xmalloc(n + 1);
    memcpy(f->buf, s, n);
    f->len = (uint32_t)n;
    f->off = 0;
}

static void fx_free(struct fixture *f)
{
    px_arena_free(&f->a);
    free(f->buf);
}

/* Runs the parser over the rest of the buffer. */
static enum px_h1_event fx_run(struct fixture *f)
{
    uint32_t used = 0;
    enum px_h1_event ev = px_h1_execute(&f->p, f->buf, f->off, f->len, &f->a, &used);
    f->off += used;
    return ev;
}

#define REQ(f, lit) fx_init((f), HTTP_REQUEST, true, (lit), sizeof(lit) - 1)

static bool span_is(const struct px_h1_parser *p, struct px_h1_span s, const char *want)
{
    return s.len == strlen(want) && memcmp(px_h1_at(p, s), want, s.len) == 0;
}

/* The bytes an iovec array describes, NUL-terminated (caller frees). */
static char *flatten(const uv_buf_t *iov, unsigned n)
{
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += iov[i].len;
    char *s = xmalloc(total + 1);
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        memcpy(s + off, iov[i].base, iov[i].len);
        off += iov[i].len;
    }
    s[off] = '\0';
    return s;
}

/* Parses a request head (must be complete) and returns the error status, 0 when accepted. */
static int request_status(const char *head)
{
    struct fixture f;
    fx_init(&f, HTTP_REQUEST, true, head, strlen(head));
    enum px_h1_event ev = fx_run(&f);
    int st = ev == PX_H1_ERROR ? f.p.error_status : 0;
    ck_assert_msg(ev == PX_H1_ERROR || ev == PX_H1_HEAD, "event %d for %s", ev, head);
    fx_free(&f);
    return st;
}

/* ---- parsing requests -------------------------------------------------------------------- */

START_TEST(h1_records_target_and_headers_as_slices)
{
    struct fixture f;
    REQ(&f, "GET /a/b?c=d HTTP/1.1\r\nHost: example.com  \r\nX-Empty:\r\nX-B:\t x y \t\r\n\r\n");
    ck_assert_int_eq(fx_run(&f), PX_H1_HEAD);
    ck_assert_uint_eq(f.off, f.len); /* paused right after the head */
    ck_assert(span_is(&f.p, f.p.target, "/a/b?c=d"));
    ck_assert_uint_eq(f.p.nheaders, 3);
    ck_assert(span_is(&f.p, f.p.headers[0].name, "Host"));
    ck_assert(span_is(&f.p, f.p.headers[0].value, "example.com")); /* trailing blanks trimmed */
    ck_assert(span_is(&f.p, f.p.headers[1].name, "X-Empty"));
    ck_assert_uint_eq(f.p.headers[1].value.len, 0);
    ck_assert(span_is(&f.p, f.p.headers[2].value, "x y"));
    ck_assert_int_eq(px_h1_find(&f.p, "x-b", 0), 2);
    ck_assert_int_eq(px_h1_find(&f.p, "x-b", 3), -1);
    fx_free(&f);
}
END_TEST

START_TEST(h1_head_split_across_reads_gives_the_same_slices)
{
    static const char head[] = "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                               "X-Long-Name: some value\r\n\r\n";
    struct fixture f;
    REQ(&f, head);
    /* One byte per execute call, as a slow client would send it. */
    enum px_h1_event ev = PX_H1_MORE;
    for (uint32_t end = 1; end <= f.len && ev == PX_H1_MORE; end++) {
        uint32_t used = 0;
        ev = px_h1_execute(&f.p, f.buf, f.off, end, &f.a, &used);
        f.off += used;
    }
    ck_assert_int_eq(ev, PX_H1_HEAD);
    ck_assert(span_is(&f.p, f.p.target, "/upload"));
    ck_assert_uint_eq(f.p.nheaders, 3);
    ck_assert(span_is(&f.p, f.p.headers[2].name, "X-Long-Name"));
    ck_assert(span_is(&f.p, f.p.headers[2].value, "some value"));
    ck_assert_uint_eq(f.p.ll.content_length, 3);
    fx_free(&f);
}
END_TEST

START_TEST(h1_shift_keeps_slices_after_compaction)
{
    /* A pipelined second request whose head arrives in two pieces: between them the caller
     * drops the first request's bytes and moves the rest to the buffer's start. */
    static const char all[] =
        "GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: b\r\n\r\n";
    struct fixture f;
    REQ(&f, all);
    ck_assert_int_eq(fx_run(&f), PX_H1_HEAD);
    px_h1_resume(&f.p);
    ck_assert_int_eq(fx_run(&f), PX_H1_DONE);
    px_h1_next(&f.p);
    uint32_t first = f.off;
    uint32_t used = 0;
    ck_assert_int_eq(px_h1_execute(&f.p, f.buf, f.off, f.off + 10, &f.a, &used), PX_H1_MORE);
    f.off += used;
    memmove(f.buf, f.buf + first, f.len - first);
    f.len -= first;
    f.off -= first;
    px_h1_shift(&f.p, first);
    ck_assert_int_eq(fx_run(&f), PX_H1_HEAD);
    ck_assert(span_is(&f.p, f.p.target, "/two"));
    ck_assert(span_is(&f.p, f.p.headers[0].value, "b"));
    fx_free(&f);
}
END_TEST

START_TEST(h1_body_bytes_of_one_parse_are_made_contiguous)
{
    struct fixture f;
    REQ(&f, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\nabc\r\n2;ext=1\r\nde\r\n1\r\nf\r\n0\r\nX-Trailer: t\r\n\r\n");
    ck_assert_int_eq(fx_run(&f), PX_H1_HEAD);
    ck_assert(px_h1_is_chunked(&f.p));
    /* Nothing of the body is consumed before the caller resumes. */
    ck_assert_uint_eq(f.p.body_len, 0);
    px_h1_resume(&f.p);
    ck_assert_int_eq(fx_run(&f), PX_H1_DONE);
    ck_assert_uint_eq(f.p.body_len, 6);
    ck_assert_mem_eq(f.buf + f.p.body_off, "abcdef", 6);
    /* The trailer did not become a header of the request. */
    ck_assert_int_eq(px_h1_find(&f.p, "x-trailer", 0), -1);
    fx_free(&f);
}
END_TEST

START_TEST(h1_pipelined_requests_pause_at_each_end)
{
    struct fixture f;
    REQ(&f, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
    ck_assert_int_eq(fx_run(&f), PX_H1_HEAD);
    px_h1_resume(&f.p);
    ck_assert_int_eq(fx_run(&f), PX_H1_DONE);
    ck_assert_uint_eq(f.off, strlen("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"));
    px_h1_next(&f.p);
    ck_assert_int_eq(fx_run(&f), PX_H1_HEAD);
    ck_assert(span_is(&f.p, f.p.target, "/2"));
    fx_free(&f);
}
END_TEST

START_TEST(h1_refuses_obs_fold)
{
    ck_assert_int_eq(request_status("GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n"), 400);
    ck_assert_int_eq(request_status("GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\ttwo\r\n\r\n"), 400);
    /* The continuation line carries the whole value. */
    ck_assert_int_eq(request_status("GET / HTTP/1.1\r\nHost: h\r\nX-A:\r\n two\r\n\r\n"), 400);
    ck_assert_int_eq(request_status("GET / HTTP/1.1\r\nHost: h\r\nX-A: one two\r\n\r\n"), 0);
}
END_TEST

START_TEST(h1_refuses_transfer_encoding_on_http10)
{
    ck_assert_int_eq(
        request_status("POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
    ck_assert_int_eq(
        request_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
}
END_TEST

START_TEST(h1_refuses_ambiguous_framing)
{
    ck_assert_int_eq(request_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                                    "Transfer-Encoding: chunked\r\n\r\n"),
                     400);
    ck_assert_int_eq(request_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
                                    "Content-Length: 2\r\n\r\n"),
                     400);
    /* A coding the proxy would silently drop when re-chunking. */
    ck_assert_int_eq(request_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n"
                                    "Transfer-Encoding: chunked\r\n\r\n"),
                     501);
}
END_TEST

START_TEST(h1_refuses_space_in_header_name)
{
    ck_assert_int_eq(request_status("GET / HTTP/1.1\r\nHost : h\r\n\r\n"), 400);
    ck_assert_int_eq(
        request_status("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n"), 400);
}
END_TEST

START_TEST(h1_host_rules)
{
    ck_assert_int_eq(request_status("GET / HTTP/1.1\r\n\r\n"), 400);
    ck_assert_int_eq(request_status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
    ck_assert_int_eq(request_status("GET / HTTP/1.0\r\n\r\n"), 0);
}
END_TEST

START_TEST(h1_version_and_method_checks)
{
    ck_assert_int_eq(request_status("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
    ck_assert_int_eq(request_status("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"), 405);
    ck_assert_int_eq(request_status("BREW / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
}
END_TEST

START_TEST(h1_caps_target_and_head)
{
    char *big = xmalloc(PX_H1_HEAD_MAX + 64);
    /* Target over 8 KiB: 414. */
    int n = snprintf(big, 64, "GET /");
    memset(big + n, 'a', PX_H1_TARGET_MAX);
    n += PX_H1_TARGET_MAX;
    n += snprintf(big + n, 64, " HTTP/1.1\r\nHost: h\r\n\r\n");
    ck_assert_int_eq(request_status(big), 414);

    /* A head still incomplete at 64 KiB: 431. */
    struct fixture f;
    n = snprintf(big, 64, "GET / HTTP/1.1\r\nX-Big: ");
    memset(big + n, 'b', PX_H1_HEAD_MAX - n);
    fx_init(&f, HTTP_REQUEST, true, big, PX_H1_HEAD_MAX);
    ck_assert_int_eq(fx_run(&f), PX_H1_ERROR);
    ck_assert_int_eq(f.p.error_status, 431);
    fx_free(&f);

    /* Just under the cap is fine. */
    n = snprintf(big, 64, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: ");
    memset(big + n, 'c', PX_H1_HEAD_MAX - n - 4);
    memcpy(big + PX_H1_HEAD_MAX - 4, "\r\n\r\n", 5);
    ck_assert_int_eq(request_status(big), 0);
    free(big);

    /* More header fields than the cap: 431. */
    size_t cap = 16 * (PX_H1_HEADERS_MAX + 8), len = 0;
    char *many = xmalloc(cap);
    len += (size_t)snprintf(many, cap, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= PX_H1_HEADERS_MAX; i++)
        len += (size_t)snprintf(many + len, cap - len, "H%d: v\r\n", i);
    snprintf(many + len, cap - len, "\r\n");
    ck_assert_int_eq(request_status(many), 431);
    free(many);
}
END_TEST

/* ---- building the upstream request ------------------------------------------------------- */

static char *forward(const char *head, const char *target, const char *host, const char *ip,
                     unsigned *niov)
{
    struct fixture f;
    fx_init(&f, HTTP_REQUEST, true, head, strlen(head));
    ck_assert_int_eq(fx_run(&f), PX_H1_HEAD);
    struct px_h1_forward fw = { .target = target,
                                .target_len = strlen(target),
                                .host = host,
                                .host_len = strlen(host),
                                .client_ip = ip };
    uv_buf_t *iov = NULL;
    unsigned n = px_h1_request_head(&f.p, &fw, &f.a, &iov);
    char *s = flatten(iov, n);
    if (niov)
        *niov = n;
    fx_free(&f);
    return s;
}

START_TEST(h1_request_head_drops_hop_by_hop_and_sets_forwarding_headers)
{
    char *s = forward("GET /api/x?y=1 HTTP/1.1\r\n"
                      "Host: shop.example\r\n"
                      "Connection: keep-alive, X-Private, Content-Length\r\n"
                      "X-Private: secret\r\n"
                      "Keep-Alive: timeout=5\r\n"
                      "TE: trailers\r\n"
                      "Trailer: X-Sum\r\n"
                      "Upgrade: websocket\r\n"
                      "Proxy-Connection: keep-alive\r\n"
                      "X-Forwarded-Proto: https\r\n"
                      "Accept: */*\r\n"
                      "\r\n",
                      "/x?y=1", "backend.internal", "10.0.0.7", NULL);
    ck_assert_str_eq(s, "GET /x?y=1 HTTP/1.1\r\n"
                        "Accept: */*\r\n"
                        "Host: backend.internal\r\n"
                        "X-Forwarded-For: 10.0.0.7\r\n"
                        "X-Forwarded-Proto: http\r\n"
                        "\r\n");
    free(s);
}
END_TEST

/* Header kinds are found once per name, case-insensitively; Connection's tokens once per head:
 * "close" drops a header named Close, keep-alive alone drops nothing else. */
START_TEST(h1_request_head_header_kinds_and_connection_tokens)
{
    char *s = forward("POST / HTTP/1.1\r\nHOST: h\r\nConnection: close\r\nClose: x\r\n"
                      "x-FORWARDED-for: 1.2.3.4\r\nX-Forwarded-Protocol: y\r\nContent-LENGTH: 0\r\n"
                      "Hostname: n\r\n\r\n",
                      "/", "up", "127.0.0.1", NULL);
    ck_assert_str_eq(s, "POST / HTTP/1.1\r\nX-Forwarded-Protocol: y\r\nContent-LENGTH: 0\r\n"
                        "Hostname: n\r\nHost: up\r\nX-Forwarded-For: 1.2.3.4, 127.0.0.1\r\n"
                        "X-Forwarded-Proto: http\r\n\r\n");
    free(s);
    s = forward("GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive\r\nClose: x\r\nA: 1\r\n\r\n",
                "/", "h", "127.0.0.1", NULL);
    ck_assert_str_eq(s, "GET / HTTP/1.1\r\nClose: x\r\nA: 1\r\nHost: h\r\n"
                        "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n");
    free(s);
}
END_TEST

START_TEST(h1_request_head_appends_to_x_forwarded_for)
{
    char *s = forward("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\nA: 1\r\n"
                      "x-forwarded-for: 2.2.2.2, 3.3.3.3\r\n\r\n",
                      "/", "h", "127.0.0.1", NULL);
    ck_assert_str_eq(s, "GET / HTTP/1.1\r\nA: 1\r\nHost: h\r\n"
                        "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1\r\n"
                        "X-Forwarded-Proto: http\r\n\r\n");
    free(s);
}
END_TEST

START_TEST(h1_request_head_keeps_content_length_and_rechunks)
{
    /* Content-Length passes as it is, even when a client lists it in Connection. */
    char *s = forward("POST /p HTTP/1.1\r\nHost: h\r\nConnection: Content-Length\r\n"
                      "Content-Length: 10\r\n\r\n",
                      "/p", "h", "::1", NULL);
    ck_assert_ptr_nonnull(strstr(s, "\r\nContent-Length: 10\r\n"));
    ck_assert_ptr_null(strstr(s, "Connection"));
    free(s);
    /* A chunked body is re-chunked: the proxy says so itself. */
    s = forward("POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", "/p", "h",
                "::1", NULL);
    ck_assert_str_eq(s, "POST /p HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: ::1\r\n"
                        "X-Forwarded-Proto: http\r\nTransfer-Encoding: chunked\r\n\r\n");
    free(s);
}
END_TEST

START_TEST(h1_request_head_references_header_runs)
{
    /* Three kept neighbours are one iovec (plus its CRLF), not three. */
    unsigned n = 0;
    char *s =
        forward("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nHost: h\r\nD:  4  \r\nE: 5\r\n\r\n", "/",
                "h", "1.2.3.4", &n);
    ck_assert_str_eq(s, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD:  4\r\nE: 5\r\n"
                        "Host: h\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: http\r\n\r\n");
    /* line, [A..C] + CRLF, [D] + CRLF (trimmed blanks end the run), [E] + CRLF, tail */
    ck_assert_uint_eq(n, 8);
    free(s);
}
END_TEST

/* ---- responses --------------------------------------------------------------------------- */

START_TEST(h1_response_head_relays_status_and_sets_connection)
{
    static const char resp[] = "HTTP/1.1 201 Created Here\r\nConnection: X-Up, close\r\n"
                               "X-Up: 1\r\nServer: s\r\nTransfer-Encoding: chunked\r\n\r\n";
    struct fixture f;
    fx_init(&f, HTTP_RESPONSE, false, resp, sizeof(resp) - 1);
    ck_assert_int_eq(fx_run(&f), PX_H1_MORE);
    ck_assert(f.p.head_done);
    uv_buf_t *iov = NULL;
    unsigned n = px_h1_response_head(&f.p, true, true, true, &f.a, &iov);
    char *s = flatten(iov, n);
    ck_assert_str_eq(s, "HTTP/1.1 201 Created Here\r\nServer: s\r\n"
                        "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n");
    free(s);
    n = px_h1_response_head(&f.p, true, false, false, &f.a, &iov);
    s = flatten(iov, n);
    ck_assert_str_eq(s, "HTTP/1.1 201 Created Here\r\nServer: s\r\nConnection: close\r\n\r\n");
    free(s);
    fx_free(&f);
}
END_TEST

START_TEST(h1_response_interim_then_final)
{
    static const char resp[] =
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok";
    struct fixture f;
    fx_init(&f, HTTP_RESPONSE, false, resp, sizeof(resp) - 1);
    ck_assert_int_eq(fx_run(&f), PX_H1_DONE);
    ck_assert_int_eq(f.p.ll.status_code, 100);
    uv_buf_t *iov = NULL;
    unsigned n = px_h1_response_head(&f.p, false, true, false, &f.a, &iov);
    char *s = flatten(iov, n);
    ck_assert_str_eq(s, "HTTP/1.1 100 Continue\r\n\r\n");
    free(s);
    px_h1_next(&f.p);
    ck_assert_int_eq(fx_run(&f), PX_H1_DONE);
    ck_assert_int_eq(f.p.ll.status_code, 200);
    ck_assert_uint_eq(f.p.body_len, 2);
    ck_assert_mem_eq(f.buf + f.p.body_off, "ok", 2);
    fx_free(&f);
}
END_TEST

START_TEST(h1_response_to_head_has_no_body)
{
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
    struct fixture f;
    fx_init(&f, HTTP_RESPONSE, false, resp, sizeof(resp) - 1);
    f.p.skip_body = true;
    ck_assert_int_eq(fx_run(&f), PX_H1_DONE);
    ck_assert_uint_eq(f.p.body_len, 0);
    ck_assert(llhttp_should_keep_alive(&f.p.ll));
    fx_free(&f);
}
END_TEST

START_TEST(h1_response_body_until_close)
{
    static const char resp[] = "HTTP/1.1 200 OK\r\n\r\nall of it";
    struct fixture f;
    fx_init(&f, HTTP_RESPONSE, false, resp, sizeof(resp) - 1);
    ck_assert_int_eq(fx_run(&f), PX_H1_MORE);
    ck_assert_uint_eq(f.p.body_len, 9);
    ck_assert(!llhttp_should_keep_alive(&f.p.ll));
    ck_assert_int_eq(px_h1_finish(&f.p), PX_H1_DONE);
    fx_free(&f);

    /* A Content-Length body cut by the close is an error, not an end. */
    static const char cut[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    fx_init(&f, HTTP_RESPONSE, false, cut, sizeof(cut) - 1);
    ck_assert_int_eq(fx_run(&f), PX_H1_MORE);
    ck_assert_int_eq(px_h1_finish(&f.p), PX_H1_ERROR);
    fx_free(&f);
}
END_TEST

START_TEST(h1_response_errors_are_502)
{
    static const char bad[] = "NOT HTTP\r\n\r\n";
    struct fixture f;
    fx_init(&f, HTTP_RESPONSE, false, bad, sizeof(bad) - 1);
    ck_assert_int_eq(fx_run(&f), PX_H1_ERROR);
    ck_assert_int_eq(f.p.error_status, 502);
    fx_free(&f);
    static const char sw[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n";
    fx_init(&f, HTTP_RESPONSE, false, sw, sizeof(sw) - 1);
    ck_assert_int_eq(fx_run(&f), PX_H1_ERROR);
    fx_free(&f);
}
END_TEST

/* ---- framing and local responses --------------------------------------------------------- */

START_TEST(h1_chunk_line)
{
    char out[PX_H1_CHUNK_LINE];
    size_t n = px_h1_chunk_line(out, 0);
    ck_assert_mem_eq(out, "0\r\n", n);
    ck_assert_uint_eq(n, 3);
    n = px_h1_chunk_line(out, 255);
    ck_assert_uint_eq(n, 4);
    ck_assert_mem_eq(out, "ff\r\n", n);
    n = px_h1_chunk_line(out, 65536);
    ck_assert_uint_eq(n, 7);
    ck_assert_mem_eq(out, "10000\r\n", n);
    n = px_h1_chunk_line(out, SIZE_MAX);
    ck_assert_uint_eq(n, 18);
    ck_assert_mem_eq(out, "ffffffffffffffff\r\n", n);
}
END_TEST

START_TEST(h1_local_response_bytes)
{
    struct px_arena a;
    px_arena_init(&a);
    char *s = NULL;
    size_t n = px_h1_local_response(&a, 404, "no route for ", "/x/y", 4, true, false, &s);
    static const char want[] = "HTTP/1.1 404 Not Found\r\n"
                               "Content-Type: text/plain; charset=utf-8\r\n"
                               "Content-Length: 18\r\n"
                               "Connection: keep-alive\r\n"
                               "\r\n"
                               "no route for /x/y\n";
    ck_assert_uint_eq(n, sizeof(want) - 1);
    ck_assert_mem_eq(s, want, n);

    /* HEAD: the same head, no body. */
    n = px_h1_local_response(&a, 503, "no route table yet", NULL, 0, false, true, &s);
    static const char head[] = "HTTP/1.1 503 Service Unavailable\r\n"
                               "Content-Type: text/plain; charset=utf-8\r\n"
                               "Content-Length: 19\r\n"
                               "Connection: close\r\n"
                               "\r\n";
    ck_assert_uint_eq(n, sizeof(head) - 1);
    ck_assert_mem_eq(s, head, n);
    px_arena_free(&a);
}
END_TEST

START_TEST(h1_hop_by_hop_names)
{
    ck_assert(px_h1_is_hop_by_hop("Connection", 10));
    ck_assert(px_h1_is_hop_by_hop("KEEP-ALIVE", 10));
    ck_assert(px_h1_is_hop_by_hop("te", 2));
    ck_assert(px_h1_is_hop_by_hop("Transfer-Encoding", 17));
    ck_assert(px_h1_is_hop_by_hop("proxy-connection", 16));
    ck_assert(!px_h1_is_hop_by_hop("Content-Length", 14));
    ck_assert(!px_h1_is_hop_by_hop("tea", 3));
}
END_TEST

START_TEST(h1_arena_reset_keeps_first_chunk)
{
    struct px_arena a;
    px_arena_init(&a);
    char *p1 = px_arena_alloc(&a, 100);
    /* A request larger than the first chunk spills into more chunks... */
    char *big = px_arena_alloc(&a, 3 * PX_ARENA_CHUNK);
    memset(big, 'x', 3 * PX_ARENA_CHUNK);
    ck_assert_uint_eq((uintptr_t)p1 % sizeof(void *), 0);
    px_arena_reset(&a);
    /* ...and after a reset allocation starts over in the first chunk. */
    char *p2 = px_arena_alloc(&a, 100);
    ck_assert_ptr_eq(p1, p2);
    px_arena_free(&a);
}
END_TEST

/* ---- hygiene beyond llhttp (docs/security.md) ------------------------------------------- */

/* Parses a whole request (head and body) given in one buffer, or one byte per execute call
 * when bytewise, as a slow client sends it. Returns the last event; the body bytes seen are
 * appended to body (room for bodylen bytes), their count in *nbody. */
static enum px_h1_event request_through(struct fixture *f, bool bytewise, char *body,
                                        size_t bodylen, size_t *nbody)
{
    enum px_h1_event ev = PX_H1_MORE;
    *nbody = 0;
    for (uint32_t end = bytewise ? 1 : f->len; end <= f->len;) {
        uint32_t used = 0;
        ev = px_h1_execute(&f->p, f->buf, f->off, end, &f->a, &used);
        f->off += used;
        if (f->p.body_len > 0 && *nbody + f->p.body_len <= bodylen) {
            memcpy(body + *nbody, f->buf + f->p.body_off, f->p.body_len);
            *nbody += f->p.body_len;
        }
        if (ev == PX_H1_HEAD) {
            px_h1_resume(&f->p);
            continue; /* the rest of this range is parsed again */
        }
        if (ev != PX_H1_MORE)
            break;
        end++;
    }
    return ev;
}

/* The status a whole request ends with (0: parsed to its end), in one piece and bytewise. */
static int whole_request_status(const char *req, bool bytewise)
{
    struct fixture f;
    char body[256];
    size_t nbody = 0;
    fx_init(&f, HTTP_REQUEST, true, req, strlen(req));
    enum px_h1_event ev = request_through(&f, bytewise, body, sizeof(body), &nbody);
    int st = ev == PX_H1_ERROR ? f.p.error_status : ev == PX_H1_DONE ? 0 : -1;
    fx_free(&f);
    return st;
}

#define CHUNKED_HEAD "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"

START_TEST(h1_refuses_bare_line_endings)
{
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\nHost: h\r\n\n",              /* the head ends with a bare LF */
        "GET / HTTP/1.0\n\r\n",                         /* request line */
        "GET / HTTP/1.0\nX: y\r\n\r\n",                 /* request line, then a header */
        "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",          /* a bare LF before the request */
        CHUNKED_HEAD "3\r\nabc\r\n0\r\n\n",             /* the last chunk */
        CHUNKED_HEAD "3\r\nabc\r\n0\r\nX-T: 1\r\n\n",   /* the trailer section */
        CHUNKED_HEAD "3;a=b\rc\r\nabc\r\n0\r\n\r\n",    /* a bare CR in a chunk-size line */
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\nb\r\n\r\n", /* a bare LF inside a header line */
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\r\n\r\n",  /* CR CR LF */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(whole_request_status(bad[i], false) == 400, "accepted: %s", bad[i]);
        ck_assert_msg(whole_request_status(bad[i], true) == 400, "accepted bytewise: %s", bad[i]);
    }
    /* Empty lines (CRLF) before a request are allowed (RFC 9112 2.2). */
    ck_assert_int_eq(whole_request_status("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", false), 0);
}
END_TEST

START_TEST(h1_refuses_chunk_data_not_followed_by_crlf)
{
    /* llhttp's loose build skips any two bytes after chunk data: "XX" here. */
    static const char *const bad[] = {
        CHUNKED_HEAD "5\r\nhelloXX0\r\n\r\n",
        CHUNKED_HEAD "5\r\nhello\r0\r\n\r\n",
        CHUNKED_HEAD "5\r\nhello\n\n0\r\n\r\n",
        CHUNKED_HEAD "2\r\nab\r\n3\r\ncdeZ\n0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(whole_request_status(bad[i], false) == 400, "accepted: %s", bad[i]);
        ck_assert_msg(whole_request_status(bad[i], true) == 400, "accepted bytewise: %s", bad[i]);
    }
}
END_TEST

START_TEST(h1_valid_chunked_request_passes_bytewise)
{
    static const char req[] = CHUNKED_HEAD "3\r\nabc\r\n2;q=\"x y\";ext=1\r\nde\r\n"
                                           "1\r\nf\r\n0\r\nX-Trailer: t\r\n\r\n";
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        struct fixture f;
        char body[64];
        size_t nbody = 0;
        fx_init(&f, HTTP_REQUEST, true, req, sizeof(req) - 1);
        ck_assert_int_eq(request_through(&f, bytewise, body, sizeof(body), &nbody), PX_H1_DONE);
        ck_assert_uint_eq(nbody, 6);
        ck_assert_mem_eq(body, "abcdef", 6);
        ck_assert_uint_eq(f.off, f.len);
        fx_free(&f);
    }
}
END_TEST

START_TEST(h1_caps_chunk_extensions)
{
    size_t cap = PX_H1_CHUNK_EXT_MAX + 256;
    char *req = xmalloc(cap);
    /* ";e=" + value: name and value bytes together at the cap pass, one more is refused. */
    for (int extra = 0; extra <= 1; extra++) {
        size_t vlen = PX_H1_CHUNK_EXT_MAX - 1 + (size_t)extra;
        int n = snprintf(req, cap, "%s3;e=", CHUNKED_HEAD);
        memset(req + n, 'v', vlen);
        snprintf(req + n + vlen, cap - (size_t)n - vlen, "\r\nabc\r\n0\r\n\r\n");
        ck_assert_int_eq(whole_request_status(req, false), extra ? 400 : 0);
    }
    /* A name alone, far over the cap. */
    int n = snprintf(req, cap, "%s3;", CHUNKED_HEAD);
    memset(req + n, 'e', PX_H1_CHUNK_EXT_MAX + 100);
    snprintf(req + n + PX_H1_CHUNK_EXT_MAX + 100, 64, "\r\nabc\r\n0\r\n\r\n");
    ck_assert_int_eq(whole_request_status(req, false), 400);
    free(req);
}
END_TEST

START_TEST(h1_refuses_empty_header_name)
{
    /* llhttp reports a line starting with ':' as a field with an empty name. */
    ck_assert_int_eq(request_status("GET / HTTP/1.1\r\n: v\r\nHost: h\r\n\r\n"), 400);
    ck_assert_int_eq(request_status("GET / HTTP/1.1\r\nHost: h\r\n:\r\n\r\n"), 400);
}
END_TEST

START_TEST(h1_refuses_bad_transfer_encoding)
{
    ck_assert_int_eq(request_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n"),
                     400);
    ck_assert_int_eq(request_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                                    "Transfer-Encoding:\r\n\r\n"),
                     400);
    ck_assert_int_eq(request_status("POST / HTTP/1.1\r\nHost: h\r\n"
                                    "Transfer-Encoding: chunked, chunked\r\n\r\n"),
                     400);
    ck_assert_int_eq(request_status("POST / HTTP/1.1\r\nHost: h\r\n"
                                    "Transfer-Encoding: chunked, gzip\r\n\r\n"),
                     400);
    ck_assert_int_eq(
        request_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"), 501);
    ck_assert_int_eq(request_status("POST / HTTP/1.1\r\nHost: h\r\n"
                                    "Transfer-Encoding: CHUNKED\r\n\r\n"),
                     0);
}
END_TEST

START_TEST(h1_request_target_and_host_syntax)
{
    ck_assert_int_eq(request_status("GET http://u:p@h/x HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    ck_assert_int_eq(request_status("GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    ck_assert_int_eq(request_status("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    ck_assert_int_eq(request_status("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
    ck_assert_int_eq(request_status("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    ck_assert_int_eq(request_status("GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    ck_assert_int_eq(request_status("GET http://h/x HTTP/1.1\r\nHost: other\r\n\r\n"), 0);
    ck_assert_int_eq(request_status("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400);
    ck_assert_int_eq(request_status("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), 400);
    ck_assert_int_eq(request_status("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
    ck_assert_int_eq(request_status("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), 0);
    ck_assert_int_eq(request_status("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 0);
}
END_TEST

static int response_status(const char *resp)
{
    struct fixture f;
    fx_init(&f, HTTP_RESPONSE, false, resp, strlen(resp));
    enum px_h1_event ev = fx_run(&f);
    int st = ev == PX_H1_ERROR ? f.p.error_status : 0;
    fx_free(&f);
    return st;
}

START_TEST(h1_response_framing_checks)
{
    ck_assert_int_eq(response_status("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx"), 502);
    ck_assert_int_eq(response_status("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     "0\r\n\r\n"),
                     502);
    ck_assert_int_eq(response_status("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
                                     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
                     502);
    ck_assert_int_eq(response_status("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\nx"), 502);
    ck_assert_int_eq(response_status("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     "1\r\nxYY0\r\n\r\n"),
                     502);
    ck_assert_int_eq(response_status("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     "1\r\nx\r\n0\r\n\r\n"),
                     0);
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {
        h1_records_target_and_headers_as_slices,
        h1_head_split_across_reads_gives_the_same_slices,
        h1_shift_keeps_slices_after_compaction,
        h1_body_bytes_of_one_parse_are_made_contiguous,
        h1_pipelined_requests_pause_at_each_end,
        h1_refuses_obs_fold,
        h1_refuses_transfer_encoding_on_http10,
        h1_refuses_ambiguous_framing,
        h1_refuses_space_in_header_name,
        h1_host_rules,
        h1_version_and_method_checks,
        h1_caps_target_and_head,
        h1_request_head_drops_hop_by_hop_and_sets_forwarding_headers,
        h1_request_head_header_kinds_and_connection_tokens,
        h1_request_head_appends_to_x_forwarded_for,
        h1_request_head_keeps_content_length_and_rechunks,
        h1_request_head_references_header_runs,
        h1_response_head_relays_status_and_sets_connection,
        h1_response_interim_then_final,
        h1_response_to_head_has_no_body,
        h1_response_body_until_close,
        h1_response_errors_are_502,
        h1_chunk_line,
        h1_local_response_bytes,
        h1_hop_by_hop_names,
        h1_arena_reset_keeps_first_chunk,
        h1_refuses_bare_line_endings,
        h1_refuses_chunk_data_not_followed_by_crlf,
        h1_valid_chunked_request_passes_bytewise,
        h1_caps_chunk_extensions,
        h1_refuses_empty_header_name,
        h1_refuses_bad_transfer_encoding,
        h1_request_target_and_host_syntax,
        h1_response_framing_checks,
        NULL,
    };
    return harness_main("http1", 0, NULL, NULL, tests);
}

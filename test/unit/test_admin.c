/* Tests for proxy/admin.c over real TCP on loopback.
 *
 * As in test_control.c: the server runs on a uv loop in the main thread, a blocking client
 * runs in a second thread and records the first failed expectation; the main thread asserts
 * after joining it. */
#include <arpa/inet.h>
#include <check.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "admin.h"
#include "harness.h"
#include "route.h"
#include "snapshot.h"
#include "xalloc.h"

static int port;
static char hostport[32];

/* Picks a free loopback port for the admin listener. */
static void pick_port(void)
{
    port = harness_free_port();
    snprintf(hostport, sizeof(hostport), "127.0.0.1:%d", port);
}

/* ---- blocking HTTP client ---- */

struct conn {
    int fd;
    char buf[1 << 16];
    size_t len; /* bytes received and not yet consumed */
};

struct resp {
    int status;
    char head[4096];
    char *body; /* owned, NUL-terminated; freed by the next read_resp into the same resp */
    size_t body_len;
};

static int cli_connect(struct conn *c)
{
    c->len = 0;
    c->fd = harness_connect_tcp(port, 10);
    return c->fd >= 0 ? 0 : -1;
}

static int send_str(struct conn *c, const char *s)
{
    return harness_send_all(c->fd, s, strlen(s));
}

/* Receives more bytes into c->buf. 1, 0 on EOF, -1 on error/timeout. */
static int fill(struct conn *c)
{
    if (c->len == sizeof(c->buf))
        return -1;
    ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (r <= 0)
        return r == 0 ? 0 : -1;
    c->len += (size_t)r;
    return 1;
}

static const char *header(const struct resp *r, const char *name)
{
    static char val[256];
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 3 + nl;
            while (*v == ' ')
                v++;
            size_t vl = strcspn(v, "\r");
            snprintf(val, sizeof(val), "%.*s", (int)vl, v);
            return val;
        }
    }
    return NULL;
}

/* Reads one response into r (freeing the body r held); head_only for answers to HEAD. Returns
 * 0 or -1. */
static int read_resp(struct conn *c, struct resp *r, bool head_only)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
    char *end;
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL)
        if (fill(c) != 1)
            return -1;
    size_t hl = (size_t)(end - c->buf) + 4;
    if (hl >= sizeof(r->head))
        return -1;
    memcpy(r->head, c->buf, hl);
    r->head[hl] = '\0';
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
        return -1;
    memmove(c->buf, c->buf + hl, c->len - hl);
    c->len -= hl;
    const char *cl = header(r, "Content-Length");
    if (cl == NULL)
        return -1;
    size_t n = head_only ? 0 : strtoul(cl, NULL, 10);
    r->body = xmalloc(n + 1);
    size_t got = 0;
    while (got < n) {
        if (c->len == 0 && fill(c) != 1) {
            free(r->body);
            r->body = NULL;
            return -1;
        }
        size_t take = c->len < n - got ? c->len : n - got;
        memcpy(r->body + got, c->buf, take);
        memmove(c->buf, c->buf + take, c->len - take);
        c->len -= take;
        got += take;
    }
    r->body[n] = '\0';
    r->body_len = n;
    return 0;
}

/* Sends req on a fresh connection and reads the response, then closes. */
static int roundtrip(const char *req, struct resp *r, bool head_only)
{
    struct conn *c = xmalloc(sizeof(*c));
    int rc = -1;
    if (cli_connect(c) == 0 && send_str(c, req) == 0)
        rc = read_resp(c, r, head_only);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
    return rc;
}

/* True when the next response on c has this status, and this body unless body is NULL. */
static bool reads(struct conn *c, struct resp *r, bool head_only, int status, const char *body)
{
    return read_resp(c, r, head_only) == 0 && r->status == status &&
           (body == NULL || strcmp(r->body, body) == 0);
}

/* The same for req sent on a fresh connection (a GET or a POST: the answer has a body). */
static bool answers(const char *req, struct resp *r, int status, const char *body)
{
    return roundtrip(req, r, false) == 0 && r->status == status &&
           (body == NULL || strcmp(r->body, body) == 0);
}

static bool closed_by_peer(struct conn *c)
{
    return harness_is_closed_by_peer(c->fd);
}

/* ---- harness ---- */

/* Each client's last words: frees what it holds, closes c (when open), ends the run. */
static void *client_end(struct conn *c, struct resp *r)
{
    if (c && c->fd >= 0)
        close(c->fd);
    free(c);
    free(r->body);
    return harness_client_done();
}

static void run_with_client(harness_client_cb client)
{
    pick_port();
    harness_serve(px_admin_start, px_admin_stop, hostport, client);
}

static void publish_example(void)
{
    const char *text =
        "{\"type\":\"snapshot\",\"protocol\":1,\"version\":42,\"routes\":["
        "{\"namespace\":\"default\",\"service\":\"httpbin\",\"mapping\":\"hb\","
        "\"prefix\":\"/httpbin/\",\"method\":\"GET\",\"host\":\"example.com\","
        "\"cluster\":\"httpbin.org:80\",\"rewrite\":\"/\",\"host_rewrite\":\"httpbin.org\"},"
        "{\"namespace\":\"ns2\",\"service\":\"v6\",\"mapping\":\"m2\",\"prefix\":\"/v6/\","
        "\"cluster\":\"v6\"}],"
        "\"clusters\":[{\"name\":\"httpbin.org:80\",\"scheme\":\"http\",\"host\":\"httpbin.org\","
        "\"port\":80},{\"name\":\"v6\",\"scheme\":\"http\",\"host\":\"fd00::1\",\"port\":8080}],"
        "\"errors\":[{\"namespace\":\"default\",\"service\":\"broken\",\"mapping\":\"m1\","
        "\"field\":\"prefix\",\"line\":4,\"message\":\"missing required field\"}]}";
    json_object *o = json_tokener_parse(text);
    struct route_table *t = NULL;
    char err[256];
    ck_assert_int_eq(route_table_from_json(o, &t, err, sizeof(err)), 0);
    json_object_put(o);
    struct px_snapshot *s = px_snapshot_new(t, err, sizeof(err));
    ck_assert_ptr_nonnull(s);
    px_snapshot_publish(s);
}

/* prefix, then fill up to total bytes (none when prefix is that long), then suffix. */
static char *padded(const char *prefix, char fill, size_t total, const char *suffix)
{
    size_t pl = strlen(prefix), sl = strlen(suffix);
    size_t n = pl > total ? pl : total;
    char *p = xmalloc(n + sl + 1);
    memcpy(p, prefix, pl);
    memset(p + pl, fill, n - pl);
    memcpy(p + n, suffix, sl + 1);
    return p;
}

/* ---- cases ---- */

static void *client_before_snapshot(void *arg)
{
    (void)arg;
    struct resp r = { 0 };
    json_object *o = NULL;
    static const struct {
        const char *req;
        int status;
        const char *body; /* NULL: any */
    } probes[] = {
        { "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n", 503, "no route table yet\n" },
        { "GET /ambassador/v0/check_ready HTTP/1.1\r\n\r\n", 503, NULL },
        { "GET /live HTTP/1.1\r\n\r\n", 200, NULL },
        { "GET /ambassador/v0/check_alive HTTP/1.1\r\n\r\n", 200, NULL },
    };
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
        EXPECT_MSG(answers(probes[i].req, &r, probes[i].status, probes[i].body), "%.40s: %d \"%s\"",
                   probes[i].req, r.status, r.body ? r.body : "");
    EXPECT(answers("GET /routes HTTP/1.1\r\n\r\n", &r, 200, NULL));
    EXPECT(header(&r, "Content-Type") &&
           strcmp(header(&r, "Content-Type"), "application/json") == 0);
    o = json_tokener_parse(r.body);
    EXPECT(o != NULL);
    EXPECT(harness_json_int(o, "version") == 0);
    EXPECT(json_object_array_length(json_object_object_get(o, "routes")) == 0);
    EXPECT(json_object_array_length(json_object_object_get(o, "errors")) == 0);
out:
    json_object_put(o);
    return client_end(NULL, &r);
}

START_TEST(admin_before_first_snapshot)
{
    run_with_client(client_before_snapshot);
}
END_TEST

static void *client_after_snapshot(void *arg)
{
    (void)arg;
    struct resp r = { 0 };
    json_object *o = NULL;
    char *routes_body = NULL;
    EXPECT(answers("GET /ready HTTP/1.1\r\n\r\n", &r, 200, "ready\n"));

    EXPECT(answers("GET /routes HTTP/1.1\r\n\r\n", &r, 200, NULL));
    routes_body = r.body;
    r.body = NULL;
    o = json_tokener_parse(routes_body);
    EXPECT(o != NULL);
    EXPECT(harness_json_int(o, "version") == 42);
    const char *at = harness_json_str(o, "applied_at");
    EXPECT(strlen(at) == 24 && at[10] == 'T' && at[23] == 'Z');
    json_object *routes = json_object_object_get(o, "routes");
    EXPECT(json_object_array_length(routes) == 2);
    static const char *const r0_fields[][2] = {
        { "upstream", "httpbin.org:80" }, { "namespace", "default" }, { "prefix", "/httpbin/" },
        { "host", "example.com" },        { "rewrite", "/" },
    };
    json_object *r0 = json_object_array_get_idx(routes, 0);
    for (size_t i = 0; i < sizeof(r0_fields) / sizeof(r0_fields[0]); i++)
        EXPECT_MSG(strcmp(harness_json_str(r0, r0_fields[i][0]), r0_fields[i][1]) == 0,
                   "routes[0].%s is \"%s\"", r0_fields[i][0],
                   harness_json_str(r0, r0_fields[i][0]));
    json_object *r1 = json_object_array_get_idx(routes, 1);
    EXPECT(strcmp(harness_json_str(r1, "upstream"), "[fd00::1]:8080") == 0);
    /* Absent optional fields are shown as null, present in every route. */
    json_object *m = NULL;
    EXPECT(json_object_object_get_ex(r1, "method", &m) && m == NULL);
    json_object *errors = json_object_object_get(o, "errors");
    EXPECT(json_object_array_length(errors) == 1);
    EXPECT(strcmp(harness_json_str(json_object_array_get_idx(errors, 0), "message"),
                  "missing required field") == 0);

    /* The Ambassador alias serves the same document. */
    EXPECT(answers("GET /ambassador/v0/diag/?json=true HTTP/1.1\r\n\r\n", &r, 200, routes_body));

    /* HEAD: same length, no body. */
    EXPECT(roundtrip("HEAD /routes HTTP/1.1\r\n\r\n", &r, true) == 0);
    EXPECT(r.status == 200 &&
           strtoul(header(&r, "Content-Length"), NULL, 10) == strlen(routes_body));

    EXPECT(answers("POST /ready HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", &r, 405, NULL));
    EXPECT(header(&r, "Allow") && strcmp(header(&r, "Allow"), "GET, HEAD") == 0);
    EXPECT(answers("GET /nope HTTP/1.1\r\n\r\n", &r, 404, NULL));
    EXPECT(answers("GET /readyz HTTP/1.1\r\n\r\n", &r, 404, NULL));
out:
    json_object_put(o);
    free(routes_body);
    return client_end(NULL, &r);
}

START_TEST(admin_after_snapshot)
{
    publish_example();
    run_with_client(client_after_snapshot);
}
END_TEST

static void *client_keep_alive(void *arg)
{
    (void)arg;
    struct resp r = { 0 };
    struct conn *c = xmalloc(sizeof(*c));
    c->fd = -1;
    EXPECT(cli_connect(c) == 0);
    /* Sequential requests on one connection. */
    for (int i = 0; i < 3; i++) {
        EXPECT(send_str(c, "GET /live HTTP/1.1\r\nHost: a\r\n\r\n") == 0);
        EXPECT(reads(c, &r, false, 200, NULL));
        EXPECT(header(&r, "Connection") == NULL);
    }
    /* Pipelined: four requests in one write, answered in order. */
    static const struct {
        bool head_only;
        int status;
        const char *body; /* NULL: any */
    } pipelined[] = {
        { false, 503, NULL }, { false, 404, NULL }, { true, 200, NULL }, { false, 200, "alive\n" }
    };
    EXPECT(send_str(c, "GET /ready HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n"
                       "HEAD /live HTTP/1.1\r\n\r\nGET /live HTTP/1.1\r\n\r\n") == 0);
    for (size_t i = 0; i < sizeof(pipelined) / sizeof(pipelined[0]); i++)
        EXPECT_MSG(reads(c, &r, pipelined[i].head_only, pipelined[i].status, pipelined[i].body),
                   "pipelined answer %zu: %d", i, r.status);
    /* Connection: close is honoured. */
    EXPECT(send_str(c, "GET /live HTTP/1.1\r\nConnection: close\r\n\r\n") == 0);
    EXPECT(reads(c, &r, false, 200, NULL));
    EXPECT(header(&r, "Connection") && strcmp(header(&r, "Connection"), "close") == 0);
    EXPECT(closed_by_peer(c));
    close(c->fd);

    /* HTTP/1.0 closes unless asked otherwise, and keeps alive when asked. */
    EXPECT(cli_connect(c) == 0);
    EXPECT(send_str(c, "GET /live HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") == 0);
    EXPECT(reads(c, &r, false, 200, NULL));
    EXPECT(header(&r, "Connection") && strcasecmp(header(&r, "Connection"), "keep-alive") == 0);
    EXPECT(send_str(c, "GET /live HTTP/1.0\r\n\r\n") == 0);
    EXPECT(reads(c, &r, false, 200, NULL));
    EXPECT(closed_by_peer(c));
out:
    return client_end(c, &r);
}

START_TEST(admin_keep_alive_pipelining_and_close)
{
    run_with_client(client_keep_alive);
}
END_TEST

static void *client_limits(void *arg)
{
    (void)arg;
    struct resp r = { 0 };
    struct conn *c = xmalloc(sizeof(*c));
    char *big = NULL;
    c->fd = -1;

    /* Each on a new connection: `first` (when set) on its own, then prefix padded with fill to
     * total bytes, then suffix; the answer must have this status, and the connection must be
     * closed after it when `closes`. */
    static const struct {
        const char *what;
        const char *first, *prefix;
        char fill;
        size_t total;
        const char *suffix;
        int status;
        bool closes;
    } caps[] = {
        /* A head over 8 KiB: 431 and closed, even when it arrives in pieces. */
        { "head over the cap", "GET /live HTTP/1.1\r\n", "X-Big: ", 'a', 9000, "\r\n\r\n", 431,
          true },
        /* Just under the cap is fine. */
        { "head under the cap", NULL, "GET /live HTTP/1.1\r\nX-Big: ", 'a', 8000, "\r\n\r\n", 200,
          false },
        { "URL over the cap", NULL, "GET /", 'a', 9500, " HTTP/1.1\r\n\r\n", 431, false },
        /* Not HTTP: 400 and closed. */
        { "not HTTP", NULL, "HELLO\x01 WORLD\r\n\r\n", 0, 0, "", 400, true },
        /* A body over the cap on a request nobody wants a body for. Exactly one byte over
         * (64 KiB + 1), so the server has read everything when it closes (unread bytes would
         * turn its close into a reset that could eat the response). */
        { "body over the cap", "POST /live HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n", "", 'b',
          8 * 8192 + 1, "", 413, false },
    };
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        free(big);
        big = padded(caps[i].prefix, caps[i].fill, caps[i].total, caps[i].suffix);
        EXPECT_MSG(cli_connect(c) == 0, "%s: no connection", caps[i].what);
        EXPECT_MSG(caps[i].first == NULL || send_str(c, caps[i].first) == 0, "%s: not sent",
                   caps[i].what);
        EXPECT_MSG(send_str(c, big) == 0, "%s: not sent", caps[i].what);
        EXPECT_MSG(reads(c, &r, false, caps[i].status, NULL), "%s: answered %d", caps[i].what,
                   r.status);
        EXPECT_MSG(!caps[i].closes || closed_by_peer(c), "%s: connection kept", caps[i].what);
        close(c->fd);
        c->fd = -1;
    }
out:
    free(big);
    return client_end(c, &r);
}

START_TEST(admin_enforces_caps)
{
    run_with_client(client_limits);
}
END_TEST

START_TEST(admin_bad_address)
{
    uv_loop_t loop;
    harness_quiet_logs();
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(px_admin_start(&loop, "127.0.0.1"), UV_EINVAL);
    pick_port();
    ck_assert_int_eq(px_admin_start(&loop, hostport), 0);
    ck_assert_int_eq(px_admin_start(&loop, hostport), UV_EBUSY);
    px_admin_stop();
    /* The port is busy while another socket holds it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fd, 1), 0);
    ck_assert_int_eq(px_admin_start(&loop, hostport), UV_EADDRINUSE);
    close(fd);
    harness_close_loop(&loop);
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {
        admin_before_first_snapshot, admin_after_snapshot, admin_keep_alive_pipelining_and_close,
        admin_enforces_caps,         admin_bad_address,    NULL,
    };
    return harness_main("admin", 60, px_snapshot_clear, px_snapshot_clear, tests);
}

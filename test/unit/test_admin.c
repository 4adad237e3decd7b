/* Tests for proxy/admin.c over real TCP on loopback.
 *
 * As in test_control.c: the server runs on a uv loop in the main thread, a blocking client
 * runs in a second thread and records the first failed expectation; the main thread asserts
 * after joining it. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "admin.h"
#include "log.h"
#include "route.h"
#include "snapshot.h"
#include "xalloc.h"

static int port;
static char hostport[32];
static char failure[512];

#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(failure, sizeof(failure), "line %d: %s", __LINE__, #cond);                    \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* Picks a free loopback port (the kernel's choice, released just before use). */
static void pick_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
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
    char *body; /* owned, NUL-terminated */
    size_t body_len;
};

static int cli_connect(struct conn *c)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return -1;
    struct timeval tv = { .tv_sec = 10 };
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return 0;
}

static int send_str(struct conn *c, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
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

/* Reads one response; head_only for answers to HEAD. Returns 0 or -1. */
static int read_resp(struct conn *c, struct resp *r, bool head_only)
{
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
    close(c->fd);
    free(c);
    return rc;
}

static bool closed_by_peer(struct conn *c)
{
    char ch;
    ssize_t n = recv(c->fd, &ch, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* ---- harness ---- */

static uv_async_t done_async;

static void on_done(uv_async_t *a)
{
    px_admin_stop();
    uv_close((uv_handle_t *)a, NULL);
}

static void run_with_client(void *(*client)(void *))
{
    uv_loop_t loop;
    pthread_t th;
    failure[0] = '\0';
    log_configure(LOG_LEVEL_ERROR + 1, LOG_FORMAT_LOGFMT, "test");
    pick_port();
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(px_admin_start(&loop, hostport), 0);
    uv_async_init(&loop, &done_async, on_done);
    ck_assert_int_eq(pthread_create(&th, NULL, client, NULL), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    ck_assert_msg(failure[0] == '\0', "%s", failure);
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

/* ---- cases ---- */

static void *client_before_snapshot(void *arg)
{
    (void)arg;
    struct resp r = { 0 };
    json_object *o = NULL;
    EXPECT(roundtrip("GET /ready HTTP/1.1\r\nHost: x\r\n\r\n", &r, false) == 0);
    EXPECT(r.status == 503 && strcmp(r.body, "no route table yet\n") == 0);
    free(r.body);
    EXPECT(roundtrip("GET /ambassador/v0/check_ready HTTP/1.1\r\n\r\n", &r, false) == 0);
    EXPECT(r.status == 503);
    free(r.body);
    EXPECT(roundtrip("GET /live HTTP/1.1\r\n\r\n", &r, false) == 0);
    EXPECT(r.status == 200);
    free(r.body);
    EXPECT(roundtrip("GET /ambassador/v0/check_alive HTTP/1.1\r\n\r\n", &r, false) == 0);
    EXPECT(r.status == 200);
    free(r.body);
    EXPECT(roundtrip("GET /routes HTTP/1.1\r\n\r\n", &r, false) == 0);
    EXPECT(r.status == 200 && strcmp(header(&r, "Content-Type"), "application/json") == 0);
    o = json_tokener_parse(r.body);
    EXPECT(o != NULL);
    EXPECT(json_object_get_int64(json_object_object_get(o, "version")) == 0);
    EXPECT(json_object_array_length(json_object_object_get(o, "routes")) == 0);
    EXPECT(json_object_array_length(json_object_object_get(o, "errors")) == 0);
out:
    json_object_put(o);
    free(r.body);
    uv_async_send(&done_async);
    return NULL;
}

START_TEST(admin_before_first_snapshot)
{
    px_snapshot_clear();
    run_with_client(client_before_snapshot);
}
END_TEST

static void *client_after_snapshot(void *arg)
{
    (void)arg;
    struct resp r = { 0 };
    json_object *o = NULL;
    char *routes_body = NULL;
    EXPECT(roundtrip("GET /ready HTTP/1.1\r\n\r\n", &r, false) == 0);
    EXPECT(r.status == 200 && strcmp(r.body, "ready\n") == 0);
    free(r.body);

    EXPECT(roundtrip("GET /routes HTTP/1.1\r\n\r\n", &r, false) == 0);
    EXPECT(r.status == 200);
    routes_body = r.body;
    r.body = NULL;
    o = json_tokener_parse(routes_body);
    EXPECT(o != NULL);
    EXPECT(json_object_get_int64(json_object_object_get(o, "version")) == 42);
    const char *at = json_object_get_string(json_object_object_get(o, "applied_at"));
    EXPECT(at && strlen(at) == 24 && at[10] == 'T' && at[23] == 'Z');
    json_object *routes = json_object_object_get(o, "routes");
    EXPECT(json_object_array_length(routes) == 2);
    json_object *r0 = json_object_array_get_idx(routes, 0);
    EXPECT(strcmp(json_object_get_string(json_object_object_get(r0, "upstream")),
                  "httpbin.org:80") == 0);
    EXPECT(strcmp(json_object_get_string(json_object_object_get(r0, "namespace")), "default") == 0);
    EXPECT(strcmp(json_object_get_string(json_object_object_get(r0, "prefix")), "/httpbin/") == 0);
    EXPECT(strcmp(json_object_get_string(json_object_object_get(r0, "host")), "example.com") == 0);
    EXPECT(strcmp(json_object_get_string(json_object_object_get(r0, "rewrite")), "/") == 0);
    json_object *r1 = json_object_array_get_idx(routes, 1);
    EXPECT(strcmp(json_object_get_string(json_object_object_get(r1, "upstream")),
                  "[fd00::1]:8080") == 0);
    /* Absent optional fields are shown as null, present in every route. */
    json_object *m = NULL;
    EXPECT(json_object_object_get_ex(r1, "method", &m) && m == NULL);
    json_object *errors = json_object_object_get(o, "errors");
    EXPECT(json_object_array_length(errors) == 1);
    EXPECT(strcmp(json_object_get_string(
                      json_object_object_get(json_object_array_get_idx(errors, 0), "message")),
                  "missing required field") == 0);

    /* The Ambassador alias serves the same document. */
    EXPECT(roundtrip("GET /ambassador/v0/diag/?json=true HTTP/1.1\r\n\r\n", &r, false) == 0);
    EXPECT(r.status == 200 && strcmp(r.body, routes_body) == 0);
    free(r.body);
    r.body = NULL;

    /* HEAD: same length, no body. */
    EXPECT(roundtrip("HEAD /routes HTTP/1.1\r\n\r\n", &r, true) == 0);
    EXPECT(r.status == 200 &&
           strtoul(header(&r, "Content-Length"), NULL, 10) == strlen(routes_body));
    free(r.body);
    r.body = NULL;

    EXPECT(roundtrip("POST /ready HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", &r, false) == 0);
    EXPECT(r.status == 405 && strcmp(header(&r, "Allow"), "GET, HEAD") == 0);
    free(r.body);
    r.body = NULL;
    EXPECT(roundtrip("GET /nope HTTP/1.1\r\n\r\n", &r, false) == 0);
    EXPECT(r.status == 404);
    free(r.body);
    r.body = NULL;
    EXPECT(roundtrip("GET /readyz HTTP/1.1\r\n\r\n", &r, false) == 0);
    EXPECT(r.status == 404);
out:
    json_object_put(o);
    free(routes_body);
    free(r.body);
    uv_async_send(&done_async);
    return NULL;
}

START_TEST(admin_after_snapshot)
{
    px_snapshot_clear();
    publish_example();
    run_with_client(client_after_snapshot);
    px_snapshot_clear();
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
        EXPECT(read_resp(c, &r, false) == 0 && r.status == 200);
        EXPECT(header(&r, "Connection") == NULL);
        free(r.body);
        r.body = NULL;
    }
    /* Pipelined: three requests in one write, answered in order. */
    EXPECT(send_str(c, "GET /ready HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n"
                       "HEAD /live HTTP/1.1\r\n\r\nGET /live HTTP/1.1\r\n\r\n") == 0);
    EXPECT(read_resp(c, &r, false) == 0 && r.status == 503);
    free(r.body);
    EXPECT(read_resp(c, &r, false) == 0 && r.status == 404);
    free(r.body);
    EXPECT(read_resp(c, &r, true) == 0 && r.status == 200);
    free(r.body);
    EXPECT(read_resp(c, &r, false) == 0 && r.status == 200 && strcmp(r.body, "alive\n") == 0);
    free(r.body);
    r.body = NULL;
    /* Connection: close is honoured. */
    EXPECT(send_str(c, "GET /live HTTP/1.1\r\nConnection: close\r\n\r\n") == 0);
    EXPECT(read_resp(c, &r, false) == 0 && r.status == 200);
    EXPECT(header(&r, "Connection") && strcmp(header(&r, "Connection"), "close") == 0);
    EXPECT(closed_by_peer(c));
    close(c->fd);
    free(r.body);
    r.body = NULL;

    /* HTTP/1.0 closes unless asked otherwise, and keeps alive when asked. */
    EXPECT(cli_connect(c) == 0);
    EXPECT(send_str(c, "GET /live HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") == 0);
    EXPECT(read_resp(c, &r, false) == 0 && r.status == 200);
    EXPECT(header(&r, "Connection") && strcasecmp(header(&r, "Connection"), "keep-alive") == 0);
    free(r.body);
    r.body = NULL;
    EXPECT(send_str(c, "GET /live HTTP/1.0\r\n\r\n") == 0);
    EXPECT(read_resp(c, &r, false) == 0 && r.status == 200);
    EXPECT(closed_by_peer(c));
out:
    if (c->fd >= 0)
        close(c->fd);
    free(c);
    free(r.body);
    uv_async_send(&done_async);
    return NULL;
}

START_TEST(admin_keep_alive_pipelining_and_close)
{
    px_snapshot_clear();
    run_with_client(client_keep_alive);
}
END_TEST

static void *client_limits(void *arg)
{
    (void)arg;
    struct resp r = { 0 };
    struct conn *c = xmalloc(sizeof(*c));
    char *big = xmalloc(10000);
    c->fd = -1;

    /* A head over 8 KiB: 431 and closed, even when it arrives in pieces. */
    EXPECT(cli_connect(c) == 0);
    EXPECT(send_str(c, "GET /live HTTP/1.1\r\n") == 0);
    memset(big, 'a', 9000);
    memcpy(big, "X-Big: ", 7);
    memcpy(big + 9000, "\r\n\r\n", 5);
    EXPECT(send_str(c, big) == 0);
    EXPECT(read_resp(c, &r, false) == 0 && r.status == 431);
    EXPECT(closed_by_peer(c));
    close(c->fd);
    free(r.body);
    r.body = NULL;

    /* Just under the cap is fine. */
    EXPECT(cli_connect(c) == 0);
    memset(big, 'a', 8000);
    memcpy(big, "GET /live HTTP/1.1\r\nX-Big: ", 27);
    memcpy(big + 8000, "\r\n\r\n", 5);
    EXPECT(send_str(c, big) == 0);
    EXPECT(read_resp(c, &r, false) == 0 && r.status == 200);
    close(c->fd);
    free(r.body);
    r.body = NULL;

    /* A URL over the cap. */
    EXPECT(cli_connect(c) == 0);
    memset(big, 'a', 9500);
    memcpy(big, "GET /", 5);
    memcpy(big + 9500, " HTTP/1.1\r\n\r\n", 14);
    EXPECT(send_str(c, big) == 0);
    EXPECT(read_resp(c, &r, false) == 0 && r.status == 431);
    close(c->fd);
    free(r.body);
    r.body = NULL;

    /* Not HTTP: 400 and closed. */
    EXPECT(cli_connect(c) == 0);
    EXPECT(send_str(c, "HELLO\x01 WORLD\r\n\r\n") == 0);
    EXPECT(read_resp(c, &r, false) == 0 && r.status == 400);
    EXPECT(closed_by_peer(c));
    close(c->fd);
    free(r.body);
    r.body = NULL;

    /* A body over the cap on a request nobody wants a body for. */
    EXPECT(cli_connect(c) == 0);
    EXPECT(send_str(c, "POST /live HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n") == 0);
    /* Exactly one byte over, so the server has read everything when it closes (unread
     * bytes would turn its close into a reset that could eat the response). */
    memset(big, 'b', 8192);
    big[8192] = '\0';
    for (int i = 0; i < 8; i++)
        EXPECT(send_str(c, big) == 0);
    EXPECT(send_str(c, "b") == 0);
    EXPECT(read_resp(c, &r, false) == 0 && r.status == 413);
    close(c->fd);
    c->fd = -1;
out:
    if (c->fd >= 0)
        close(c->fd);
    free(c);
    free(big);
    free(r.body);
    uv_async_send(&done_async);
    return NULL;
}

START_TEST(admin_enforces_caps)
{
    px_snapshot_clear();
    run_with_client(client_limits);
}
END_TEST

START_TEST(admin_bad_address)
{
    uv_loop_t loop;
    log_configure(LOG_LEVEL_ERROR + 1, LOG_FORMAT_LOGFMT, "test");
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
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, admin_before_first_snapshot);
    tcase_add_test(tc, admin_after_snapshot);
    tcase_add_test(tc, admin_keep_alive_pipelining_and_close);
    tcase_add_test(tc, admin_enforces_caps);
    tcase_add_test(tc, admin_bad_address);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

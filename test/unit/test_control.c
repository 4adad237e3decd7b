/* Tests for proxy/control.c over a real Unix socket.
 *
 * The server runs on a uv loop in the test's main thread; the controller side is a blocking
 * client in a second thread, which records the first failed expectation as a message and
 * wakes the loop to stop when done. The main thread asserts after joining it. */
#include <check.h>
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "buf.h"
#include "control.h"
#include "frame.h"
#include "log.h"
#include "route.h"
#include "snapshot.h"
#include "xalloc.h"

static char dir[48], sock_path[96];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/legate-ctl-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sock_path, sizeof(sock_path), "%s/control.sock", dir);
    log_configure(LOG_LEVEL_ERROR + 1, LOG_FORMAT_LOGFMT, "test"); /* quiet */
    px_snapshot_clear();
}

static void remove_dir(void)
{
    unlink(sock_path);
    rmdir(dir);
}

/* ---- blocking client ---- */

static int cli_connect(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = { .tv_sec = 20 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_frame(int fd, const char *payload, size_t len)
{
    struct buf b;
    buf_init(&b, len + 4);
    int rc = frame_encode(&b, payload, len);
    if (rc == 0)
        rc = send_all(fd, b.data, b.len);
    buf_free(&b);
    return rc;
}

static int read_all(int fd, void *p, size_t n)
{
    char *c = p;
    while (n > 0) {
        ssize_t r = recv(fd, c, n, 0);
        if (r == 0)
            return 0;
        if (r < 0)
            return -1;
        c += r;
        n -= (size_t)r;
    }
    return 1;
}

/* Reads one frame as JSON. Returns the object, or NULL on EOF, error or bad JSON. */
static json_object *read_msg(int fd)
{
    unsigned char h[4];
    if (read_all(fd, h, 4) != 1)
        return NULL;
    size_t n = ((size_t)h[0] << 24) | ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3];
    char *p = xmalloc(n + 1);
    json_object *o = NULL;
    if (read_all(fd, p, n) == 1) {
        p[n] = '\0';
        o = json_tokener_parse(p);
    }
    free(p);
    return o;
}

/* True when the peer has closed: recv sees EOF (or a reset) rather than data or a timeout. */
static bool closed_by_peer(int fd)
{
    char c;
    ssize_t r = recv(fd, &c, 1, 0);
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

static const char *str_field(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

static int64_t int_field(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : -1;
}

/* A snapshot message with n routes "/r<i>/" to one cluster, optionally broken (the last route
 * a prefix_regex that does not compile). */
static char *snapshot_text(int64_t version, size_t n, const char *cluster_ref, bool regex)
{
    struct buf b;
    buf_init(&b, (size_t)1 << 30);
    buf_printf(&b, "{\"type\":\"snapshot\",\"protocol\":1,\"version\":%lld,\"routes\":[",
               (long long)version);
    for (size_t i = 0; i < n; i++)
        buf_printf(&b,
                   "%s{\"namespace\":\"default\",\"service\":\"s%zu\",\"mapping\":\"m%zu\","
                   "\"prefix\":\"/r%zu/%s\",\"prefix_regex\":%s,\"cluster\":\"%s\"}",
                   i ? "," : "", i, i, i, regex && i == n - 1 ? "(" : "",
                   regex && i == n - 1 ? "true" : "false", i == n - 1 ? cluster_ref : "up:80");
    buf_append_str(&b, "],\"clusters\":[{\"name\":\"up:80\",\"scheme\":\"http\",\"host\":\"up\","
                       "\"port\":80}],\"errors\":[{\"message\":\"bad mapping\"}]}");
    return buf_steal(&b);
}

/* ---- harness ---- */

static char failure[512];
#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(failure, sizeof(failure), "line %d: %s", __LINE__, #cond);                    \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

static uv_async_t done_async;

static void on_done(uv_async_t *a)
{
    px_control_stop();
    uv_close((uv_handle_t *)a, NULL);
}

/* Runs the control server until client() returns, then stops it and checks the loop closes. */
static void run_with_client(void *(*client)(void *))
{
    uv_loop_t loop;
    pthread_t th;
    failure[0] = '\0';
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(px_control_start(&loop, sock_path), 0);
    uv_async_init(&loop, &done_async, on_done);
    ck_assert_int_eq(pthread_create(&th, NULL, client, NULL), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    ck_assert_int_eq(uv_loop_close(&loop), 0); /* every handle was closed */
    ck_assert_msg(failure[0] == '\0', "%s", failure);
}

static uint64_t current_version(void)
{
    struct px_snapshot *s = px_snapshot_current();
    uint64_t v = s ? s->table->version : 0;
    px_snapshot_release(s);
    return v;
}

/* ---- cases ---- */

static void *client_snapshot_ack_nack(void *arg)
{
    (void)arg;
    json_object *m = NULL;
    char *text = NULL;
    int fd = cli_connect();
    EXPECT(fd >= 0);
    m = read_msg(fd);
    EXPECT(m && strcmp(str_field(m, "type"), "hello") == 0);
    EXPECT(int_field(m, "protocol") == 1 && int_field(m, "version") == 0);
    EXPECT(int_field(m, "pid") == getpid());
    json_object_put(m);

    text = snapshot_text(42, 3, "up:80", false);
    EXPECT(send_frame(fd, text, strlen(text)) == 0);
    free(text);
    text = NULL;
    m = read_msg(fd);
    EXPECT(m && strcmp(str_field(m, "type"), "ack") == 0);
    EXPECT(int_field(m, "version") == 42 && int_field(m, "routes") == 3);
    EXPECT(int_field(m, "clusters") == 1 && int_field(m, "apply_us") >= 0);
    json_object_put(m);
    EXPECT(current_version() == 42);
    struct px_snapshot *s = px_snapshot_current();
    bool ok = s && s->table->nroutes == 3 && strcmp(s->table->routes[2].prefix, "/r2/") == 0 &&
              s->table->nerrors == 1;
    px_snapshot_release(s);
    EXPECT(ok);

    /* Refused snapshots: nack with the reason, old table kept, connection kept. */
    text = snapshot_text(43, 2, "nowhere:80", false);
    EXPECT(send_frame(fd, text, strlen(text)) == 0);
    free(text);
    text = NULL;
    m = read_msg(fd);
    EXPECT(m && strcmp(str_field(m, "type"), "nack") == 0 && int_field(m, "version") == 43);
    EXPECT(strstr(str_field(m, "reason"), "unknown cluster \"nowhere:80\"") != NULL);
    json_object_put(m);
    EXPECT(current_version() == 42);

    text = snapshot_text(44, 2, "up:80", true);
    EXPECT(send_frame(fd, text, strlen(text)) == 0);
    free(text);
    text = NULL;
    m = read_msg(fd);
    EXPECT(m && strcmp(str_field(m, "type"), "nack") == 0 && int_field(m, "version") == 44);
    EXPECT(strstr(str_field(m, "reason"), "prefix_regex") != NULL);
    json_object_put(m);
    EXPECT(current_version() == 42);

    const char *proto2 = "{\"type\":\"snapshot\",\"protocol\":2,\"version\":45,\"routes\":[],"
                         "\"clusters\":[],\"errors\":[]}";
    EXPECT(send_frame(fd, proto2, strlen(proto2)) == 0);
    m = read_msg(fd);
    EXPECT(m && strcmp(str_field(m, "type"), "nack") == 0);
    EXPECT(strstr(str_field(m, "reason"), "protocol") != NULL);
    json_object_put(m);

    /* Still the same connection, and a resent version is applied again. */
    text = snapshot_text(42, 1, "up:80", false);
    EXPECT(send_frame(fd, text, strlen(text)) == 0);
    m = read_msg(fd);
    EXPECT(m && strcmp(str_field(m, "type"), "ack") == 0 && int_field(m, "routes") == 1);
    json_object_put(m);
    m = NULL;

    /* A frame split across writes, then two frames in one write: one ack each, in order. */
    struct buf two;
    buf_init(&two, 1 << 20);
    free(text);
    text = snapshot_text(50, 2, "up:80", false);
    frame_encode(&two, text, strlen(text));
    bool sent = send_all(fd, two.data, 3) == 0 && usleep(20000) == 0 &&
                send_all(fd, two.data + 3, 10) == 0 && usleep(20000) == 0 &&
                send_all(fd, two.data + 13, two.len - 13) == 0;
    buf_reset(&two);
    free(text);
    text = snapshot_text(51, 3, "up:80", false);
    frame_encode(&two, text, strlen(text));
    frame_encode(&two, text, strlen(text));
    sent = sent && send_all(fd, two.data, two.len) == 0;
    buf_free(&two);
    EXPECT(sent);
    int64_t want[][2] = { { 50, 2 }, { 51, 3 }, { 51, 3 } };
    for (int i = 0; i < 3; i++) {
        m = read_msg(fd);
        EXPECT(m && strcmp(str_field(m, "type"), "ack") == 0);
        EXPECT(int_field(m, "version") == want[i][0] && int_field(m, "routes") == want[i][1]);
        json_object_put(m);
        m = NULL;
    }
    EXPECT(current_version() == 51);
    close(fd);

    /* A new controller is told what is being served. */
    fd = cli_connect();
    m = read_msg(fd);
    EXPECT(m && int_field(m, "version") == 51);
out:
    json_object_put(m);
    free(text);
    if (fd >= 0)
        close(fd);
    uv_async_send(&done_async);
    return NULL;
}

START_TEST(control_hello_snapshot_ack_and_nack)
{
    make_dir();
    run_with_client(client_snapshot_ack_nack);
    ck_assert_uint_eq(current_version(), 51);
    /* The socket file goes away with the server. */
    ck_assert_int_ne(access(sock_path, F_OK), 0);
    px_snapshot_clear();
    remove_dir();
}
END_TEST

static void *client_garbage(void *arg)
{
    (void)arg;
    json_object *m = NULL;
    char *text = snapshot_text(7, 2, "up:80", false);
    int fd = cli_connect();
    EXPECT(fd >= 0);
    m = read_msg(fd);
    EXPECT(m != NULL);
    json_object_put(m);
    m = NULL;
    EXPECT(send_frame(fd, text, strlen(text)) == 0);
    m = read_msg(fd);
    EXPECT(m && strcmp(str_field(m, "type"), "ack") == 0);
    json_object_put(m);
    m = NULL;

    /* Not JSON: dropped without an answer, table unchanged. */
    EXPECT(send_frame(fd, "hello there", 11) == 0);
    EXPECT(closed_by_peer(fd));
    close(fd);
    EXPECT(current_version() == 7);

    /* JSON followed by more bytes in the same frame is not one object either. */
    fd = cli_connect();
    EXPECT(fd >= 0);
    json_object_put(read_msg(fd));
    EXPECT(send_frame(fd, "{\"type\":\"snapshot\"} x", 21) == 0);
    EXPECT(closed_by_peer(fd));
    close(fd);

    /* A length over the 64 MiB cap: closed before any payload is sent. */
    fd = cli_connect();
    EXPECT(fd >= 0);
    json_object_put(read_msg(fd));
    EXPECT(send_all(fd, "\x04\x00\x00\x01", 4) == 0);
    EXPECT(closed_by_peer(fd));
    close(fd);

    /* Valid JSON of an unknown type: a nack, then the connection closes. */
    fd = cli_connect();
    EXPECT(fd >= 0);
    json_object_put(read_msg(fd));
    EXPECT(send_frame(fd, "{\"type\":\"delta\",\"version\":8}", 28) == 0);
    m = read_msg(fd);
    EXPECT(m && strcmp(str_field(m, "type"), "nack") == 0 && int_field(m, "version") == 8);
    EXPECT(strstr(str_field(m, "reason"), "unknown message type \"delta\"") != NULL);
    EXPECT(closed_by_peer(fd));
    close(fd);
    EXPECT(current_version() == 7);

    /* And the server still serves. */
    fd = cli_connect();
    EXPECT(fd >= 0);
    json_object_put(m);
    m = read_msg(fd);
    EXPECT(m && strcmp(str_field(m, "type"), "hello") == 0 && int_field(m, "version") == 7);
out:
    json_object_put(m);
    free(text);
    if (fd >= 0)
        close(fd);
    uv_async_send(&done_async);
    return NULL;
}

START_TEST(control_garbage_and_oversized_frames_close)
{
    make_dir();
    run_with_client(client_garbage);
    px_snapshot_clear();
    remove_dir();
}
END_TEST

static void *client_replace(void *arg)
{
    (void)arg;
    json_object *m = NULL;
    char *text = snapshot_text(9, 1, "up:80", false);
    int b = -1, a = cli_connect();
    EXPECT(a >= 0);
    json_object_put(read_msg(a));
    b = cli_connect();
    EXPECT(b >= 0);
    m = read_msg(b);
    EXPECT(m && strcmp(str_field(m, "type"), "hello") == 0);
    /* The older controller is dropped; the newer one is served. */
    EXPECT(closed_by_peer(a));
    EXPECT(send_frame(b, text, strlen(text)) == 0);
    json_object_put(m);
    m = read_msg(b);
    EXPECT(m && strcmp(str_field(m, "type"), "ack") == 0 && int_field(m, "version") == 9);
out:
    json_object_put(m);
    free(text);
    if (a >= 0)
        close(a);
    if (b >= 0)
        close(b);
    uv_async_send(&done_async);
    return NULL;
}

START_TEST(control_newer_connection_replaces_older)
{
    make_dir();
    run_with_client(client_replace);
    px_snapshot_clear();
    remove_dir();
}
END_TEST

static int64_t big_apply_us;

static void *client_big(void *arg)
{
    (void)arg;
    json_object *m = NULL;
    char *text = snapshot_text(100, 100000, "up:80", false);
    int fd = cli_connect();
    EXPECT(fd >= 0);
    json_object_put(read_msg(fd));
    EXPECT(send_frame(fd, text, strlen(text)) == 0);
    m = read_msg(fd);
    EXPECT(m && strcmp(str_field(m, "type"), "ack") == 0 && int_field(m, "routes") == 100000);
    big_apply_us = int_field(m, "apply_us");
out:
    json_object_put(m);
    free(text);
    if (fd >= 0)
        close(fd);
    uv_async_send(&done_async);
    return NULL;
}

START_TEST(control_applies_100k_route_snapshot)
{
    make_dir();
    run_with_client(client_big);
    fprintf(stderr, "control: 100000-route snapshot applied in %lld us\n", (long long)big_apply_us);
    ck_assert_uint_eq(current_version(), 100);
    px_snapshot_clear();
    remove_dir();
}
END_TEST

START_TEST(control_socket_path_checks)
{
    uv_loop_t loop;
    struct stat st;
    make_dir();
    ck_assert_int_eq(uv_loop_init(&loop), 0);

    /* Missing directory: an error, not a mkdir. */
    char missing[192];
    snprintf(missing, sizeof(missing), "%s/nope/control.sock", dir);
    ck_assert_int_eq(px_control_start(&loop, missing), UV_ENOENT);

    /* A regular file in the way is not ours to delete. */
    FILE *f = fopen(sock_path, "w");
    fclose(f);
    ck_assert_int_eq(px_control_start(&loop, sock_path), UV_EEXIST);
    ck_assert_int_eq(access(sock_path, F_OK), 0);
    unlink(sock_path);

    /* A socket someone still listens on belongs to a live proxy. */
    int live = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    ck_assert_int_eq(bind(live, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(live, 1), 0);
    ck_assert_int_eq(px_control_start(&loop, sock_path), UV_EADDRINUSE);
    /* Once it is gone the file is stale, and is replaced. */
    close(live);
    ck_assert_int_eq(px_control_start(&loop, sock_path), 0);
    ck_assert_int_eq(stat(sock_path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(px_control_start(&loop, sock_path), UV_EBUSY);
    px_control_stop();
    ck_assert_int_ne(access(sock_path, F_OK), 0);

    char longpath[200];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    ck_assert_int_eq(px_control_start(&loop, longpath), UV_ENAMETOOLONG);

    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    remove_dir();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("control");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, control_hello_snapshot_ack_and_nack);
    tcase_add_test(tc, control_garbage_and_oversized_frames_close);
    tcase_add_test(tc, control_newer_connection_replaces_older);
    tcase_add_test(tc, control_applies_100k_route_snapshot);
    tcase_add_test(tc, control_socket_path_checks);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Tests for proxy/control.c over a real Unix socket.
 *
 * The server runs on a uv loop in the test's main thread; the controller side is a blocking
 * client in a second thread, which records the first failed expectation as a message and
 * wakes the loop to stop when done. The main thread asserts after joining it. */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "buf.h"
#include "control.h"
#include "frame.h"
#include "harness.h"
#include "route.h"
#include "snapshot.h"
#include "xalloc.h"

static char dir[48], sock_path[96];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/legate-ctl-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sock_path, sizeof(sock_path), "%s/control.sock", dir);
    harness_quiet_logs();
    px_snapshot_clear();
}

static void remove_dir(void)
{
    px_snapshot_clear();
    unlink(sock_path);
    rmdir(dir);
}

/* ---- blocking client ---- */

static int send_frame(int fd, const char *payload, size_t len)
{
    struct buf b;
    buf_init(&b, len + 4);
    int rc = frame_encode(&b, payload, len);
    if (rc == 0)
        rc = harness_send_all(fd, b.data, b.len);
    buf_free(&b);
    return rc;
}

/* Reads one frame as JSON. Returns the object, or NULL on EOF, error or bad JSON. */
static json_object *read_msg(int fd)
{
    unsigned char h[4];
    if (harness_recv_all(fd, h, 4) != 1)
        return NULL;
    size_t n = ((size_t)h[0] << 24) | ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3];
    char *p = xmalloc(n + 1);
    json_object *o = NULL;
    if (harness_recv_all(fd, p, n) == 1) {
        p[n] = '\0';
        o = json_tokener_parse(p);
    }
    free(p);
    return o;
}

/* Connects as a controller and reads the proxy's first message. Returns the descriptor, or -1
 * (nothing open) when either fails; the message goes to *hello (the caller's to free), or is
 * dropped when hello is NULL. */
static int cli_open(json_object **hello)
{
    int fd = harness_connect_unix(sock_path, 20);
    json_object *m = fd >= 0 ? read_msg(fd) : NULL;
    if (m == NULL) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (hello)
        *hello = m;
    else
        json_object_put(m);
    return fd;
}

/* True when m is a message of this type, and of this version unless version is -1. */
static bool is_msg(json_object *m, const char *type, int64_t version)
{
    return m != NULL && strcmp(harness_json_str(m, "type"), type) == 0 &&
           (version < 0 || harness_json_int(m, "version") == version);
}

/* Frees *m and forgets it, so that a client's `out:` does not free it again. */
static void drop(json_object **m)
{
    json_object_put(*m);
    *m = NULL;
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

/* Sends snapshot_text(version, n, cluster_ref, regex) as one frame and returns the answer, or
 * NULL when sending or reading it fails. */
static json_object *exchange_snapshot(int fd, int64_t version, size_t n, const char *cluster_ref,
                                      bool regex)
{
    char *text = snapshot_text(version, n, cluster_ref, regex);
    json_object *m = send_frame(fd, text, strlen(text)) == 0 ? read_msg(fd) : NULL;
    free(text);
    return m;
}

/* ---- harness ---- */

/* Each client's last words: frees what it holds, closes fd (when open), ends the run. */
static void *client_end(json_object *m, char *text, int fd)
{
    json_object_put(m);
    free(text);
    if (fd >= 0)
        close(fd);
    return harness_client_done();
}

/* Runs the control server until client() returns, then stops it and checks the loop closes. */
static void run_with_client(harness_client_cb client)
{
    harness_serve(px_control_start, px_control_stop, sock_path, client);
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
    int fd = cli_open(&m);
    EXPECT(fd >= 0);
    EXPECT(is_msg(m, "hello", 0));
    EXPECT(harness_json_int(m, "protocol") == 1);
    EXPECT(harness_json_int(m, "pid") == getpid());
    drop(&m);

    m = exchange_snapshot(fd, 42, 3, "up:80", false);
    EXPECT(is_msg(m, "ack", 42) && harness_json_int(m, "routes") == 3);
    EXPECT(harness_json_int(m, "clusters") == 1 && harness_json_int(m, "apply_us") >= 0);
    drop(&m);
    EXPECT(current_version() == 42);
    struct px_snapshot *s = px_snapshot_current();
    bool ok = s && s->table->nroutes == 3 && strcmp(s->table->routes[2].prefix, "/r2/") == 0 &&
              s->table->nerrors == 1;
    px_snapshot_release(s);
    EXPECT(ok);

    /* Refused snapshots: nack with the reason, old table kept, connection kept. */
    static const struct {
        int64_t version;
        const char *cluster_ref;
        bool regex;
        const char *reason;
    } refused[] = {
        { 43, "nowhere:80", false, "unknown cluster \"nowhere:80\"" },
        { 44, "up:80", true, "prefix_regex" },
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        m = exchange_snapshot(fd, refused[i].version, 2, refused[i].cluster_ref, refused[i].regex);
        EXPECT_MSG(is_msg(m, "nack", refused[i].version), "version %lld: no nack",
                   (long long)refused[i].version);
        EXPECT_MSG(strstr(harness_json_str(m, "reason"), refused[i].reason) != NULL,
                   "version %lld: reason \"%s\"", (long long)refused[i].version,
                   harness_json_str(m, "reason"));
        drop(&m);
        EXPECT(current_version() == 42);
    }

    const char *proto2 = "{\"type\":\"snapshot\",\"protocol\":2,\"version\":45,\"routes\":[],"
                         "\"clusters\":[],\"errors\":[]}";
    EXPECT(send_frame(fd, proto2, strlen(proto2)) == 0);
    m = read_msg(fd);
    EXPECT(is_msg(m, "nack", -1));
    EXPECT(strstr(harness_json_str(m, "reason"), "protocol") != NULL);
    drop(&m);

    /* Still the same connection, and a resent version is applied again. */
    m = exchange_snapshot(fd, 42, 1, "up:80", false);
    EXPECT(is_msg(m, "ack", 42) && harness_json_int(m, "routes") == 1);
    drop(&m);

    /* A frame split across writes, then two frames in one write: one ack each, in order. */
    struct buf two;
    buf_init(&two, 1 << 20);
    text = snapshot_text(50, 2, "up:80", false);
    frame_encode(&two, text, strlen(text));
    bool sent = harness_send_all(fd, two.data, 3) == 0 && usleep(20000) == 0 &&
                harness_send_all(fd, two.data + 3, 10) == 0 && usleep(20000) == 0 &&
                harness_send_all(fd, two.data + 13, two.len - 13) == 0;
    buf_reset(&two);
    free(text);
    text = snapshot_text(51, 3, "up:80", false);
    frame_encode(&two, text, strlen(text));
    frame_encode(&two, text, strlen(text));
    sent = sent && harness_send_all(fd, two.data, two.len) == 0;
    buf_free(&two);
    EXPECT(sent);
    int64_t want[][2] = { { 50, 2 }, { 51, 3 }, { 51, 3 } };
    for (int i = 0; i < 3; i++) {
        m = read_msg(fd);
        EXPECT(is_msg(m, "ack", want[i][0]) && harness_json_int(m, "routes") == want[i][1]);
        drop(&m);
    }
    EXPECT(current_version() == 51);
    close(fd);

    /* A new controller is told what is being served. */
    fd = cli_open(&m);
    EXPECT(is_msg(m, "hello", 51));
out:
    return client_end(m, text, fd);
}

START_TEST(control_hello_snapshot_ack_and_nack)
{
    run_with_client(client_snapshot_ack_nack);
    ck_assert_uint_eq(current_version(), 51);
    /* The socket file goes away with the server. */
    ck_assert_int_ne(access(sock_path, F_OK), 0);
}
END_TEST

static void *client_garbage(void *arg)
{
    (void)arg;
    json_object *m = NULL;
    int fd = cli_open(NULL);
    EXPECT(fd >= 0);
    m = exchange_snapshot(fd, 7, 2, "up:80", false);
    EXPECT(is_msg(m, "ack", 7));
    drop(&m);

    /* Each of these ends the connection and leaves the table as it was. The first goes on the
     * connection that applied version 7, the others each on a new one. */
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
        bool framed;        /* sent as a frame's payload, else as they are */
        const char *reason; /* a nack with this reason comes first; NULL: no answer */
    } closing[] = {
        { "not JSON", "hello there", 11, true, NULL },
        /* JSON followed by more bytes in the same frame is not one object either. */
        { "JSON and more", "{\"type\":\"snapshot\"} x", 21, true, NULL },
        /* A length over the 64 MiB cap: closed before any payload is sent. */
        { "over the cap", "\x04\x00\x00\x01", 4, false, NULL },
        /* Valid JSON of an unknown type: a nack, then the close. */
        { "unknown type", "{\"type\":\"delta\",\"version\":8}", 28, true,
          "unknown message type \"delta\"" },
    };
    for (size_t i = 0; i < sizeof(closing) / sizeof(closing[0]); i++) {
        if (fd < 0)
            fd = cli_open(NULL);
        EXPECT_MSG(fd >= 0, "%s: no connection", closing[i].what);
        int rc = closing[i].framed ? send_frame(fd, closing[i].bytes, closing[i].len)
                                   : harness_send_all(fd, closing[i].bytes, closing[i].len);
        EXPECT_MSG(rc == 0, "%s: not sent", closing[i].what);
        if (closing[i].reason) {
            m = read_msg(fd);
            EXPECT_MSG(is_msg(m, "nack", 8), "%s: no nack", closing[i].what);
            EXPECT_MSG(strstr(harness_json_str(m, "reason"), closing[i].reason) != NULL,
                       "%s: reason \"%s\"", closing[i].what, harness_json_str(m, "reason"));
            drop(&m);
        }
        EXPECT_MSG(harness_is_closed_by_peer(fd), "%s: connection kept", closing[i].what);
        close(fd);
        fd = -1;
        EXPECT_MSG(current_version() == 7, "%s: table changed", closing[i].what);
    }

    /* And the server still serves. */
    fd = cli_open(&m);
    EXPECT(fd >= 0);
    EXPECT(is_msg(m, "hello", 7));
out:
    return client_end(m, NULL, fd);
}

START_TEST(control_garbage_and_oversized_frames_close)
{
    run_with_client(client_garbage);
}
END_TEST

static void *client_replace(void *arg)
{
    (void)arg;
    json_object *m = NULL;
    int b = -1, a = cli_open(NULL);
    EXPECT(a >= 0);
    b = cli_open(&m);
    EXPECT(b >= 0);
    EXPECT(is_msg(m, "hello", -1));
    drop(&m);
    /* The older controller is dropped; the newer one is served. */
    EXPECT(harness_is_closed_by_peer(a));
    m = exchange_snapshot(b, 9, 1, "up:80", false);
    EXPECT(is_msg(m, "ack", 9));
out:
    if (a >= 0)
        close(a);
    return client_end(m, NULL, b);
}

START_TEST(control_newer_connection_replaces_older)
{
    run_with_client(client_replace);
}
END_TEST

static int64_t big_apply_us;

static void *client_big(void *arg)
{
    (void)arg;
    json_object *m = NULL;
    int fd = cli_open(NULL);
    EXPECT(fd >= 0);
    m = exchange_snapshot(fd, 100, 100000, "up:80", false);
    EXPECT(is_msg(m, "ack", 100) && harness_json_int(m, "routes") == 100000);
    big_apply_us = harness_json_int(m, "apply_us");
out:
    return client_end(m, NULL, fd);
}

START_TEST(control_applies_100k_route_snapshot)
{
    run_with_client(client_big);
    fprintf(stderr, "control: 100000-route snapshot applied in %lld us\n", (long long)big_apply_us);
    ck_assert_uint_eq(current_version(), 100);
}
END_TEST

START_TEST(control_socket_path_checks)
{
    uv_loop_t loop;
    struct stat st;
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

    harness_close_loop(&loop);
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {
        control_hello_snapshot_ack_and_nack,
        control_garbage_and_oversized_frames_close,
        control_newer_connection_replaces_older,
        control_applies_100k_route_snapshot,
        control_socket_path_checks,
        NULL,
    };
    return harness_main("control", 120, make_dir, remove_dir, tests);
}

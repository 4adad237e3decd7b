/* libFuzzer target: what the proxy says to the controller, as the controller's push client
 * (controller/push.c) reads it: hello, ack, nack, anything else.
 *
 * Input: a flags byte (bit 0: a snapshot was submitted before the connection; the rest picks
 * its version), then the bytes "the proxy" sends. The real client connects to a socket served
 * here, the bytes are written to it and the write side is shut, and the client's loop runs
 * until it has dropped the connection (EOF at the latest). What it did must be what
 * docs/control-protocol.md says, as a model replayed here over the same frames:
 *   - frames are read in order until one is over the client's cap (PUSH_READ_MAX); each must
 *     be one JSON object, whole, with a string "type", or the connection is dropped;
 *   - the first must be a `hello` with `"protocol": 1` (else: dropped); the client is then
 *     connected and sends its snapshot, if it has one;
 *   - then `ack`/`nack` answer the snapshot in flight (counted once; another one with none in
 *     flight is ignored); anything else drops the connection; nothing is resent after a nack;
 *   - the client's counters (connects, sends, acks, nacks, acked version) are the model's, and
 *     what it sent is exactly `sends` frames, each the submitted table as the proxy's own
 *     reader (px_control_parse, route_table_from_json) loads it. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "control.h"
#include "frame.h"
#include "fuzz.h"
#include "push.h"
#include "route.h"
#include "xalloc.h"

static char pr_dir[64];
static char pr_path[96]; /* fits sockaddr_un.sun_path */
static int pr_listen_fd = -1;
static uv_loop_t pr_loop;

static void pr_cleanup(void)
{
    if (pr_listen_fd >= 0)
        close(pr_listen_fd);
    unlink(pr_path);
    rmdir(pr_dir);
}

static void pr_setup(void)
{
    if (pr_listen_fd >= 0)
        return;
    const char *tmp = getenv("TMPDIR");
    snprintf(pr_dir, sizeof(pr_dir), "%s/legate-fuzz-XXXXXX",
             tmp != NULL && strlen(tmp) < 32 ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(pr_dir) != NULL);
    snprintf(pr_path, sizeof(pr_path), "%s/control.sock", pr_dir);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", pr_path);
    pr_listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    FUZZ_CHECK(pr_listen_fd >= 0);
    FUZZ_CHECK(bind(pr_listen_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    FUZZ_CHECK(listen(pr_listen_fd, 4) == 0);
    FUZZ_CHECK(uv_loop_init(&pr_loop) == 0);
    /* A write to a connection the client closed must fail, not kill the fuzzer. */
    signal(SIGPIPE, SIG_IGN);
    atexit(pr_cleanup);
}

/* Closes connections still waiting in the backlog: a client that reconnected before it was
 * stopped leaves one, which must not be taken for the next client's. */
static void pr_drain(void)
{
    int fd;
    while ((fd = accept4(pr_listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0)
        close(fd);
    FUZZ_CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
}

/* What the client should have done with the frames in p. */
struct pr_model {
    unsigned long connects, sends, acks, nacks;
    uint64_t acked_version;
};

/* The "type" of payload when it is one whole JSON object with a string type, else NULL; *msg
 * holds the object (the caller puts it). */
static const char *pr_type(const char *payload, size_t len, json_object **msg)
{
    json_tokener *tok = json_tokener_new();
    *msg = json_tokener_parse_ex(tok, payload, (int)len);
    bool whole = *msg != NULL && json_tokener_get_error(tok) == json_tokener_success &&
                 json_tokener_get_parse_end(tok) == len;
    json_tokener_free(tok);
    return whole ? fuzz_jstr(*msg, "type") : NULL;
}

static void pr_replay(const char *p, size_t n, bool submitted, uint64_t version, struct pr_model *m)
{
    struct frame_decoder dec;
    frame_decoder_init(&dec, PUSH_READ_MAX);
    memset(m, 0, sizeof(*m));
    bool ready = false, inflight = false;
    const char *payload;
    size_t len;
    if (frame_decoder_feed(&dec, p, n) != 0)
        goto out;
    while (frame_decoder_next(&dec, &payload, &len) == 1) {
        json_object *msg = NULL, *v = NULL;
        const char *type = pr_type(payload, len, &msg);
        bool go_on = true;
        if (type != NULL && strcmp(type, "hello") == 0 && !ready) {
            go_on = json_object_object_get_ex(msg, "protocol", &v) &&
                    json_object_is_type(v, json_type_int) &&
                    json_object_get_int64(v) == ROUTE_PROTOCOL_VERSION;
            if (go_on) {
                ready = true;
                m->connects++;
                if (submitted) {
                    m->sends++;
                    inflight = true;
                }
            }
        } else if (type != NULL && (strcmp(type, "ack") == 0 || strcmp(type, "nack") == 0) &&
                   ready) {
            if (inflight && type[0] == 'a') {
                m->acks++;
                m->acked_version = version;
            } else if (inflight) {
                m->nacks++;
            }
            inflight = false;
        } else {
            go_on = false;
        }
        json_object_put(msg);
        if (!go_on)
            break;
    }
out:
    frame_decoder_free(&dec);
}

/* Reads what the client wrote to fd and checks it is `sends` snapshots of t. */
static void pr_check_sent(int fd, const struct route_table *t, unsigned long sends)
{
    struct buf in;
    buf_init(&in, (size_t)-1 / 2);
    char chunk[65536];
    FUZZ_CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r <= 0) {
            FUZZ_CHECK(r == 0 || errno == EAGAIN || errno == EWOULDBLOCK);
            break;
        }
        buf_append(&in, chunk, (size_t)r);
    }
    struct frame_decoder dec;
    frame_decoder_init(&dec, FRAME_MAX_DEFAULT);
    FUZZ_CHECK(frame_decoder_feed(&dec, in.data ? in.data : "", in.len) == 0);
    const char *payload;
    size_t len;
    unsigned long frames = 0;
    while (frame_decoder_next(&dec, &payload, &len) == 1) {
        const char *why = NULL;
        json_object *msg = px_control_parse(payload, len, &why);
        FUZZ_CHECK(msg != NULL);
        FUZZ_CHECK(fuzz_jstr(msg, "type") != NULL &&
                   strcmp(fuzz_jstr(msg, "type"), "snapshot") == 0);
        struct route_table *got = NULL;
        char err[256];
        FUZZ_CHECK(route_table_from_json(msg, &got, err, sizeof(err)) == 0);
        FUZZ_CHECK(route_table_equal(got, t));
        route_table_free(got);
        json_object_put(msg);
        frames++;
    }
    FUZZ_CHECK(frames == sends && dec.off == dec.in.len);
    frame_decoder_free(&dec);
    buf_free(&in);
}

int fuzz_push_reply(const uint8_t *data, size_t size)
{
    fuzz_logs(size & 1);
    pr_setup();
    unsigned flags = size > 0 ? data[0] : 0;
    const char *p = size > 0 ? (const char *)data + 1 : "";
    size_t n = size > 0 ? size - 1 : 0;
    bool submitted = flags & 1;

    struct route_table *t = xcalloc(1, sizeof(*t));
    route_settings_init(&t->settings);
    t->version = 42 + (flags >> 1);

    pr_drain();
    struct push *c = push_start(&pr_loop, pr_path);
    /* The first retry after the drop then waits seconds, not 100 ms: the loop below stops at
     * the drop, and on a loaded machine a short timer could fire first and reconnect. */
    c->backoff_ms = PUSH_BACKOFF_MAX_MS;
    if (submitted)
        FUZZ_CHECK(push_submit(c, t) == 0);
    /* uv_pipe_connect has called connect(): the connection waits in the backlog. */
    struct pollfd pfd = { .fd = pr_listen_fd, .events = POLLIN };
    FUZZ_CHECK(poll(&pfd, 1, 5000) == 1);
    int fd = accept4(pr_listen_fd, NULL, NULL, SOCK_CLOEXEC);
    FUZZ_CHECK(fd >= 0);
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, p + off, n - off);
        FUZZ_CHECK(w > 0);
        off += (size_t)w;
    }
    FUZZ_CHECK(shutdown(fd, SHUT_WR) == 0);
    /* The client reads to the end (or stops at what it refuses) and closes: WAITING then. */
    for (int i = 0; i < 100000 && c->state != PUSH_WAITING; i++)
        uv_run(&pr_loop, UV_RUN_ONCE);
    FUZZ_CHECK(c->state == PUSH_WAITING);

    struct pr_model m;
    pr_replay(p, n, submitted, t->version, &m);
    FUZZ_CHECK(c->connects == m.connects && c->sends == m.sends);
    FUZZ_CHECK(c->acks == m.acks && c->nacks == m.nacks && c->acked_version == m.acked_version);
    pr_check_sent(fd, t, m.sends);

    close(fd);
    push_stop(c);
    uv_run(&pr_loop, UV_RUN_DEFAULT);
    route_table_free(t);
    return 0;
}

FUZZ_ENTRY(fuzz_push_reply)

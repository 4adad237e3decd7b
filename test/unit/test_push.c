/* Tests for controller/push.c against a fake proxy served on the same loop: hello, snapshot,
 * ack/nack, "only the newest" while one is in flight, reconnecting, protocol mismatch. Every
 * loop run has a deadline. */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "frame.h"
#include "harness.h"
#include "push.h"
#include "xalloc.h"

static uv_loop_t loop;
static char sock_path[64];
static struct push *push;

/* ---- the fake proxy ---- */

struct fake {
    uv_pipe_t server;
    bool listening;
    uv_pipe_t conn;
    bool connected;
    struct frame_decoder dec;
    int hello_protocol; /* what the hello says */
    enum { REPLY_ACK, REPLY_NACK, REPLY_NONE } reply;
    uint64_t versions[32]; /* snapshot versions received, in order */
    int nversions;
    int nconnections;
    int eofs;
    uint64_t held; /* REPLY_NONE: version received and not answered yet */
};
static struct fake fake;

struct out_write {
    uv_write_t req;
    struct buf b;
};

static void on_out_written(uv_write_t *req, int status)
{
    (void)status;
    struct out_write *w = container_of(req, struct out_write, req);
    buf_free(&w->b);
    free(w);
}

static void fake_send(const char *json)
{
    struct out_write *w = xcalloc(1, sizeof(*w));
    buf_init(&w->b, 1 << 20);
    ck_assert_int_eq(frame_encode(&w->b, json, strlen(json)), 0);
    uv_buf_t b = uv_buf_init(w->b.data, (unsigned)w->b.len);
    ck_assert_int_eq(uv_write(&w->req, (uv_stream_t *)&fake.conn, &b, 1, on_out_written), 0);
}

static void fake_reply(uint64_t version, bool ack)
{
    char msg[200];
    if (ack)
        snprintf(msg, sizeof(msg),
                 "{\"type\":\"ack\",\"version\":%llu,\"routes\":1,\"clusters\":1,\"apply_us\":9}",
                 (unsigned long long)version);
    else
        snprintf(msg, sizeof(msg), "{\"type\":\"nack\",\"version\":%llu,\"reason\":\"test\"}",
                 (unsigned long long)version);
    fake_send(msg);
}

static void on_fake_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    b->base = xmalloc(n);
    b->len = n;
}

static void on_fake_closed(uv_handle_t *h)
{
    (void)h;
    frame_decoder_free(&fake.dec);
    fake.connected = false;
}

static void fake_close_conn(void)
{
    if (fake.connected && !uv_is_closing((uv_handle_t *)&fake.conn))
        uv_close((uv_handle_t *)&fake.conn, on_fake_closed);
}

static void on_fake_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)s;
    if (n < 0) {
        fake.eofs++;
        fake_close_conn();
    } else if (n > 0) {
        ck_assert_int_eq(frame_decoder_feed(&fake.dec, b->base, (size_t)n), 0);
        const char *p;
        size_t len;
        while (frame_decoder_next(&fake.dec, &p, &len) == 1) {
            char *text = xstrndup(p, len);
            json_object *o = json_tokener_parse(text);
            free(text);
            ck_assert_ptr_nonnull(o);
            json_object *v;
            ck_assert(json_object_object_get_ex(o, "type", &v));
            ck_assert_str_eq(json_object_get_string(v), "snapshot");
            ck_assert(json_object_object_get_ex(o, "protocol", &v));
            ck_assert_int_eq(json_object_get_int(v), 1);
            ck_assert(json_object_object_get_ex(o, "routes", &v));
            ck_assert(json_object_object_get_ex(o, "version", &v));
            uint64_t version = (uint64_t)json_object_get_int64(v);
            json_object_put(o);
            ck_assert_int_lt(fake.nversions, 32);
            fake.versions[fake.nversions++] = version;
            if (fake.reply == REPLY_NONE)
                fake.held = version;
            else
                fake_reply(version, fake.reply == REPLY_ACK);
        }
    }
    free(b->base);
}

static void on_fake_connection(uv_stream_t *server, int status)
{
    ck_assert_int_eq(status, 0);
    ck_assert(!fake.connected);
    uv_pipe_init(&loop, &fake.conn, 0);
    ck_assert_int_eq(uv_accept(server, (uv_stream_t *)&fake.conn), 0);
    fake.connected = true;
    fake.nconnections++;
    frame_decoder_init(&fake.dec, FRAME_MAX_DEFAULT);
    uv_read_start((uv_stream_t *)&fake.conn, on_fake_alloc, on_fake_read);
    char hello[128];
    snprintf(hello, sizeof(hello), "{\"type\":\"hello\",\"protocol\":%d,\"version\":0,\"pid\":1}",
             fake.hello_protocol);
    fake_send(hello);
}

static void fake_listen(void)
{
    uv_pipe_init(&loop, &fake.server, 0);
    ck_assert_int_eq(uv_pipe_bind(&fake.server, sock_path), 0);
    ck_assert_int_eq(uv_listen((uv_stream_t *)&fake.server, 4, on_fake_connection), 0);
    fake.listening = true;
}

/* ---- loop helpers ---- */

static bool run_until(harness_pred_cb pred, unsigned timeout_ms)
{
    return harness_run_until(&loop, pred, timeout_ms);
}

/* Submits an empty table with this version. */
static void submit(uint64_t version)
{
    struct route_table t = { .version = version };
    ck_assert_int_eq(push_submit(push, &t), 0);
}

static void setup(void)
{
    harness_quiet_logs();
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    snprintf(sock_path, sizeof(sock_path), "/tmp/legate-push-%d.sock", (int)getpid());
    unlink(sock_path);
    memset(&fake, 0, sizeof(fake));
    fake.hello_protocol = 1;
    push = NULL;
}

static void teardown(void)
{
    push_stop(push);
    fake_close_conn();
    if (fake.listening)
        uv_close((uv_handle_t *)&fake.server, NULL);
    harness_close_loop(&loop);
    unlink(sock_path);
}

/* The fake proxy listening with this reply and hello protocol, and the controller's push
 * started towards it. */
static void start_with(int reply, int hello_protocol)
{
    fake_listen();
    fake.reply = reply;
    fake.hello_protocol = hello_protocol;
    push = push_start(&loop, sock_path);
}

static bool one_ack(void)
{
    return push->acks == 1;
}

START_TEST(push_sends_latest_after_hello_and_reads_ack)
{
    start_with(REPLY_ACK, 1);
    submit(5); /* before the connection exists */
    ck_assert(run_until(one_ack, 3000));
    ck_assert_int_eq(fake.nversions, 1);
    ck_assert_uint_eq(fake.versions[0], 5);
    ck_assert_uint_eq(push->acked_version, 5);
    ck_assert_int_eq(push->state, PUSH_READY);
}
END_TEST

static bool got_one(void)
{
    return fake.nversions == 1;
}

static bool got_two(void)
{
    return fake.nversions == 2;
}

START_TEST(push_sends_only_the_newest_after_the_ack)
{
    start_with(REPLY_NONE, 1);
    submit(1);
    ck_assert(run_until(got_one, 3000));
    /* v1 is in flight: these replace each other; only v4 may follow. */
    submit(2);
    submit(3);
    submit(4);
    harness_run_for(&loop, 50);
    ck_assert_int_eq(fake.nversions, 1);
    fake.reply = REPLY_ACK;
    fake_reply(fake.held, true);
    ck_assert(run_until(got_two, 3000));
    ck_assert_uint_eq(fake.versions[1], 4);
    harness_run_for(&loop, 50);
    ck_assert_int_eq(fake.nversions, 2);
    ck_assert_uint_eq(push->acked_version, 4);
}
END_TEST

static bool got_one_and_ready(void)
{
    return fake.nversions == 1 && push->acks == 1;
}

START_TEST(push_reconnects_and_resends_latest)
{
    push = push_start(&loop, sock_path); /* nobody listening yet */
    submit(7);
    harness_run_for(&loop, 250); /* a few failed attempts with backoff */
    ck_assert_int_eq(push->connects, 0);
    ck_assert_int_eq(push->state == PUSH_WAITING || push->state == PUSH_CONNECTING, 1);
    fake_listen();
    ck_assert_msg(run_until(got_one_and_ready, 3000), "no snapshot after the proxy came up");
    ck_assert_uint_eq(fake.versions[0], 7);
    /* The proxy restarts: the controller comes back and sends the newest again. */
    fake_close_conn();
    ck_assert_msg(run_until(got_two, 3000), "no snapshot after reconnecting");
    ck_assert_uint_eq(fake.versions[1], 7);
    ck_assert_int_eq(fake.nconnections, 2);
    ck_assert_int_eq(push->connects, 2);
}
END_TEST

static bool one_nack(void)
{
    return push->nacks == 1;
}

START_TEST(push_does_not_resend_a_nacked_snapshot)
{
    start_with(REPLY_NACK, 1);
    submit(1);
    ck_assert(run_until(one_nack, 3000));
    harness_run_for(&loop, 100);
    ck_assert_int_eq(fake.nversions, 1);
    fake.reply = REPLY_ACK;
    submit(2); /* the next change does go out */
    ck_assert(run_until(one_ack, 3000));
    ck_assert_int_eq(fake.nversions, 2);
    ck_assert_uint_eq(fake.versions[1], 2);
}
END_TEST

static bool dropped(void)
{
    return fake.eofs >= 1;
}

START_TEST(push_refuses_another_protocol)
{
    start_with(REPLY_ACK, 2);
    submit(1);
    ck_assert_msg(run_until(dropped, 3000), "the controller kept the connection open");
    ck_assert_int_eq(fake.nversions, 0);
    ck_assert_int_eq(push->connects, 0);
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {
        push_sends_latest_after_hello_and_reads_ack,
        push_sends_only_the_newest_after_the_ack,
        push_reconnects_and_resends_latest,
        push_does_not_resend_a_nacked_snapshot,
        push_refuses_another_protocol,
        NULL,
    };
    return harness_main("push", 20, setup, teardown, tests);
}

/* The control-socket client (docs/control-protocol.md): keeps a connection to the proxy and
 * makes sure the proxy ends up with the newest snapshot.
 *
 * The proxy speaks first (`hello`); the client answers with the newest snapshot and waits for
 * its `ack`/`nack` before sending another. A snapshot submitted meanwhile replaces any
 * unsent one: only the newest is ever sent, never a queue of stale ones. When the proxy is
 * away or the connection drops, the client reconnects with backoff (100 ms doubling to 5 s,
 * with jitter) and sends the newest snapshot after the next `hello`. Runs on the
 * controller's loop thread. */
#ifndef LEGATE_CONTROLLER_PUSH_H
#define LEGATE_CONTROLLER_PUSH_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "frame.h"
#include "route-t.h"

#define PUSH_BACKOFF_MIN_MS   100
#define PUSH_BACKOFF_MAX_MS   5000
#define PUSH_HELLO_TIMEOUT_MS 5000  /* a peer that accepts but never says hello is not a proxy */
#define PUSH_ACK_TIMEOUT_MS   60000 /* generous: the proxy builds big tables before it acks */
#define PUSH_READ_MAX         (1u << 20) /* the proxy's messages are small */

enum push_state {
    PUSH_WAITING,    /* not connected; the retry timer is running */
    PUSH_CONNECTING, /* uv_pipe_connect in progress */
    PUSH_HELLO,      /* connected, waiting for hello */
    PUSH_READY,      /* hello received: snapshots flow */
    PUSH_CLOSING,    /* the pipe is closing; the close callback decides what next */
    PUSH_STOPPED,
};

struct push_snap; /* an encoded snapshot frame, reference-counted (push.c) */

struct push {
    uv_loop_t *loop;
    char *path;
    uv_pipe_t pipe;
    uv_connect_t connect_req;
    uv_timer_t retry;
    uv_timer_t deadline; /* hello or ack timeout */
    struct frame_decoder dec;
    char rbuf[65536];
    enum push_state state;
    int open_handles;
    unsigned backoff_ms;
    uint64_t rng;
    bool warned;                /* "proxy not reachable" logged for this outage */
    struct push_snap *latest;   /* newest submitted */
    struct push_snap *inflight; /* sent on this connection, not yet acked */
    uint64_t sent_version;      /* last version sent on this connection; 0: none */
    /* Counters, for logs and tests. */
    unsigned long connects;
    unsigned long sends;
    unsigned long acks;
    unsigned long nacks;
    uint64_t acked_version;
};

/* Creates the client; it connects to socket_path at once and keeps trying. Returns the new
 * client (free with push_stop). */
struct push *push_start(uv_loop_t *loop, const char *socket_path);
/* Encodes t (borrowed; not kept) as the newest snapshot and sends it as soon as the
 * connection allows. Returns 0, or -E2BIG when the encoded table exceeds the frame cap (it is
 * then not sent, and the previous snapshot stays the newest). */
int push_submit(struct push *p, const struct route_table *t);
/* Closes the connection and timers; p is freed in the last close callback, so the loop must
 * run once more. Safe on NULL. */
void push_stop(struct push *p);

#endif

/* The control server (control.h, docs/control-protocol.md).
 *
 * One listener, at most one current controller. A newer connection replaces the current one
 * (the newest controller wins, so a restarted controller never waits on a dead one); the
 * replaced one is closed at once. Connections that are being closed stay on a list until
 * their close callback so px_control_stop can still reach them.
 *
 * Failure policy: bytes that are not a frame (over the cap) or not JSON mean a broken peer —
 * warn and drop the connection. Well-formed JSON that we do not understand is a protocol
 * mismatch — answer `nack`, log at error, and close after the nack is written. A snapshot
 * that fails to load or to build a router is refused with `nack`; the connection and the
 * current table stay. */
#include "control.h"

#include <errno.h>
#include <json-c/json.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "frame.h"
#include "log.h"
#include "route.h"
#include "snapshot.h"
#include "xalloc.h"

#define CTL_BACKLOG   4
#define CTL_READ_SIZE (64 * 1024)
#define CTL_KEEP_BUF  (1024 * 1024) /* decoder storage kept between frames */
/* Our own messages are small: a nack reason is bounded by REASON_MAX. */
#define CTL_OUT_MAX (64 * 1024)
#define REASON_MAX  512

struct ctl_client {
    uv_pipe_t pipe;
    uv_shutdown_t shutdown;
    struct frame_decoder dec;
    struct ctl_client *next; /* on ctl.clients until the close callback */
    bool closing;
    char rbuf[CTL_READ_SIZE];
};

struct ctl_write {
    uv_write_t req;
    struct buf data;
};

static struct {
    uv_loop_t *loop;
    uv_pipe_t *listener; /* heap: it may still be closing when the server is restarted */
    char *path;
    struct ctl_client *current;
    struct ctl_client *clients;
} ctl;

static void on_listener_close(uv_handle_t *h)
{
    free(h);
}

static void on_client_close(uv_handle_t *h)
{
    struct ctl_client *c = container_of((uv_pipe_t *)h, struct ctl_client, pipe);
    for (struct ctl_client **p = &ctl.clients; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    frame_decoder_free(&c->dec);
    free(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status; /* the connection goes away either way */
    struct ctl_client *c = req->data;
    if (!uv_is_closing((uv_handle_t *)&c->pipe))
        uv_close((uv_handle_t *)&c->pipe, on_client_close);
}

/* Stops reading from c and closes it: at once, or after the writes queued so far when
 * flush is set (uv_shutdown waits for them), so a final nack reaches the controller. */
static void client_close(struct ctl_client *c, bool flush)
{
    if (c->closing)
        return;
    c->closing = true;
    if (ctl.current == c)
        ctl.current = NULL;
    uv_read_stop((uv_stream_t *)&c->pipe);
    c->shutdown.data = c;
    if (flush && uv_shutdown(&c->shutdown, (uv_stream_t *)&c->pipe, on_shutdown) == 0)
        return;
    uv_close((uv_handle_t *)&c->pipe, on_client_close);
}

static void on_write(uv_write_t *req, int status)
{
    struct ctl_write *w = container_of(req, struct ctl_write, req);
    if (status < 0 && status != UV_ECANCELED) {
        struct ctl_client *c = container_of((uv_pipe_t *)req->handle, struct ctl_client, pipe);
        log_warn("control write failed", "err=%s", uv_strerror(status));
        client_close(c, false);
    }
    buf_free(&w->data);
    free(w);
}

/* Frames and queues o (always consumed). Returns 0 or a negative error. */
static int send_json(struct ctl_client *c, json_object *o)
{
    size_t len = 0;
    const char *s = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    struct ctl_write *w = xcalloc(1, sizeof(*w));
    buf_init(&w->data, CTL_OUT_MAX);
    int rc = frame_encode(&w->data, s, len);
    json_object_put(o);
    if (rc == 0) {
        uv_buf_t b = uv_buf_init(w->data.data, (unsigned)w->data.len);
        rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, on_write);
    }
    if (rc != 0) {
        log_warn("control write failed", "err=%s",
                 rc == -E2BIG ? "message too large" : uv_strerror(rc));
        buf_free(&w->data);
        free(w);
    }
    return rc;
}

static void send_hello(struct ctl_client *c)
{
    struct px_snapshot *s = px_snapshot_current();
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("hello"));
    json_object_object_add(o, "protocol", json_object_new_int(ROUTE_PROTOCOL_VERSION));
    json_object_object_add(o, "version", json_object_new_int64(s ? (int64_t)s->table->version : 0));
    json_object_object_add(o, "pid", json_object_new_int((int)getpid()));
    px_snapshot_release(s);
    send_json(c, o);
}

static void send_nack(struct ctl_client *c, int64_t version, const char *reason)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("nack"));
    json_object_object_add(o, "version", json_object_new_int64(version));
    json_object_object_add(o, "reason", json_object_new_string(reason));
    send_json(c, o);
}

/* Applies one snapshot message; answers ack or nack. apply_us counts from t0 (ns). */
static void apply_snapshot(struct ctl_client *c, json_object *msg, int64_t version, uint64_t t0)
{
    char err[REASON_MAX] = "";
    struct route_table *t = NULL;
    json_object *v = NULL;

    if (json_object_object_get_ex(msg, "protocol", &v) &&
        (!json_object_is_type(v, json_type_int) ||
         json_object_get_int64(v) != ROUTE_PROTOCOL_VERSION)) {
        snprintf(err, sizeof(err), "snapshot: unsupported protocol %s (this proxy speaks %d)",
                 json_object_to_json_string(v), ROUTE_PROTOCOL_VERSION);
        goto refuse;
    }
    if (route_table_from_json(msg, &t, err, sizeof(err)) != 0)
        goto refuse;
    size_t nroutes = t->nroutes, nclusters = t->nclusters, nerrors = t->nerrors;
    struct px_snapshot *s = px_snapshot_new(t, err, sizeof(err)); /* takes t, even on failure */
    if (s == NULL)
        goto refuse;
    px_snapshot_publish(s);
    uint64_t apply_us = (uv_hrtime() - t0) / 1000;

    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("ack"));
    json_object_object_add(o, "version", json_object_new_int64(version));
    json_object_object_add(o, "routes", json_object_new_int64((int64_t)nroutes));
    json_object_object_add(o, "clusters", json_object_new_int64((int64_t)nclusters));
    json_object_object_add(o, "apply_us", json_object_new_int64((int64_t)apply_us));
    send_json(c, o);
    log_info("applied snapshot", "version=%lld routes=%zu clusters=%zu errors=%zu apply_us=%llu",
             (long long)version, nroutes, nclusters, nerrors, (unsigned long long)apply_us);
    return;
refuse:
    log_error("snapshot refused", "version=%lld reason=%s", (long long)version, err);
    send_nack(c, version, err);
}

static bool all_space(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return false;
    return true;
}

json_object *px_control_parse(const char *payload, size_t len, const char **why)
{
    json_tokener *tok = json_tokener_new();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    /* len fits in an int: frames are capped at FRAME_MAX_DEFAULT. */
    json_object *msg = json_tokener_parse_ex(tok, payload, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (msg == NULL || jerr != json_tokener_success || !all_space(payload + end, len - end)) {
        *why = jerr != json_tokener_success ? json_tokener_error_desc(jerr)
               : msg == NULL                ? "a JSON null"
                                            : "trailing bytes";
        json_object_put(msg);
        return NULL;
    }
    return msg;
}

/* Handles one frame. Returns true to keep the connection, false once it is being closed. */
static bool handle_frame(struct ctl_client *c, const char *payload, size_t len)
{
    uint64_t t0 = uv_hrtime();
    const char *why = NULL;
    json_object *msg = px_control_parse(payload, len, &why);
    if (msg == NULL) {
        log_warn("control frame is not JSON, closing", "bytes=%zu reason=%s", len, why);
        client_close(c, false);
        return false;
    }

    bool keep = true;
    json_object *v = NULL;
    int64_t version = 0;
    if (json_object_is_type(msg, json_type_object) &&
        json_object_object_get_ex(msg, "version", &v) && json_object_is_type(v, json_type_int))
        version = json_object_get_int64(v);
    const char *type = NULL;
    if (json_object_is_type(msg, json_type_object) && json_object_object_get_ex(msg, "type", &v) &&
        json_object_is_type(v, json_type_string))
        type = json_object_get_string(v);

    if (type != NULL && strcmp(type, "snapshot") == 0) {
        apply_snapshot(c, msg, version, t0);
    } else {
        char reason[REASON_MAX];
        if (type == NULL)
            snprintf(reason, sizeof(reason), "message without a string \"type\"");
        else
            snprintf(reason, sizeof(reason), "unknown message type \"%.64s\"", type);
        log_error("control protocol violation, closing", "reason=%s", reason);
        send_nack(c, version, reason);
        client_close(c, true);
        keep = false;
    }
    json_object_put(msg);
    return keep;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    struct ctl_client *c = container_of((uv_pipe_t *)h, struct ctl_client, pipe);
    *b = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct ctl_client *c = container_of((uv_pipe_t *)s, struct ctl_client, pipe);
    if (nread < 0) {
        if (nread == UV_EOF)
            log_info("controller disconnected", "");
        else
            log_warn("controller connection failed", "err=%s", uv_strerror((int)nread));
        client_close(c, false);
        return;
    }
    struct frame_decoder *d = &c->dec;
    for (size_t off = 0; off < (size_t)nread;) {
        /* Feed no more than the decoder can hold beside what it has not handed out yet: a
         * frame near the cap followed by the start of the next one in the same read is
         * legitimate, and would otherwise trip the decoder's own overflow check. After each
         * drain what is left is a partial frame, at most the cap plus its header, so there
         * is always room for progress. */
        size_t room = d->in.max - (d->in.len - d->off);
        size_t chunk = (size_t)nread - off < room ? (size_t)nread - off : room;
        if (chunk == 0 || frame_decoder_feed(d, b->base + off, chunk) != 0) {
            log_warn("control frame over the cap, closing", "max=%zu", d->max_frame);
            client_close(c, false);
            return;
        }
        off += chunk;
        for (;;) {
            const char *payload;
            size_t len;
            int rc = frame_decoder_next(d, &payload, &len);
            if (rc == 0)
                break;
            if (rc < 0) {
                log_warn("control frame over the cap, closing", "max=%zu", d->max_frame);
                client_close(c, false);
                return;
            }
            if (!handle_frame(c, payload, len))
                return;
        }
    }
    /* A snapshot of many routes grows the buffer to tens of MiB; do not keep that between
     * snapshots, which may be minutes apart. */
    if (d->off == d->in.len && d->in.cap > CTL_KEEP_BUF) {
        frame_decoder_free(d);
        frame_decoder_init(d, FRAME_MAX_DEFAULT);
        /* The parse tree of such a frame (json-c: hundreds of MiB at 100 000 routes) is freed
         * by now too, in small blocks the allocator keeps for reuse; give them back. */
        xalloc_trim();
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        log_warn("control accept failed", "err=%s", uv_strerror(status));
        return;
    }
    struct ctl_client *c = xcalloc(1, sizeof(*c));
    frame_decoder_init(&c->dec, FRAME_MAX_DEFAULT);
    uv_pipe_init(ctl.loop, &c->pipe, 0);
    c->next = ctl.clients;
    ctl.clients = c;
    int rc = uv_accept(server, (uv_stream_t *)&c->pipe);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
    if (rc != 0) {
        log_warn("control accept failed", "err=%s", uv_strerror(rc));
        client_close(c, false);
        return;
    }
    if (ctl.current != NULL) {
        log_info("controller replaced by a newer connection", "");
        client_close(ctl.current, false);
    }
    ctl.current = c;
    log_info("controller connected", "");
    send_hello(c);
}

/* Checks the socket's directory and clears a stale socket file. Returns 0 or a negative
 * errno, after logging why. */
static int prepare_path(const char *path)
{
    struct stat st;
    char *copy = xstrdup(path);
    const char *dir = dirname(copy);
    int rc = 0;

    int src = stat(dir, &st);
    if (src != 0 || !S_ISDIR(st.st_mode)) {
        rc = src != 0 ? -errno : -ENOTDIR;
        log_error("control socket directory is missing", "path=%s dir=%s err=%s", path, dir,
                  uv_strerror(rc));
        goto out;
    }
    if (lstat(path, &st) != 0) {
        if (errno != ENOENT) {
            rc = -errno;
            log_error("cannot inspect control socket path", "path=%s err=%s", path,
                      uv_strerror(rc));
        }
        goto out;
    }
    if (!S_ISSOCK(st.st_mode)) {
        rc = -EEXIST;
        log_error("control socket path exists and is not a socket", "path=%s", path);
        goto out;
    }
    /* A socket someone still accepts on belongs to a live proxy: do not steal it. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        memcpy(sa.sun_path, path, strlen(path) + 1);
        int live = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        close(fd);
        if (live) {
            rc = -EADDRINUSE;
            log_error("control socket is in use by another process", "path=%s", path);
            goto out;
        }
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        rc = -errno;
        log_error("cannot remove stale control socket", "path=%s err=%s", path, uv_strerror(rc));
        goto out;
    }
    log_info("removed stale control socket", "path=%s", path);
out:
    free(copy);
    return rc;
}

int px_control_start(uv_loop_t *loop, const char *path)
{
    return px_control_start_group(loop, path, -1);
}

int px_control_start_group(uv_loop_t *loop, const char *path, long gid)
{
    struct sockaddr_un sa;
    int rc;

    if (ctl.listener != NULL)
        return UV_EBUSY;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        log_error("control socket path too long", "path=%s max=%zu", path, sizeof(sa.sun_path) - 1);
        return UV_ENAMETOOLONG;
    }
    if ((rc = prepare_path(path)) != 0)
        return rc;
    ctl.loop = loop;
    ctl.listener = xcalloc(1, sizeof(*ctl.listener));
    uv_pipe_init(loop, ctl.listener, 0);
    if ((rc = uv_pipe_bind(ctl.listener, path)) != 0) {
        log_error("cannot bind control socket", "path=%s err=%s", path, uv_strerror(rc));
        goto fail;
    }
    /* Before listen: until then nobody can connect, so the default mode is never usable. The
     * group is set before the mode opens the socket to it. */
    if (gid >= 0 && chown(path, (uid_t)-1, (gid_t)gid) != 0) {
        rc = -errno;
        log_error("cannot chgrp control socket", "path=%s gid=%ld err=%s", path, gid,
                  uv_strerror(rc));
        unlink(path);
        goto fail;
    }
    if (chmod(path, gid >= 0 ? 0660 : 0600) != 0) {
        rc = -errno;
        log_error("cannot chmod control socket", "path=%s err=%s", path, uv_strerror(rc));
        unlink(path);
        goto fail;
    }
    if ((rc = uv_listen((uv_stream_t *)ctl.listener, CTL_BACKLOG, on_connection)) != 0) {
        log_error("cannot listen on control socket", "path=%s err=%s", path, uv_strerror(rc));
        unlink(path);
        goto fail;
    }
    ctl.path = xstrdup(path);
    log_info("control socket listening", "path=%s mode=%s gid=%ld", path,
             gid >= 0 ? "0660" : "0600", gid);
    return 0;
fail:
    uv_close((uv_handle_t *)ctl.listener, on_listener_close);
    ctl.listener = NULL;
    return rc;
}

void px_control_stop(void)
{
    for (struct ctl_client *c = ctl.clients; c; c = c->next) {
        c->closing = true;
        if (!uv_is_closing((uv_handle_t *)&c->pipe))
            uv_close((uv_handle_t *)&c->pipe, on_client_close);
    }
    ctl.current = NULL;
    if (ctl.listener != NULL) {
        uv_close((uv_handle_t *)ctl.listener, on_listener_close);
        ctl.listener = NULL;
    }
    if (ctl.path != NULL) {
        unlink(ctl.path);
        free(ctl.path);
        ctl.path = NULL;
    }
}

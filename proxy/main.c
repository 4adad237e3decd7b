/* legate-proxy: serves HTTP with the route table the controller pushes.
 *
 *   main thread: control socket (snapshots in), admin listener, signals
 *   N workers:   one uv loop each, SO_REUSEPORT listener, upstream pools (worker.c)
 *
 * Startup problems (a taken port, a socket that cannot be created) exit 1 with the reason on
 * stderr; bad flags exit 2 (common/opts.c). SIGTERM or SIGINT: the control socket and admin
 * listener close, workers stop accepting and give requests in flight PX_GRACE_MS, exit 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "admin.h"
#include "control.h"
#include "internal.h"
#include "log.h"
#include "opts.h"
#include "snapshot.h"
#include "worker.h"
#include "xalloc.h"

#define PX_STR_(x) #x
#define PX_STR(x)  PX_STR_(x)

/* User settings: set by the command line, read-only afterwards. */
struct px_config {
    const char *listen;
    const char *admin;
    const char *control_socket;
    int workers;
    int log_level;
    int log_format;
    long control_socket_gid; /* -1: no group, the socket stays 0600 */
    struct px_limits limits;
};

/* Runtime state of the main thread. */
struct px_main {
    const struct px_config *cfg;
    uv_loop_t loop;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    struct px_workers *workers;
};

static void px_config_init(struct px_config *c)
{
    memset(c, 0, sizeof(*c));
    c->listen = "0.0.0.0:8080";
    c->admin = "127.0.0.1:8877";
    c->control_socket = "/var/run/legate/control.sock";
    unsigned n = uv_available_parallelism();
    c->workers = n < 1 ? 1 : n > 256 ? 256 : (int)n;
    c->log_level = LOG_LEVEL_INFO;
    c->log_format = LOG_FORMAT_LOGFMT;
    c->control_socket_gid = -1;
    px_limits_init(&c->limits);
}

/* A uint32_t flag value from lo to hi; what names the unit in the error. */
static int opt_u32(const char *val, void *dst, uint64_t lo, uint64_t hi, const char *what,
                   char *err, size_t errlen)
{
    uint64_t v;
    if (parse_uint(val, lo, hi, &v) != 0) {
        snprintf(err, errlen, "expected %s from %llu to %llu, got \"%s\"", what,
                 (unsigned long long)lo, (unsigned long long)hi, val);
        return -EINVAL;
    }
    *(uint32_t *)dst = (uint32_t)v;
    return 0;
}

/* Milliseconds, from 1 ms to an hour. */
static int opt_ms(const char *val, void *dst, char *err, size_t errlen)
{
    return opt_u32(val, dst, 1, 3600000, "milliseconds", err, errlen);
}

/* A connection count. */
static int opt_connections(const char *val, void *dst, char *err, size_t errlen)
{
    return opt_u32(val, dst, 1, 1000000, "a number", err, errlen);
}

/* Loop turns of busy polling. */
static int opt_busy_poll(const char *val, void *dst, char *err, size_t errlen)
{
    return opt_u32(val, dst, 0, 100000, "a number", err, errlen);
}

/* Whether the HOST:PORT names a loopback address (127.0.0.0/8, ::1, localhost). */
static bool admin_is_loopback(const char *hostport)
{
    char host[256];
    uint16_t port;
    struct in_addr a4;
    struct in6_addr a6;
    if (parse_hostport(hostport, host, sizeof(host), &port) != 0)
        return false;
    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

/* long gid: a group name, or a number. */
static int opt_group(const char *val, void *dst, char *err, size_t errlen)
{
    struct group gr, *res = NULL;
    char buf[4096];
    uint64_t v;
    if (parse_uint(val, 0, 0x7fffffff, &v) == 0) {
        *(long *)dst = (long)v;
        return 0;
    }
    int rc = getgrnam_r(val, &gr, buf, sizeof(buf), &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "no such group \"%s\"", val);
        return -EINVAL;
    }
    *(long *)dst = (long)res->gr_gid;
    return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct px_main *m = h->data;
    log_info("shutting down", "signal=%s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    /* No snapshot may wake a worker that is going away. */
    px_snapshot_on_publish(NULL, NULL);
    px_control_stop();
    px_admin_stop();
    uv_close((uv_handle_t *)&m->sigterm, NULL);
    uv_close((uv_handle_t *)&m->sigint, NULL);
    px_workers_stop(m->workers);
    m->workers = NULL;
}

/* Startup failure after the workers exist: release what was made, then exit 1. */
static void fail_startup(struct px_main *m)
{
    px_control_stop();
    px_admin_stop();
    px_workers_stop(m->workers);
    uv_run(&m->loop, UV_RUN_DEFAULT);
    uv_loop_close(&m->loop);
    exit(1);
}

int main(int argc, char **argv)
{
    struct px_config cfg;
    struct px_main m;
    char err[512];
    px_config_init(&cfg);
    memset(&m, 0, sizeof(m));
    m.cfg = &cfg;

    const struct opt opts[] = {
        { "listen", "HOST:PORT", "where clients connect (default 0.0.0.0:8080)", opt_hostport,
          &cfg.listen },
        { "admin", "HOST:PORT", "admin listener: /ready /live /routes (default 127.0.0.1:8877)",
          opt_hostport, &cfg.admin },
        { "control-socket", "PATH",
          "Unix socket the controller pushes routes to (default /var/run/legate/control.sock)",
          opt_string, &cfg.control_socket },
        { "workers", "N", "worker threads (default: the number of CPUs)", opt_workers,
          &cfg.workers },
        { "log-level", "LEVEL", "debug, info, warn or error (default info)", opt_level,
          &cfg.log_level },
        { "log-format", "FORMAT", "logfmt or json (default logfmt)", opt_format, &cfg.log_format },
        { "control-socket-group", "GROUP",
          "group that may use the control socket: it becomes 0660 (default: none, 0600)", opt_group,
          &cfg.control_socket_gid },
        { "header-timeout-ms", "MS",
          "time for a whole request head, else 408 (default " PX_STR(PX_HEADER_TIMEOUT_MS) ")",
          opt_ms, &cfg.limits.header_timeout_ms },
        { "body-timeout-ms", "MS",
          "longest wait for the next request body bytes, else 408 (default " PX_STR(
              PX_BODY_TIMEOUT_MS) ")",
          opt_ms, &cfg.limits.body_timeout_ms },
        { "idle-timeout-ms", "MS",
          "idle keep-alive client connections are closed after this (default " PX_STR(
              PX_IDLE_TIMEOUT_MS) ")",
          opt_ms, &cfg.limits.idle_timeout_ms },
        { "max-connections", "N",
          "client connections per worker; at the cap it stops accepting (default " PX_STR(
              PX_MAX_CONNECTIONS) ")",
          opt_connections, &cfg.limits.max_connections },
        { "busy-poll", "N",
          "after serving, poll N more times without blocking before sleeping (default " PX_STR(
              PX_BUSY_POLL) ")",
          opt_busy_poll, &cfg.limits.busy_poll },
    };
    opts_parse(argc, argv, opts, ARRAY_SIZE(opts), "legate-proxy",
               "Serves HTTP/1.1 with the routes legate-controller pushes.");
    log_configure(cfg.log_level, cfg.log_format, "proxy");
    /* A peer gone mid-write is an error return (EPIPE), not a death. */
    signal(SIGPIPE, SIG_IGN);

    int r = px_workers_create(cfg.workers, cfg.listen, &cfg.limits, &m.workers, err, sizeof(err));
    if (r < 0) {
        log_error("cannot start", "listen=%s error=%s", cfg.listen, err);
        return 1;
    }
    r = uv_loop_init(&m.loop);
    if (r < 0) {
        log_error("cannot start", "error=%s", uv_strerror(r));
        px_workers_stop(m.workers);
        return 1;
    }
    px_snapshot_on_publish(px_workers_on_publish, m.workers);
    r = px_control_start_group(&m.loop, cfg.control_socket, cfg.control_socket_gid);
    if (r < 0) {
        log_error("cannot start", "control_socket=%s error=%s", cfg.control_socket, uv_strerror(r));
        fail_startup(&m);
    }
    r = px_admin_start(&m.loop, cfg.admin);
    if (r < 0) {
        log_error("cannot start", "admin=%s error=%s", cfg.admin, uv_strerror(r));
        fail_startup(&m);
    }
    r = px_workers_start(m.workers);
    if (r < 0) {
        log_error("cannot start", "error=%s", uv_strerror(r));
        fail_startup(&m);
    }
    uv_signal_init(&m.loop, &m.sigterm);
    uv_signal_init(&m.loop, &m.sigint);
    m.sigterm.data = m.sigint.data = &m;
    uv_signal_start(&m.sigterm, on_signal, SIGTERM);
    uv_signal_start(&m.sigint, on_signal, SIGINT);
    log_info("legate-proxy started", "listen=%s admin=%s control_socket=%s workers=%d version=%s",
             cfg.listen, cfg.admin, cfg.control_socket, cfg.workers, LEGATE_VERSION);
    log_info("client limits",
             "header_timeout_ms=%u body_timeout_ms=%u idle_timeout_ms=%u max_connections=%u",
             (unsigned)cfg.limits.header_timeout_ms, (unsigned)cfg.limits.body_timeout_ms,
             (unsigned)cfg.limits.idle_timeout_ms, (unsigned)cfg.limits.max_connections);
    /* Info, not a warning: the chart binds 0.0.0.0 on purpose, for kubelet's probes. */
    if (!admin_is_loopback(cfg.admin))
        log_info("admin listener is not on a loopback address", "admin=%s note=%s", cfg.admin,
                 "the admin API is unauthenticated; /routes shows the whole route table");

    uv_run(&m.loop, UV_RUN_DEFAULT);

    px_snapshot_clear();
    r = uv_loop_close(&m.loop);
    if (r != 0)
        log_warn("main loop not closed cleanly", "error=%s", uv_strerror(r));
    log_info("stopped", "");
    return 0;
}

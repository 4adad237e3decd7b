/* legate-proxy: serves HTTP with the route table the controller pushes.
 *
 *   main thread: control socket (snapshots in), admin listener, signals
 *   N workers:   one uv loop each, SO_REUSEPORT listener, upstream pools (worker.c)
 *
 * Startup problems (a taken port, a socket that cannot be created) exit 1 with the reason on
 * stderr; bad flags exit 2 (common/opts.c). SIGTERM or SIGINT: the control socket and admin
 * listener close, workers stop accepting and give requests in flight PX_GRACE_MS, exit 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "admin.h"
#include "control.h"
#include "log.h"
#include "opts.h"
#include "snapshot.h"
#include "worker.h"
#include "xalloc.h"

/* User settings: set by the command line, read-only afterwards. */
struct px_config {
    const char *listen;
    const char *admin;
    const char *control_socket;
    int workers;
    int log_level;
    int log_format;
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
    };
    opts_parse(argc, argv, opts, ARRAY_SIZE(opts), "legate-proxy",
               "Serves HTTP/1.1 with the routes legate-controller pushes.");
    log_configure(cfg.log_level, cfg.log_format, "proxy");
    /* A peer gone mid-write is an error return (EPIPE), not a death. */
    signal(SIGPIPE, SIG_IGN);

    int r = px_workers_create(cfg.workers, cfg.listen, &m.workers, err, sizeof(err));
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
    r = px_control_start(&m.loop, cfg.control_socket);
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

    uv_run(&m.loop, UV_RUN_DEFAULT);

    px_snapshot_clear();
    r = uv_loop_close(&m.loop);
    if (r != 0)
        log_warn("main loop not closed cleanly", "error=%s", uv_strerror(r));
    log_info("stopped", "");
    return 0;
}

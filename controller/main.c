/* legate-controller: reads Services from a source into the object cache, compiles every
 * Mapping into one route table when the cache changes, and pushes the table to the proxy.
 *
 *   source (the Kubernetes API, or a directory) -> cache -> compile -> push
 *
 * Everything runs on one libuv loop; the Kubernetes source adds libcurl's multi_socket handles
 * to the same loop. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "annotation.h"
#include "cache.h"
#include "compile.h"
#include "kube.h"
#include "log.h"
#include "opts.h"
#include "push.h"
#include "source_dir.h"
#include "strmap.h"
#include "xalloc.h"

/* A burst of changes (a rescan, a relist, kubectl apply of many objects) becomes one compile:
 * wait this long after the last change, but never longer than the cap after the first one, so
 * a steady stream of changes still reaches the proxy. */
#define DEBOUNCE_MS     5
#define DEBOUNCE_MAX_MS 100

/* User settings: set by the command line, read-only afterwards. */
struct ctl_config {
    const char *control_socket;
    const char *source_dir;
    const char *ambassador_id;
    const char *kubeconfig;         /* for the Kubernetes source */
    const char *context;            /* idem: instead of the kubeconfig's current-context */
    const char *namespace;          /* idem: watch one namespace instead of all */
    const char *serviceaccount_dir; /* idem: in-cluster credentials */
    int log_level;
    int log_format;
};

/* Runtime state. */
struct ctl {
    const struct ctl_config *cfg;
    uv_loop_t *loop;
    struct cache cache;
    struct source_dir *dir;
    struct kube_source *kube;
    struct push *push;
    uv_timer_t debounce;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uint64_t first_change; /* loop time of the oldest change not compiled yet; 0: none */
    uint64_t next_version;
    struct compile_result *last; /* what was last pushed, to skip pushing the same again */
    struct strmap logged;        /* problems the last compile found, so each is logged once */
};

static void ctl_config_init(struct ctl_config *c)
{
    memset(c, 0, sizeof(*c));
    c->control_socket = "/var/run/legate/control.sock";
    c->ambassador_id = "default";
    c->log_level = LOG_LEVEL_INFO;
    c->log_format = LOG_FORMAT_LOGFMT;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- compile and push ---- */

/* "path:line" when the error's line maps onto the file, else the path. */
static void file_position(const struct compile_service *s, int line, char *out, size_t outlen)
{
    if (s->line > 0 && line > 0)
        snprintf(out, outlen, "%s:%d", s->origin, s->line + line - 1);
    else
        snprintf(out, outlen, "%s", s->origin);
}

/* Logs one problem unless the previous compile already logged it: a change elsewhere must
 * not repeat every standing error (the compile summary still counts them all). */
static void log_problem(struct ctl *c, struct strmap *now, const struct compile_service *s,
                        const struct route_error *e, const char *msg)
{
    struct buf key;
    char file[1024] = "";
    buf_init(&key, (size_t)1 << 20);
    buf_printf(&key, "%s\x1f%s\x1f%s\x1f%s\x1f%d\x1f%s\x1f%s\x1f%s", msg, e->ns, e->svc, e->mapping,
               e->line, e->field ? e->field : "", e->message, s->origin);
    if (key.data == NULL || strmap_get(now, key.data) != NULL)
        goto out;
    strmap_put(now, key.data, (void *)1);
    if (strmap_get(&c->logged, key.data) != NULL)
        goto out;
    if (c->cfg->source_dir != NULL)
        file_position(s, e->line, file, sizeof(file));
    log_warn(msg, "ns=%s svc=%s mapping=%s field=%s line=%d error=%s file=%s", e->ns, e->svc,
             e->mapping, e->field ? e->field : "", e->line, e->message, file);
out:
    buf_free(&key);
}

/* Whether the object a warning is about is used: not when the warning says it is
 * skipped (a kind Legate does not read yet), nor when the Service also has an error naming it
 * (a Mapping with any error is dropped whole). Otherwise only a part of it is ignored. */
static bool is_applied(const struct compile_service *s, const struct route_error *w)
{
    if (annotation_warning_is_skip(w))
        return false;
    for (size_t k = 0; k < s->nerrors; k++)
        if (strcmp(s->errors[k].mapping, w->mapping) == 0)
            return false;
    return true;
}

static void log_problems(struct ctl *c, const struct compile_result *r)
{
    struct strmap now;
    strmap_init(&now);
    for (size_t i = 0; i < r->nservices; i++) {
        const struct compile_service *s = &r->services[i];
        for (size_t k = 0; k < s->nerrors; k++)
            log_problem(c, &now, s, &s->errors[k], "invalid mapping");
        for (size_t k = 0; k < s->nwarnings; k++)
            log_problem(c, &now, s, &s->warnings[k],
                        is_applied(s, &s->warnings[k]) ? "object applied with a warning"
                                                       : "object not applied");
    }
    strmap_free(&c->logged, NULL);
    c->logged = now;
}

/* Above this many routes, a compile ends by handing freed memory back (xalloc.h). */
#define TRIM_ROUTES 10000

static void compile_and_push(struct ctl *c)
{
    struct compile_opts o = { .ambassador_id = c->cfg->ambassador_id, .version = 0 };
    uint64_t t0 = uv_hrtime();
    struct compile_result *r = compile_run(&c->cache, &o);

    c->first_change = 0;
    log_problems(c, r);
    /* Kubernetes Events on the Services: every compile reports every annotated Service (the
     * recorder posts only what changed), whether or not the table changed. */
    if (c->kube != NULL) {
        struct kube_events *ev = kube_source_events(c->kube);
        for (size_t i = 0; i < r->nservices; i++) {
            const struct compile_service *s = &r->services[i];
            kube_events_report(ev, s->ns, s->svc, s->uid, s->errors, s->nerrors);
        }
        kube_events_compiled(ev);
    }
    if (c->last != NULL && compile_tables_equal(r->table, c->last->table)) {
        /* The cache changed in ways that do not change routes (a comment, a reordered key):
         * the proxy already has this table. */
        log_debug("compiled; no change", "services=%zu", r->nservices);
        compile_result_free(r);
        return;
    }
    r->table->version = c->next_version++;
    log_info("compiled",
             "routes=%zu clusters=%zu errors=%zu warnings=%zu services=%zu version=%llu "
             "compile_us=%llu",
             r->table->nroutes, r->table->nclusters, r->table->nerrors, r->nwarnings, r->nservices,
             (unsigned long long)r->table->version,
             (unsigned long long)((uv_hrtime() - t0) / 1000));
    push_submit(c->push, r->table);
    bool big = c->last != NULL && c->last->table->nroutes > TRIM_ROUTES;
    compile_result_free(c->last);
    c->last = r;
    if (big || r->table->nroutes > TRIM_ROUTES)
        xalloc_trim(); /* a large table's parse trees and the previous result are freed now */
}

static void on_debounce(uv_timer_t *t)
{
    struct ctl *c = container_of(t, struct ctl, debounce);
    compile_and_push(c);
}

static void on_cache_changed(void *arg)
{
    struct ctl *c = arg;
    uint64_t now = uv_now(c->loop);
    if (c->first_change == 0)
        c->first_change = now ? now : 1;
    uint64_t deadline = c->first_change + DEBOUNCE_MAX_MS;
    uint64_t delay = now + DEBOUNCE_MS <= deadline ? DEBOUNCE_MS
                     : deadline > now              ? deadline - now
                                                   : 0;
    uv_timer_start(&c->debounce, on_debounce, delay, 0);
}

/* ---- startup and shutdown ---- */

static void on_signal(uv_signal_t *h, int signum)
{
    struct ctl *c = h->data;
    log_info("shutting down", "signal=%s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    source_dir_stop(c->dir);
    c->dir = NULL;
    kube_source_stop(c->kube);
    c->kube = NULL;
    push_stop(c->push);
    c->push = NULL;
    uv_close((uv_handle_t *)&c->debounce, NULL);
    uv_close((uv_handle_t *)&c->sigterm, NULL);
    uv_close((uv_handle_t *)&c->sigint, NULL);
}

/* The checks that need more than one flag's parser; exits 2 like a bad flag. */
static void ctl_config_validate(const struct ctl_config *cfg)
{
    if (cfg->source_dir != NULL &&
        (cfg->kubeconfig || cfg->context || cfg->namespace || cfg->serviceaccount_dir)) {
        fprintf(stderr, "legate-controller: --source-dir does not go with --kubeconfig, "
                        "--context, --namespace or --serviceaccount-dir\n");
        exit(2);
    }
}

/* After each complete list of the Kubernetes source. The first one is the first compile: until
 * then the cache does not hold the cluster's state, and an empty table pushed early would make
 * the proxy ready with no routes. Later lists change the cache, which compiles as usual. */
static void on_kube_synced(void *arg)
{
    struct ctl *c = arg;
    if (c->last != NULL)
        return;
    uv_timer_stop(&c->debounce);
    compile_and_push(c);
}

/* Starts the configured source: the directory with --source-dir, else the Kubernetes API
 * (kubeconfig or in-cluster; exits 2 when neither can be found). */
static void start_source(struct ctl *c)
{
    const struct ctl_config *cfg = c->cfg;
    if (cfg->source_dir == NULL) {
        struct kube_flags f = { .kubeconfig = cfg->kubeconfig,
                                .context = cfg->context,
                                .ns = cfg->namespace,
                                .serviceaccount_dir = cfg->serviceaccount_dir };
        struct kube_config kc;
        char err[1024];
        if (kube_config_resolve(&f, &kc, err, sizeof(err)) != 0) {
            fprintf(stderr, "legate-controller: %s\n", err);
            exit(2);
        }
        c->kube = kube_source_start(c->loop, &kc, &c->cache, on_kube_synced, c);
        kube_config_free(&kc);
        return;
    }
    int rc = source_dir_start(c->loop, cfg->source_dir, &c->cache, 0, &c->dir);
    if (rc != 0) {
        fprintf(stderr, "legate-controller: bad value for --source-dir: %s: %s\n", cfg->source_dir,
                strerror(-rc));
        exit(2);
    }
}

int main(int argc, char **argv)
{
    struct ctl_config cfg;
    struct ctl c;

    ctl_config_init(&cfg);
    const struct opt opts[] = {
        { "control-socket", "PATH", "proxy control socket (default /var/run/legate/control.sock)",
          opt_string, &cfg.control_socket },
        { "source-dir", "DIR", "read Service manifests from DIR instead of the Kubernetes API",
          opt_string, &cfg.source_dir },
        { "ambassador-id", "ID", "use only objects for this ambassador_id (default \"default\")",
          opt_string, &cfg.ambassador_id },
        { "kubeconfig", "FILE",
          "kubeconfig for the Kubernetes API (default: in-cluster, $KUBECONFIG, ~/.kube/config)",
          opt_string, &cfg.kubeconfig },
        { "context", "NAME", "kubeconfig context to use instead of current-context", opt_string,
          &cfg.context },
        { "namespace", "NS", "watch only this namespace (default: all namespaces)", opt_string,
          &cfg.namespace },
        { "serviceaccount-dir", "DIR",
          "in-cluster credentials (default /var/run/secrets/kubernetes.io/serviceaccount)",
          opt_string, &cfg.serviceaccount_dir },
        { "log-level", "LEVEL", "debug, info, warn or error (default info)", opt_level,
          &cfg.log_level },
        { "log-format", "FORMAT", "logfmt or json (default logfmt)", opt_format, &cfg.log_format },
    };
    opts_parse(argc, argv, opts, ARRAY_SIZE(opts), "legate-controller",
               "Compiles Ambassador Mapping annotations into routes for legate-proxy.");
    ctl_config_validate(&cfg);
    log_configure(cfg.log_level, cfg.log_format, "controller");
    signal(SIGPIPE, SIG_IGN); /* a proxy gone mid-write is an error return, not a death */

    memset(&c, 0, sizeof(c));
    strmap_init(&c.logged);
    c.cfg = &cfg;
    c.loop = uv_default_loop();
    c.next_version = wall_ms(); /* a restarted controller's versions are higher (protocol) */
    cache_init(&c.cache, on_cache_changed, &c);
    uv_timer_init(c.loop, &c.debounce);
    /* A source that cannot start is a startup error (one line, exit 2): start it before the
     * first log line so that is all the user sees. */
    start_source(&c);
    log_info("starting", "version=%s socket=%s source=%s ambassador_id=%s", LEGATE_VERSION,
             cfg.control_socket, cfg.source_dir ? cfg.source_dir : "kubernetes", cfg.ambassador_id);
    c.push = push_start(c.loop, cfg.control_socket);
    /* The first table goes out now, not after the debounce: the proxy waits for it to be
     * ready, and an empty directory must still produce one. The Kubernetes source compiles
     * first when its initial list is in (on_kube_synced). */
    if (c.kube == NULL) {
        uv_timer_stop(&c.debounce);
        compile_and_push(&c);
    }

    uv_signal_init(c.loop, &c.sigterm);
    uv_signal_init(c.loop, &c.sigint);
    c.sigterm.data = c.sigint.data = &c;
    uv_signal_start(&c.sigterm, on_signal, SIGTERM);
    uv_signal_start(&c.sigint, on_signal, SIGINT);

    uv_run(c.loop, UV_RUN_DEFAULT);

    uv_loop_close(c.loop);
    cache_free(&c.cache);
    strmap_free(&c.logged, NULL);
    compile_result_free(c.last);
    log_info("stopped", "version=%s", LEGATE_VERSION);
    return 0;
}

/* The Kubernetes source as main.c sees it: one HTTP client, the Service reflector and the
 * Event recorder, sharing the loop and one copy of the configuration. */
#include "kube_internal.h"

#include <stdlib.h>

#include "log.h"
#include "xalloc.h"

struct kube_source {
    struct kube_config cfg; /* own copy; the client borrows it */
    struct kube_http *http;
    struct kube_watch watch;
    struct kube_events *events;
    int closing; /* parts still closing */
};

static void on_part_closed(void *arg)
{
    struct kube_source *ks = arg;
    if (--ks->closing > 0)
        return;
    kube_config_free(&ks->cfg);
    free(ks);
}

struct kube_source *kube_source_start(uv_loop_t *loop, const struct kube_config *cfg,
                                      struct cache *cache, kube_synced_cb on_synced, void *arg)
{
    struct kube_source *ks = xcalloc(1, sizeof(*ks));
    kube_config_copy(&ks->cfg, cfg);
    ks->http = kube_http_new(loop, &ks->cfg);
    ks->events = kube_events_new(loop, ks->http);
    kube_watch_init(&ks->watch, loop, ks->http, cache, ks->cfg.ns, on_synced, arg);
    const char *auth = ks->cfg.exec != NULL                                     ? "exec"
                       : ks->cfg.token_file != NULL                             ? "token-file"
                       : ks->cfg.token != NULL                                  ? "token"
                       : ks->cfg.cert_file != NULL || ks->cfg.cert_data != NULL ? "client-cert"
                                                                                : "none";
    /* Never the token or the key: only where they come from. */
    log_info("kubernetes source", "server=%s config=%s auth=%s tls=%s namespace=%s", ks->cfg.server,
             ks->cfg.source ? ks->cfg.source : "", auth, ks->cfg.insecure ? "insecure" : "verify",
             ks->cfg.ns ? ks->cfg.ns : "*");
    kube_watch_start(&ks->watch);
    return ks;
}

struct kube_events *kube_source_events(struct kube_source *ks)
{
    return ks != NULL ? ks->events : NULL;
}

bool kube_source_synced(const struct kube_source *ks)
{
    return ks != NULL && ks->watch.synced;
}

void kube_source_stop(struct kube_source *ks)
{
    if (ks == NULL)
        return;
    /* Events and the watch hold requests of the client: they go first. */
    kube_events_free(ks->events);
    ks->events = NULL;
    ks->closing = 2;
    kube_watch_close(&ks->watch, on_part_closed, ks);
    kube_http_close(ks->http, on_part_closed, ks);
}

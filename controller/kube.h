/* The Kubernetes API source: finds the API server (kubeconfig or in-cluster), lists and watches
 * Services like client-go's Reflector, writes them into the object cache (origin "kube"), and
 * posts Events on Services whose Mappings are invalid. Wire protocol and client behaviour
 * follow reference/kubernetes-api.md.
 *
 * Everything runs on the controller's one libuv loop: libcurl's multi_socket interface is
 * driven by uv_poll and uv_timer handles, so watches, Event posts and the proxy push share one
 * thread and none of them blocks another.
 *
 * Use from main.c:
 *
 *   struct kube_config cfg;
 *   if (kube_config_resolve(&flags, &cfg, err, sizeof(err)) != 0) -> print err, exit 2
 *   struct kube_source *ks = kube_source_start(loop, &cfg, &cache, on_synced, arg);
 *   kube_config_free(&cfg);                       (the source keeps its own copy)
 *   ... after each compile, for each Service:  kube_events_report(kube_source_events(ks), ...)
 *   ... then once:                               kube_events_compiled(kube_source_events(ks))
 *   kube_source_stop(ks);                         (then run the loop until it drains) */
#ifndef LEGATE_CONTROLLER_KUBE_H
#define LEGATE_CONTROLLER_KUBE_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "cache.h"
#include "route-t.h"

#define KUBE_ORIGIN              "kube"
#define KUBE_SERVICEACCOUNT_DIR  "/var/run/secrets/kubernetes.io/serviceaccount"
#define KUBE_TOKEN_REREAD_MS     60000 /* projected tokens rotate; re-read at least this often */
#define KUBE_LIST_LIMIT          500
#define KUBE_WATCH_TIMEOUT_MIN_S 300 /* watch timeoutSeconds is random in [MIN, MAX) */
#define KUBE_WATCH_TIMEOUT_MAX_S 600
#define KUBE_EVENT_MAX           ((size_t)4 << 20)   /* one watch event (one JSON line) */
#define KUBE_LIST_MAX            ((size_t)256 << 20) /* one LIST response body */

/* Command-line choices that pick and scope the source. Borrowed strings; NULL when not given. */
struct kube_flags {
    const char *kubeconfig;         /* --kubeconfig FILE */
    const char *context;            /* --context NAME: instead of current-context */
    const char *ns;                 /* --namespace NS: watch one namespace; NULL: all */
    const char *serviceaccount_dir; /* --serviceaccount-dir DIR; NULL: KUBE_SERVICEACCOUNT_DIR */
};

/* A kubeconfig `exec` credential plugin (client.authentication.k8s.io). */
struct kube_exec {
    char *command; /* a relative path with a '/' is resolved against the kubeconfig's folder */
    char **args;
    size_t nargs;
    char **env; /* "NAME=value", added to the controller's environment */
    size_t nenv;
    char *api_version; /* client.authentication.k8s.io/v1 or v1beta1 */
    char *install_hint;
};

/* Where the API server is and how to authenticate; read-only once resolved. Secrets live here
 * and are never logged. */
struct kube_config {
    char *source; /* what it came from, for logs: the kubeconfig path or "in-cluster" */
    char *server; /* https://host:port[/prefix], without a trailing '/' */
    /* TLS: CA from a file or from memory (PEM); neither means the system's CAs. */
    char *ca_file;
    char *ca_data;
    size_t ca_len;
    bool insecure; /* insecure-skip-tls-verify: no verification at all */
    char *tls_server_name;
    char *proxy_url; /* proxy-url: an HTTP(S) or SOCKS proxy to reach the server through */
    /* Credentials: a bearer token (static or re-read from a file), a client certificate, or
     * an exec plugin that yields either. */
    char *token;
    char *token_file;
    char *cert_file;
    char *cert_data;
    size_t cert_len;
    char *key_file;
    char *key_data;
    size_t key_len;
    struct kube_exec *exec;
    char *ns;         /* namespace to watch (--namespace); NULL: all namespaces */
    char *context_ns; /* the context's (or the pod's) namespace; informational */
};

/* Picks the API server like client-go: --kubeconfig FILE; else in-cluster when
 * KUBERNETES_SERVICE_HOST is set (service-account token and CA from the serviceaccount
 * directory); else $KUBECONFIG (a colon list, merged: the first file to set a value wins) or
 * ~/.kube/config. Returns 0 with *out filled (free it with kube_config_free), or -EINVAL /
 * -ENOENT with one line in err saying what was tried and what was wrong. */
int kube_config_resolve(const struct kube_flags *f, struct kube_config *out, char *err,
                        size_t errlen);
/* Frees what c owns and zeroes it. Safe on a zeroed config. */
void kube_config_free(struct kube_config *c);

/* Called after every complete LIST has been applied to the cache (first sync and relists), so
 * the controller can push a first table even when no Service carries a Mapping. */
typedef void (*kube_synced_cb)(void *arg);

struct kube_source;
struct kube_events;

/* Starts listing and watching Services on loop; they go into cache with origin KUBE_ORIGIN.
 * cfg is copied. on_synced may be NULL. Returns the source (never NULL: failures to reach the
 * server are retried with backoff and logged, never fatal). */
struct kube_source *kube_source_start(uv_loop_t *loop, const struct kube_config *cfg,
                                      struct cache *cache, kube_synced_cb on_synced, void *arg);
/* Returns the source's Event recorder (borrowed; valid until kube_source_stop). */
struct kube_events *kube_source_events(struct kube_source *ks);
/* True once a first LIST has completed. */
bool kube_source_synced(const struct kube_source *ks);
/* Aborts every request and closes every handle; the source is freed in the last close
 * callback, so the loop must run once more. Safe on NULL. */
void kube_source_stop(struct kube_source *ks);

/* Reports what the last compile found in one Service: errs[0..n) (borrowed), n == 0 when every
 * Mapping in it is valid. Call it for every annotated Service after each compile. Posting is
 * asynchronous and never fails the caller: when the set of errors of a Service changes, each
 * error becomes a Warning Event (reason InvalidMapping) on the Service; repeats of an Event
 * already posted are PATCHed (count, lastTimestamp); a Service whose errors are gone gets a
 * Normal Event (reason MappingsValid). Safe with ev NULL (no Kubernetes source). */
void kube_events_report(struct kube_events *ev, const char *ns, const char *svc, const char *uid,
                        const struct route_error *errs, size_t n);
/* Ends one compile's reports: Services not reported since the previous call (deleted, or their
 * annotation removed) are forgotten, so if they come back broken they are reported again. */
void kube_events_compiled(struct kube_events *ev);

#endif

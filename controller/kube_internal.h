/* Private declarations of the Kubernetes source (controller/kube_*.c). Included by those files
 * and by their unit tests only; the rest of the controller uses kube.h.
 *
 *   kube_config.c   kubeconfig / in-cluster config, base64, RFC 3339 times
 *   kube_auth.c     bearer token (re-read), exec credential plugins
 *   kube_http.c     libcurl multi_socket on the uv loop
 *   kube_split.c    watch stream -> one line per event, with a size cap
 *   kube_backoff.c  jittered exponential backoff, the module's random numbers
 *   kube_watch.c    list + watch (client-go's Reflector) into the cache
 *   kube_events.c   Event posting: dedup cache, rate limit, per-Service state
 *   kube_source.c   the object main.c holds: the above put together */
#ifndef LEGATE_CONTROLLER_KUBE_INTERNAL_H
#define LEGATE_CONTROLLER_KUBE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <uv.h>

#include "buf.h"
#include "cache.h"
#include "kube.h"
#include "strmap.h"

struct json_object;

typedef void (*kube_closed_cb)(void *arg);

/* ---- kube_config.c ------------------------------------------------------------------------ */

#define KUBE_CONFIG_FILE_MAX ((size_t)4 << 20) /* a kubeconfig or a PEM file */

/* Reads the kubeconfig files paths[0..n) (missing ones are skipped, as client-go does for
 * $KUBECONFIG lists) merged: current-context from the first file that sets it, each named
 * cluster/user/context from the first file that defines it, relative paths against the folder
 * of the file that held them. context overrides current-context when not NULL. Returns 0, or
 * -ENOENT (no file exists) / -EINVAL (unreadable, no current context, dangling names, bad
 * base64...) with err filled. */
int kube_config_load(const char *const *paths, size_t n, const char *context,
                     struct kube_config *out, char *err, size_t errlen);
/* In-cluster configuration from KUBERNETES_SERVICE_HOST/PORT and sa_dir (token, ca.crt,
 * namespace; POD_NAMESPACE wins over the file). 0 or -EINVAL with err filled. */
int kube_config_in_cluster(const char *sa_dir, struct kube_config *out, char *err, size_t errlen);
/* Deep copy of src into *dst. */
void kube_config_copy(struct kube_config *dst, const struct kube_config *src);
/* Decodes standard base64 (padding optional, ASCII whitespace ignored). Returns 0 with *out
 * (NUL-terminated, caller frees) and *outlen, or -EINVAL. */
int kube_base64_decode(const char *in, size_t len, char **out, size_t *outlen);
/* Reads a whole file (at most max bytes) into *out (NUL-terminated, caller frees). 0 or a
 * negative errno (-EFBIG past max). */
int kube_read_file(const char *path, size_t max, char **out, size_t *outlen);
/* RFC 3339 UTC timestamps as Kubernetes writes them. kube_time_parse accepts fractions and
 * numeric offsets; 0 or -EINVAL. kube_time_format writes "2026-01-01T10:00:00Z". */
int kube_time_parse(const char *s, int64_t *out);
void kube_time_format(int64_t t, char *out, size_t outlen);

/* ---- kube_auth.c -------------------------------------------------------------------------- */

/* What an exec plugin printed (ExecCredential status). */
struct kube_exec_cred {
    char *token;
    char *cert;     /* PEM */
    char *key;      /* PEM */
    int64_t expiry; /* unix seconds; 0: never expires */
};

/* Parses an ExecCredential. api_version (may be NULL) must match the document's when both are
 * set. Needs a token, or a certificate and a key. 0 or -EINVAL with err filled. */
int kube_exec_cred_parse(const char *json, size_t len, const char *api_version,
                         struct kube_exec_cred *out, char *err, size_t errlen);
void kube_exec_cred_free(struct kube_exec_cred *c);

enum kube_auth_state {
    KUBE_AUTH_READY,   /* credentials can be used now */
    KUBE_AUTH_PENDING, /* an exec plugin runs; on_ready will be called */
    KUBE_AUTH_FAILED,  /* no credentials could be had; try again later */
};

typedef void (*kube_auth_ready_cb)(void *arg);

struct kube_exec_run;

struct kube_auth {
    uv_loop_t *loop;
    const struct kube_config *cfg; /* borrowed */
    char *file_token;              /* last token read from cfg->token_file */
    uint64_t file_read_ms;         /* uv_now of that read */
    bool file_read;
    bool stale; /* a 401 was seen: refresh before the next request */
    bool warned_file;
    struct kube_exec_cred exec_cred;
    bool have_exec_cred;
    uint64_t exec_failed_ms;
    bool exec_failed;
    struct kube_exec_run *run; /* the plugin running now, or NULL */
    kube_auth_ready_cb on_ready;
    void *arg;
    unsigned long refreshes; /* token file reads and plugin runs, for tests and logs */
    kube_closed_cb on_closed;
    void *closed_arg;
    bool closing;
};

void kube_auth_init(struct kube_auth *a, uv_loop_t *loop, const struct kube_config *cfg,
                    kube_auth_ready_cb on_ready, void *arg);
/* Makes the credentials current (re-reads the token file when older than
 * KUBE_TOKEN_REREAD_MS or after a 401; starts the exec plugin when its credential expired).
 * Returns the state. */
enum kube_auth_state kube_auth_prepare(struct kube_auth *a);
/* After a 401: the next kube_auth_prepare refreshes. */
void kube_auth_invalidate(struct kube_auth *a);
/* The bearer token to send, or NULL (borrowed, valid until the next prepare). */
const char *kube_auth_token(const struct kube_auth *a);
/* The client certificate and key from memory (the exec plugin's or the kubeconfig's -data),
 * or false when there are none. Borrowed. */
bool kube_auth_cert(const struct kube_auth *a, const char **cert, size_t *certlen, const char **key,
                    size_t *keylen);
/* Kills a running plugin; cb runs once every handle is closed. */
void kube_auth_close(struct kube_auth *a, kube_closed_cb cb, void *arg);

/* ---- kube_http.c -------------------------------------------------------------------------- */

struct kube_http_result {
    long status;       /* HTTP status; 0 when there was no response */
    int curl_code;     /* CURLcode; 0 (CURLE_OK) for any complete response, 4xx/5xx included */
    const char *error; /* one line for logs when there was no complete response */
    const char *body;  /* the body (for a stream: only when the status was not 2xx) */
    size_t len;
    bool refused;     /* connection refused */
    bool aborted;     /* on_data asked to stop */
    bool auth_failed; /* no credentials (exec plugin failed): nothing was sent */
    bool too_big;     /* the body passed max_body */
};

/* Streamed body bytes of a 2xx response. Return 0 to go on, non-zero to abort the transfer
 * (it then ends with aborted set). Must not cancel requests. */
typedef int (*kube_http_data_cb)(void *arg, const char *p, size_t n);
/* The end of a request, whatever happened. res and its strings are valid during the call.
 * The request is freed after it returns. */
typedef void (*kube_http_done_cb)(void *arg, const struct kube_http_result *res);

struct kube_http_opts {
    const char *method;        /* "GET", "POST", "PATCH" */
    const char *path;          /* with the query, appended to the server URL */
    const char *body;          /* copied; NULL for none */
    const char *content_type;  /* of body */
    long timeout_s;            /* whole transfer; 0 for none (watches rely on low-speed limits) */
    size_t max_body;           /* cap on a buffered body; 0: 1 MiB */
    kube_http_data_cb on_data; /* NULL: buffer the body */
    kube_http_done_cb on_done;
    void *arg;
};

struct kube_http;
struct kube_http_req;

/* cfg is borrowed and must outlive the client. */
struct kube_http *kube_http_new(uv_loop_t *loop, const struct kube_config *cfg);
/* Starts a request (now, or once the credentials are ready). Returns a handle valid until
 * on_done returns or kube_http_cancel. */
struct kube_http_req *kube_http_start(struct kube_http *h, const struct kube_http_opts *o);
/* Aborts a request; on_done is not called. Not from inside a kube_http callback of the same
 * request's on_data. */
void kube_http_cancel(struct kube_http_req *r);
/* Cancels every request and frees the client once its handles are closed; cb then runs. */
void kube_http_close(struct kube_http *h, kube_closed_cb cb, void *arg);
/* "Reason: message" of a Kubernetes Status body in res, else the transfer's error, for
 * logs. */
void kube_http_status_message(const struct kube_http_result *res, char *out, size_t outlen);
/* Requests started since creation, for tests. */
unsigned long kube_http_requests(const struct kube_http *h);

/* ---- kube_split.c ------------------------------------------------------------------------- */

/* Called for each complete non-empty line (without "\n" or "\r\n"); non-zero stops the feed
 * and is returned by kube_split_feed. line is not NUL-terminated. */
typedef int (*kube_line_cb)(void *arg, const char *line, size_t len);

struct kube_split {
    struct buf part; /* the unfinished line carried between feeds */
    size_t max_line;
};

void kube_split_init(struct kube_split *s, size_t max_line);
/* Feeds n bytes. Returns 0, the callback's non-zero value, or -E2BIG when a line is longer
 * than max_line (the splitter must then be reset before reuse). */
int kube_split_feed(struct kube_split *s, const char *p, size_t n, kube_line_cb cb, void *arg);
/* Bytes of an unfinished line held. */
size_t kube_split_pending(const struct kube_split *s);
void kube_split_reset(struct kube_split *s);
void kube_split_free(struct kube_split *s);

/* ---- kube_backoff.c ----------------------------------------------------------------------- */

#define KUBE_BACKOFF_BASE_MS  800
#define KUBE_BACKOFF_CAP_MS   30000
#define KUBE_BACKOFF_RESET_MS 120000

/* client-go's backoff manager: the step d starts at base and doubles; each delay is random in
 * [d, 2d); no delay reaches cap (the step stops growing at cap/2, so the jitter survives at
 * the cap); after reset_ms without a failure the step starts over at base. */
struct kube_backoff {
    uint64_t base_ms;
    uint64_t cap_ms;
    uint64_t reset_ms;
    uint64_t step_ms; /* d for the next failure */
    uint64_t last_ms; /* time of the last failure */
    bool failed;      /* there was a failure since init */
};

void kube_backoff_init(struct kube_backoff *b, uint64_t base_ms, uint64_t cap_ms,
                       uint64_t reset_ms);
/* Records a failure at now_ms and returns how long to wait; rnd is any random 64-bit value. */
uint64_t kube_backoff_next(struct kube_backoff *b, uint64_t now_ms, uint64_t rnd);
/* A random 64-bit value (xorshift seeded once from uv_random); not for secrets. */
uint64_t kube_rand(void);
/* A random value in [lo, hi) (lo when hi <= lo). */
uint64_t kube_rand_range(uint64_t lo, uint64_t hi);

/* ---- kube_watch.c ------------------------------------------------------------------------- */

enum kube_watch_phase { KUBE_IDLE, KUBE_LISTING, KUBE_WATCHING, KUBE_WAITING, KUBE_CLOSED };

/* What to do after a watch ended (the pure part of the reflector, for tests). */
enum kube_next {
    KUBE_NEXT_WATCH,         /* watch again from the last RV at once */
    KUBE_NEXT_WATCH_BACKOFF, /* watch again from the last RV after a backoff */
    KUBE_NEXT_RELIST,        /* list again at once */
    KUBE_NEXT_RELIST_BACKOFF /* list again after a backoff */
};

struct kube_watch_end {
    long status;          /* HTTP status of the watch response; 0 if none */
    bool refused;         /* connection refused */
    bool expired;         /* an ERROR event with code 410 (Expired/Gone), or a 410 response */
    bool stream_error;    /* an ERROR event of another kind, a bad line, an oversize event */
    bool auth_failed;     /* no credentials */
    bool retried_401;     /* the previous attempt already was an immediate retry after a 401 */
    bool expired_before;  /* the previous watch also ended expired with nothing in between */
    unsigned long events; /* events received (bookmarks included) */
    uint64_t duration_ms;
};

enum kube_next kube_watch_decide(const struct kube_watch_end *e);

/* One object of a list or an event, parsed (strings borrowed from the JSON). */
struct kube_obj {
    const char *ns;
    const char *name;
    const char *uid;
    const char *rv;
    const char *annotation;
};

/* A listed object, kept (copied) until the list is complete. */
struct kube_item {
    char *ns;
    char *name;
    char *uid;
    char *rv;
    char *annotation;
};

struct kube_watch {
    uv_loop_t *loop;
    struct kube_http *http;
    struct cache *cache;
    char *ns; /* NULL: all namespaces */
    kube_synced_cb on_synced;
    void *arg;
    uv_timer_t timer; /* backoff waits */
    enum kube_watch_phase phase;
    struct kube_http_req *req;
    char *rv; /* last resourceVersion seen; NULL before the first list */
    struct kube_backoff backoff;
    bool relist_next;    /* what the timer starts: a list (else a watch) */
    bool rv_unavailable; /* our RV is gone (410): list without resourceVersion */
    /* list in progress */
    char *cont;       /* continue token of the next page */
    bool unpaginated; /* the continue token expired: one full list without limit */
    unsigned pages;
    struct kube_item *items;
    size_t nitems;
    size_t capitems;
    /* watch in progress */
    struct kube_split split;
    struct json_tokener *tok;
    uint64_t watch_started_ms;
    unsigned long watch_events;
    bool watch_expired;
    bool watch_stream_error;
    char watch_why[160]; /* why the stream was dropped, for the log */
    /* history across attempts */
    bool retried_401;
    bool expired_before;
    /* counters for tests and logs */
    unsigned long lists;
    unsigned long watches;
    unsigned long relists_expired;
    bool synced;
    kube_closed_cb on_closed;
    void *closed_arg;
};

void kube_watch_init(struct kube_watch *w, uv_loop_t *loop, struct kube_http *http,
                     struct cache *cache, const char *ns, kube_synced_cb on_synced, void *arg);
/* Lists, then watches, forever. */
void kube_watch_start(struct kube_watch *w);
/* Handles one line of a watch stream (exposed for tests). 0, or -EINVAL when the stream must
 * be dropped (w->watch_why says why). */
int kube_watch_line(struct kube_watch *w, const char *line, size_t len);
/* Parses one page of a LIST response (body, len bytes) and appends its usable Services (a
 * non-empty name and namespace, no string that a NUL byte would cut) to w->items, copied;
 * others are skipped with a warning. items must be an array (or null: an empty page).
 * Returns 0 with *rv (metadata.resourceVersion, never empty) and *cont (metadata.continue or
 * NULL), both borrowed from *root, or -EINVAL with why filled. Either way the caller puts
 * *root (it may be NULL). Exposed for tests and the fuzz target; on_list_done calls it. */
int kube_list_parse(struct kube_watch *w, const char *body, size_t len, struct json_object **root,
                    const char **rv, const char **cont, char *why, size_t whylen);
/* Stops; cb runs once the timer is closed. w can then be freed. */
void kube_watch_close(struct kube_watch *w, kube_closed_cb cb, void *arg);

/* ---- kube_events.c ------------------------------------------------------------------------ */

#define KUBE_EVENTS_BURST       25
#define KUBE_EVENTS_REFILL_MS   1000 /* one token per second */
#define KUBE_EVENTS_CACHE_MAX   4096 /* client-go's event cache size */
#define KUBE_EVENTS_SERVICE_MAX 16384
#define KUBE_EVENT_MESSAGE_MAX  1024

/* A token bucket: burst tokens, one more every refill_ms. */
struct kube_bucket {
    uint64_t burst;
    uint64_t refill_ms;
    uint64_t tokens_milli; /* tokens x 1000, so refills are exact */
    uint64_t last_ms;
};

void kube_bucket_init(struct kube_bucket *b, uint64_t burst, uint64_t refill_ms, uint64_t now_ms);
/* Takes one token at now_ms; false when there is none. */
bool kube_bucket_take(struct kube_bucket *b, uint64_t now_ms);

/* The event cache: (service uid, type, reason, message) -> the Event posted for it, least
 * recently used evicted past max. */
struct kube_lru_entry {
    char *key;
    char *name; /* Event name */
    char *ns;
    unsigned count;
    int64_t first; /* firstTimestamp */
    struct kube_lru_entry *prev, *next;
};

struct kube_lru {
    struct strmap map;                  /* key -> entry */
    struct kube_lru_entry *head, *tail; /* most recent first */
    size_t max;
};

void kube_lru_init(struct kube_lru *l, size_t max);
void kube_lru_free(struct kube_lru *l);
/* Returns the entry (borrowed) and makes it the most recent, or NULL. */
struct kube_lru_entry *kube_lru_get(struct kube_lru *l, const char *key);
/* Inserts a new entry (key not present) as the most recent, evicting the least recent when
 * full. Returns it (borrowed). */
struct kube_lru_entry *kube_lru_put(struct kube_lru *l, const char *key, const char *name,
                                    const char *ns, int64_t first);
/* Removes key if present. */
void kube_lru_del(struct kube_lru *l, const char *key);

/* One Event as posted. */
struct kube_event {
    const char *name;
    const char *ns;
    const char *svc;
    const char *uid;
    const char *type;   /* "Warning" or "Normal" */
    const char *reason; /* "InvalidMapping", "MappingsValid" */
    const char *message;
    int64_t first;
    int64_t last;
    unsigned count;
};

/* The POST body (caller frees). */
char *kube_event_json(const struct kube_event *e);
/* The merge patch that bumps a repeat (caller frees). */
char *kube_event_patch_json(unsigned count, int64_t last);
/* "<svc>.<16 hex digits of nanos>", cut to fit out. */
void kube_event_name(const char *svc, uint64_t nanos, char *out, size_t outlen);
/* The message of an invalid Mapping: `Mapping "m1" (line 4, field prefix): problem`. */
void kube_event_message(const struct route_error *e, char *out, size_t outlen);

struct kube_events;

/* Creates the recorder; http is borrowed. */
struct kube_events *kube_events_new(uv_loop_t *loop, struct kube_http *http);
/* Counters, for tests and logs. */
struct kube_events_stats {
    unsigned long posted;  /* POSTs sent */
    unsigned long patched; /* PATCHes sent */
    unsigned long dropped; /* over the rate limit */
    unsigned long failed;  /* requests that failed */
};
void kube_events_stats(const struct kube_events *ev, struct kube_events_stats *out);
/* Cancels posts in flight and frees ev (it owns no handles). */
void kube_events_free(struct kube_events *ev);

#endif

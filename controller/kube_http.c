/* An HTTP client for the API server on the controller's uv loop: libcurl's multi_socket
 * interface, with one uv_poll per socket curl wants watched and one uv_timer for curl's
 * timeouts (curl's multi-uv example is the pattern). Requests never block the loop; each
 * ends with exactly one on_done, or none when cancelled.
 *
 * Every request gets the same TLS settings and the current credentials (kube_auth.c); an
 * exec credential plugin may make a request wait for it. A 401 marks the credentials stale
 * so the next request re-reads the token or re-runs the plugin. */
#include "kube_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "log.h"
#include "opts.h"
#include "xalloc.h"

#define HTTP_BODY_DEFAULT_MAX   ((size_t)1 << 20)
#define HTTP_ERROR_BODY_MAX     ((size_t)64 << 10) /* a Status object in answer to a watch */
#define HTTP_CONNECT_TIMEOUT_MS 10000
#define HTTP_KEEPIDLE_S         30
#define HTTP_KEEPINTVL_S        10
/* A watch receives at least a bookmark about every minute; ~100 s of silence means the
 * connection is dead even if TCP has not noticed. */
#define HTTP_LOW_SPEED_TIME_S 100

struct kube_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct kube_http *h;
    struct kube_sock *prev, *next;
};

struct kube_http_req {
    struct kube_http *h;
    CURL *easy; /* NULL while waiting for credentials */
    struct curl_slist *headers;
    char *url;
    char *method;
    char *body;
    char *content_type;
    long timeout_s;
    kube_http_data_cb on_data;
    kube_http_done_cb on_done;
    void *arg;
    struct buf resp;
    size_t max_body;
    long status;
    bool aborted;
    bool too_big;
    bool auth_failed; /* to be completed by on_kick */
    unsigned long seq;
    char errbuf[CURL_ERROR_SIZE];
    struct kube_http_req *prev, *next;
};

struct kube_http {
    uv_loop_t *loop;
    const struct kube_config *cfg;
    CURLM *multi;
    uv_timer_t timer; /* curl's timeout */
    uv_timer_t kick;  /* deferred work: requests waiting for credentials */
    struct kube_auth auth;
    char *base_url;                /* cfg->server, with tls-server-name as host when set */
    struct curl_slist *connect_to; /* "tlsname:port:host:port" with tls-server-name */
    bool no_proxy;                 /* a loopback server is never reached through a proxy */
    struct kube_http_req *reqs;
    struct kube_sock *socks;
    unsigned long seq;
    unsigned long nrequests;
    int open; /* handles not yet closed */
    bool closing;
    bool auth_closed;
    kube_closed_cb on_closed;
    void *closed_arg;
};

/* ---- curl <-> uv ---------------------------------------------------------------------------- */

static void check_done(struct kube_http *h);

/* The client is freed when it is closing and its last handle (and the auth's) is closed. */
static void maybe_free(struct kube_http *h)
{
    if (!h->closing || h->open > 0 || !h->auth_closed)
        return;
    kube_closed_cb cb = h->on_closed;
    void *arg = h->closed_arg;
    free(h);
    if (cb != NULL)
        cb(arg);
}

static void on_sock_closed(uv_handle_t *hd)
{
    struct kube_sock *s = hd->data;
    struct kube_http *h = s->h;
    free(s);
    h->open--;
    maybe_free(h);
}

static void sock_close(struct kube_sock *s)
{
    struct kube_http *h = s->h;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        h->socks = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->poll.data = s;
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct kube_sock *s = container_of(p, struct kube_sock, poll);
    struct kube_http *h = s->h;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running = 0;
    curl_multi_socket_action(h->multi, s->fd, flags, &running);
    check_done(h);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct kube_http *h = userp;
    struct kube_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            curl_multi_assign(h->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (s == NULL) {
        s = xcalloc(1, sizeof(*s));
        s->fd = fd;
        s->h = h;
        int rc = uv_poll_init_socket(h->loop, &s->poll, fd);
        if (rc != 0) {
            log_error("cannot watch a socket", "fd=%d error=%s", (int)fd, uv_strerror(rc));
            free(s);
            return -1;
        }
        h->open++;
        s->next = h->socks;
        if (h->socks != NULL)
            h->socks->prev = s;
        h->socks = s;
        curl_multi_assign(h->multi, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static void on_curl_timeout(uv_timer_t *t)
{
    struct kube_http *h = container_of(t, struct kube_http, timer);
    int running = 0;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(h);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct kube_http *h = userp;
    /* curl must not be re-entered from here: even "now" (0) goes through the loop. */
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- requests ------------------------------------------------------------------------------- */

static void req_unlink(struct kube_http_req *r)
{
    struct kube_http *h = r->h;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else if (h->reqs == r)
        h->reqs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void req_free(struct kube_http_req *r)
{
    if (r->easy != NULL) {
        if (r->h->multi != NULL)
            curl_multi_remove_handle(r->h->multi, r->easy);
        curl_easy_cleanup(r->easy);
    }
    /* The header list holds the bearer token. */
    for (struct curl_slist *l = r->headers; l != NULL; l = l->next)
        explicit_bzero(l->data, strlen(l->data));
    curl_slist_free_all(r->headers);
    free(r->url);
    free(r->method);
    free(r->body);
    free(r->content_type);
    buf_free(&r->resp);
    free(r);
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    struct kube_http_req *r = ud;
    size_t n = size * nmemb;
    if (r->status == 0)
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->on_data != NULL && r->status >= 200 && r->status < 300) {
        if (r->on_data(r->arg, p, n) != 0) {
            r->aborted = true;
            return CURL_WRITEFUNC_ERROR;
        }
        return n;
    }
    if (buf_append(&r->resp, p, n) != 0) {
        r->too_big = true;
        return CURL_WRITEFUNC_ERROR;
    }
    return n;
}

static bool add_header(struct kube_http_req *r, const char *fmt, const char *val)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    if (buf_printf(&b, fmt, val) != 0) {
        buf_free(&b);
        return false;
    }
    struct curl_slist *l = curl_slist_append(r->headers, b.data);
    explicit_bzero(b.data, b.len);
    buf_free(&b);
    if (l == NULL)
        return false;
    r->headers = l;
    return true;
}

/* Sets up the easy handle with the current credentials and hands it to curl. */
static void req_launch(struct kube_http_req *r)
{
    struct kube_http *h = r->h;
    const struct kube_config *cfg = h->cfg;
    CURL *e = curl_easy_init();
    if (e == NULL) {
        fprintf(stderr, "curl_easy_init failed: out of memory\n");
        abort();
    }
    r->easy = e;
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "legate-controller/" LEGATE_VERSION);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)HTTP_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, (long)HTTP_KEEPIDLE_S);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, (long)HTTP_KEEPINTVL_S);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)HTTP_LOW_SPEED_TIME_S);
    if (r->timeout_s > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT, r->timeout_s);
    /* Like client-go: the kubeconfig's proxy-url, else the *_proxy environment, except for a
     * server on loopback. */
    if (cfg->proxy_url != NULL)
        curl_easy_setopt(e, CURLOPT_PROXY, cfg->proxy_url);
    else if (h->no_proxy)
        curl_easy_setopt(e, CURLOPT_NOPROXY, "*");

    /* TLS: verification stays on unless the kubeconfig says insecure-skip-tls-verify. */
    if (cfg->insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (cfg->ca_data != NULL) {
        struct curl_blob ca = { cfg->ca_data, cfg->ca_len, CURL_BLOB_COPY };
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &ca);
    } else if (cfg->ca_file != NULL) {
        curl_easy_setopt(e, CURLOPT_CAINFO, cfg->ca_file);
    }
    if (h->connect_to != NULL)
        curl_easy_setopt(e, CURLOPT_CONNECT_TO, h->connect_to);
    const char *cert, *key;
    size_t certlen, keylen;
    if (kube_auth_cert(&h->auth, &cert, &certlen, &key, &keylen)) {
        struct curl_blob cb = { (void *)cert, certlen, CURL_BLOB_COPY };
        struct curl_blob kb = { (void *)key, keylen, CURL_BLOB_COPY };
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cb);
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
        curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &kb);
    } else if (cfg->cert_file != NULL && cfg->key_file != NULL) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, cfg->cert_file);
        curl_easy_setopt(e, CURLOPT_SSLKEY, cfg->key_file);
    }

    bool ok = add_header(r, "%s", "Accept: application/json") && add_header(r, "%s", "Expect:");
    const char *token = kube_auth_token(&h->auth);
    if (ok && token != NULL && *token != '\0')
        ok = add_header(r, "Authorization: Bearer %s", token);
    if (ok && r->content_type != NULL)
        ok = add_header(r, "Content-Type: %s", r->content_type);
    if (!ok) {
        fprintf(stderr, "curl_slist_append failed: out of memory\n");
        abort();
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body != NULL ? r->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)(r->body ? strlen(r->body) : 0));
    }
    curl_multi_add_handle(h->multi, e);
}

static void req_complete(struct kube_http_req *r, CURLcode code)
{
    struct kube_http *h = r->h;
    struct kube_http_result res = { 0 };
    if (r->easy != NULL)
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
    res.curl_code = (int)code;
    res.aborted = r->aborted;
    res.too_big = r->too_big;
    res.auth_failed = r->auth_failed;
    res.refused = code == CURLE_COULDNT_CONNECT;
    if (r->auth_failed)
        res.error = "no credentials (exec plugin failed)";
    else if (r->too_big)
        res.error = "response body too large";
    else if (code != CURLE_OK)
        res.error = r->errbuf[0] != '\0' ? r->errbuf : curl_easy_strerror(code);
    res.body = r->resp.data != NULL ? r->resp.data : "";
    res.len = r->resp.len;
    if (res.status == 401)
        kube_auth_invalidate(&h->auth);
    /* Out of the multi handle before on_done, which may close the whole client. */
    if (r->easy != NULL)
        curl_multi_remove_handle(h->multi, r->easy);
    req_unlink(r);
    if (r->on_done != NULL)
        r->on_done(r->arg, &res);
    req_free(r);
}

static void check_done(struct kube_http *h)
{
    CURLMsg *m;
    int left;
    while (!h->closing && (m = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        CURLcode code = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        req_complete((struct kube_http_req *)priv, code);
    }
}

/* Launches the requests that waited for credentials, or fails them when there are none.
 * Requests started by the callbacks run here are left for the next kick, so a caller that
 * retries at once cannot spin. */
static void on_kick(uv_timer_t *t)
{
    struct kube_http *h = container_of(t, struct kube_http, kick);
    unsigned long upto = h->seq;
    bool any = false;
    for (struct kube_http_req *r = h->reqs; r != NULL && !any; r = r->next)
        any = r->easy == NULL && r->seq <= upto;
    if (!any)
        return;
    enum kube_auth_state st = kube_auth_prepare(&h->auth);
    if (st == KUBE_AUTH_PENDING)
        return; /* on_auth_ready kicks again */
    for (;;) {
        struct kube_http_req *r = h->reqs;
        while (r != NULL && (r->easy != NULL || r->seq > upto))
            r = r->next;
        if (r == NULL || h->closing)
            break;
        if (st == KUBE_AUTH_READY) {
            req_launch(r);
        } else {
            r->auth_failed = true;
            req_complete(r, CURLE_OK);
        }
    }
}

static void on_auth_ready(void *arg)
{
    struct kube_http *h = arg;
    if (!h->closing)
        uv_timer_start(&h->kick, on_kick, 0, 0);
}

struct kube_http_req *kube_http_start(struct kube_http *h, const struct kube_http_opts *o)
{
    struct kube_http_req *r = xcalloc(1, sizeof(*r));
    struct buf url;
    buf_init(&url, (size_t)1 << 20);
    buf_printf(&url, "%s%s", h->base_url, o->path);
    r->h = h;
    r->url = buf_steal(&url);
    r->method = xstrdup(o->method != NULL ? o->method : "GET");
    r->body = xstrdup(o->body);
    r->content_type = xstrdup(o->content_type);
    r->timeout_s = o->timeout_s;
    r->on_data = o->on_data;
    r->on_done = o->on_done;
    r->arg = o->arg;
    r->max_body = o->max_body != 0 ? o->max_body : HTTP_BODY_DEFAULT_MAX;
    buf_init(&r->resp, o->on_data != NULL ? HTTP_ERROR_BODY_MAX : r->max_body);
    r->seq = ++h->seq;
    r->next = h->reqs;
    if (h->reqs != NULL)
        h->reqs->prev = r;
    h->reqs = r;
    h->nrequests++;
    /* Never complete inside this call: the caller has not stored the handle yet. */
    if (!h->closing && kube_auth_prepare(&h->auth) == KUBE_AUTH_READY)
        req_launch(r);
    else
        uv_timer_start(&h->kick, on_kick, 0, 0);
    return r;
}

void kube_http_cancel(struct kube_http_req *r)
{
    if (r == NULL)
        return;
    req_unlink(r);
    req_free(r);
}

void kube_http_status_message(const struct kube_http_result *res, char *out, size_t outlen)
{
    json_object *st = NULL;
    if (res->len > 0 && res->len < HTTP_ERROR_BODY_MAX)
        st = json_tokener_parse(res->body);
    json_object *v = NULL;
    const char *reason = NULL, *msg = NULL;
    if (st != NULL && json_object_object_get_ex(st, "reason", &v) &&
        json_object_is_type(v, json_type_string))
        reason = json_object_get_string(v);
    if (st != NULL && json_object_object_get_ex(st, "message", &v) &&
        json_object_is_type(v, json_type_string))
        msg = json_object_get_string(v);
    if (reason == NULL && msg == NULL)
        snprintf(out, outlen, "%s", res->error != NULL ? res->error : "");
    else
        snprintf(out, outlen, "%s%s%s", reason ? reason : "", reason && msg ? ": " : "",
                 msg ? msg : "");
    if (st != NULL)
        json_object_put(st);
}

unsigned long kube_http_requests(const struct kube_http *h)
{
    return h->nrequests;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static bool is_loopback(const char *host)
{
    return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
           strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0;
}

/* Works out the base URL; with tls-server-name the URL carries that name (so it is the SNI
 * and the name verified) and CURLOPT_CONNECT_TO sends the connection to the real host. */
static void setup_url(struct kube_http *h)
{
    const struct kube_config *cfg = h->cfg;
    h->base_url = xstrdup(cfg->server);
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *url = NULL;
    if (u == NULL || curl_url_set(u, CURLUPART_URL, cfg->server, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
        goto out;
    h->no_proxy = is_loopback(host);
    if (cfg->tls_server_name != NULL &&
        curl_url_set(u, CURLUPART_HOST, cfg->tls_server_name, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &url, 0) == CURLUE_OK) {
        size_t n = strlen(url);
        while (n > 0 && url[n - 1] == '/')
            url[--n] = '\0';
        free(h->base_url);
        h->base_url = xstrdup(url);
        struct buf b;
        buf_init(&b, 4096);
        buf_printf(&b, "%s:%s:%s:%s", cfg->tls_server_name, port, host, port);
        h->connect_to = curl_slist_append(NULL, b.data);
        buf_free(&b);
    }
out:
    curl_free(host);
    curl_free(port);
    curl_free(url);
    curl_url_cleanup(u);
}

struct kube_http *kube_http_new(uv_loop_t *loop, const struct kube_config *cfg)
{
    static bool curl_ready;
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = true;
    }
    struct kube_http *h = xcalloc(1, sizeof(*h));
    h->loop = loop;
    h->cfg = cfg;
    h->multi = curl_multi_init();
    if (h->multi == NULL) {
        fprintf(stderr, "curl_multi_init failed: out of memory\n");
        abort();
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    uv_timer_init(loop, &h->timer);
    uv_timer_init(loop, &h->kick);
    h->open = 2;
    kube_auth_init(&h->auth, loop, cfg, on_auth_ready, h);
    setup_url(h);
    return h;
}

static void on_timer_closed(uv_handle_t *hd)
{
    struct kube_http *h = hd->data;
    h->open--;
    maybe_free(h);
}

static void on_auth_closed(void *arg)
{
    struct kube_http *h = arg;
    h->auth_closed = true;
    maybe_free(h);
}

void kube_http_close(struct kube_http *h, kube_closed_cb cb, void *arg)
{
    h->closing = true;
    h->on_closed = cb;
    h->closed_arg = arg;
    while (h->reqs != NULL)
        kube_http_cancel(h->reqs);
    /* Cleanup closes the cached connections; curl may report their sockets removed. */
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    while (h->socks != NULL)
        sock_close(h->socks);
    free(h->base_url);
    curl_slist_free_all(h->connect_to);
    h->timer.data = h;
    h->kick.data = h;
    uv_close((uv_handle_t *)&h->timer, on_timer_closed);
    uv_close((uv_handle_t *)&h->kick, on_timer_closed);
    kube_auth_close(&h->auth, on_auth_closed, h);
}

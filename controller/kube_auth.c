/* Credentials for the API server: a bearer token (static, or re-read from a file because
 * projected service-account tokens rotate), a client certificate, or an exec credential
 * plugin (client.authentication.k8s.io) run asynchronously with uv_spawn so a slow plugin
 * never stalls the loop. Tokens, keys and the plugin's output are never logged. */
#include "kube_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "log.h"
#include "xalloc.h"

#define EXEC_OUTPUT_MAX  ((size_t)1 << 20)
#define EXEC_TIMEOUT_MS  60000
#define EXEC_COOLDOWN_MS 5000 /* after a failed run, requests fail fast this long */

extern char **environ;

struct kube_exec_run {
    struct kube_auth *auth; /* NULL once the auth gave up on it (closing) */
    uv_process_t proc;
    uv_pipe_t out;
    uv_timer_t timer;
    struct buf output;
    int open; /* handles not yet closed */
    bool exited;
    bool eof;
    bool timed_out;
    bool too_big;
    int64_t status;
    int term_signal;
    int spawn_error;
};

/* ---- ExecCredential ------------------------------------------------------------------------ */

static const char *json_str(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

int kube_exec_cred_parse(const char *json, size_t len, const char *api_version,
                         struct kube_exec_cred *out, char *err, size_t errlen)
{
    int rc = -EINVAL;
    memset(out, 0, sizeof(*out));
    json_tokener *tok = json_tokener_new_ex(32);
    json_object *root = json_tokener_parse_ex(tok, json, (int)len);
    if (root == NULL || !json_object_is_type(root, json_type_object)) {
        snprintf(err, errlen, "output is not a JSON object");
        goto out;
    }
    const char *kind = json_str(root, "kind");
    const char *api = json_str(root, "apiVersion");
    if (kind == NULL || strcmp(kind, "ExecCredential") != 0) {
        snprintf(err, errlen, "output is not an ExecCredential");
        goto out;
    }
    if (api_version != NULL && api != NULL && strcmp(api, api_version) != 0) {
        snprintf(err, errlen, "plugin answered apiVersion %s, expected %s", api, api_version);
        goto out;
    }
    json_object *status = NULL;
    if (!json_object_object_get_ex(root, "status", &status) ||
        !json_object_is_type(status, json_type_object)) {
        snprintf(err, errlen, "ExecCredential has no status");
        goto out;
    }
    const char *token = json_str(status, "token");
    const char *cert = json_str(status, "clientCertificateData");
    const char *key = json_str(status, "clientKeyData");
    const char *exp = json_str(status, "expirationTimestamp");
    if ((token == NULL || *token == '\0') && (cert == NULL || key == NULL)) {
        snprintf(err, errlen,
                 "ExecCredential status has neither a token nor a client "
                 "certificate and key");
        goto out;
    }
    if ((cert == NULL) != (key == NULL)) {
        snprintf(err, errlen,
                 "ExecCredential status has a client certificate without a key "
                 "or the other way round");
        goto out;
    }
    if (exp != NULL && kube_time_parse(exp, &out->expiry) != 0) {
        snprintf(err, errlen, "bad expirationTimestamp");
        goto out;
    }
    out->token = token != NULL && *token != '\0' ? xstrdup(token) : NULL;
    out->cert = xstrdup(cert);
    out->key = xstrdup(key);
    rc = 0;
out:
    if (root != NULL)
        json_object_put(root);
    json_tokener_free(tok);
    return rc;
}

static void free_secret_str(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void kube_exec_cred_free(struct kube_exec_cred *c)
{
    free_secret_str(c->token);
    free(c->cert);
    free_secret_str(c->key);
    memset(c, 0, sizeof(*c));
}

/* ---- running the plugin -------------------------------------------------------------------- */

static void run_finish(struct kube_exec_run *r);

static void on_run_closed(uv_handle_t *h)
{
    struct kube_exec_run *r = h->data;
    if (--r->open > 0)
        return;
    struct kube_auth *a = r->auth;
    if (r->output.data != NULL)
        explicit_bzero(r->output.data, r->output.len);
    buf_free(&r->output);
    free(r);
    /* The auth was waiting for this run to go away before reporting itself closed. */
    if (a != NULL && a->closing && a->run == NULL && a->on_closed != NULL)
        a->on_closed(a->closed_arg);
}

static void run_close(struct kube_exec_run *r)
{
    uv_handle_t *hs[] = { (uv_handle_t *)&r->proc, (uv_handle_t *)&r->out,
                          (uv_handle_t *)&r->timer };
    for (size_t i = 0; i < ARRAY_SIZE(hs); i++) {
        if (!uv_is_closing(hs[i])) {
            hs[i]->data = r;
            r->open++;
            uv_close(hs[i], on_run_closed);
        }
    }
}

static void on_exec_exit(uv_process_t *p, int64_t status, int term_signal)
{
    struct kube_exec_run *r = container_of(p, struct kube_exec_run, proc);
    r->exited = true;
    r->status = status;
    r->term_signal = term_signal;
    if (r->eof)
        run_finish(r);
}

static void on_exec_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    static char slab[65536]; /* one loop thread; the data is copied out at once */
    b->base = slab;
    b->len = sizeof(slab);
}

static void on_exec_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct kube_exec_run *r = container_of(s, struct kube_exec_run, out);
    if (n > 0 && buf_append(&r->output, b->base, (size_t)n) != 0)
        r->too_big = true;
    if (n > 0)
        explicit_bzero(b->base, (size_t)n);
    if (n < 0) {
        uv_read_stop(s);
        r->eof = true;
        if (r->exited)
            run_finish(r);
    }
}

static void on_exec_timeout(uv_timer_t *t)
{
    struct kube_exec_run *r = container_of(t, struct kube_exec_run, timer);
    r->timed_out = true;
    uv_process_kill(&r->proc, SIGKILL);
}

static void exec_failed(struct kube_auth *a, const char *why)
{
    const struct kube_exec *e = a->cfg->exec;
    log_warn("exec credential plugin failed", "command=%s reason=%s hint=%s", e->command, why,
             e->install_hint ? e->install_hint : "");
    a->exec_failed = true;
    a->exec_failed_ms = uv_now(a->loop);
}

/* Both the exit and the end of stdout are in: judge the output, then close the handles. */
static void run_finish(struct kube_exec_run *r)
{
    struct kube_auth *a = r->auth;
    char why[256] = "";
    uv_timer_stop(&r->timer);
    if (a != NULL) {
        a->run = NULL;
        struct kube_exec_cred cred;
        if (r->timed_out)
            snprintf(why, sizeof(why), "no answer in %d s", EXEC_TIMEOUT_MS / 1000);
        else if (r->term_signal != 0)
            snprintf(why, sizeof(why), "killed by signal %d", r->term_signal);
        else if (r->status != 0)
            snprintf(why, sizeof(why), "exit status %lld", (long long)r->status);
        else if (r->too_big)
            snprintf(why, sizeof(why), "output larger than %zu bytes", EXEC_OUTPUT_MAX);
        else if (kube_exec_cred_parse(r->output.data ? r->output.data : "", r->output.len,
                                      a->cfg->exec->api_version, &cred, why, sizeof(why)) == 0) {
            kube_exec_cred_free(&a->exec_cred);
            a->exec_cred = cred;
            a->have_exec_cred = true;
            a->exec_failed = false;
            a->stale = false;
            a->refreshes++;
            char when[32] = "never";
            if (cred.expiry != 0)
                kube_time_format(cred.expiry, when, sizeof(when));
            log_info("exec credential obtained", "command=%s expires=%s kind=%s",
                     a->cfg->exec->command, when, cred.token ? "token" : "certificate");
        }
        if (why[0] != '\0')
            exec_failed(a, why);
    }
    run_close(r);
    if (a != NULL && a->on_ready != NULL)
        a->on_ready(a->arg);
}

/* The plugin's environment: ours, then the kubeconfig's env entries (which win), then
 * KUBERNETES_EXEC_INFO. Returns a NULL-terminated array the caller frees with free_env. */
static char **exec_env(const struct kube_exec *e)
{
    size_t n = 0;
    while (environ != NULL && environ[n] != NULL)
        n++;
    char **env = xcalloc(n + e->nenv + 2, sizeof(*env));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t nl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        bool overridden = strncmp(environ[i], "KUBERNETES_EXEC_INFO=", 21) == 0;
        for (size_t j = 0; j < e->nenv && !overridden; j++)
            overridden = strncmp(e->env[j], environ[i], nl) == 0 && e->env[j][nl] == '=';
        if (!overridden)
            env[k++] = xstrdup(environ[i]);
    }
    for (size_t j = 0; j < e->nenv; j++)
        env[k++] = xstrdup(e->env[j]);
    struct buf b;
    buf_init(&b, 4096);
    buf_printf(&b,
               "KUBERNETES_EXEC_INFO={\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\","
               "\"spec\":{\"interactive\":false}}",
               e->api_version);
    env[k++] = buf_steal(&b);
    env[k] = NULL;
    return env;
}

static void free_env(char **env)
{
    for (size_t i = 0; env[i] != NULL; i++)
        free(env[i]);
    free(env);
}

static enum kube_auth_state exec_start(struct kube_auth *a)
{
    const struct kube_exec *e = a->cfg->exec;
    struct kube_exec_run *r = xcalloc(1, sizeof(*r));
    r->auth = a;
    buf_init(&r->output, EXEC_OUTPUT_MAX);
    uv_pipe_init(a->loop, &r->out, 0);
    uv_timer_init(a->loop, &r->timer);

    char **args = xcalloc(e->nargs + 2, sizeof(*args));
    args[0] = e->command;
    for (size_t i = 0; i < e->nargs; i++)
        args[i + 1] = e->args[i];
    char **env = exec_env(e);
    uv_stdio_container_t stdio[3] = {
        { .flags = UV_IGNORE },
        { .flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&r->out },
        { .flags = UV_INHERIT_FD, .data.fd = 2 }, /* the plugin's complaints reach our log */
    };
    uv_process_options_t po = { .exit_cb = on_exec_exit,
                                .file = e->command,
                                .args = args,
                                .env = env,
                                .stdio_count = 3,
                                .stdio = stdio };
    int rc = uv_spawn(a->loop, &r->proc, &po);
    free(args);
    free_env(env);
    if (rc != 0) {
        char why[160];
        snprintf(why, sizeof(why), "cannot run it: %s", uv_strerror(rc));
        exec_failed(a, why);
        r->auth = NULL; /* nobody waits for this one */
        run_close(r);
        return KUBE_AUTH_FAILED;
    }
    uv_read_start((uv_stream_t *)&r->out, on_exec_alloc, on_exec_read);
    uv_timer_start(&r->timer, on_exec_timeout, EXEC_TIMEOUT_MS, 0);
    a->run = r;
    return KUBE_AUTH_PENDING;
}

/* ---- the credential state ------------------------------------------------------------------ */

void kube_auth_init(struct kube_auth *a, uv_loop_t *loop, const struct kube_config *cfg,
                    kube_auth_ready_cb on_ready, void *arg)
{
    memset(a, 0, sizeof(*a));
    a->loop = loop;
    a->cfg = cfg;
    a->on_ready = on_ready;
    a->arg = arg;
}

static void read_token_file(struct kube_auth *a)
{
    char *tok = NULL;
    size_t len = 0;
    int rc = kube_read_file(a->cfg->token_file, 64 * 1024, &tok, &len);
    a->file_read_ms = uv_now(a->loop);
    a->refreshes++;
    if (rc != 0) {
        /* Keep the last good token: a rotation in progress may briefly hide the file. */
        if (!a->warned_file)
            log_warn("cannot read the token file", "path=%s error=%s", a->cfg->token_file,
                     strerror(-rc));
        a->warned_file = true;
        return;
    }
    while (len > 0 && (tok[len - 1] == '\n' || tok[len - 1] == '\r' || tok[len - 1] == ' '))
        tok[--len] = '\0';
    if (a->file_token != NULL && strcmp(a->file_token, tok) != 0)
        log_info("token file changed, using the new token", "path=%s", a->cfg->token_file);
    free_secret_str(a->file_token);
    a->file_token = tok;
    a->file_read = true;
    a->warned_file = false;
}

enum kube_auth_state kube_auth_prepare(struct kube_auth *a)
{
    if (a->closing)
        return KUBE_AUTH_FAILED;
    if (a->cfg->exec != NULL) {
        if (a->run != NULL)
            return KUBE_AUTH_PENDING;
        bool expired = a->exec_cred.expiry != 0 && (int64_t)time(NULL) >= a->exec_cred.expiry;
        if (a->have_exec_cred && !a->stale && !expired)
            return KUBE_AUTH_READY;
        if (a->exec_failed && uv_now(a->loop) - a->exec_failed_ms < EXEC_COOLDOWN_MS)
            return KUBE_AUTH_FAILED;
        return exec_start(a);
    }
    if (a->cfg->token_file != NULL &&
        (!a->file_read || a->stale || uv_now(a->loop) - a->file_read_ms >= KUBE_TOKEN_REREAD_MS))
        read_token_file(a);
    a->stale = false;
    return KUBE_AUTH_READY;
}

void kube_auth_invalidate(struct kube_auth *a)
{
    a->stale = true;
}

const char *kube_auth_token(const struct kube_auth *a)
{
    if (a->cfg->exec != NULL && a->have_exec_cred && a->exec_cred.token != NULL)
        return a->exec_cred.token;
    /* A token file, once read, wins over a static token (client-go's rule). */
    if (a->file_token != NULL)
        return a->file_token;
    return a->cfg->token;
}

bool kube_auth_cert(const struct kube_auth *a, const char **cert, size_t *certlen, const char **key,
                    size_t *keylen)
{
    if (a->cfg->exec != NULL && a->have_exec_cred && a->exec_cred.cert != NULL) {
        *cert = a->exec_cred.cert;
        *certlen = strlen(a->exec_cred.cert);
        *key = a->exec_cred.key;
        *keylen = strlen(a->exec_cred.key);
        return true;
    }
    if (a->cfg->cert_data != NULL && a->cfg->key_data != NULL) {
        *cert = a->cfg->cert_data;
        *certlen = a->cfg->cert_len;
        *key = a->cfg->key_data;
        *keylen = a->cfg->key_len;
        return true;
    }
    return false;
}

void kube_auth_close(struct kube_auth *a, kube_closed_cb cb, void *arg)
{
    a->closing = true;
    a->on_closed = cb;
    a->closed_arg = arg;
    free_secret_str(a->file_token);
    a->file_token = NULL;
    kube_exec_cred_free(&a->exec_cred);
    a->have_exec_cred = false;
    struct kube_exec_run *r = a->run;
    if (r != NULL) {
        /* The run keeps a pointer back only to tell us when its handles are closed. */
        a->run = NULL;
        uv_process_kill(&r->proc, SIGKILL);
        run_close(r);
        return;
    }
    if (cb != NULL)
        cb(arg);
}

/* Where the API server is and who we are to it: kubeconfig files (client-go's loading rules)
 * or the in-cluster service account. The result is a plain struct; nothing here talks to the
 * network. Kubeconfig YAML goes through ytree (libyaml's event API) like annotations do. */
#include "kube_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xalloc.h"
#include "ytree.h"

#define KUBECONFIG_MAX_NODES 100000
#define KUBECONFIG_MAX_FILES 32

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int kube_read_file(const char *path, size_t max, char **out, size_t *outlen)
{
    int rc = 0;
    struct buf b;
    buf_init(&b, max);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char chunk[16384];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n == 0)
            break;
        if (buf_append(&b, chunk, (size_t)n) != 0) {
            rc = -EFBIG;
            goto out;
        }
    }
    *outlen = b.len;
    *out = b.data != NULL ? buf_steal(&b) : xstrdup("");
out:
    close(fd);
    buf_free(&b);
    return rc;
}

/* ---- base64 and times ---------------------------------------------------------------------- */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int kube_base64_decode(const char *in, size_t len, char **out, size_t *outlen)
{
    char *o = xmalloc(len / 4 * 3 + 4);
    size_t n = 0, pad = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad > 0) /* a bad byte, or data after padding */
            goto fail;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    /* Leftover bits must be zero padding of the last byte: 6 bits can never hold a byte. */
    if (bits >= 6 || pad > 2 || (acc & ((1u << bits) - 1)) != 0)
        goto fail;
    o[n] = '\0';
    *out = o;
    *outlen = n;
    return 0;
fail:
    free(o);
    return -EINVAL;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int kube_time_parse(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, sec;
    if (s == NULL || strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
        s[7] != '-' || digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        return -EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -EINVAL;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    int offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return -EINVAL;
        offset = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -EINVAL;
    }
    if (*p != '\0')
        return -EINVAL;
    struct tm tm = { .tm_year = y - 1900,
                     .tm_mon = mo - 1,
                     .tm_mday = d,
                     .tm_hour = h,
                     .tm_min = mi,
                     .tm_sec = sec };
    *out = (int64_t)timegm(&tm) - offset;
    return 0;
}

void kube_time_format(int64_t t, char *out, size_t outlen)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- kubeconfig --------------------------------------------------------------------------- */

/* One kubeconfig file, parsed. */
struct kc_file {
    char *path;
    char *dir; /* relative paths inside the file are against this */
    char *text;
    struct ytree_doc doc; /* root NULL for an empty file */
};

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return xstrdup(".");
    if (slash == path)
        return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}

static char *resolve_path(const char *dir, const char *p)
{
    if (p[0] == '/')
        return xstrdup(p);
    struct buf b;
    buf_init(&b, (size_t)-1 / 2);
    buf_printf(&b, "%s/%s", dir, p);
    return buf_steal(&b);
}

static int kc_file_load(struct kc_file *f, const char *path, char *err, size_t errlen)
{
    size_t len = 0;
    int rc = kube_read_file(path, KUBE_CONFIG_FILE_MAX, &f->text, &len);
    if (rc != 0) {
        set_err(err, errlen, "%s: %s", path, rc == -EFBIG ? "file too large" : strerror(-rc));
        return rc;
    }
    f->path = xstrdup(path);
    f->dir = dir_of(path);
    struct ytree_parser p;
    struct ytree_error yerr;
    ytree_parser_init(&p, f->text, len, 0, KUBECONFIG_MAX_NODES);
    rc = ytree_parser_next(&p, &f->doc, &yerr);
    ytree_parser_free(&p);
    if (rc < 0) {
        set_err(err, errlen, "[%s:%d] %s", path, yerr.line, yerr.msg);
        return -EINVAL;
    }
    /* An empty file is an empty config, as for client-go. */
    if (f->doc.root != NULL && ytree_is_null(f->doc.root)) {
        ytree_doc_free(&f->doc);
    } else if (f->doc.root != NULL && f->doc.root->type != YTREE_MAP) {
        set_err(err, errlen, "[%s:%d] a kubeconfig must be a map", path, f->doc.root->line);
        return -EINVAL;
    }
    return 0;
}

static void kc_file_free(struct kc_file *f)
{
    free(f->path);
    free(f->dir);
    free(f->text);
    ytree_doc_free(&f->doc);
}

/* Returns the string value of key in map, NULL when absent or null; -EINVAL when it is not a
 * scalar. */
static int get_str(const struct kc_file *f, const struct ytree_node *map, const char *key,
                   const char **out, char *err, size_t errlen)
{
    *out = NULL;
    const struct ytree_node *v = map != NULL ? ytree_map_get(map, key) : NULL;
    if (v == NULL || ytree_is_null(v))
        return 0;
    if (v->type != YTREE_SCALAR || strlen(v->value) != v->len) {
        set_err(err, errlen, "[%s:%d] %s: expected a string", f->path, v->line, key);
        return -EINVAL;
    }
    *out = v->value;
    return 0;
}

/* Finds the entry {name: NAME, <inner>: {...}} in the list under key, in the first file that
 * has one; returns its inner map (an empty entry gives a NULL map) and the file. */
static bool find_named(struct kc_file *files, size_t n, const char *list, const char *inner,
                       const char *name, const struct ytree_node **out, struct kc_file **file)
{
    for (size_t i = 0; i < n; i++) {
        const struct ytree_node *root = files[i].doc.root;
        const struct ytree_node *seq = root != NULL ? ytree_map_get(root, list) : NULL;
        if (seq == NULL || seq->type != YTREE_SEQ)
            continue;
        for (size_t k = 0; k < seq->nkids; k++) {
            const struct ytree_node *e = seq->kids[k];
            const struct ytree_node *nm = e->type == YTREE_MAP ? ytree_map_get(e, "name") : NULL;
            if (nm == NULL || nm->type != YTREE_SCALAR || strcmp(nm->value, name) != 0)
                continue;
            const struct ytree_node *m = ytree_map_get(e, inner);
            *out = m != NULL && m->type == YTREE_MAP ? m : NULL;
            *file = &files[i];
            return true;
        }
    }
    return false;
}

enum kc_kind { KC_STR, KC_PATH, KC_DATA, KC_BOOL };

/* A field of a cluster or user entry and where it lands in struct kube_config. */
struct kc_field {
    const char *key;
    enum kc_kind kind;
    size_t off;
    size_t lenoff; /* KC_DATA: the size_t beside the pointer */
};

#define KC_AT(f) offsetof(struct kube_config, f)

static const struct kc_field cluster_fields[] = {
    { "server", KC_STR, KC_AT(server), 0 },
    { "certificate-authority", KC_PATH, KC_AT(ca_file), 0 },
    { "certificate-authority-data", KC_DATA, KC_AT(ca_data), KC_AT(ca_len) },
    { "insecure-skip-tls-verify", KC_BOOL, KC_AT(insecure), 0 },
    { "tls-server-name", KC_STR, KC_AT(tls_server_name), 0 },
    { "proxy-url", KC_STR, KC_AT(proxy_url), 0 },
};

static const struct kc_field user_fields[] = {
    { "token", KC_STR, KC_AT(token), 0 },
    { "tokenFile", KC_PATH, KC_AT(token_file), 0 },
    { "client-certificate", KC_PATH, KC_AT(cert_file), 0 },
    { "client-certificate-data", KC_DATA, KC_AT(cert_data), KC_AT(cert_len) },
    { "client-key", KC_PATH, KC_AT(key_file), 0 },
    { "client-key-data", KC_DATA, KC_AT(key_data), KC_AT(key_len) },
};

static int read_fields(const struct kc_file *f, const struct ytree_node *map,
                       const struct kc_field *fields, size_t nfields, struct kube_config *c,
                       char *err, size_t errlen)
{
    for (size_t i = 0; i < nfields; i++) {
        const struct kc_field *fd = &fields[i];
        char **dst = (char **)((char *)c + fd->off);
        if (fd->kind == KC_BOOL) {
            const struct ytree_node *v = map != NULL ? ytree_map_get(map, fd->key) : NULL;
            if (v != NULL && !ytree_is_null(v) &&
                ytree_get_bool(v, (bool *)((char *)c + fd->off)) != 0) {
                set_err(err, errlen, "[%s:%d] %s: expected true or false", f->path, v->line,
                        fd->key);
                return -EINVAL;
            }
            continue;
        }
        const char *s;
        if (get_str(f, map, fd->key, &s, err, errlen) != 0)
            return -EINVAL;
        if (s == NULL || *s == '\0')
            continue;
        if (fd->kind == KC_STR) {
            *dst = xstrdup(s);
        } else if (fd->kind == KC_PATH) {
            *dst = resolve_path(f->dir, s);
        } else if (kube_base64_decode(s, strlen(s), dst, (size_t *)((char *)c + fd->lenoff)) != 0) {
            set_err(err, errlen, "[%s:%d] %s: not valid base64", f->path,
                    ytree_map_get(map, fd->key)->line, fd->key);
            return -EINVAL;
        }
    }
    return 0;
}

static char **string_list(const struct ytree_node *seq, size_t *n)
{
    char **v = xcalloc(seq->nkids + 1, sizeof(*v));
    for (size_t i = 0; i < seq->nkids; i++)
        v[i] = xstrdup(seq->kids[i]->value);
    *n = seq->nkids;
    return v;
}

static int read_exec(const struct kc_file *f, const struct ytree_node *ex, struct kube_config *c,
                     char *err, size_t errlen)
{
    const char *cmd, *api, *hint;
    if (ex->type != YTREE_MAP) {
        set_err(err, errlen, "[%s:%d] exec: expected a map", f->path, ex->line);
        return -EINVAL;
    }
    if (get_str(f, ex, "command", &cmd, err, errlen) != 0 ||
        get_str(f, ex, "apiVersion", &api, err, errlen) != 0 ||
        get_str(f, ex, "installHint", &hint, err, errlen) != 0)
        return -EINVAL;
    if (cmd == NULL || *cmd == '\0') {
        set_err(err, errlen, "[%s:%d] exec: command is required", f->path, ex->line);
        return -EINVAL;
    }
    const struct ytree_node *args = ytree_map_get(ex, "args");
    const struct ytree_node *env = ytree_map_get(ex, "env");
    if (args != NULL && !ytree_is_null(args)) {
        bool ok = args->type == YTREE_SEQ;
        for (size_t i = 0; ok && i < args->nkids; i++)
            ok = args->kids[i]->type == YTREE_SCALAR;
        if (!ok) {
            set_err(err, errlen, "[%s:%d] exec.args: expected a list of strings", f->path,
                    args->line);
            return -EINVAL;
        }
    }
    if (env != NULL && !ytree_is_null(env) && env->type != YTREE_SEQ) {
        set_err(err, errlen, "[%s:%d] exec.env: expected a list of {name, value}", f->path,
                env->line);
        return -EINVAL;
    }
    struct kube_exec *e = xcalloc(1, sizeof(*e));
    c->exec = e;
    /* client-go: a command with a path separator is relative to the kubeconfig; a bare name
     * is looked up in PATH. */
    e->command = strchr(cmd, '/') != NULL ? resolve_path(f->dir, cmd) : xstrdup(cmd);
    e->api_version = xstrdup(api != NULL ? api : "client.authentication.k8s.io/v1");
    e->install_hint = xstrdup(hint);
    if (args != NULL && args->type == YTREE_SEQ)
        e->args = string_list(args, &e->nargs);
    if (env != NULL && env->type == YTREE_SEQ) {
        e->env = xcalloc(env->nkids + 1, sizeof(*e->env));
        for (size_t i = 0; i < env->nkids; i++) {
            const char *name, *value;
            if (env->kids[i]->type != YTREE_MAP ||
                get_str(f, env->kids[i], "name", &name, err, errlen) != 0 ||
                get_str(f, env->kids[i], "value", &value, err, errlen) != 0 || name == NULL) {
                set_err(err, errlen, "[%s:%d] exec.env: expected a list of {name, value}", f->path,
                        env->kids[i]->line);
                return -EINVAL;
            }
            struct buf b;
            buf_init(&b, (size_t)-1 / 2);
            buf_printf(&b, "%s=%s", name, value != NULL ? value : "");
            e->env[e->nenv++] = buf_steal(&b);
        }
    }
    return 0;
}

static int check_readable(const char *what, const char *path, char *err, size_t errlen)
{
    if (path != NULL && access(path, R_OK) != 0) {
        set_err(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return -EINVAL;
    }
    return 0;
}

int kube_config_load(const char *const *paths, size_t n, const char *context,
                     struct kube_config *out, char *err, size_t errlen)
{
    int rc = -EINVAL;
    struct kc_file files[KUBECONFIG_MAX_FILES];
    size_t nfiles = 0;
    memset(out, 0, sizeof(*out));
    memset(files, 0, sizeof(files));
    for (size_t i = 0; i < n && nfiles < KUBECONFIG_MAX_FILES; i++) {
        if (access(paths[i], F_OK) != 0)
            continue;
        if (kc_file_load(&files[nfiles++], paths[i], err, errlen) != 0)
            goto out;
    }
    if (nfiles == 0) {
        set_err(err, errlen, "%s: %s", n == 1 ? paths[0] : "none of the kubeconfig files",
                "No such file or directory");
        rc = -ENOENT;
        goto out;
    }

    const char *ctx_name = context;
    for (size_t i = 0; ctx_name == NULL && i < nfiles; i++) {
        const char *cc;
        if (get_str(&files[i], files[i].doc.root, "current-context", &cc, err, errlen) != 0)
            goto out;
        if (cc != NULL && *cc != '\0')
            ctx_name = cc;
    }
    if (ctx_name == NULL) {
        set_err(err, errlen, "%s: no current-context is set (and no --context given)",
                files[0].path);
        goto out;
    }

    const struct ytree_node *ctx, *cluster, *user;
    struct kc_file *cf, *clf, *uf;
    if (!find_named(files, nfiles, "contexts", "context", ctx_name, &ctx, &cf)) {
        set_err(err, errlen, "%s: context \"%s\" not found", files[0].path, ctx_name);
        goto out;
    }
    const char *cluster_name, *user_name, *ns;
    if (get_str(cf, ctx, "cluster", &cluster_name, err, errlen) != 0 ||
        get_str(cf, ctx, "user", &user_name, err, errlen) != 0 ||
        get_str(cf, ctx, "namespace", &ns, err, errlen) != 0)
        goto out;
    if (cluster_name == NULL ||
        !find_named(files, nfiles, "clusters", "cluster", cluster_name, &cluster, &clf)) {
        set_err(err, errlen, "%s: cluster \"%s\" of context \"%s\" not found", cf->path,
                cluster_name ? cluster_name : "", ctx_name);
        goto out;
    }
    if (read_fields(clf, cluster, cluster_fields, ARRAY_SIZE(cluster_fields), out, err, errlen) !=
        0)
        goto out;
    if (out->server == NULL) {
        set_err(err, errlen, "%s: cluster \"%s\" has no server", clf->path, cluster_name);
        goto out;
    }
    size_t scheme = strncmp(out->server, "https://", 8) == 0  ? 8
                    : strncmp(out->server, "http://", 7) == 0 ? 7
                                                              : 0;
    size_t sl = strlen(out->server);
    while (sl > scheme && out->server[sl - 1] == '/')
        out->server[--sl] = '\0';
    if (scheme == 0 || sl == scheme || out->server[scheme] == '/') {
        set_err(err, errlen, "%s: cluster \"%s\": server must be an http(s) URL with a host",
                clf->path, cluster_name);
        goto out;
    }

    if (user_name != NULL && *user_name != '\0') {
        if (!find_named(files, nfiles, "users", "user", user_name, &user, &uf)) {
            set_err(err, errlen, "%s: user \"%s\" of context \"%s\" not found", cf->path, user_name,
                    ctx_name);
            goto out;
        }
        if (read_fields(uf, user, user_fields, ARRAY_SIZE(user_fields), out, err, errlen) != 0)
            goto out;
        const struct ytree_node *ex = user != NULL ? ytree_map_get(user, "exec") : NULL;
        if (ex != NULL && !ytree_is_null(ex) && read_exec(uf, ex, out, err, errlen) != 0)
            goto out;
        /* Silently ignoring these would talk to the server as someone else, or as nobody. */
        static const char *const unsupported[] = { "auth-provider", "username", "as" };
        for (size_t i = 0; user != NULL && i < ARRAY_SIZE(unsupported); i++) {
            const struct ytree_node *v = ytree_map_get(user, unsupported[i]);
            if (v != NULL && !ytree_is_null(v)) {
                set_err(err, errlen, "[%s:%d] user \"%s\": %s is not supported", uf->path, v->line,
                        user_name, unsupported[i]);
                goto out;
            }
        }
    }
    if (check_readable("certificate-authority", out->ca_data ? NULL : out->ca_file, err, errlen) !=
            0 ||
        check_readable("client-certificate", out->cert_data ? NULL : out->cert_file, err, errlen) !=
            0 ||
        check_readable("client-key", out->key_data ? NULL : out->key_file, err, errlen) != 0 ||
        check_readable("tokenFile", out->token_file, err, errlen) != 0)
        goto out;
    if ((out->cert_data || out->cert_file) != (out->key_data || out->key_file)) {
        set_err(err, errlen, "%s: user \"%s\": client-certificate and client-key go together",
                cf->path, user_name);
        goto out;
    }
    out->context_ns = xstrdup(ns);
    out->source = xstrdup(nfiles == 1 ? files[0].path : cf->path);
    rc = 0;
out:
    for (size_t i = 0; i < nfiles; i++)
        kc_file_free(&files[i]);
    if (rc != 0)
        kube_config_free(out);
    return rc;
}

/* ---- in-cluster --------------------------------------------------------------------------- */

static char *trimmed_file(const char *path)
{
    char *s = NULL;
    size_t len = 0;
    if (kube_read_file(path, 64 * 1024, &s, &len) != 0)
        return NULL;
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' '))
        s[--len] = '\0';
    return s;
}

int kube_config_in_cluster(const char *sa_dir, struct kube_config *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    if (host == NULL || *host == '\0' || port == NULL || *port == '\0') {
        set_err(err, errlen,
                "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
                "must both be set");
        return -EINVAL;
    }
    struct buf b;
    buf_init(&b, 4096);
    /* An IPv6 service host needs brackets in a URL. */
    if (buf_printf(&b, strchr(host, ':') != NULL ? "https://[%s]:%s" : "https://%s:%s", host,
                   port) != 0) {
        buf_free(&b);
        set_err(err, errlen, "in-cluster: KUBERNETES_SERVICE_HOST is too long");
        return -EINVAL;
    }
    out->server = buf_steal(&b);
    out->token_file = resolve_path(sa_dir, "token");
    char *tok = trimmed_file(out->token_file);
    if (tok == NULL) {
        set_err(err, errlen, "in-cluster: cannot read the service account token %s: %s",
                out->token_file, strerror(errno));
        kube_config_free(out);
        return -EINVAL;
    }
    free(tok);
    char *ca = resolve_path(sa_dir, "ca.crt");
    /* Like client-go: without ca.crt the system's CAs are used (and verification stays on). */
    if (access(ca, R_OK) == 0)
        out->ca_file = ca;
    else
        free(ca);
    const char *pod_ns = getenv("POD_NAMESPACE");
    if (pod_ns != NULL && *pod_ns != '\0') {
        out->context_ns = xstrdup(pod_ns);
    } else {
        char *nsfile = resolve_path(sa_dir, "namespace");
        out->context_ns = trimmed_file(nsfile);
        free(nsfile);
    }
    out->source = xstrdup("in-cluster");
    return 0;
}

/* ---- choosing ----------------------------------------------------------------------------- */

int kube_config_resolve(const struct kube_flags *f, struct kube_config *out, char *err,
                        size_t errlen)
{
    int rc;
    memset(out, 0, sizeof(*out));
    if (f->kubeconfig != NULL) {
        const char *p = f->kubeconfig;
        rc = kube_config_load(&p, 1, f->context, out, err, errlen);
        goto done;
    }
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    if (host != NULL && *host != '\0') {
        rc = kube_config_in_cluster(f->serviceaccount_dir ? f->serviceaccount_dir
                                                          : KUBE_SERVICEACCOUNT_DIR,
                                    out, err, errlen);
        goto done;
    }
    const char *list = getenv("KUBECONFIG");
    if (list != NULL && *list != '\0') {
        char *copy = xstrdup(list);
        const char *paths[KUBECONFIG_MAX_FILES];
        size_t n = 0;
        for (char *p = copy, *next; p != NULL && n < KUBECONFIG_MAX_FILES; p = next) {
            next = strchr(p, ':');
            if (next != NULL)
                *next++ = '\0';
            if (*p != '\0')
                paths[n++] = p;
        }
        char why[512];
        rc = n > 0 ? kube_config_load(paths, n, f->context, out, why, sizeof(why)) : -ENOENT;
        if (rc == -ENOENT)
            set_err(err, errlen, "no kubeconfig: none of $KUBECONFIG (%s) exists", list);
        else if (rc != 0)
            set_err(err, errlen, "%s", why);
        free(copy);
        goto done;
    }
    const char *home = getenv("HOME");
    struct buf b;
    buf_init(&b, 4096);
    buf_printf(&b, "%s/.kube/config", home != NULL && *home != '\0' ? home : "");
    const char *p = b.data;
    char why[512];
    rc = kube_config_load(&p, 1, f->context, out, why, sizeof(why));
    if (rc == -ENOENT)
        set_err(err, errlen,
                "no Kubernetes API to talk to: no --kubeconfig given, KUBERNETES_SERVICE_HOST "
                "not set (not in a cluster), $KUBECONFIG not set, and %s does not exist "
                "(or use --source-dir)",
                p);
    else if (rc != 0)
        set_err(err, errlen, "%s", why);
    buf_free(&b);
done:
    if (rc == 0 && f->ns != NULL)
        out->ns = xstrdup(f->ns);
    return rc;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static char *dup_mem(const char *p, size_t n)
{
    if (p == NULL)
        return NULL;
    char *d = xmalloc(n + 1);
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static char **dup_vec(char *const *v, size_t n)
{
    if (v == NULL)
        return NULL;
    char **d = xcalloc(n + 1, sizeof(*d));
    for (size_t i = 0; i < n; i++)
        d[i] = xstrdup(v[i]);
    return d;
}

void kube_config_copy(struct kube_config *dst, const struct kube_config *src)
{
    *dst = *src;
    dst->source = xstrdup(src->source);
    dst->server = xstrdup(src->server);
    dst->ca_file = xstrdup(src->ca_file);
    dst->ca_data = dup_mem(src->ca_data, src->ca_len);
    dst->tls_server_name = xstrdup(src->tls_server_name);
    dst->proxy_url = xstrdup(src->proxy_url);
    dst->token = xstrdup(src->token);
    dst->token_file = xstrdup(src->token_file);
    dst->cert_file = xstrdup(src->cert_file);
    dst->cert_data = dup_mem(src->cert_data, src->cert_len);
    dst->key_file = xstrdup(src->key_file);
    dst->key_data = dup_mem(src->key_data, src->key_len);
    dst->ns = xstrdup(src->ns);
    dst->context_ns = xstrdup(src->context_ns);
    dst->exec = NULL;
    if (src->exec != NULL) {
        struct kube_exec *e = xcalloc(1, sizeof(*e));
        *e = *src->exec;
        e->command = xstrdup(src->exec->command);
        e->args = dup_vec(src->exec->args, src->exec->nargs);
        e->env = dup_vec(src->exec->env, src->exec->nenv);
        e->api_version = xstrdup(src->exec->api_version);
        e->install_hint = xstrdup(src->exec->install_hint);
        dst->exec = e;
    }
}

static void free_vec(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i]);
    free(v);
}

/* Secrets are wiped before they go back to the allocator. */
static void free_secret(char *p, size_t n)
{
    if (p != NULL) {
        explicit_bzero(p, n);
        free(p);
    }
}

void kube_config_free(struct kube_config *c)
{
    free(c->source);
    free(c->server);
    free(c->ca_file);
    free(c->ca_data);
    free(c->tls_server_name);
    free(c->proxy_url);
    free_secret(c->token, c->token ? strlen(c->token) : 0);
    free(c->token_file);
    free(c->cert_file);
    free(c->cert_data);
    free(c->key_file);
    free_secret(c->key_data, c->key_len);
    free(c->ns);
    free(c->context_ns);
    if (c->exec != NULL) {
        free(c->exec->command);
        free_vec(c->exec->args, c->exec->nargs);
        free_vec(c->exec->env, c->exec->nenv);
        free(c->exec->api_version);
        free(c->exec->install_hint);
        free(c->exec);
    }
    memset(c, 0, sizeof(*c));
}

/* libFuzzer target: kubeconfig files (kube_config_load), and the base64 decoder their -data
 * fields go through.
 *
 * kube_config_load reads files only, so the input is written to a private temporary folder:
 * cut at NUL bytes, piece 0 is the first file, piece 1 (if any) a second one merged after it
 * (the $KUBECONFIG list case, a missing third path in between), piece 2 (if not empty) the
 * --context. The folder also holds files named token, ca.crt, client.crt and client.key, so
 * relative paths in the input can name readable files.
 *
 * A loaded config must be usable as kube.h promises (an http(s) server without a trailing
 * '/', a certificate only with its key, an exec command), copy exactly (kube_config_copy), and
 * a refused one must say why and leave nothing behind. Piece 0 also goes to
 * kube_base64_decode: what it accepts must be base64 of the bytes it returns. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "kube_internal.h"
#include "xalloc.h"

static char kc_dir[64];

static void kc_write(const char *name, const char *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", kc_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FUZZ_CHECK(fd >= 0);
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        FUZZ_CHECK(w > 0);
        p += w;
        n -= (size_t)w;
    }
    close(fd);
}

static const char *const kc_files[] = { "a.yaml", "b.yaml",     "token",
                                        "ca.crt", "client.crt", "client.key" };

static void kc_cleanup(void)
{
    char path[128];
    for (size_t i = 0; i < ARRAY_SIZE(kc_files); i++) {
        snprintf(path, sizeof(path), "%s/%s", kc_dir, kc_files[i]);
        unlink(path);
    }
    rmdir(kc_dir);
}

static void kc_setup(void)
{
    if (kc_dir[0] != '\0')
        return;
    const char *tmp = getenv("TMPDIR");
    snprintf(kc_dir, sizeof(kc_dir), "%s/legate-fuzz-XXXXXX",
             tmp != NULL && strlen(tmp) < 32 ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(kc_dir) != NULL);
    atexit(kc_cleanup);
    kc_write("token", "fuzz-token\n", 11);
    kc_write("ca.crt", "-----BEGIN CERTIFICATE-----\n", 28);
    kc_write("client.crt", "-----BEGIN CERTIFICATE-----\n", 28);
    kc_write("client.key", "-----BEGIN PRIVATE KEY-----\n", 28);
}

static bool kc_mem_eq(const char *a, size_t an, const char *b, size_t bn)
{
    if (a == NULL || b == NULL)
        return a == b && an == bn;
    return an == bn && memcmp(a, b, an) == 0;
}

static bool kc_str_eq(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void kc_check_config(const struct kube_config *c)
{
    FUZZ_CHECK(c->source != NULL && c->server != NULL);
    /* scheme://host...: "http://" alone once passed as "http:" (fixed; kept as
     * fuzz/regressions/kubeconfig/server_without_host). */
    const char *host = strncmp(c->server, "https://", 8) == 0  ? c->server + 8
                       : strncmp(c->server, "http://", 7) == 0 ? c->server + 7
                                                               : NULL;
    FUZZ_CHECK(host != NULL && *host != '\0' && *host != '/');
    size_t sl = strlen(c->server);
    FUZZ_CHECK(sl > 0 && c->server[sl - 1] != '/');
    FUZZ_CHECK((c->cert_data != NULL || c->cert_file != NULL) ==
               (c->key_data != NULL || c->key_file != NULL));
    FUZZ_CHECK(c->ca_data != NULL || c->ca_len == 0);
    if (c->exec != NULL) {
        FUZZ_CHECK(c->exec->command != NULL && c->exec->command[0] != '\0');
        FUZZ_CHECK(c->exec->api_version != NULL);
        FUZZ_CHECK(c->exec->nargs == 0 || c->exec->args != NULL);
        for (size_t i = 0; i < c->exec->nenv; i++)
            FUZZ_CHECK(strchr(c->exec->env[i], '=') != NULL);
    }

    struct kube_config d;
    kube_config_copy(&d, c);
    FUZZ_CHECK(kc_str_eq(d.source, c->source) && kc_str_eq(d.server, c->server));
    FUZZ_CHECK(kc_mem_eq(d.ca_data, d.ca_len, c->ca_data, c->ca_len));
    FUZZ_CHECK(kc_mem_eq(d.cert_data, d.cert_len, c->cert_data, c->cert_len));
    FUZZ_CHECK(kc_mem_eq(d.key_data, d.key_len, c->key_data, c->key_len));
    FUZZ_CHECK(kc_str_eq(d.token, c->token) && kc_str_eq(d.token_file, c->token_file));
    FUZZ_CHECK(kc_str_eq(d.ca_file, c->ca_file) && kc_str_eq(d.cert_file, c->cert_file));
    FUZZ_CHECK(kc_str_eq(d.key_file, c->key_file) && d.insecure == c->insecure);
    FUZZ_CHECK(kc_str_eq(d.tls_server_name, c->tls_server_name));
    FUZZ_CHECK(kc_str_eq(d.context_ns, c->context_ns));
    FUZZ_CHECK((d.exec == NULL) == (c->exec == NULL));
    if (c->exec != NULL) {
        FUZZ_CHECK(kc_str_eq(d.exec->command, c->exec->command));
        FUZZ_CHECK(d.exec->nargs == c->exec->nargs && d.exec->nenv == c->exec->nenv);
        for (size_t i = 0; i < c->exec->nargs; i++)
            FUZZ_CHECK(kc_str_eq(d.exec->args[i], c->exec->args[i]));
        for (size_t i = 0; i < c->exec->nenv; i++)
            FUZZ_CHECK(kc_str_eq(d.exec->env[i], c->exec->env[i]));
    }
    kube_config_free(&d);
}

/* Standard base64 with padding. */
static void kc_b64(struct buf *out, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        char q[4] = { tab[v >> 18], tab[(v >> 12) & 63], i + 1 < n ? tab[(v >> 6) & 63] : '=',
                      i + 2 < n ? tab[v & 63] : '=' };
        buf_append(out, q, 4);
    }
}

/* What kube_base64_decode accepts, minus blanks and padding, is the encoding of what it
 * returns, minus padding. */
static void kc_check_base64(const char *in, size_t len)
{
    char *dec = NULL;
    size_t declen = 0;
    if (kube_base64_decode(in, len, &dec, &declen) != 0)
        return;
    FUZZ_CHECK(dec != NULL && dec[declen] == '\0');
    struct buf want, got;
    buf_init(&want, (size_t)-1 / 2);
    buf_init(&got, (size_t)-1 / 2);
    for (size_t i = 0; i < len; i++)
        if (in[i] != ' ' && in[i] != '\n' && in[i] != '\r' && in[i] != '\t' && in[i] != '=')
            buf_append(&want, in + i, 1);
    kc_b64(&got, (const unsigned char *)dec, declen);
    while (got.len > 0 && got.data[got.len - 1] == '=')
        got.len--;
    FUZZ_CHECK(got.len == want.len && (got.len == 0 || memcmp(got.data, want.data, got.len) == 0));
    buf_free(&want);
    buf_free(&got);
    free(dec);
}

int fuzz_kubeconfig(const uint8_t *data, size_t size)
{
    const char *piece[3] = { NULL, NULL, NULL };
    size_t plen[3] = { 0, 0, 0 };
    size_t off = 0;

    fuzz_logs(size & 1);
    kc_setup();
    for (int i = 0; i < 3; i++) {
        const uint8_t *nul = i < 2 ? memchr(data + off, '\0', size - off) : NULL;
        piece[i] = (const char *)data + off;
        plen[i] = nul ? (size_t)(nul - (data + off)) : size - off;
        if (nul == NULL)
            break;
        off += plen[i] + 1;
    }
    kc_check_base64(piece[0], plen[0]);

    char a[128], b[128], missing[128];
    snprintf(a, sizeof(a), "%s/a.yaml", kc_dir);
    snprintf(b, sizeof(b), "%s/b.yaml", kc_dir);
    snprintf(missing, sizeof(missing), "%s/missing.yaml", kc_dir);
    kc_write("a.yaml", piece[0], plen[0]);
    const char *paths[3] = { a, missing, b };
    size_t npaths = 1;
    if (piece[1] != NULL) {
        kc_write("b.yaml", piece[1], plen[1]);
        npaths = 3;
    }
    char *context = piece[2] != NULL && plen[2] > 0 ? xstrndup(piece[2], plen[2]) : NULL;

    struct kube_config c;
    char err[512] = "";
    int rc = kube_config_load(paths, npaths, context, &c, err, sizeof(err));
    if (rc == 0) {
        kc_check_config(&c);
    } else {
        FUZZ_CHECK(rc == -EINVAL || rc == -ENOENT);
        FUZZ_CHECK(err[0] != '\0');
        FUZZ_CHECK(c.server == NULL && c.exec == NULL && c.token == NULL);
    }
    kube_config_free(&c);
    free(context);
    return 0;
}

FUZZ_ENTRY(fuzz_kubeconfig)

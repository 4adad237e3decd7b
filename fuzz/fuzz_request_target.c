/* libFuzzer target: request targets and the path the proxy routes on (proxy/target.c).
 *
 * Input: a flags byte (bit 0: merge_slashes, bit 1: the method is OPTIONS), then a request
 * target. It goes through px_target_split; an accepted path, and the whole input when it
 * begins with '/', go through px_path_normalize. Checked against target.h and
 * docs/security.md, with a reference written here:
 *   - the split accepts exactly what RFC 9112 3.2 and target.h allow (origin-form, http(s)
 *     absolute-form with a valid authority and no userinfo, "*" for OPTIONS; no control
 *     character, whitespace or '#'), and its pieces are the input's own bytes: path and query
 *     around the first '?', the authority between "://" and the path;
 *   - normalisation gives what the rule gives, computed here on a stack of segments (RFC 3986
 *     5.2.4): unreserved escapes decoded, other escapes kept, %2F %5C %00, a backslash or a
 *     malformed escape refused, "." and ".." resolved, a ".." above the root refused, empty
 *     segments kept unless merging; and the result keeps target.h's promises
 *     (fuzz_check_normalized: idempotent, no dot segment, no "//" when merging, no longer than
 *     the input, begins with '/'). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "fuzz.h"
#include "target.h"
#include "xalloc.h"

static bool tg_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-._~", c) != NULL);
}

/* The rule of target.h, step by step: decode into `dec`, then resolve segments into `out`.
 * Returns false when the path is refused. */
static bool tg_reference(const char *in, size_t n, bool merge, struct buf *out)
{
    struct buf dec;
    buf_init(&dec, (size_t)-1 / 2);
    buf_reset(out);
    bool ok = n > 0 && in[0] == '/';
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '\\') {
            ok = false;
        } else if (c != '%') {
            buf_append(&dec, &in[i], 1);
        } else if (n - i < 3 || fuzz_hex(in[i + 1]) < 0 || fuzz_hex(in[i + 2]) < 0) {
            ok = false;
        } else {
            char v = (char)(fuzz_hex(in[i + 1]) * 16 + fuzz_hex(in[i + 2]));
            if (v == '/' || v == '\\' || v == '\0')
                ok = false;
            else if (tg_unreserved((unsigned char)v))
                buf_append(&dec, &v, 1);
            else
                buf_append(&dec, &in[i], 3);
            i += 2;
        }
    }
    /* Segments: what follows each '/' up to the next. The stack holds each kept segment's
     * offset and length in dec. */
    size_t *seg = xmalloc((dec.len + 1) * 2 * sizeof(*seg));
    size_t depth = 0;
    for (size_t s = 1; ok && s <= dec.len;) {
        const char *slash = memchr(dec.data + s, '/', dec.len - s);
        size_t e = slash ? (size_t)(slash - dec.data) : dec.len;
        size_t len = e - s;
        bool last = slash == NULL;
        bool dot = len == 1 && dec.data[s] == '.';
        bool dotdot = len == 2 && dec.data[s] == '.' && dec.data[s + 1] == '.';
        if (dotdot && depth == 0) {
            ok = false;
            break;
        }
        if (dotdot)
            depth--;
        if ((dot || dotdot) && last) {
            seg[2 * depth] = s; /* an empty last segment: the path ends with '/' */
            seg[2 * depth++ + 1] = 0;
        } else if (!dot && !dotdot && !(len == 0 && merge && !last)) {
            seg[2 * depth] = s;
            seg[2 * depth++ + 1] = len;
        }
        s = e + 1;
    }
    for (size_t k = 0; ok && k < depth; k++) {
        buf_append(out, "/", 1);
        buf_append(out, dec.data + seg[2 * k], seg[2 * k + 1]);
    }
    if (ok && out->len == 0)
        buf_append(out, "/", 1);
    free(seg);
    buf_free(&dec);
    return ok;
}

static void tg_normalize(const char *path, size_t n, bool merge)
{
    struct buf want;
    buf_init(&want, (size_t)-1 / 2);
    bool ok = tg_reference(path, n, merge, &want);
    char *out = xmalloc(n + 1);
    const char *why = NULL;
    long got = px_path_normalize(path, n, merge, out, &why);
    if (!ok) {
        FUZZ_CHECK(got == -EINVAL && why != NULL && why[0] != '\0');
    } else {
        FUZZ_CHECK(got > 0 && (size_t)got == want.len && memcmp(out, want.data, want.len) == 0);
        fuzz_check_normalized(n, out, (size_t)got, merge);
    }
    free(out);
    buf_free(&want);
}

/* Whether p[0, n) lies within t[0, tn). */
static bool tg_within(const char *p, size_t n, const char *t, size_t tn)
{
    return p >= t && n <= tn && (size_t)(p - t) <= tn - n;
}

static void tg_split(const char *t, size_t n, bool options, bool merge)
{
    struct px_target tg;
    const char *why = NULL;
    int rc = px_target_split(t, n, options, &tg, &why);

    bool clean = n > 0;
    for (size_t i = 0; i < n; i++)
        clean = clean && (unsigned char)t[i] > 0x20 && t[i] != 0x7f && t[i] != '#';
    size_t scheme = n >= 7 && strncasecmp(t, "http://", 7) == 0    ? 7
                    : n >= 8 && strncasecmp(t, "https://", 8) == 0 ? 8
                                                                   : 0;
    size_t alen = 0;
    while (scheme > 0 && scheme + alen < n && t[scheme + alen] != '/' && t[scheme + alen] != '?')
        alen++;
    const char *a = t + scheme;
    bool want = clean && ((n == 1 && t[0] == '*' && options) || t[0] == '/' ||
                          (scheme > 0 && alen > 0 && memchr(a, '@', alen) == NULL && a[0] != ':' &&
                           px_host_is_valid(a, alen)));
    if (!want) {
        FUZZ_CHECK(rc == -EINVAL && why != NULL && why[0] != '\0');
        return;
    }
    FUZZ_CHECK(rc == 0);
    if (t[0] == '*') {
        FUZZ_CHECK(tg.asterisk && tg.authority == NULL);
        return;
    }
    FUZZ_CHECK(!tg.asterisk);
    /* The path and query: the bytes after the authority, around the first '?'. */
    const char *rest = t[0] == '/' ? t : a + alen;
    size_t rlen = (size_t)(t + n - rest);
    const char *q = memchr(rest, '?', rlen);
    size_t plen = q ? (size_t)(q - rest) : rlen;
    if (t[0] == '/')
        FUZZ_CHECK(tg.authority == NULL);
    else
        FUZZ_CHECK(tg.authority == a && tg.authority_len == alen);
    if (plen == 0)
        FUZZ_CHECK(tg.path_len == 1 && tg.path[0] == '/');
    else
        FUZZ_CHECK(tg.path == rest && tg.path_len == plen);
    if (q == NULL)
        FUZZ_CHECK(tg.query == NULL && tg.query_len == 0);
    else
        FUZZ_CHECK(tg.query == q + 1 && tg.query_len == rlen - plen - 1 &&
                   tg_within(tg.query, tg.query_len, t, n));
    tg_normalize(tg.path, tg.path_len, merge);
}

int fuzz_request_target(const uint8_t *data, size_t size)
{
    unsigned flags = size > 0 ? data[0] : 0;
    const char *t = size > 0 ? (const char *)data + 1 : "";
    size_t n = size > 0 ? size - 1 : 0;
    bool merge = flags & 1, options = flags & 2;
    tg_split(t, n, options, merge);
    if (n > 0 && t[0] == '/')
        tg_normalize(t, n, merge);
    return 0;
}

FUZZ_ENTRY(fuzz_request_target)

#include "target.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

/* RFC 3986 2.3. */
static bool is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* RFC 3986 2.2. */
static bool is_sub_delim(unsigned char c)
{
    return c != '\0' && strchr("!$&'()*+,;=", c) != NULL;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* ---- Host and authority ------------------------------------------------------------------ */

/* port = *DIGIT, within 0..65535 when present. */
static bool port_is_valid(const char *p, size_t n)
{
    if (n > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)p[i]))
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    return v <= 65535;
}

bool px_host_is_valid(const char *h, size_t n)
{
    size_t i = 0;
    if (n > 0 && h[0] == '[') {
        /* IP-literal: hex digits, ':' and '.' (an embedded IPv4 address) between brackets. */
        for (i = 1; i < n && h[i] != ']'; i++) {
            unsigned char c = (unsigned char)h[i];
            if (hex_value(c) < 0 && c != ':' && c != '.')
                return false;
        }
        if (i == n || i == 1)
            return false;
        i++;
    } else {
        for (; i < n && h[i] != ':'; i++) {
            unsigned char c = (unsigned char)h[i];
            if (c == '%') {
                if (i + 2 >= n || hex_value((unsigned char)h[i + 1]) < 0 ||
                    hex_value((unsigned char)h[i + 2]) < 0)
                    return false;
                i += 2;
                continue;
            }
            if (!is_unreserved(c) && !is_sub_delim(c))
                return false;
        }
    }
    if (i == n)
        return true;
    if (h[i] != ':')
        return false;
    return port_is_valid(h + i + 1, n - i - 1);
}

/* ---- request targets --------------------------------------------------------------------- */

/* Splits "path?query" (p begins with '/', or is empty: "/"). */
static void split_path(const char *p, size_t n, struct px_target *out)
{
    const char *q = memchr(p, '?', n);
    out->path = p;
    out->path_len = q ? (size_t)(q - p) : n;
    out->query = q ? q + 1 : NULL;
    out->query_len = q ? n - out->path_len - 1 : 0;
    if (out->path_len == 0) {
        out->path = "/";
        out->path_len = 1;
    }
}

int px_target_split(const char *t, size_t n, bool options, struct px_target *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    if (n == 0) {
        *why = "empty request target";
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= 0x20 || c == 0x7f) {
            *why = "control character or whitespace in the request target";
            return -EINVAL;
        }
        if (c == '#') {
            *why = "fragment in the request target";
            return -EINVAL;
        }
    }
    if (t[0] == '*') {
        if (n != 1 || !options) {
            *why = "asterisk-form request target is only for OPTIONS";
            return -EINVAL;
        }
        out->asterisk = true;
        out->path = "*";
        out->path_len = 1;
        return 0;
    }
    if (t[0] == '/') {
        split_path(t, n, out);
        return 0;
    }
    /* absolute-form: scheme "://" authority [path-abempty] ["?" query]. */
    size_t skip = n >= 7 && strncasecmp(t, "http://", 7) == 0    ? 7
                  : n >= 8 && strncasecmp(t, "https://", 8) == 0 ? 8
                                                                 : 0;
    if (skip == 0) {
        *why = "request target is neither a path nor an http(s) URI";
        return -EINVAL;
    }
    const char *a = t + skip, *end = t + n, *q = a;
    while (q < end && *q != '/' && *q != '?')
        q++;
    size_t alen = (size_t)(q - a);
    if (memchr(a, '@', alen) != NULL) {
        /* RFC 9110 4.2.4: userinfo in an http(s) URI is an error (and a phishing tool). */
        *why = "userinfo in the request target";
        return -EINVAL;
    }
    if (alen == 0 || !px_host_is_valid(a, alen) || a[0] == ':') {
        *why = "invalid authority in the request target";
        return -EINVAL;
    }
    out->authority = a;
    out->authority_len = alen;
    split_path(q, (size_t)(end - q), out);
    return 0;
}

/* ---- path normalisation ------------------------------------------------------------------ */

long px_path_normalize(const char *path, size_t n, bool merge_slashes, char *out, const char **why)
{
    if (n == 0 || path[0] != '/') {
        *why = "path does not begin with /";
        return -EINVAL;
    }
    /* Pass 1: decode the escapes of unreserved characters, refuse the dangerous ones. */
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c == '\\') {
            *why = "backslash in the path";
            return -EINVAL;
        }
        if (c != '%') {
            out[len++] = (char)c;
            continue;
        }
        int hi = i + 2 < n ? hex_value((unsigned char)path[i + 1]) : -1;
        int lo = i + 2 < n ? hex_value((unsigned char)path[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            *why = "malformed percent-escape in the path";
            return -EINVAL;
        }
        unsigned char v = (unsigned char)(hi * 16 + lo);
        if (v == '/' || v == '\\') {
            *why = "escaped slash or backslash in the path";
            return -EINVAL;
        }
        if (v == 0) {
            *why = "escaped NUL in the path";
            return -EINVAL;
        }
        if (is_unreserved(v)) {
            out[len++] = (char)v;
        } else {
            memcpy(out + len, path + i, 3);
            len += 3;
        }
        i += 2;
    }

    /* Pass 2, in place: out[0, w) is the result so far, made of "/segment" pieces; the segment
     * being read starts at r, after its slash. Writing never overtakes reading (w < r), because
     * every piece written is at most as long as the piece read. */
    size_t w = 0, r = 1;
    while (r <= len) {
        size_t e = r;
        while (e < len && out[e] != '/')
            e++;
        size_t sl = e - r;
        bool last = e >= len;
        if (sl == 1 && out[r] == '.') {
            if (last)
                out[w++] = '/';
        } else if (sl == 2 && out[r] == '.' && out[r + 1] == '.') {
            if (w == 0) {
                *why = "path climbs above the root";
                return -EINVAL;
            }
            while (out[--w] != '/')
                ;
            if (last)
                out[w++] = '/';
        } else if (sl == 0 && merge_slashes && !last) {
            /* "//": dropped when merging slashes */
        } else {
            out[w++] = '/';
            memmove(out + w, out + r, sl);
            w += sl;
        }
        r = e + 1;
    }
    if (w == 0)
        out[w++] = '/';
    return (long)w;
}

/* Request targets (RFC 9112 3.2) and the path the proxy routes on.
 *
 * Routing happens on a normalised path, and the normalised path is what the upstream receives,
 * so a prefix can never be reached through a spelling the router and the upstream read
 * differently (`/public/../admin/`, `/%61dmin/`). The rule, close to Envoy's normalize_path
 * with merge_slashes off (docs/security.md):
 *
 *   1. percent-escapes of unreserved characters (ALPHA DIGIT - . _ ~) are decoded; every other
 *      escape is kept exactly as sent;
 *   2. an escaped slash or backslash (%2F %5C), an escaped NUL (%00), a raw backslash or a
 *      malformed escape is refused: each means different things to different servers;
 *   3. "." and ".." segments are resolved (RFC 3986 5.2.4); a ".." that would climb above the
 *      root is refused;
 *   4. empty segments ("//") are kept, unless merge_slashes (the ambassador Module's setting)
 *      is on, and then every run of slashes becomes one.
 *
 * Nothing here allocates; outputs point into the caller's bytes or buffer. */
#ifndef LEGATE_PROXY_TARGET_H
#define LEGATE_PROXY_TARGET_H

#include <stdbool.h>
#include <stddef.h>

/* A request target taken apart. Every pointer is borrowed from the target (or static). */
struct px_target {
    const char *authority; /* absolute-form: host[:port], which replaces Host; NULL otherwise */
    size_t authority_len;
    const char *path; /* begins with '/'; "/" when an absolute-form target has no path */
    size_t path_len;
    const char *query; /* the bytes after '?', NULL when the target has none */
    size_t query_len;
    bool asterisk; /* "*": OPTIONS about the server itself */
};

/* Splits the request target t (n bytes). options says whether the method is OPTIONS, the only
 * one allowed the asterisk-form. Accepts origin-form ("/path?query"), absolute-form with the
 * scheme http or https and without userinfo ("http://host:port/path?query", RFC 9112 3.2.2),
 * and "*". Refuses control characters, whitespace and '#' anywhere in the target (a fragment is
 * never sent; llhttp lets a tab through). Returns 0 and fills *out, or -EINVAL with a short
 * static reason in *why. */
int px_target_split(const char *t, size_t n, bool options, struct px_target *out, const char **why);

/* Whether h (n bytes) is a valid Host value: uri-host [":" port] (RFC 9110 7.2), where
 * uri-host is a bracketed IPv6 literal or a reg-name / IPv4 address made of unreserved
 * characters, percent-escapes and sub-delims. The empty value is valid (a target without an
 * authority); '/', '@', '\\', whitespace and the like are not. */
bool px_host_is_valid(const char *h, size_t n);

/* Normalises path (n bytes, beginning with '/') into out, which must have room for n bytes
 * (the result is never longer); in and out may not overlap. Returns the normalised length
 * (at least 1), or -EINVAL with a short static reason in *why. */
long px_path_normalize(const char *path, size_t n, bool merge_slashes, char *out, const char **why);

#endif

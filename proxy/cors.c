#include "cors.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

char *const px_cors_response_names[3] = { "access-control-allow-origin",
                                          "access-control-allow-credentials",
                                          "access-control-expose-headers" };

bool px_cors_allowed(const struct route_cors *cors, const char *origin, size_t len)
{
    if (!cors->enabled || origin == NULL || len == 0)
        return false;
    for (size_t i = 0; i < cors->norigins; i++) {
        const char *o = cors->origins[i];
        if (strcmp(o, "*") == 0)
            return true;
        if (strlen(o) == len && strncasecmp(o, origin, len) == 0)
            return true;
    }
    return false;
}

static size_t opt_len(const char *s)
{
    return s ? strlen(s) : 0;
}

size_t px_cors_room(const struct route_cors *cors, size_t origin_len)
{
    /* The names and CRLFs of every line, then the values. */
    return 256 + origin_len + opt_len(cors->methods) + opt_len(cors->headers) +
           opt_len(cors->exposed_headers) + opt_len(cors->max_age);
}

/* Appends "name: value\r\n" (value len bytes) at out + *n; room was sized by px_cors_room. */
static void line(char *out, size_t room, size_t *n, const char *name, const char *value, size_t len)
{
    int k = snprintf(out + *n, room - *n, "%s: %.*s\r\n", name, (int)len, value);
    if (k > 0 && (size_t)k < room - *n)
        *n += (size_t)k;
}

static void common(const struct route_cors *cors, const char *origin, size_t len, char *out,
                   size_t room, size_t *n)
{
    /* The origin is echoed even when "*" allowed it: a credentialed request needs its own
     * origin named, and one answer fits both. */
    line(out, room, n, "Access-Control-Allow-Origin", origin, len);
    if (cors->credentials)
        line(out, room, n, "Access-Control-Allow-Credentials", "true", 4);
}

size_t px_cors_preflight_headers(const struct route_cors *cors, const char *origin, size_t len,
                                 char *out, size_t room)
{
    size_t n = 0;
    out[0] = '\0';
    common(cors, origin, len, out, room, &n);
    if (cors->methods)
        line(out, room, &n, "Access-Control-Allow-Methods", cors->methods, strlen(cors->methods));
    if (cors->headers)
        line(out, room, &n, "Access-Control-Allow-Headers", cors->headers, strlen(cors->headers));
    if (cors->max_age)
        line(out, room, &n, "Access-Control-Max-Age", cors->max_age, strlen(cors->max_age));
    return n;
}

size_t px_cors_response_headers(const struct route_cors *cors, const char *origin, size_t len,
                                char *out, size_t room)
{
    size_t n = 0;
    out[0] = '\0';
    common(cors, origin, len, out, room, &n);
    if (cors->exposed_headers)
        line(out, room, &n, "Access-Control-Expose-Headers", cors->exposed_headers,
             strlen(cors->exposed_headers));
    return n;
}

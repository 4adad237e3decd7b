#include "opts.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

int parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -EINVAL;
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return -EINVAL;
        hl = (size_t)(colon - s);
    }
    uint64_t p;
    if (hl == 0 || hl >= hostlen || parse_uint(colon + 1, 1, 65535, &p) != 0)
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return 0;
}

int opt_string(const char *val, void *dst, char *err, size_t errlen)
{
    if (*val == '\0') {
        snprintf(err, errlen, "must not be empty");
        return -EINVAL;
    }
    *(const char **)dst = val;
    return 0;
}

int opt_workers(const char *val, void *dst, char *err, size_t errlen)
{
    uint64_t v;
    if (parse_uint(val, 1, 256, &v) != 0) {
        snprintf(err, errlen, "expected a number from 1 to 256, got \"%s\"", val);
        return -EINVAL;
    }
    *(int *)dst = (int)v;
    return 0;
}

int opt_level(const char *val, void *dst, char *err, size_t errlen)
{
    if (log_parse_level(val, dst) != 0) {
        snprintf(err, errlen, "expected debug, info, warn or error, got \"%s\"", val);
        return -EINVAL;
    }
    return 0;
}

int opt_format(const char *val, void *dst, char *err, size_t errlen)
{
    if (log_parse_format(val, dst) != 0) {
        snprintf(err, errlen, "expected logfmt or json, got \"%s\"", val);
        return -EINVAL;
    }
    return 0;
}

int opt_hostport(const char *val, void *dst, char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    if (parse_hostport(val, host, sizeof(host), &port) != 0) {
        snprintf(err, errlen, "expected HOST:PORT, got \"%s\"", val);
        return -EINVAL;
    }
    *(const char **)dst = val;
    return 0;
}

static void usage(FILE *f, const struct opt *opts, size_t n, const char *prog, const char *summary)
{
    fprintf(f, "usage: %s [flags]\n%s\n\nflags:\n", prog, summary);
    for (size_t i = 0; i < n; i++) {
        char left[64];
        snprintf(left, sizeof(left), "--%s %s", opts[i].name, opts[i].metavar);
        fprintf(f, "  %-32s %s\n", left, opts[i].help);
    }
    fprintf(f, "  %-32s %s\n  %-32s %s\n", "--help", "show this help and exit", "--version",
            "print the version and exit");
}

void opts_parse(int argc, char **argv, const struct opt *opts, size_t n, const char *prog,
                const char *summary)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout, opts, n, prog, summary);
            exit(0);
        }
        if (strcmp(a, "--version") == 0) {
            printf("%s %s\n", prog, LEGATE_VERSION);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "%s: unexpected argument \"%s\" (see --help)\n", prog, a);
            exit(2);
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t namelen = eq ? (size_t)(eq - name) : strlen(name);
        const struct opt *o = NULL;
        for (size_t k = 0; k < n; k++) {
            if (strlen(opts[k].name) == namelen && strncmp(opts[k].name, name, namelen) == 0) {
                o = &opts[k];
                break;
            }
        }
        if (o == NULL) {
            fprintf(stderr, "%s: unknown flag --%.*s (see --help)\n", prog, (int)namelen, name);
            exit(2);
        }
        const char *val = eq ? eq + 1 : NULL;
        if (val == NULL) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: flag --%s needs a value %s\n", prog, o->name, o->metavar);
                exit(2);
            }
            val = argv[++i];
        }
        char err[256] = "";
        if (o->parse(val, o->dst, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s: bad value for --%s: %s\n", prog, o->name, err);
            exit(2);
        }
    }
}

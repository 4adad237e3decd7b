/* Command-line flags as a table (HAProxy's keyword tables): {name, metavar, help, parser,
 * destination}. `--name value` and `--name=value` are accepted; --help and --version are
 * built in. A bad flag or value prints one line to stderr and exits 2. */
#ifndef LEGATE_OPTS_H
#define LEGATE_OPTS_H

#include <stddef.h>
#include <stdint.h>

/* A parser stores the value at dst and returns 0, or returns -EINVAL with a reason in err. */
typedef int (*opt_parse_cb)(const char *val, void *dst, char *err, size_t errlen);

struct opt {
    const char *name; /* without the leading "--" */
    const char *metavar;
    const char *help;
    opt_parse_cb parse;
    void *dst;
};

#define LEGATE_VERSION "0.1.0"

/* Parses argv against the table. Exits 0 after --help/--version, 2 on any error. */
void opts_parse(int argc, char **argv, const struct opt *opts, size_t n, const char *prog,
                const char *summary);

int opt_string(const char *val, void *dst, char *err, size_t errlen);   /* char ** */
int opt_workers(const char *val, void *dst, char *err, size_t errlen);  /* int, 1..256 */
int opt_level(const char *val, void *dst, char *err, size_t errlen);    /* int log level */
int opt_format(const char *val, void *dst, char *err, size_t errlen);   /* int log format */
int opt_hostport(const char *val, void *dst, char *err, size_t errlen); /* char **, checked */

/* Parses an unsigned decimal number in [min, max] with no trailing bytes. 0 or -EINVAL. */
int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Splits "host:port" or "[v6]:port" into host (without brackets) and port. 0 or -EINVAL. */
int parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port);

#endif

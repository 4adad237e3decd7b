/* The route model shared by the controller (which compiles Mappings into it) and the proxy
 * (which builds its router from it). Types only; functions are in route.h. */
#ifndef LEGATE_ROUTE_T_H
#define LEGATE_ROUTE_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ROUTE_DEFAULT_TIMEOUT_MS 3000

/* One header constraint. value NULL means "present"; regex means value is a regex. */
struct route_header {
    char *name; /* lower case */
    char *value;
    bool regex;
};

/* An upstream: scheme://host:port. Deduplicated in the table; routes refer to it by index. */
struct route_cluster {
    char *name;   /* stable id, e.g. "httpbin.org:80" */
    char *scheme; /* "http" */
    char *host;
    uint16_t port;
};

struct route {
    /* Where it came from. */
    char *ns;
    char *svc;
    char *mapping;
    /* Match. */
    char *prefix;
    bool prefix_regex;
    bool prefix_exact;
    bool case_sensitive;
    char *method; /* upper case; NULL: any method */
    char *host;   /* NULL: any Host */
    struct route_header *headers;
    size_t nheaders;
    int32_t precedence;
    /* Action. */
    uint32_t cluster;    /* index into route_table.clusters */
    char *rewrite;       /* NULL: path unchanged; else replaces the matched prefix */
    char *host_rewrite;  /* NULL: the client's Host is forwarded */
    uint32_t timeout_ms; /* whole request; 0: none */
};

/* An error the controller found in the source objects, carried to the proxy so /routes
 * can show it. line is 1-based within the annotation, 0 when unknown. */
struct route_error {
    char *ns;
    char *svc;
    char *mapping;
    char *field;
    int line;
    char *message;
};

struct route_table {
    uint64_t version;
    struct route *routes; /* in match order: the first that matches wins */
    size_t nroutes;
    struct route_cluster *clusters;
    size_t nclusters;
    struct route_error *errors;
    size_t nerrors;
};

#endif

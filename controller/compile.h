/* The compiler: from the object cache to one route table (common/route-t.h).
 *
 * Every annotated Service is parsed on its own (annotation.h); every valid Mapping becomes one
 * route; upstreams are deduplicated into clusters named "host:port"; routes are put in
 * Ambassador's match order (route_sort). Mapping names are unique per namespace: walking
 * Services in (namespace, name) order and documents in order, the first wins and each later
 * one is an error that names the Service holding the first.
 *
 * Besides the table, the result lists every annotated Service with its own errors and
 * warnings: the seam through which the Kubernetes source will post Events on the Service
 * (uid included, which `kubectl describe` needs). */
#ifndef LEGATE_CONTROLLER_COMPILE_H
#define LEGATE_CONTROLLER_COMPILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "route-t.h"

struct compile_opts {
    const char *ambassador_id; /* NULL: "default" */
    uint64_t version;          /* stored in the table */
};

/* What one annotated Service produced. */
struct compile_service {
    char *ns;
    char *svc;
    char *uid;
    char *origin;
    int line;                         /* the annotation's first line in origin; 0 unknown */
    size_t nroutes;                   /* valid Mappings it contributed */
    const struct route_error *errors; /* borrowed: a range of table->errors */
    size_t nerrors;
    struct route_error *warnings; /* owned */
    size_t nwarnings;
    size_t nignored; /* documents for another ambassador_id */
};

struct compile_result {
    struct route_table *table;        /* owned; errors in (namespace, Service, doc) order */
    struct compile_service *services; /* every Service with the annotation, sorted */
    size_t nservices;
    size_t nwarnings;
};

/* Compiles every entry of c. Returns a new result (the caller frees it with
 * compile_result_free); never fails: problems are in the result. */
struct compile_result *compile_run(const struct cache *c, const struct compile_opts *o);
/* Frees the result and its table. Safe on NULL. */
void compile_result_free(struct compile_result *r);
/* True when a and b would route every request the same way and report the same errors:
 * everything but the version is compared. Lets the controller skip pushing a table the proxy
 * already has (a comment edited, a Service's ports changed) without serialising either. */
bool compile_tables_equal(const struct route_table *a, const struct route_table *b);
/* Returns the record of (ns, svc) (borrowed), or NULL when that Service has no annotation. */
const struct compile_service *compile_find_service(const struct compile_result *r, const char *ns,
                                                   const char *svc);

#endif

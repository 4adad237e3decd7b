/* The getambassador.io/config annotation: YAML documents, each one Ambassador object, parsed
 * and validated one at a time (docs/control-protocol.md, reference/ambassador-mapping.md).
 *
 * One bad document never hides another: a YAML syntax error costs the document it is in (the
 * text is cut at "---" lines, which YAML forbids inside any scalar, and each piece gets its
 * own parser, so documents after a syntax error are still read); an empty document is
 * skipped; a Mapping with any error is dropped whole, because routing part of what its author
 * wrote would route wrongly. Every error names the namespace, Service, Mapping (or
 * "<document N>"), field and 1-based line within the annotation. */
#ifndef LEGATE_CONTROLLER_ANNOTATION_H
#define LEGATE_CONTROLLER_ANNOTATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "annotation_policy.h"
#include "route-t.h"

#define ANNOTATION_KEY "getambassador.io/config"
/* Kubernetes caps all annotations of an object at 256 KiB together; one cannot be larger. */
#define ANNOTATION_MAX        (256 * 1024)
#define ANNOTATION_DEFAULT_ID "default"

/* One valid Mapping. */
struct mapping {
    /* ns, svc, mapping and every match/action field are set; cluster is not (the compiler
     * numbers clusters). */
    struct route route;
    /* The upstream from `service`, for the compiler's cluster table. */
    char *scheme; /* "http" or "https" */
    char *upstream_host;
    uint16_t upstream_port;
    bool port_explicit; /* `service` named the port */
    bool timeout_set;   /* timeout_ms was given (else the Module's default applies) */
    bool tls;           /* tls: true */
    bool host_redirect; /* host_redirect: true */
    bool auto_host_rewrite;
    struct mapping_policy policy; /* weight, shadow, cluster policy (annotation_policy.h) */
    int doc;                      /* 1-based document number in the annotation */
    int line;                     /* line of the document */
    int name_line;                /* line of the name value, for errors about the name */
};

/* The `ambassador` Module: listener-wide settings, and defaults for every Mapping. */
struct module {
    struct route_settings settings;
    struct route_header_add *add_request_headers; /* a Mapping's own entry for a name wins */
    size_t nadd_request_headers;
    struct route_header_add *add_response_headers;
    size_t nadd_response_headers;
    uint32_t timeout_ms; /* cluster_request_timeout_ms, for Mappings without timeout_ms */
    bool timeout_set;
    struct module_policy policy; /* retry, cors, cluster defaults (annotation_policy.h) */
    int line;                    /* line of the document */
    int name_line;               /* line of the name value */
};

struct annotation_opts {
    const char *ns;
    const char *svc;
    const char *ambassador_id; /* objects whose ambassador_id does not list it are ignored */
};

struct annotation_result {
    struct mapping *mappings; /* in document order */
    size_t nmappings;
    struct route_error *errors; /* the object was rejected */
    size_t nerrors;
    /* Recognised but not acted on: a kind Legate does not read yet (the object is skipped:
     * annotation_warning_is_skip), or a part of an object that is ignored (envoy_override,
     * regex_type: unsafe, ...; the object is used unless it also has an error). */
    struct route_error *warnings;
    size_t nwarnings;
    struct module *module; /* the annotation's valid `ambassador` Module, or NULL */
    size_t nignored;       /* documents for another ambassador_id */
};

/* Parses and validates text (len bytes, need not be NUL-terminated). Fills *out (the caller
 * frees it with annotation_result_free) with the valid Mappings and every problem found; never
 * fails as a whole. Strings in *out are copies. */
void annotation_parse(const char *text, size_t len, const struct annotation_opts *o,
                      struct annotation_result *out);
/* Whether warning w, from annotation_parse, says that its object is skipped (a kind, or a
 * Module, that Legate does not read yet) rather than used with a part of it ignored. */
bool annotation_warning_is_skip(const struct route_error *w);
/* Frees what *r owns and zeroes it. Safe on a zeroed result. */
void annotation_result_free(struct annotation_result *r);
/* Frees what a mapping owns (its route fields included). */
void mapping_free_fields(struct mapping *m);
/* Frees what a module owns and the module. Safe on NULL. */
void module_free(struct module *m);

/* Optimal string alignment distance (Levenshtein plus transpositions), for "did you mean";
 * strings longer than 64 bytes count as far from everything. Exposed for tests. */
size_t annotation_edit_distance(const char *a, const char *b);

#endif

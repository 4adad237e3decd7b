/* The route model shared by the controller (which compiles Mappings into it) and the proxy
 * (which builds its router from it). Types only; functions are in route.h. */
#ifndef LEGATE_ROUTE_T_H
#define LEGATE_ROUTE_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route_policy-t.h"

#define ROUTE_DEFAULT_TIMEOUT_MS 3000

/* One header or query-parameter constraint. value NULL means "present"; regex means value is
 * a regex (RE2 syntax) that must match the whole value. */
struct route_header {
    char *name; /* headers: lower case; query parameters: as written (case-sensitive) */
    char *value;
    bool regex;
};

/* {pattern, substitution}: every match of pattern (RE2) is replaced by substitution, in which
 * \1..\9 name capture groups (Envoy's regex_rewrite). pattern NULL: not set. */
struct route_regex_sub {
    char *pattern;
    char *substitution;
};

/* A header the proxy adds. append: add a line beside those present; false: replace them. */
struct route_header_add {
    char *name;
    char *value;
    bool append;
};

/* An upstream: scheme://host:port. Deduplicated in the table; routes refer to it by index. */
struct route_cluster {
    char *name;   /* stable id, e.g. "httpbin.org:80", "https://api.example:443" */
    char *scheme; /* "http", or "https" (TLS originated by the proxy) */
    char *host;
    uint16_t port;
    char *sni; /* https: the server name sent in the TLS handshake; NULL: host */
    struct route_cluster_policy policy; /* timeouts, circuit breakers, load balancing */
};

/* Permanent redirects and friends; the only codes Envoy (and so Ambassador) accepts. */
#define ROUTE_REDIRECT_DEFAULT 301

/* A table holds one per Mapping, 100 000 of them in large clusters: members are ordered so
 * that the small ones share words (no padding between groups), a route read from JSON keeps
 * its strings in the table's arena (route_table.arena), and the traffic policy few routes
 * have sits behind a pointer. Start a route with route_init (route.h), not a bare calloc. */
struct route {
    /* Where it came from. */
    char *ns;
    char *svc;
    char *mapping;
    /* Match. */
    char *prefix;
    char *method; /* upper case; NULL: any method */
    char *host;   /* NULL: any Host */
    struct route_header *headers;
    size_t nheaders;
    struct route_header *query; /* query parameters, matched on URL-decoded names and values */
    size_t nquery;
    int32_t precedence;
    bool prefix_regex;
    bool prefix_exact;
    bool case_sensitive;
    bool method_regex;
    bool host_regex;
    /* Action. */
    uint16_t redirect_code; /* with host_redirect; 0: ROUTE_REDIRECT_DEFAULT */
    uint32_t cluster;       /* index into route_table.clusters */
    uint32_t timeout_ms;    /* whole request; 0: none */
    char *rewrite; /* NULL: path unchanged; else replaces the matched prefix (whole path for
                    * prefix_regex) */
    struct route_regex_sub regex_rewrite; /* wins over rewrite */
    char *host_rewrite;                   /* NULL: the client's Host is forwarded */
    /* Redirect instead of proxying, when host_redirect is set. */
    char *host_redirect;   /* authority of the Location */
    char *redirect_scheme; /* "https", or NULL: the request's scheme */
    char *path_redirect;   /* replaces the whole path */
    char *prefix_redirect; /* replaces the matched prefix */
    struct route_regex_sub regex_redirect;
    /* Header edits: removals first, then additions (Envoy's order). */
    struct route_header_add *add_request_headers;
    size_t nadd_request_headers;
    struct route_header_add *add_response_headers;
    size_t nadd_response_headers;
    char **remove_request_headers; /* lower case */
    size_t nremove_request_headers;
    char **remove_response_headers;
    size_t nremove_response_headers;
    /* Weights, timeouts, retries, CORS, rate limits, upgrades, shadow (route_policy-t.h).
     * Never NULL: most routes have none and share route_policy_none (route.h); a route with
     * one has its own, in the table's arena or, built in memory, on the heap. Writers go
     * through route_policy_mut, so the shared one is never written. */
    const struct route_policy *policy;
};

/* An ip_allow / ip_deny rule: an address block, compared with the connection's peer or with
 * the client address derived from X-Forwarded-For (remote). */
struct route_ip_rule {
    char *cidr; /* as given, normalised to "addr/bits" */
    bool remote;
    int family; /* 4 or 6 */
    uint8_t bits;
    uint8_t addr[16];
};

/* The `ambassador` Module's listener-wide settings (docs/control-protocol.md "settings"). */
struct route_settings {
    bool use_remote_address;       /* default true: the peer is the client, appended to XFF */
    uint32_t xff_num_trusted_hops; /* client = that many addresses from the right of XFF */
    bool x_forwarded_proto_redirect;
    bool merge_slashes;
    struct route_ip_rule *ip_allow;
    size_t nip_allow;
    struct route_ip_rule *ip_deny;
    size_t nip_deny;
    char *server_name; /* Server header on the proxy's own responses; NULL: none */
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

struct route_arena;

struct route_table {
    uint64_t version;
    struct route *routes; /* in match order: the first that matches wins */
    size_t nroutes;
    struct route_cluster *clusters;
    size_t nclusters;
    struct route_error *errors;
    size_t nerrors;
    struct route_settings settings;
    /* NULL: built in memory (the controller, tests), every field its own allocation. Else
     * read by route_table_from_json: every string and array the table points at lives in
     * this arena (route_arena.h), strings that repeat are stored once, and none of it may be
     * freed or replaced field by field. */
    struct route_arena *arena;
};

#endif

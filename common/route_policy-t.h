/* Traffic policy in the route model: how a request is carried once its route is chosen
 * (canary weights, timeouts, retries, CORS, rate limits, upgrades, shadowing) and how the
 * proxy treats an upstream cluster (connect timeout, pooled connection lifetimes, circuit
 * breakers, load balancing). Types only; the JSON form and helpers are in route_policy.h, the
 * wire keys in docs/control-protocol.md ("Policy keys").
 *
 * Every field's zero value means "not set": a cluster built with calloc carries no policy, a
 * route without one points at the all-zero route_policy_none (route.h), and the JSON form
 * omits what is not set. */
#ifndef LEGATE_ROUTE_POLICY_T_H
#define LEGATE_ROUTE_POLICY_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* retry_on conditions, Envoy's names (bits of route_retry.on). */
enum route_retry_on {
    ROUTE_RETRY_5XX = 1u << 0,             /* "5xx": any 5xx, and every failure below */
    ROUTE_RETRY_GATEWAY_ERROR = 1u << 1,   /* "gateway-error": 502, 503, 504 (ours too) */
    ROUTE_RETRY_CONNECT_FAILURE = 1u << 2, /* "connect-failure": refused, unreachable, timeout */
    ROUTE_RETRY_RETRIABLE_4XX = 1u << 3,   /* "retriable-4xx": 409 */
    ROUTE_RETRY_REFUSED_STREAM = 1u << 4,  /* "refused-stream": HTTP/2 only; inert on HTTP/1 */
    ROUTE_RETRY_STATUS_CODES = 1u << 5,    /* "retriable-status-codes": route_retry.codes */
    ROUTE_RETRY_RESET = 1u << 6,           /* "reset": closed or reset before a response */
};

#define ROUTE_RETRY_DEFAULT_NUM 1  /* num_retries when the policy leaves it out */
#define ROUTE_RETRY_MAX_NUM     10 /* more would multiply load on an upstream already failing */
#define ROUTE_RETRY_MAX_CODES   16

struct route_retry {
    uint32_t on; /* ROUTE_RETRY_* bits; 0: no retry policy */
    uint32_t num_retries;
    uint32_t per_try_timeout_ms; /* 0: none (the route's timeout_ms still bounds every try) */
    uint16_t codes[ROUTE_RETRY_MAX_CODES]; /* retriable-status-codes */
    uint32_t ncodes;
};

/* A Mapping's cors block. Origins are compared exactly (scheme://host[:port]); "*" allows
 * any. The lists are kept as the comma-separated text sent in the response headers. */
struct route_cors {
    char **origins;
    size_t norigins;
    char *methods;         /* Access-Control-Allow-Methods; NULL: not sent */
    char *headers;         /* Access-Control-Allow-Headers */
    char *exposed_headers; /* Access-Control-Expose-Headers */
    char *max_age;         /* Access-Control-Max-Age, seconds as text */
    bool enabled;
    bool credentials; /* Access-Control-Allow-Credentials: true */
};

/* One entry of a rate-limit descriptor (Envoy's rate-limit actions). */
enum route_rl_kind {
    ROUTE_RL_GENERIC_KEY = 0,     /* key = value, always */
    ROUTE_RL_REQUEST_HEADER,      /* key = the value of header `value` (lower case) */
    ROUTE_RL_REMOTE_ADDRESS,      /* "remote_address" = the client's address */
    ROUTE_RL_SOURCE_CLUSTER,      /* "source_cluster" = the proxy's own name */
    ROUTE_RL_DESTINATION_CLUSTER, /* "destination_cluster" = the route's cluster */
};

struct route_rl_entry {
    int kind; /* enum route_rl_kind */
    char *key;
    char *value;         /* generic_key: the value; request header: the header's name */
    bool omit_if_absent; /* request header: a missing header drops only this entry */
};

/* A descriptor template from `rate_limits` (v0) or one label group of `labels` (v1+). */
struct route_rl_descriptor {
    char *domain; /* "ambassador" for v0 and for labels under `ambassador:` */
    char *name;   /* the label group's name; NULL for v0 rate_limits */
    struct route_rl_entry *entries;
    size_t nentries;
};

struct route_rate_limits {
    struct route_rl_descriptor *v;
    size_t n;
};

/* Upgrade protocols tunnelled (lower case), e.g. "websocket". */
struct route_upgrades {
    char **v;
    size_t n;
};

/* A copy of each request (percent of them) goes to cluster; the answer is dropped. */
struct route_shadow {
    bool set;
    uint32_t cluster;
    uint32_t percent; /* 1-100 */
    char *mapping;    /* the shadow Mapping, for /routes */
};

/* Legate's own token bucket per Mapping (legate_rate_limit): rps tokens a second, up to
 * burst at once. rps 0: none. */
struct route_local_rl {
    uint32_t rps;
    uint32_t burst;
};

/* The per-route part, behind struct route's policy pointer (shared by every route without
 * one): the scalars first, so that the structs after them start on a word without padding. */
struct route_policy {
    /* Canary groups: Mappings with identical match criteria become consecutive routes; the
     * first (the leader) has group_size > 1, every member its weight in percent (together
     * 100). The router returns the leader; the proxy picks a member per request. */
    uint32_t group_size;
    uint32_t weight;
    uint32_t idle_timeout_ms; /* no byte either way for this long; 0: none */
    struct route_local_rl local_rl;
    struct route_retry retry;
    struct route_cors cors;
    struct route_rate_limits rate_limits;
    struct route_upgrades upgrades;
    struct route_shadow shadow; /* on the group's leader (or a lone route) */
};

#define ROUTE_CONNECT_TIMEOUT_DEFAULT_MS 3000

/* Envoy's defaults for what a circuit_breakers entry leaves out. */
#define ROUTE_CB_DEFAULT_MAX         1024
#define ROUTE_CB_DEFAULT_MAX_RETRIES 3

struct route_circuit_breakers {
    bool set;
    uint32_t max_connections;
    uint32_t max_pending_requests;
    uint32_t max_requests;
    uint32_t max_retries;
};

enum route_lb_policy {
    ROUTE_LB_ROUND_ROBIN = 0,
    ROUTE_LB_LEAST_REQUEST,
    ROUTE_LB_RING_HASH,
    ROUTE_LB_MAGLEV,
};

enum route_lb_hash {
    ROUTE_LB_HASH_NONE = 0,
    ROUTE_LB_HASH_HEADER,
    ROUTE_LB_HASH_COOKIE,
    ROUTE_LB_HASH_SOURCE_IP,
};

struct route_lb {
    uint8_t policy;    /* enum route_lb_policy */
    uint8_t hash_on;   /* enum route_lb_hash; ring_hash and maglev only */
    char *key;         /* header name (lower case) or cookie name */
    char *cookie_path; /* cookie: Path of the cookie the proxy sets when absent */
    uint32_t cookie_ttl_s;
};

/* The per-cluster part. Two Mappings for one upstream with different cluster policies get
 * two clusters. */
struct route_cluster_policy {
    uint32_t connect_timeout_ms; /* 0: ROUTE_CONNECT_TIMEOUT_DEFAULT_MS */
    uint32_t idle_timeout_ms;    /* pooled idle connection lifetime; 0: the proxy's default */
    uint32_t max_lifetime_ms;    /* a pooled connection is not reused past this age; 0: none */
    struct route_circuit_breakers cb;
    struct route_lb lb;
};

#endif

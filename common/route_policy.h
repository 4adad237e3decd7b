/* Traffic policy of routes and clusters (route_policy-t.h): its JSON form, freeing, and the
 * small parsers both sides share (retry_on names, durations).
 *
 * route.c keeps one field table per struct; each policy key is an entry whose writing,
 * reading and comparing are the ops below, so a policy field cannot drift between the three
 * any more than the plain fields can. Tables read from JSON keep what the ops read in their
 * arena (route_arena.h); the _free_fields functions are for policies built in memory. */
#ifndef LEGATE_ROUTE_POLICY_H
#define LEGATE_ROUTE_POLICY_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "route_json.h"
#include "route_policy-t.h"

/* How route.c writes, reads and compares each policy key: the per-type ops of its field
 * tables (route_json.h). The integer keys use route.c's own integer ops.
 *
 * struct route_retry: {"retry_on": [names], "num_retries", "per_try_timeout_ms",
 * "retriable_status_codes": [...]} */
extern const struct route_json_ops route_json_retry;
/* struct route_cors: {"origins": [...], "methods", "headers", "exposed_headers",
 * "credentials", "max_age"} */
extern const struct route_json_ops route_json_cors;
/* struct route_rate_limits: [{"domain", "name"?, "entries": [{"kind", "key", "value"?,
 * "omit_if_absent"?}]}] */
extern const struct route_json_ops route_json_rate_limits;
/* struct route_local_rl: {"requests_per_second", "burst"} */
extern const struct route_json_ops route_json_local_rl;
/* struct route_upgrades: ["websocket", ...] */
extern const struct route_json_ops route_json_upgrades;
/* struct route_shadow: {"cluster": name, "percent", "mapping"?} */
extern const struct route_json_ops route_json_shadow;
/* struct route_circuit_breakers: {"max_connections", "max_pending_requests", "max_requests",
 * "max_retries"} */
extern const struct route_json_ops route_json_circuit_breakers;
/* struct route_lb: {"policy", "header"? | "cookie"? {"name","path"?,"ttl_s"?} |
 * "source_ip"?} */
extern const struct route_json_ops route_json_lb;

void route_policy_free_fields(struct route_policy *p);
void route_cluster_policy_free_fields(struct route_cluster_policy *p);
/* Deep copy of src into dst (dst's old contents are not freed). */
void route_cors_copy(struct route_cors *dst, const struct route_cors *src);
void route_cors_free_fields(struct route_cors *c);
void route_lb_copy(struct route_lb *dst, const struct route_lb *src);
bool route_cluster_policy_equal(const struct route_cluster_policy *a,
                                const struct route_cluster_policy *b);

/* Maps a retry_on name ("5xx", "gateway-error", ...) to its bit; 0 when unknown. */
uint32_t route_retry_on_bit(const char *name);
/* The name of one bit, or NULL. */
const char *route_retry_on_name(uint32_t bit);
/* Whether the retry policy asks for a retry of a response with this status. */
bool route_retry_status(const struct route_retry *r, int status);

/* Parses an Envoy-style duration: a decimal number with a unit among "ms", "s", "m", "h"
 * ("250ms", "1s", "1.5s", "2m"), at most ~49 days. Returns 0 with *ms, or -EINVAL. */
int route_duration_parse(const char *text, uint32_t *ms);

/* Names of enum route_lb_policy values; NULL when out of range. */
const char *route_lb_policy_name(int policy);
/* Returns the enum value of a name, or -1. */
int route_lb_policy_parse(const char *name);

/* Names of enum route_rl_kind values, as written in the JSON form. */
const char *route_rl_kind_name(int kind);

#endif

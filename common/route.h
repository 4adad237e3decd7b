/* Route table lifecycle, ordering and its JSON form (the `snapshot` message body, see
 * docs/control-protocol.md). */
#ifndef LEGATE_ROUTE_H
#define LEGATE_ROUTE_H

#include <json-c/json.h>

#include "buf.h"
#include "route-t.h"

#define ROUTE_PROTOCOL_VERSION 1

/* The policy of every route that has none of its own: every field unset (route_policy-t.h).
 * Shared and read-only: never written, never freed. */
extern const struct route_policy route_policy_none;

/* Zeroes r and points its policy at route_policy_none: an empty route, ready to fill. */
void route_init(struct route *r);
/* Returns r's policy for writing (copy on write). A route sharing route_policy_none first gets
 * a zeroed policy of its own, on the heap: for routes built in memory (a Mapping, a table
 * without arena), whose route_free_fields frees it. On a route of a table read from JSON, only
 * when it has its own already (in the arena). */
struct route_policy *route_policy_mut(struct route *r);

/* Frees everything a table owns, and the table. Safe on NULL. */
void route_table_free(struct route_table *t);
/* Frees what a route built in memory owns, its own policy included, and leaves r as
 * route_init does. A zeroed (moved-from) route is fine too. */
void route_free_fields(struct route *r);
void route_error_free_fields(struct route_error *e);
void route_cluster_free_fields(struct route_cluster *c);
/* Frees n added headers and the array. Safe on NULL. */
void route_header_adds_free(struct route_header_add *v, size_t n);
/* Sets the Module defaults (use_remote_address true, everything else off or empty). */
void route_settings_init(struct route_settings *s);
void route_settings_free_fields(struct route_settings *s);

/* Ambassador's order: compares the tuple (precedence, len(prefix), header weight, query
 * weight, prefix, method) in descending order. Returns <0 when a must be tried before b, >0
 * after, 0 when they tie (keep source order: sort stably). */
int route_cmp(const struct route *a, const struct route *b);
/* Σ over header constraints (host as :authority, method as :method included) of
 * len(name) + len(value, or "*" for presence) + 1 if regex. */
size_t route_header_weight(const struct route *r);
/* The same sum over query-parameter constraints. */
size_t route_query_weight(const struct route *r);
/* Stable sort of routes into match order. */
void route_sort(struct route *routes, size_t n);

/* Appends the `snapshot` message for t to out as compact JSON text, without building a tree:
 * "version", "routes", "clusters", "errors", "settings", then "type" and "protocol". The
 * bytes are what json-c prints for route_table_to_json's object with those two keys added
 * (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE). Returns 0, or -E2BIG past out's
 * cap (out is then as before the call). */
int route_snapshot_write(const struct route_table *t, struct buf *out);
/* Returns a new json object (caller owns) for the table's routes, clusters, errors and
 * settings, with "version"; the caller adds "type". */
json_object *route_table_to_json(const struct route_table *t);
/* Builds a table from a parsed snapshot object. Every key is checked: unknown keys, wrong
 * types, and references to unknown clusters are errors. Returns 0 and *out (caller owns; its
 * strings and arrays live in out->arena), or -EINVAL with a one-line reason in err. */
int route_table_from_json(json_object *obj, struct route_table **out, char *err, size_t errlen);
/* True when a and b hold the same routes, clusters, errors and settings (everything but the
 * version): what the JSON form carries, compared field by field through the same tables. */
bool route_table_equal(const struct route_table *a, const struct route_table *b);

/* Parses an ip_allow/ip_deny address block: "10.0.0.0/8", "2001:db8::/32", or a bare
 * address (a /32 or /128). Host bits beyond the prefix must be zero. Fills *out (its cidr is
 * a new normalised string) and returns 0, or -EINVAL. */
int route_ip_rule_parse(const char *text, bool remote, struct route_ip_rule *out);
/* Whether the address (4 or 16 bytes, family 4 or 6) lies in the rule's block. An
 * IPv4-mapped IPv6 address is compared as IPv4. */
bool route_ip_rule_contains(const struct route_ip_rule *rule, int family, const uint8_t *addr);

#endif

/* The traffic-policy fields of a Mapping and of the `ambassador` Module (annotation_policy.c):
 * weight, shadow, idle_timeout_ms, connect_timeout_ms, cluster_idle_timeout_ms,
 * cluster_max_connection_lifetime_ms, retry_policy, circuit_breakers, load_balancer, cors,
 * rate_limits, labels, legate_rate_limit, use_websocket, allow_upgrade.
 *
 * The Mapping and Module keyword tables (annotation_mapping.c, annotation_module.c) point
 * every one of these names at one adapter, which calls annotation_policy_mapping (or _module)
 * with the field's name; the parsers here read scalars with annotation_value.h and report
 * through its struct value_ctx, so they do not depend on how annotation.c keeps its
 * documents. Semantics: reference/ambassador-mapping.md; differences:
 * docs/mapping-compat.md. */
#ifndef LEGATE_CONTROLLER_ANNOTATION_POLICY_H
#define LEGATE_CONTROLLER_ANNOTATION_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "annotation_value.h"
#include "buf.h"
#include "route-t.h"
#include "ytree.h"

/* Which policy fields an object set (bits of `set`), so Module defaults fill only the
 * Mappings that left a field out. */
#define POLICY_SET_RETRY    0x01u
#define POLICY_SET_CORS     0x02u
#define POLICY_SET_CB       0x04u
#define POLICY_SET_LB       0x08u
#define POLICY_SET_IDLE     0x10u /* cluster_idle_timeout_ms */
#define POLICY_SET_LIFETIME 0x20u /* cluster_max_connection_lifetime_ms */
#define POLICY_SET_CONNECT  0x40u

/* What a Mapping's policy fields say beyond its route's own policy. */
struct mapping_policy {
    unsigned set;
    bool weight_set;
    uint32_t weight; /* 0-100 */
    bool shadow;
    struct route_cluster_policy cluster; /* becomes its cluster's policy */
};

/* The Module's defaults for every Mapping. */
struct module_policy {
    unsigned set;
    struct route_retry retry;
    struct route_cors cors;
    struct route_cluster_policy cluster;
};

/* The name of the i-th policy field of a Mapping (module false) or of the Module (true), or
 * NULL past the last: the keyword tables look keys up here, and suggest these names. */
const char *annotation_policy_field(bool module, size_t i);

/* Reads field `name` of a Mapping from v into r's policy and mp. A field of the route's policy
 * gives r a policy of its own first (route_policy_mut); the others leave r alone. Returns 0,
 * or -EINVAL after reporting at least one error through ctx. */
int annotation_policy_mapping(const char *name, const struct ytree_node *v, struct route *r,
                              struct mapping_policy *mp, const struct value_ctx *ctx);
/* Reads field `name` of the Module's config. Same contract. */
int annotation_policy_module(const char *name, const struct ytree_node *v, struct module_policy *mp,
                             const struct value_ctx *ctx);

/* Gives a Mapping (its route r and mp) the Module's defaults for the fields it left out; r gets
 * a policy of its own only when one of them is the route's. */
void annotation_policy_apply_module(struct route *r, struct mapping_policy *mp,
                                    const struct module_policy *mod);

/* Appends to key what sets a cluster's policy apart (nothing for the default policy), so
 * Mappings with different cluster policies for one upstream get different clusters. */
void annotation_policy_cluster_key(const struct route_cluster_policy *p, struct buf *key);
/* A short stable suffix for the name of a cluster with a non-default policy ("" for the
 * default): "~" and 8 hex digits of a hash of its key. out holds at least 10 bytes. */
void annotation_policy_cluster_suffix(const struct route_cluster_policy *p, char *out,
                                      size_t outlen);

void mapping_policy_free_fields(struct mapping_policy *mp);
void module_policy_free_fields(struct module_policy *mp);

#endif

/* Private to the policy-field parsers (annotation_policy.c, annotation_ratelimit.c): their
 * shared shape check and the rate-limit parsers. Scalars are read with annotation_value.h.
 * Never included from elsewhere. */
#ifndef LEGATE_CONTROLLER_ANNOTATION_POLICY_INTERNAL_H
#define LEGATE_CONTROLLER_ANNOTATION_POLICY_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "annotation_policy.h"
#include "annotation_value.h"

/* Reports an error through the value_ctx `c` in scope and returns -EINVAL. */
#define ERR(field, line, ...)                                                                      \
    do {                                                                                           \
        value_report(c, false, (field), (line), __VA_ARGS__);                                      \
        return -EINVAL;                                                                            \
    } while (0)

/* A map whose keys are among keys[0..n), each once; 0 or -EINVAL after reporting. */
int policy_check_map(const struct value_ctx *c, const char *field, const struct ytree_node *v,
                     const char *const *keys, size_t n, const char *expected);

/* annotation_ratelimit.c: rate_limits (v0), labels (v1+), legate_rate_limit. */
int policy_rate_limits(const struct ytree_node *v, struct route_policy *rp,
                       struct mapping_policy *mp, const struct value_ctx *c);
int policy_labels(const struct ytree_node *v, struct route_policy *rp, struct mapping_policy *mp,
                  const struct value_ctx *c);
int policy_local_rl(const struct ytree_node *v, struct route_policy *rp, struct mapping_policy *mp,
                    const struct value_ctx *c);

#endif

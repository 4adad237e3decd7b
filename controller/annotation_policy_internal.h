/* Private to the policy-field parsers (annotation_policy.c, annotation_ratelimit.c): their
 * shared reporting and scalar helpers. Never included from elsewhere. */
#ifndef LEGATE_CONTROLLER_ANNOTATION_POLICY_INTERNAL_H
#define LEGATE_CONTROLLER_ANNOTATION_POLICY_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "annotation_policy.h"

/* Reports a problem of field at line (1-based) through c: an error, or a warning. */
void policy_report(const struct policy_ctx *c, bool warn, const char *field, int line,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Reports an error through the policy_ctx `c` in scope and returns -EINVAL. */
#define ERR(field, line, ...)                                                                      \
    do {                                                                                           \
        policy_report(c, false, (field), (line), __VA_ARGS__);                                     \
        return -EINVAL;                                                                            \
    } while (0)

/* "field: expected <expected>, got <what v is>"; returns -EINVAL. */
int policy_type_error(const struct policy_ctx *c, const char *field, const struct ytree_node *v,
                      const char *expected);
/* A non-empty string scalar, or NULL after reporting. */
const char *policy_text(const struct policy_ctx *c, const char *field, const struct ytree_node *v);
/* An integer in [min, max] into *out; 0 or -EINVAL after reporting (unit names it). */
int policy_uint(const struct policy_ctx *c, const char *field, const struct ytree_node *v,
                uint32_t min, uint32_t max, const char *unit, uint32_t *out);
int policy_bool(const struct policy_ctx *c, const char *field, const struct ytree_node *v,
                bool *out);
/* A map whose keys are among keys[0..n), each once; 0 or -EINVAL after reporting. */
int policy_check_map(const struct policy_ctx *c, const char *field, const struct ytree_node *v,
                     const char *const *keys, size_t n, const char *expected);
/* RFC 9110 token: what a header name or a method may be. */
bool policy_is_token(const char *s);
/* A lower-cased copy (the caller frees it). */
char *policy_lower_dup(const char *s);

/* annotation_ratelimit.c: rate_limits (v0), labels (v1+), legate_rate_limit. */
int policy_rate_limits(const struct ytree_node *v, struct route_policy *rp,
                       struct mapping_policy *mp, const struct policy_ctx *c);
int policy_labels(const struct ytree_node *v, struct route_policy *rp, struct mapping_policy *mp,
                  const struct policy_ctx *c);
int policy_local_rl(const struct ytree_node *v, struct route_policy *rp, struct mapping_policy *mp,
                    const struct policy_ctx *c);

#endif

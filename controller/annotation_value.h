/* Typed readers of annotation values: the one place where "look the scalar up, check its type,
 * report an error naming the field and the line, hand the value over" is written. Every Mapping
 * and Module field (annotation_fields.c and the keyword tables that use it) and every
 * traffic-policy field (annotation_policy.c, annotation_ratelimit.c) reads its scalars here, so
 * one kind of mistake reads the same whichever field it is in:
 *
 *   precedence: expected an integer, got string "high"
 *   xff_num_trusted_hops: expected 0 to 64, got 100
 *
 * The readers report through struct value_ctx and know nothing of documents; annotation.c
 * points it at the document being read. */
#ifndef LEGATE_CONTROLLER_ANNOTATION_VALUE_H
#define LEGATE_CONTROLLER_ANNOTATION_VALUE_H

#include <stdbool.h>
#include <stdint.h>

#include "ytree.h"

/* Where problems go: field names the key ("retry_policy.num_retries"), line is 1-based, msg is
 * the whole message (the callee copies it). */
struct value_ctx {
    void (*error)(void *arg, const char *field, int line, const char *msg);
    void (*warn)(void *arg, const char *field, int line, const char *msg);
    void *arg;
};

/* Reports a problem of field at line through c: an error, or a warning when warn is set. The
 * message is cut at 511 bytes. */
void value_report(const struct value_ctx *c, bool warn, const char *field, int line,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Reports "field: expected <expected>, got <what v is>" as an error; returns -EINVAL. */
int value_type_error(const struct value_ctx *c, const char *field, const struct ytree_node *v,
                     const char *expected);

/* Any scalar but null, as a string (possibly empty): Ambassador's users write
 * `host: 10.0.0.1` or `rewrite: /v1` unquoted, and YAML 1.1 typing would turn some of those into
 * numbers. Returns v's value (borrowed), or NULL after reporting "expected a string". */
const char *value_string(const struct value_ctx *c, const char *field, const struct ytree_node *v);
/* A non-empty string scalar (ytree_is_text). Returns v's value (borrowed), or NULL after
 * reporting "expected a non-empty string". */
const char *value_text(const struct value_ctx *c, const char *field, const struct ytree_node *v);
/* A YAML 1.1 boolean into *out. Returns 0, or -EINVAL after reporting. */
int value_bool(const struct value_ctx *c, const char *field, const struct ytree_node *v, bool *out);
/* A decimal integer into *out. Returns 0; -EINVAL after reporting "expected an integer"; or
 * -ERANGE, not reported, when it does not fit int64_t (the caller says which range it wanted). */
int value_int(const struct value_ctx *c, const char *field, const struct ytree_node *v,
              int64_t *out);
/* An integer in [min, max] into *out. Returns 0, or -EINVAL after reporting; unit names what it
 * counts in the range error (" milliseconds", or ""). */
int value_uint(const struct value_ctx *c, const char *field, const struct ytree_node *v,
               uint32_t min, uint32_t max, const char *unit, uint32_t *out);

/* RFC 9110 token: what a header name or a method may be. False for "". */
bool value_is_token(const char *s);
/* True when s holds a control character (below 0x20, or DEL): it could split a header line. */
bool value_has_control(const char *s);
/* Lower-cases s (ASCII) in place and returns it. */
char *value_lower(char *s);

#endif

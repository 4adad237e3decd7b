#include "annotation_value.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void value_report(const struct value_ctx *c, bool warn, const char *field, int line,
                  const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    (warn ? c->warn : c->error)(c->arg, field, line, msg);
}

int value_type_error(const struct value_ctx *c, const char *field, const struct ytree_node *v,
                     const char *expected)
{
    char got[96];
    ytree_describe(v, got, sizeof(got));
    value_report(c, false, field, v->line, "%s: expected %s, got %s", field, expected, got);
    return -EINVAL;
}

const char *value_string(const struct value_ctx *c, const char *field, const struct ytree_node *v)
{
    /* A NUL inside the value would cut it short without anyone noticing. */
    if (v->type != YTREE_SCALAR || ytree_is_null(v) || strlen(v->value) != v->len) {
        value_type_error(c, field, v, "a string");
        return NULL;
    }
    return v->value;
}

const char *value_text(const struct value_ctx *c, const char *field, const struct ytree_node *v)
{
    if (!ytree_is_text(v)) {
        value_type_error(c, field, v, "a non-empty string");
        return NULL;
    }
    return v->value;
}

int value_bool(const struct value_ctx *c, const char *field, const struct ytree_node *v, bool *out)
{
    if (ytree_get_bool(v, out) != 0)
        return value_type_error(c, field, v, "a boolean");
    return 0;
}

int value_int(const struct value_ctx *c, const char *field, const struct ytree_node *v,
              int64_t *out)
{
    int rc = ytree_get_int(v, out);
    if (rc == -EINVAL)
        return value_type_error(c, field, v, "an integer");
    return rc;
}

int value_uint(const struct value_ctx *c, const char *field, const struct ytree_node *v,
               uint32_t min, uint32_t max, const char *unit, uint32_t *out)
{
    int64_t i = 0;
    int rc = value_int(c, field, v, &i);
    if (rc == -EINVAL)
        return rc;
    if (rc != 0 || i < min || i > max) {
        value_report(c, false, field, v->line, "%s: expected %u to %u%s, got %s", field, min, max,
                     unit, v->value);
        return -EINVAL;
    }
    *out = (uint32_t)i;
    return 0;
}

bool value_is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!isalnum(ch) && strchr("!#$%&'*+-.^_`|~", ch) == NULL)
            return false;
    }
    return true;
}

bool value_has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

char *value_lower(char *s)
{
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return s;
}

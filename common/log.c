#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

int log_min_level = LOG_LEVEL_INFO;
static int log_format = LOG_FORMAT_LOGFMT;
static const char *log_component = "legate";

static const char *const level_names[] = { "debug", "info", "warn", "error" };

/* One log line never exceeds this; longer values are cut, never the process. */
#define LOG_LINE_MAX 16384

int log_parse_level(const char *name, int *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return -EINVAL;
}

int log_parse_format(const char *name, int *out)
{
    if (strcmp(name, "logfmt") == 0 || strcmp(name, "text") == 0)
        *out = LOG_FORMAT_LOGFMT;
    else if (strcmp(name, "json") == 0)
        *out = LOG_FORMAT_JSON;
    else
        return -EINVAL;
    return 0;
}

void log_configure(int level, int format, const char *component)
{
    log_min_level = level;
    log_format = format;
    if (component)
        log_component = component;
}

static bool logfmt_needs_quotes(const char *s, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
            return true;
    }
    return false;
}

/* Appends s quoted and escaped; JSON escaping is also valid logfmt quoting. */
static void put_quoted(struct buf *b, const char *s, size_t n)
{
    buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            buf_append(b, "\\\"", 2);
            break;
        case '\\':
            buf_append(b, "\\\\", 2);
            break;
        case '\n':
            buf_append(b, "\\n", 2);
            break;
        case '\r':
            buf_append(b, "\\r", 2);
            break;
        case '\t':
            buf_append(b, "\\t", 2);
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                buf_printf(b, "\\u%04x", c);
            else
                buf_append(b, &s[i], 1);
        }
    }
    buf_append(b, "\"", 1);
}

static void put_value(struct buf *b, const char *v, size_t n, bool numeric)
{
    if (log_format == LOG_FORMAT_JSON ? !numeric : logfmt_needs_quotes(v, n))
        put_quoted(b, v, n);
    else
        buf_append(b, v, n);
}

static void put_key(struct buf *b, const char *k, size_t n, bool first)
{
    if (log_format == LOG_FORMAT_JSON) {
        buf_append(b, ",", 1);
        put_quoted(b, k, n);
        buf_append(b, ":", 1);
    } else {
        if (!first)
            buf_append(b, " ", 1);
        buf_append(b, k, n);
        buf_append(b, "=", 1);
    }
}

/* Formats one conversion spec (e.g. "%zu", "%.*s" is not supported) taking its argument
 * from ap. Returns whether the value is numeric. */
static bool format_spec(const char *spec, size_t speclen, va_list *ap, char *out, size_t outlen)
{
    char fmt[16];
    if (speclen >= sizeof(fmt)) {
        snprintf(out, outlen, "?");
        return false;
    }
    memcpy(fmt, spec, speclen);
    fmt[speclen] = '\0';
    char conv = fmt[speclen - 1];
    const char *len = fmt + 1;
    while (*len && strchr("-+ #0123456789.", *len))
        len++;
    bool is_l = len[0] == 'l' && len[1] != 'l';
    bool is_ll = len[0] == 'l' && len[1] == 'l';
    bool is_z = len[0] == 'z';
    switch (conv) {
    case 'd':
    case 'i':
        if (is_ll)
            snprintf(out, outlen, fmt, va_arg(*ap, long long));
        else if (is_l)
            snprintf(out, outlen, fmt, va_arg(*ap, long));
        else if (is_z)
            snprintf(out, outlen, fmt, va_arg(*ap, ptrdiff_t));
        else
            snprintf(out, outlen, fmt, va_arg(*ap, int));
        return true;
    case 'u':
    case 'x':
    case 'X':
        if (is_ll)
            snprintf(out, outlen, fmt, va_arg(*ap, unsigned long long));
        else if (is_l)
            snprintf(out, outlen, fmt, va_arg(*ap, unsigned long));
        else if (is_z)
            snprintf(out, outlen, fmt, va_arg(*ap, size_t));
        else
            snprintf(out, outlen, fmt, va_arg(*ap, unsigned));
        return conv == 'u';
    case 'f':
    case 'g':
        snprintf(out, outlen, fmt, va_arg(*ap, double));
        return true;
    case 'c':
        snprintf(out, outlen, fmt, va_arg(*ap, int));
        return false;
    case 'p':
        snprintf(out, outlen, fmt, va_arg(*ap, void *));
        return false;
    case 's': {
        const char *s = va_arg(*ap, const char *);
        snprintf(out, outlen, fmt, s ? s : "");
        return false;
    }
    default:
        snprintf(out, outlen, "?");
        return false;
    }
}

void log_emit(int level, const char *msg, const char *fields, ...)
{
    struct buf b;
    char ts[40];
    struct timeval tv;
    struct tm tm;
    static __thread char valbuf[LOG_LINE_MAX];

    buf_init(&b, LOG_LINE_MAX);
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof(ts) - tl, ".%03dZ", (int)(tv.tv_usec / 1000));
    if (level < 0 || level > LOG_LEVEL_ERROR)
        level = LOG_LEVEL_ERROR;

    if (log_format == LOG_FORMAT_JSON) {
        buf_append_str(&b, "{\"ts\":\"");
        buf_append_str(&b, ts);
        buf_printf(&b, "\",\"level\":\"%s\",\"component\":\"%s\",\"msg\":", level_names[level],
                   log_component);
        put_quoted(&b, msg, strlen(msg));
    } else {
        buf_printf(&b, "ts=%s level=%s component=%s msg=", ts, level_names[level], log_component);
        put_value(&b, msg, strlen(msg), false);
    }

    va_list ap;
    va_start(ap, fields);
    const char *p = fields;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *key = p;
        while (*p && *p != '=' && *p != ' ')
            p++;
        size_t keylen = (size_t)(p - key);
        if (*p != '=') {
            /* A bare word: treat it as a key without value. */
            put_key(&b, key, keylen, false);
            put_value(&b, "", 0, false);
            continue;
        }
        p++;
        const char *val = p;
        bool numeric = false;
        if (*p == '%' && p[1] != '%') {
            const char *spec = p++;
            while (*p && !strchr("diuxXfgcps", *p))
                p++;
            if (*p)
                p++;
            numeric = format_spec(spec, (size_t)(p - spec), &ap, valbuf, sizeof(valbuf));
            put_key(&b, key, keylen, false);
            put_value(&b, valbuf, strlen(valbuf), numeric);
        } else {
            while (*p && *p != ' ')
                p++;
            put_key(&b, key, keylen, false);
            put_value(&b, val, (size_t)(p - val), false);
        }
    }
    va_end(ap);

    if (log_format == LOG_FORMAT_JSON)
        buf_append(&b, "}", 1);
    if (b.len > LOG_LINE_MAX - 1)
        b.len = LOG_LINE_MAX - 1; /* truncated: keep room for the newline */
    buf_append(&b, "\n", 1);
    if (b.data) {
        ssize_t w = write(STDERR_FILENO, b.data, b.len);
        (void)w;
    }
    buf_free(&b);
}

/* Leveled, structured logging: one line per event, a short message then stable
 * key=value fields (logfmt by default, one JSON object per line with --log-format=json).
 *
 *   log_warn("invalid mapping", "ns=%s svc=%s mapping=%s line=%d", ns, svc, name, line);
 *
 * The fields argument is a printf format made of space-separated `key=%spec` items; each
 * value is quoted/escaped for the output format, so values may hold any bytes. The level
 * is checked before anything is formatted (redis' serverLog). Lines go to stderr with one
 * write(2) each, so lines from different threads do not interleave. */
#ifndef LEGATE_LOG_H
#define LEGATE_LOG_H

#include <stdbool.h>

enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };
enum log_format { LOG_FORMAT_LOGFMT = 0, LOG_FORMAT_JSON };

extern int log_min_level;

/* Parse a level or format name; 0 on success, -EINVAL for an unknown name. */
int log_parse_level(const char *name, int *out);
int log_parse_format(const char *name, int *out);
void log_configure(int level, int format, const char *component);

void log_emit(int level, const char *msg, const char *fields, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_AT(lvl, msg, ...)                                                                      \
    do {                                                                                           \
        if ((lvl) >= log_min_level)                                                                \
            log_emit((lvl), (msg), __VA_ARGS__);                                                   \
    } while (0)
#define log_debug(msg, ...) LOG_AT(LOG_LEVEL_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...)  LOG_AT(LOG_LEVEL_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...)  LOG_AT(LOG_LEVEL_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) LOG_AT(LOG_LEVEL_ERROR, msg, __VA_ARGS__)

#endif

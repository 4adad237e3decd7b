/* Bounded growable byte buffers (curl's dynbuf): every buffer fed from outside input
 * has a hard cap, and appending past it fails instead of growing. */
#ifndef LEGATE_BUF_H
#define LEGATE_BUF_H

#include <stddef.h>

struct buf {
    char *data; /* always NUL-terminated when non-NULL, so text can be read in place */
    size_t len;
    size_t cap;
    size_t max; /* hard cap on len */
};

void buf_init(struct buf *b, size_t max);
/* Appends n bytes. Returns 0, or -E2BIG when len would exceed max (b is unchanged). */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
/* Makes room for n more bytes without a reallocation, as far as the cap allows (then up to the
 * cap). For writers that know roughly how much they will append. */
void buf_reserve(struct buf *b, size_t n);
/* printf-style append; -E2BIG past the cap. */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
/* Frees the storage; b can be reused after buf_init. Safe on a zeroed buf. */
void buf_free(struct buf *b);
/* Gives the storage to the caller (NUL-terminated, possibly NULL if empty) and resets b. */
char *buf_steal(struct buf *b);

#endif

/* Allocation that aborts on failure, so call sites stay readable (redis' zmalloc).
 * Out of memory is not a condition Legate tries to survive: the process exits and
 * Kubernetes restarts it. Input-driven growth is bounded elsewhere (see buf.h). */
#ifndef LEGATE_XALLOC_H
#define LEGATE_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* Returns a NUL-terminated copy of s; NULL in, NULL out. */
char *xstrdup(const char *s);
/* Returns a NUL-terminated copy of the first n bytes of s. */
char *xstrndup(const char *s, size_t n);
/* Gives free heap memory back to the system (glibc's malloc_trim; nothing elsewhere). For
 * after a large, short-lived structure is freed (a snapshot's parse tree, a /routes
 * document): glibc keeps such memory for reuse, and the process's RSS with it. */
void xalloc_trim(void);

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define ARRAY_SIZE(a)                   (sizeof(a) / sizeof((a)[0]))

#endif

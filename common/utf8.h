/* UTF-8 hygiene for text that leaves the process (logs, JSON, Kubernetes Events). Messages
 * quote user input and are cut to fixed sizes; a cut in the middle of a character would make
 * the whole snapshot invalid JSON for a strict reader. */
#ifndef LEGATE_UTF8_H
#define LEGATE_UTF8_H

#include <stddef.h>

/* Returns the length of the longest prefix of s[0, n) that is well-formed UTF-8 (no overlong
 * forms, no surrogates, nothing past U+10FFFF). */
size_t utf8_valid_prefix(const char *s, size_t n);
/* Rewrites s (NUL-terminated) in place so that it is well-formed UTF-8: every byte that does
 * not start a well-formed sequence becomes '?'. The length does not change. */
void utf8_scrub(char *s);

#endif

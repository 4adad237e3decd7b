/* The watch stream splitter: a watch response is one JSON object per line, but HTTP chunks
 * (and TLS records, and curl's buffers) cut it anywhere. Whole lines inside a feed are passed
 * straight from the caller's bytes; only the unfinished tail is copied, into a buffer capped at
 * max_line, so one huge event costs at most the cap and never grows without bound. */
#include "kube_internal.h"

#include <errno.h>
#include <string.h>

void kube_split_init(struct kube_split *s, size_t max_line)
{
    buf_init(&s->part, max_line);
    s->max_line = max_line;
}

/* Strips one trailing '\r' (a server may end lines with CRLF) and skips empty lines. */
static int emit(const char *line, size_t len, kube_line_cb cb, void *arg)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 0)
        return 0;
    return cb(arg, line, len);
}

int kube_split_feed(struct kube_split *s, const char *p, size_t n, kube_line_cb cb, void *arg)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        if (nl == NULL) {
            /* An unfinished line: keep it for the next feed, within the cap. */
            if (buf_append(&s->part, p, n) != 0)
                return -E2BIG;
            return 0;
        }
        size_t len = (size_t)(nl - p);
        int rc;
        if (s->part.len == 0) {
            if (len > s->max_line)
                return -E2BIG;
            rc = emit(p, len, cb, arg);
        } else {
            if (buf_append(&s->part, p, len) != 0)
                return -E2BIG;
            rc = emit(s->part.data, s->part.len, cb, arg);
            buf_reset(&s->part);
        }
        if (rc != 0)
            return rc;
        p = nl + 1;
        n -= len + 1;
    }
    return 0;
}

size_t kube_split_pending(const struct kube_split *s)
{
    return s->part.len;
}

void kube_split_reset(struct kube_split *s)
{
    buf_reset(&s->part);
}

void kube_split_free(struct kube_split *s)
{
    buf_free(&s->part);
}

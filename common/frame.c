#include "frame.h"

#include <errno.h>
#include <string.h>

int frame_encode(struct buf *out, const char *payload, size_t len)
{
    if (len > UINT32_MAX)
        return -EMSGSIZE;
    unsigned char hdr[4] = { (unsigned char)(len >> 24), (unsigned char)(len >> 16),
                             (unsigned char)(len >> 8), (unsigned char)len };
    size_t before = out->len;
    int rc = buf_append(out, hdr, 4);
    if (rc == 0)
        rc = buf_append(out, payload, len);
    if (rc != 0)
        out->len = before;
    return rc;
}

void frame_decoder_init(struct frame_decoder *d, size_t max_frame)
{
    /* Room for one maximal frame, its header, and the header of the next one. */
    buf_init(&d->in, max_frame + 8);
    d->off = 0;
    d->max_frame = max_frame;
}

void frame_decoder_free(struct frame_decoder *d)
{
    buf_free(&d->in);
    d->off = 0;
}

int frame_decoder_feed(struct frame_decoder *d, const void *p, size_t n)
{
    if (d->off > 0) {
        buf_consume(&d->in, d->off);
        d->off = 0;
    }
    return buf_append(&d->in, p, n);
}

int frame_decoder_next(struct frame_decoder *d, const char **payload, size_t *len)
{
    size_t avail = d->in.len - d->off;
    if (avail < 4)
        return 0;
    const unsigned char *h = (const unsigned char *)d->in.data + d->off;
    size_t n = ((size_t)h[0] << 24) | ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3];
    if (n > d->max_frame)
        return -EMSGSIZE;
    if (avail - 4 < n)
        return 0;
    char *start = d->in.data + d->off + 4;
    *payload = start;
    *len = n;
    d->off += 4 + n;
    return 1;
}

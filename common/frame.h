/* Control-protocol framing: a 4-byte big-endian length, then that many bytes holding one
 * JSON object (docs/control-protocol.md). */
#ifndef LEGATE_FRAME_H
#define LEGATE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define FRAME_MAX_DEFAULT ((size_t)64 << 20)

/* Appends one frame carrying len bytes of payload to out. Returns 0, -EMSGSIZE if len does
 * not fit the 32-bit length, or -E2BIG past out's cap. */
int frame_encode(struct buf *out, const char *payload, size_t len);

struct frame_decoder {
    struct buf in;
    size_t off;       /* bytes of in already handed out */
    size_t max_frame; /* payload cap */
};

void frame_decoder_init(struct frame_decoder *d, size_t max_frame);
void frame_decoder_free(struct frame_decoder *d);
/* Buffers n received bytes. Returns 0, or -E2BIG when the buffered bytes would exceed one
 * frame plus its header (the peer is then broken: close the connection). */
int frame_decoder_feed(struct frame_decoder *d, const void *p, size_t n);
/* Takes the next whole frame. Returns 1 with *payload (borrowed, not NUL-terminated, valid
 * until the next feed) and *len set; 0 when more bytes are needed; -EMSGSIZE when the
 * announced length exceeds max_frame. */
int frame_decoder_next(struct frame_decoder *d, const char **payload, size_t *len);

#endif

/* The HTTP/1.x message layer shared by both legs of a proxied request, with no socket in
 * sight (so it is unit-tested on byte strings):
 *
 * - px_h1_parser drives llhttp (strict: no lenient flag) as a head recorder. The request line
 *   or status reason and every header are kept as offsets into the caller's read buffer, which
 *   must hold the whole head contiguously; our own checks run on top of llhttp's (obs-fold,
 *   Transfer-Encoding on HTTP/1.0 or other than chunked, header names with spaces or empty,
 *   Host and request-target syntax, bare CR/LF anywhere in the framing, CRLF after chunk
 *   data, caps on the head, target, header count and chunk extensions; docs/security.md).
 *   Body bytes met during one execute call are moved together in place, so the caller sends
 *   them as one piece (and one chunk when re-chunking).
 * - px_h1_request_head / px_h1_response_head build the head to forward as an iovec array:
 *   runs of the original header lines are referenced in the read buffer, not copied; only
 *   the request/status line and the headers the proxy sets are formatted.
 * - Chunk framing and the proxy's own responses. */
#ifndef LEGATE_PROXY_HTTP1_H
#define LEGATE_PROXY_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>
#include <uv.h>

#include "arena.h"
#include "route-t.h"

#define PX_H1_HEAD_MAX      (64 * 1024) /* request line + headers; over it: 431 */
#define PX_H1_TARGET_MAX    (8 * 1024)  /* request target; over it: 414 */
#define PX_H1_HEADERS_MAX   100         /* header fields in one head; over it: 431 */
#define PX_H1_CHUNK_EXT_MAX (4 * 1024)  /* chunk extensions of one chunk-size line; over: 400 */
#define PX_H1_CHUNK_LINE    20          /* room for a chunk-size line: 16 hex digits + CRLF */

/* A byte range of the head, relative to the message's first byte (px_h1_parser.start). */
struct px_h1_span {
    uint32_t off;
    uint32_t len;
};

/* What the proxy itself knows a header to be, found once when its name is parsed: the
 * forwarding decisions look at this instead of comparing names per header per request. */
enum px_h1_kind {
    PX_H1_OTHER = 0,
    PX_H1_HOP,       /* hop-by-hop (RFC 9110 7.6.1): Connection, Keep-Alive, TE, ... */
    PX_H1_HOST,      /* Host */
    PX_H1_XFF,       /* X-Forwarded-For */
    PX_H1_XFP,       /* X-Forwarded-Proto */
    PX_H1_CL,        /* Content-Length */
    PX_H1_CONNECTION /* Connection (also hop-by-hop) */
};

struct px_h1_header {
    struct px_h1_span name;
    struct px_h1_span value; /* trailing whitespace trimmed */
    uint8_t kind;            /* enum px_h1_kind */
};

enum px_h1_event {
    PX_H1_MORE = 0, /* every byte consumed; the message needs more */
    PX_H1_HEAD,     /* paused right after the head (parsers made with pause_on_head) */
    PX_H1_DONE,     /* paused right after the end of the message */
    PX_H1_ERROR,    /* see error_status and error_reason; the parser is dead */
};

struct px_h1_parser {
    llhttp_t ll;
    llhttp_type_t type;
    bool pause_on_head;
    /* Set by the caller before the head of a response to HEAD is parsed. */
    bool skip_body;
    /* Set by the caller when a 101 may answer: the request's Upgrade is tunnelled. */
    bool allow_101;

    /* Where the current message lives: buf + start is its first byte. start moves when the
     * caller compacts its buffer (px_h1_shift). */
    char *buf;
    uint32_t start;
    struct px_arena *arena; /* holds the header array; must outlive the message */

    /* The current message. */
    bool begun;
    bool head_done;
    bool done;
    bool in_field;
    bool in_value;
    bool value_seen;
    bool target_started;
    bool target_done;
    struct px_h1_span target; /* request target, or response reason phrase */
    struct px_h1_header *headers;
    uint32_t nheaders;
    uint32_t cap;
    /* Tokens of the Connection headers, found with the head: a listed name is hop-by-hop. */
    bool conn_lists_close; /* "close" */
    bool conn_lists_other; /* anything but close and keep-alive (names every header may be) */

    /* Body bytes of the last execute call, made contiguous: buf[body_off, body_off+body_len). */
    uint32_t body_off;
    uint32_t body_len;

    /* Line-ending check over the framing bytes (everything but body data), which runs across
     * execute calls: llhttp's default build takes a bare LF in places and any two bytes after
     * chunk data. scan_from is where the unchecked framing bytes of this call begin. */
    uint32_t scan_from;
    bool scan_cr;            /* the last framing byte was CR: LF must follow */
    uint8_t scan_after_data; /* after chunk data: 2 = CR expected next, 1 = LF, 0 = neither */
    uint32_t ext_len;        /* chunk-extension bytes of the current chunk-size line */

    /* After PX_H1_ERROR: the status to answer a client with (400, 405, 414, 431, 501, 505)
     * and a short reason (static string). */
    int error_status;
    const char *error_reason;
};

/* Prepares p for a new connection. type is HTTP_REQUEST or HTTP_RESPONSE; pause_on_head makes
 * execute stop after each head (PX_H1_HEAD) so the caller can act before any body byte. */
void px_h1_init(struct px_h1_parser *p, llhttp_type_t type, bool pause_on_head);

/* Parses buf[from, to). The header array is allocated from arena at the first header. On
 * return *consumed bytes were used; the rest must be passed again after PX_H1_HEAD (with
 * px_h1_resume) or PX_H1_DONE (with px_h1_next). The head's bytes (buf from start) must stay
 * in place, unchanged, until the caller is done with the head; body bytes are moved. */
enum px_h1_event px_h1_execute(struct px_h1_parser *p, char *buf, uint32_t from, uint32_t to,
                               struct px_arena *arena, uint32_t *consumed);
/* Continues after PX_H1_HEAD. */
void px_h1_resume(struct px_h1_parser *p);
/* Forgets the finished message and continues after PX_H1_DONE. */
void px_h1_next(struct px_h1_parser *p);
/* Tells the parser the peer closed. Returns PX_H1_DONE when that ended a message whose body
 * runs to the close, PX_H1_MORE when no message was in progress, PX_H1_ERROR otherwise. */
enum px_h1_event px_h1_finish(struct px_h1_parser *p);
/* The caller moved the buffer's bytes delta bytes towards its start. */
void px_h1_shift(struct px_h1_parser *p, uint32_t delta);

static inline const char *px_h1_at(const struct px_h1_parser *p, struct px_h1_span s)
{
    return p->buf + p->start + s.off;
}

/* Index of the first header named name (compared case-insensitively) at or after
 * from, or -1. Inline: with a literal name the length is a constant, and the first letter
 * rules out most headers before strncasecmp is called (a dozen lookups per request). */
static inline int px_h1_find(const struct px_h1_parser *p, const char *name, uint32_t from)
{
    size_t n = strlen(name);
    for (uint32_t i = from; i < p->nheaders; i++) {
        const struct px_h1_header *h = &p->headers[i];
        if (h->name.len != n)
            continue;
        const char *hn = px_h1_at(p, h->name);
        if ((hn[0] | 0x20) == (name[0] | 0x20) && strncasecmp(hn, name, n) == 0)
            return (int)i;
    }
    return -1;
}
/* Whether name (len bytes) is listed in a Connection header of the message. */
bool px_h1_connection_lists(const struct px_h1_parser *p, const char *name, size_t len);
/* Whether name is a hop-by-hop header by definition (RFC 9110 7.6.1, plus Proxy-Connection and
 * Transfer-Encoding, which the proxy's own framing replaces). */
bool px_h1_is_hop_by_hop(const char *name, size_t len);

static inline bool px_h1_is_chunked(const struct px_h1_parser *p)
{
    return (p->ll.flags & F_CHUNKED) != 0;
}
static inline bool px_h1_has_body(const struct px_h1_parser *p)
{
    return (p->ll.flags & F_CHUNKED) != 0 || p->ll.content_length > 0;
}

/* What the proxy sets on the upstream request. */
/* A route's header edits (add_/remove_request_headers, add_/remove_response_headers):
 * removals first, then additions, names compared without case. An addition with append
 * false also removes the lines of that name the message had. */
struct px_h1_edits {
    char *const *remove; /* lower case */
    size_t nremove;
    const struct route_header_add *add;
    size_t nadd;
};

struct px_h1_forward {
    const char *target; /* request target to send (origin-form, already rewritten) */
    size_t target_len;
    const char *host; /* Host to send */
    size_t host_len;
    const char *client_ip; /* NUL-terminated; appended to X-Forwarded-For */
    /* The ambassador Module's use_remote_address false: X-Forwarded-For goes on as received,
     * without client_ip (the proxy is not the edge). */
    bool keep_xff;
    const char *proto;               /* X-Forwarded-Proto to send; NULL: "http" */
    const struct px_h1_edits *edits; /* NULL: none */
};

/* Builds the upstream request head for the request parsed by p: `METHOD target HTTP/1.1`, the
 * client's headers minus hop-by-hop ones, Host, X-Forwarded-For, X-Forwarded-Proto, and
 * Transfer-Encoding: chunked when the request body is chunked. Sets *out to an iovec array
 * allocated from a (pointing into a and into p's buffer) and returns its length. */
unsigned px_h1_request_head(const struct px_h1_parser *p, const struct px_h1_forward *f,
                            struct px_arena *a, uv_buf_t **out);

/* Builds the downstream head for the response parsed by p: `HTTP/1.1 status reason`, the
 * upstream's headers minus hop-by-hop ones, then Connection (keep-alive or close) and, when
 * chunked, Transfer-Encoding: chunked. For an interim (1xx) response pass final = false: no
 * Connection header is added. Returns the iovec count as above. */
unsigned px_h1_response_head(const struct px_h1_parser *p, bool final, bool keep_alive,
                             bool chunked, struct px_arena *a, uv_buf_t **out);
/* The same with the route's response header edits applied (edits may be NULL). */
unsigned px_h1_response_head_edited(const struct px_h1_parser *p, bool final, bool keep_alive,
                                    bool chunked, const struct px_h1_edits *edits,
                                    struct px_arena *a, uv_buf_t **out);

/* Writes the chunk-size line for n bytes ("1a2b\r\n") to out (PX_H1_CHUNK_LINE bytes) and
 * returns its length. */
size_t px_h1_chunk_line(char *out, size_t n);
#define PX_H1_LAST_CHUNK "0\r\n\r\n"

/* The reason phrase for the statuses the proxy answers itself ("" for others). */
const char *px_h1_reason(int status);

/* Formats a response of the proxy's own: status line, Content-Type text/plain, Content-Length,
 * Connection, and the body `msg` + detail (detail_len bytes, may be NULL) + "\n" unless
 * head_only. Returns the bytes in *out (allocated from a) and their length. */
size_t px_h1_local_response(struct px_arena *a, int status, const char *msg, const char *detail,
                            size_t detail_len, bool keep_alive, bool head_only, char **out);
/* The same with extra header lines (each "Name: value\r\n", NUL-terminated; NULL: none)
 * after the status line: Server (the Module's server_name), Location (redirects). */
size_t px_h1_local_response_ext(struct px_arena *a, int status, const char *extra, const char *msg,
                                const char *detail, size_t detail_len, bool keep_alive,
                                bool head_only, char **out);

#endif

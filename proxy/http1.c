#include "http1.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "target.h"

/* ---- parser callbacks -------------------------------------------------------------------- */

static struct px_h1_parser *parser_of(llhttp_t *ll)
{
    return ll->data;
}

/* Offset of at from the message's first byte. */
static uint32_t rel(const struct px_h1_parser *p, const char *at)
{
    return (uint32_t)(at - (p->buf + p->start));
}

/* Records our own refusal; llhttp turns the non-zero return into an error. */
static int refuse(struct px_h1_parser *p, int status, const char *reason)
{
    p->error_status = status;
    p->error_reason = reason;
    return HPE_USER;
}

static int on_message_begin(llhttp_t *ll)
{
    struct px_h1_parser *p = parser_of(ll);
    p->begun = true;
    p->head_done = false;
    p->done = false;
    p->in_field = false;
    p->in_value = false;
    p->value_seen = false;
    p->target_started = false;
    p->target_done = false;
    p->target.off = p->target.len = 0;
    p->ext_len = 0;
    /* The array of the previous message belonged to an arena that has been reset since. */
    p->headers = NULL;
    p->nheaders = 0;
    p->cap = 0;
    p->conn_lists_close = false;
    p->conn_lists_other = false;
    return 0;
}

/* The request target (requests) or the reason phrase (responses). llhttp may deliver it in
 * pieces, one per execute call; the pieces are contiguous in the caller's buffer. */
static int on_target(llhttp_t *ll, const char *at, size_t len)
{
    struct px_h1_parser *p = parser_of(ll);
    if (!p->target_started) {
        p->target_started = true;
        p->target.off = rel(p, at);
    }
    p->target.len = rel(p, at) + (uint32_t)len - p->target.off;
    if (p->type == HTTP_REQUEST && p->target.len > PX_H1_TARGET_MAX)
        return refuse(p, 414, "request target longer than 8 KiB");
    if (p->type == HTTP_RESPONSE && p->target.len > 1024)
        return refuse(p, 502, "reason phrase too long");
    return 0;
}

static int on_target_complete(llhttp_t *ll)
{
    parser_of(ll)->target_done = true;
    return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len)
{
    struct px_h1_parser *p = parser_of(ll);
    if (p->head_done)
        return 0; /* a trailer field: trailers are not forwarded */
    if (p->in_field) {
        struct px_h1_header *h = &p->headers[p->nheaders - 1];
        h->name.len = rel(p, at) + (uint32_t)len - h->name.off;
        return 0;
    }
    if (p->nheaders == PX_H1_HEADERS_MAX)
        return refuse(p, p->type == HTTP_REQUEST ? 431 : 502, "too many header fields");
    if (p->nheaders == p->cap) {
        uint32_t cap = p->cap ? p->cap * 2 : 32;
        struct px_h1_header *nh = px_arena_alloc(p->arena, cap * sizeof(*nh));
        if (p->nheaders)
            memcpy(nh, p->headers, p->nheaders * sizeof(*nh));
        p->headers = nh;
        p->cap = cap;
    }
    struct px_h1_header *h = &p->headers[p->nheaders++];
    h->name.off = rel(p, at);
    h->name.len = (uint32_t)len;
    h->value.off = h->value.len = 0;
    h->kind = PX_H1_OTHER;
    p->in_field = true;
    p->value_seen = false;
    return 0;
}

/* RFC 9110 token characters (a switch, not strchr: this runs over every header name byte). */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return true;
    default:
        return false;
    }
}

static bool name_is(const char *name, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && strncasecmp(name, lit, n) == 0;
}

/* The header's kind by its name (enum px_h1_kind): by length first, so that most names are
 * never compared (this runs for every header). */
static uint8_t classify(const char *n, size_t len)
{
#define IS(lit) (strncasecmp(n, lit, sizeof(lit) - 1) == 0)
    switch (len) {
    case 2:
        return IS("te") ? PX_H1_HOP : PX_H1_OTHER;
    case 4:
        return IS("host") ? PX_H1_HOST : PX_H1_OTHER;
    case 7:
        return IS("trailer") || IS("upgrade") ? PX_H1_HOP : PX_H1_OTHER;
    case 10:
        return IS("connection") ? PX_H1_CONNECTION : IS("keep-alive") ? PX_H1_HOP : PX_H1_OTHER;
    case 14:
        return IS("content-length") ? PX_H1_CL : PX_H1_OTHER;
    case 15:
        return IS("x-forwarded-for") ? PX_H1_XFF : PX_H1_OTHER;
    case 16:
        return IS("proxy-connection") ? PX_H1_HOP : PX_H1_OTHER;
    case 17:
        return IS("transfer-encoding")   ? PX_H1_HOP
               : IS("x-forwarded-proto") ? PX_H1_XFP
                                         : PX_H1_OTHER;
    default:
        return PX_H1_OTHER;
    }
#undef IS
}

static int on_header_field_complete(llhttp_t *ll)
{
    struct px_h1_parser *p = parser_of(ll);
    p->in_field = false;
    if (p->head_done)
        return 0;
    /* llhttp without lenient flags still takes "Name :" (space before the colon) and puts
     * the space in the name; a proxy that forwarded it would hand the upstream a header it may
     * read differently (the classic "Transfer-Encoding :" smuggling). */
    const struct px_h1_header *h = &p->headers[p->nheaders - 1];
    const unsigned char *n = (const unsigned char *)px_h1_at(p, h->name);
    if (h->name.len == 0) /* llhttp takes a line starting with ':' */
        return refuse(p, p->type == HTTP_REQUEST ? 400 : 502, "empty header name");
    for (uint32_t i = 0; i < h->name.len; i++) {
        if (!is_tchar(n[i]))
            return refuse(p, p->type == HTTP_REQUEST ? 400 : 502, "invalid header name");
    }
    p->headers[p->nheaders - 1].kind = classify((const char *)n, h->name.len);
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len)
{
    struct px_h1_parser *p = parser_of(ll);
    if (p->head_done || len == 0)
        return 0;
    struct px_h1_header *h = &p->headers[p->nheaders - 1];
    int bad = p->type == HTTP_REQUEST ? 400 : 502;
    if (!p->in_value) {
        /* Between the name and the value there must be the colon and blanks only: anything
         * else means the value started on a continuation line (obs-fold), which llhttp 8
         * accepts even in strict mode. */
        const char *q = px_h1_at(p, h->name) + h->name.len + 1;
        for (; q < at; q++) {
            if (*q != ' ' && *q != '\t')
                return refuse(p, bad, "obsolete line folding in a header value");
        }
        h->value.off = rel(p, at);
        h->value.len = (uint32_t)len;
        p->in_value = true;
        p->value_seen = true;
        return 0;
    }
    /* A piece that does not continue the previous one follows a line break: obs-fold. */
    if (at != px_h1_at(p, h->value) + h->value.len)
        return refuse(p, bad, "obsolete line folding in a header value");
    h->value.len += (uint32_t)len;
    return 0;
}

static int on_header_value_complete(llhttp_t *ll)
{
    struct px_h1_parser *p = parser_of(ll);
    p->in_value = false;
    if (p->head_done)
        return 0;
    struct px_h1_header *h = &p->headers[p->nheaders - 1];
    if (!p->value_seen) {
        /* Empty value: place it right after the colon so that name..value is the line. */
        h->value.off = h->name.off + h->name.len + 1;
        h->value.len = 0;
        return 0;
    }
    const char *v = px_h1_at(p, h->value);
    while (h->value.len > 0 && (v[h->value.len - 1] == ' ' || v[h->value.len - 1] == '\t'))
        h->value.len--;
    return 0;
}

static bool span_ieq(const struct px_h1_parser *p, struct px_h1_span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && strncasecmp(px_h1_at(p, s), lit, n) == 0;
}

/* Our checks on a complete request head, on top of llhttp's. Returns 0 or refuse(). */
static int check_request_head(struct px_h1_parser *p)
{
    const llhttp_t *ll = &p->ll;
    if (ll->http_major != 1 || ll->http_minor > 1)
        return refuse(p, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
    if (ll->method == HTTP_CONNECT)
        return refuse(p, 405, "CONNECT is not supported");
    if ((ll->flags & F_CONTENT_LENGTH) && (ll->flags & (F_TRANSFER_ENCODING | F_CHUNKED)))
        return refuse(p, 400, "both Content-Length and Transfer-Encoding");
    /* Every Transfer-Encoding line, whatever llhttp made of it (an empty value sets no flag). */
    for (int i = px_h1_find(p, "transfer-encoding", 0); i >= 0;
         i = px_h1_find(p, "transfer-encoding", (uint32_t)i + 1)) {
        /* HTTP/1.0 has no chunked coding: a 1.0 hop in front of us would frame the body by
         * Content-Length or the close, so the two would disagree (RFC 9112 6.1). */
        if (ll->http_minor == 0)
            return refuse(p, 400, "Transfer-Encoding in an HTTP/1.0 request");
        if (p->headers[i].value.len == 0 || (ll->flags & F_CONTENT_LENGTH))
            return refuse(p, 400, "invalid Transfer-Encoding");
        /* The proxy decodes chunked and re-chunks; any other coding would be lost on the
         * way, and llhttp refuses a request whose last coding is not chunked only after the
         * head was announced. */
        if (!span_ieq(p, p->headers[i].value, "chunked"))
            return refuse(p, 501, "unsupported Transfer-Encoding");
    }
    int host = px_h1_find(p, "host", 0);
    if (host >= 0 && px_h1_find(p, "host", (uint32_t)host + 1) >= 0)
        return refuse(p, 400, "more than one Host header");
    if (host < 0 && ll->http_minor == 1)
        return refuse(p, 400, "missing Host header");
    /* RFC 9112 3.2: a Host that is not a host[:port] is a 400; forwarded, a '/' or '@' in it
     * would reach whatever builds URLs from it upstream. */
    if (host >= 0 &&
        !px_host_is_valid(px_h1_at(p, p->headers[host].value), p->headers[host].value.len))
        return refuse(p, 400, "invalid Host header");
    struct px_target t;
    const char *why = NULL;
    if (px_target_split(px_h1_at(p, p->target), p->target.len, ll->method == HTTP_OPTIONS, &t,
                        &why) != 0)
        return refuse(p, 400, why);
    return 0;
}

/* Our checks on a complete response head. Returns 0 or refuse(). */
static int check_response_head(struct px_h1_parser *p)
{
    const llhttp_t *ll = &p->ll;
    if (ll->http_major != 1)
        return refuse(p, 502, "unsupported HTTP version");
    if (ll->status_code == 101 && !p->allow_101) {
        /* Upgrade is hop-by-hop: only a route that tunnels it (tunnel.c) forwards it. */
        return refuse(p, 502, "unexpected 101 Switching Protocols");
    }
    /* The body is decoded from chunked and re-framed for the client: any other coding would
     * reach the client unannounced, and a 1.0 response cannot be chunked at all. */
    for (int i = px_h1_find(p, "transfer-encoding", 0); i >= 0;
         i = px_h1_find(p, "transfer-encoding", (uint32_t)i + 1)) {
        if (ll->http_minor == 0)
            return refuse(p, 502, "Transfer-Encoding in an HTTP/1.0 response");
        if (!span_ieq(p, p->headers[i].value, "chunked"))
            return refuse(p, 502, "unsupported Transfer-Encoding in the response");
    }
    return 0;
}

/* The next token of a comma-separated header value at *v (before end): returns it and its
 * length in *len, and moves *v past it; NULL when none is left. */
static const char *next_token(const char **v, const char *end, size_t *len)
{
    const char *p = *v;
    while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
        p++;
    const char *tok = p;
    while (p < end && *p != ',' && *p != ' ' && *p != '\t')
        p++;
    *v = p;
    *len = (size_t)(p - tok);
    return *len > 0 ? tok : NULL;
}

/* Notes which names the Connection headers list (conn_lists_*). */
static void scan_connection_tokens(struct px_h1_parser *p)
{
    for (uint32_t i = 0; i < p->nheaders; i++) {
        if (p->headers[i].kind != PX_H1_CONNECTION)
            continue;
        const char *v = px_h1_at(p, p->headers[i].value);
        const char *end = v + p->headers[i].value.len, *tok;
        size_t len;
        while ((tok = next_token(&v, end, &len)) != NULL) {
            if (name_is(tok, len, "close"))
                p->conn_lists_close = true;
            else if (!name_is(tok, len, "keep-alive"))
                p->conn_lists_other = true;
        }
    }
}

static int on_headers_complete(llhttp_t *ll)
{
    struct px_h1_parser *p = parser_of(ll);
    p->head_done = true;
    scan_connection_tokens(p);
    if (p->type == HTTP_REQUEST) {
        if (check_request_head(p) != 0)
            return -1;
        return p->pause_on_head ? HPE_PAUSED : 0;
    }
    if (check_response_head(p) != 0)
        return -1;
    return p->skip_body ? 1 : 0;
}

/* Checks the framing bytes buf[from, to) (all but body data) in stream order: CRLF is the only
 * line ending (RFC 9112 2.2), and chunk data is followed by exactly CRLF (7.1). The loose
 * build of llhttp that we link takes "\r\n\n" as the end of a head and skips any two bytes
 * after chunk data; a server behind or in front of us may not, and that is how requests get
 * smuggled. Returns false at the first violation. */
static bool scan_framing(struct px_h1_parser *p, uint32_t from, uint32_t to)
{
    const char *b = p->buf;
    uint32_t i = from;
    while (i < to) {
        if (p->scan_after_data > 0) {
            if (b[i] != (p->scan_after_data == 2 ? '\r' : '\n'))
                return false;
            p->scan_after_data--;
            i++;
        } else if (p->scan_cr) {
            if (b[i] != '\n')
                return false;
            p->scan_cr = false;
            i++;
        } else {
            /* A line at a time with memchr (this runs over every head byte): no LF before
             * the next CR, and that CR must be followed by LF (checked on the next turn, or
             * on the next call when it is the last byte here). */
            const char *cr = memchr(b + i, '\r', to - i);
            uint32_t stop = cr != NULL ? (uint32_t)(cr - b) : to;
            if (memchr(b + i, '\n', stop - i) != NULL)
                return false;
            if (cr == NULL)
                return true;
            p->scan_cr = true;
            i = stop + 1;
        }
    }
    return true;
}

static int refuse_framing(struct px_h1_parser *p)
{
    return refuse(p, p->type == HTTP_REQUEST ? 400 : 502,
                  "bare CR or LF, or chunk data not followed by CRLF");
}

/* Body bytes met in one execute call are moved next to each other: the chunk framing between
 * them is already parsed, so the bytes written over are never read again. */
static int on_body(llhttp_t *ll, const char *at, size_t len)
{
    struct px_h1_parser *p = parser_of(ll);
    if (len == 0)
        return 0;
    uint32_t off = (uint32_t)(at - p->buf);
    /* The framing before these bytes is checked now: the move below may write over it. */
    if (!scan_framing(p, p->scan_from, off))
        return refuse_framing(p);
    p->scan_from = off + (uint32_t)len;
    if ((ll->flags & F_CHUNKED) && ll->content_length == 0)
        p->scan_after_data = 2; /* the end of this chunk's data */
    if (p->body_len == 0)
        p->body_off = off;
    else if (off != p->body_off + p->body_len)
        memmove(p->buf + p->body_off + p->body_len, at, len);
    p->body_len += (uint32_t)len;
    return 0;
}

/* After each chunk-size line. */
static int on_chunk_header(llhttp_t *ll)
{
    parser_of(ll)->ext_len = 0;
    return 0;
}

/* Chunk extensions are parsed and dropped; a cap keeps a peer from feeding the parser an
 * endless chunk-size line. */
static int on_chunk_extension(llhttp_t *ll, const char *at, size_t len)
{
    struct px_h1_parser *p = parser_of(ll);
    (void)at;
    if (len > PX_H1_CHUNK_EXT_MAX - p->ext_len)
        return refuse(p, p->type == HTTP_REQUEST ? 400 : 502, "chunk extensions over 4 KiB");
    p->ext_len += (uint32_t)len;
    return 0;
}

static int on_message_complete(llhttp_t *ll)
{
    parser_of(ll)->done = true;
    /* One message at a time: the caller finishes this one before the next is parsed. */
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_target,
    .on_status = on_target,
    .on_url_complete = on_target_complete,
    .on_status_complete = on_target_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
    .on_chunk_extension_name = on_chunk_extension,
    .on_chunk_extension_value = on_chunk_extension,
};

/* ---- driving ----------------------------------------------------------------------------- */

void px_h1_init(struct px_h1_parser *p, llhttp_type_t type, bool pause_on_head)
{
    memset(p, 0, sizeof(*p));
    llhttp_init(&p->ll, type, &settings);
    p->ll.data = p;
    p->type = type;
    p->pause_on_head = pause_on_head;
}

enum px_h1_event px_h1_execute(struct px_h1_parser *p, char *buf, uint32_t from, uint32_t to,
                               struct px_arena *arena, uint32_t *consumed)
{
    p->buf = buf;
    p->arena = arena;
    p->body_off = from;
    p->body_len = 0;
    p->scan_from = from;
    if (!p->begun)
        p->start = from;
    uint32_t pos = from;
    for (;;) {
        llhttp_errno_t err = llhttp_execute(&p->ll, buf + pos, to - pos);
        if (err == HPE_OK) {
            pos = to;
            break;
        }
        uint32_t at = (uint32_t)(llhttp_get_error_pos(&p->ll) - buf);
        if (err == HPE_PAUSED_UPGRADE) {
            /* After a request naming Upgrade (never forwarded: it is hop-by-hop) the
             * connection simply goes on with HTTP. */
            llhttp_resume_after_upgrade(&p->ll);
            pos = at;
            continue;
        }
        *consumed = at - from;
        if (err == HPE_PAUSED && !scan_framing(p, p->scan_from, at)) {
            refuse_framing(p);
            return PX_H1_ERROR;
        }
        if (err == HPE_PAUSED)
            return p->done ? PX_H1_DONE : PX_H1_HEAD;
        if (p->error_status == 0) {
            p->error_status = p->type == HTTP_REQUEST ? 400 : 502;
            p->error_reason = llhttp_get_error_reason(&p->ll);
            if (p->error_reason == NULL)
                p->error_reason = llhttp_errno_name(err);
        }
        return PX_H1_ERROR;
    }
    *consumed = pos - from;
    if (!scan_framing(p, p->scan_from, to)) {
        refuse_framing(p);
        return PX_H1_ERROR;
    }
    if (!p->head_done && to - p->start >= PX_H1_HEAD_MAX) {
        if (p->type == HTTP_REQUEST)
            refuse(p, 431, "request header block larger than 64 KiB");
        else
            refuse(p, 502, "response header block larger than 64 KiB");
        return PX_H1_ERROR;
    }
    return PX_H1_MORE;
}

void px_h1_resume(struct px_h1_parser *p)
{
    llhttp_resume(&p->ll);
}

void px_h1_next(struct px_h1_parser *p)
{
    p->begun = false;
    p->head_done = false;
    p->done = false;
    p->skip_body = false;
    p->allow_101 = false;
    p->headers = NULL;
    p->nheaders = 0;
    p->cap = 0;
    p->scan_cr = false;
    p->scan_after_data = 0;
    llhttp_resume(&p->ll);
}

enum px_h1_event px_h1_finish(struct px_h1_parser *p)
{
    llhttp_errno_t err = llhttp_finish(&p->ll);
    if (p->done)
        return PX_H1_DONE;
    if (err == HPE_OK && !p->begun)
        return PX_H1_MORE;
    if (p->error_status == 0) {
        p->error_status = p->type == HTTP_REQUEST ? 400 : 502;
        p->error_reason = "connection closed in the middle of a message";
    }
    return PX_H1_ERROR;
}

void px_h1_shift(struct px_h1_parser *p, uint32_t delta)
{
    p->start -= delta;
}

/* ---- header queries ---------------------------------------------------------------------- */

bool px_h1_connection_lists(const struct px_h1_parser *p, const char *name, size_t len)
{
    for (int i = px_h1_find(p, "connection", 0); i >= 0;
         i = px_h1_find(p, "connection", (uint32_t)i + 1)) {
        const char *v = px_h1_at(p, p->headers[i].value);
        const char *end = v + p->headers[i].value.len, *tok;
        size_t n;
        while ((tok = next_token(&v, end, &n)) != NULL) {
            if (n == len && strncasecmp(tok, name, len) == 0)
                return true;
        }
    }
    return false;
}

bool px_h1_is_hop_by_hop(const char *name, size_t len)
{
    uint8_t k = classify(name, len);
    return k == PX_H1_HOP || k == PX_H1_CONNECTION;
}

/* Whether a route's edits remove header name: listed in remove, or replaced by an addition
 * with append false. */
static bool is_edited_out(const struct px_h1_edits *e, const char *name, size_t len)
{
    for (size_t i = 0; e != NULL && i < e->nremove; i++)
        if (name_is(name, len, e->remove[i]))
            return true;
    for (size_t i = 0; e != NULL && i < e->nadd; i++)
        if (!e->add[i].append && name_is(name, len, e->add[i].name))
            return true;
    return false;
}

/* Whether header i is dropped on the way through. Content-Length is never dropped, even when
 * a peer lists it in Connection: the body is forwarded as framed by it. */
static bool is_dropped(const struct px_h1_parser *p, uint32_t i, bool request,
                       const struct px_h1_edits *edits)
{
    const struct px_h1_header *h = &p->headers[i];
    const char *n = px_h1_at(p, h->name);
    if (h->kind == PX_H1_HOP || h->kind == PX_H1_CONNECTION || is_edited_out(edits, n, h->name.len))
        return true;
    if (request && (h->kind == PX_H1_HOST || h->kind == PX_H1_XFF || h->kind == PX_H1_XFP))
        return true;
    if (h->kind == PX_H1_CL)
        return false;
    if (p->conn_lists_other)
        return px_h1_connection_lists(p, n, h->name.len);
    return p->conn_lists_close && name_is(n, h->name.len, "close");
}

/* Appends the kept header lines as iovecs. Neighbouring kept lines are one run of the original
 * bytes (they are separated by exactly CRLF: llhttp refuses bare LF, we refuse obs-fold), so a
 * head costs a few iovecs, not one per header. Returns the new count. */
static unsigned add_kept_headers(const struct px_h1_parser *p, bool request,
                                 const struct px_h1_edits *edits, uv_buf_t *iov, unsigned n)
{
    const char *run = NULL;
    size_t run_len = 0;
    for (uint32_t i = 0; i < p->nheaders; i++) {
        if (is_dropped(p, i, request, edits))
            continue;
        const struct px_h1_header *h = &p->headers[i];
        const char *line = px_h1_at(p, h->name);
        const char *end = px_h1_at(p, h->value) + h->value.len;
        if (run != NULL && line == run + run_len + 2 && run[run_len] == '\r' &&
            run[run_len + 1] == '\n') {
            run_len = (size_t)(end - run);
            continue;
        }
        if (run != NULL) {
            iov[n++] = uv_buf_init((char *)run, (unsigned)run_len);
            iov[n++] = uv_buf_init((char *)"\r\n", 2);
        }
        run = line;
        run_len = (size_t)(end - line);
    }
    if (run != NULL) {
        iov[n++] = uv_buf_init((char *)run, (unsigned)run_len);
        iov[n++] = uv_buf_init((char *)"\r\n", 2);
    }
    return n;
}

/* The added header lines of edits, formatted in one piece (NULL when none). */
static char *format_adds(const struct px_h1_edits *e, struct px_arena *a, size_t *len)
{
    size_t cap = 0;
    *len = 0;
    for (size_t i = 0; e != NULL && i < e->nadd; i++)
        cap += strlen(e->add[i].name) + strlen(e->add[i].value) + 4;
    if (cap == 0)
        return NULL;
    char *s = px_arena_alloc(a, cap + 1);
    for (size_t i = 0; i < e->nadd; i++)
        *len += (size_t)snprintf(s + *len, cap + 1 - *len, "%s: %s\r\n", e->add[i].name,
                                 e->add[i].value);
    return s;
}

unsigned px_h1_request_head(const struct px_h1_parser *p, const struct px_h1_forward *f,
                            struct px_arena *a, uv_buf_t **out)
{
    uv_buf_t *iov = px_arena_alloc(a, (2 + 2 * (size_t)p->nheaders) * sizeof(*iov));
    unsigned n = 0;

    const char *method = llhttp_method_name((llhttp_method_t)p->ll.method);
    size_t mlen = strlen(method);
    static const char version[] = " HTTP/1.1\r\n";
    size_t llen = mlen + 1 + f->target_len + sizeof(version) - 1;
    char *line = px_arena_alloc(a, llen);
    memcpy(line, method, mlen);
    line[mlen] = ' ';
    memcpy(line + mlen + 1, f->target, f->target_len);
    memcpy(line + mlen + 1 + f->target_len, version, sizeof(version) - 1);
    iov[n++] = uv_buf_init(line, (unsigned)llen);

    n = add_kept_headers(p, true, f->edits, iov, n);

    /* The headers the proxy sets, formatted in one piece. X-Forwarded-For keeps what earlier
     * hops wrote, in order, and appends the client's address (unless keep_xff). */
    static const char host_k[] = "Host: ", xff_k[] = "X-Forwarded-For: ";
    static const char xfp_k[] = "X-Forwarded-Proto: ", te[] = "Transfer-Encoding: chunked\r\n";
    const char *proto = f->proto ? f->proto : "http";
    size_t iplen = f->keep_xff ? 0 : strlen(f->client_ip), addlen = 0;
    char *adds = format_adds(f->edits, a, &addlen);
    size_t cap = sizeof(host_k) + f->host_len + 2 + sizeof(xff_k) + iplen + 2 + sizeof(xfp_k) +
                 strlen(proto) + 2 + addlen + sizeof(te) + 2;
    for (int i = px_h1_find(p, "x-forwarded-for", 0); i >= 0;
         i = px_h1_find(p, "x-forwarded-for", (uint32_t)i + 1))
        cap += p->headers[i].value.len + 2;
    char *s = px_arena_alloc(a, cap);
    size_t len = 0;
#define PUT(ptr, cnt)                                                                              \
    do {                                                                                           \
        memcpy(s + len, (ptr), (cnt));                                                             \
        len += (cnt);                                                                              \
    } while (0)
    PUT(host_k, sizeof(host_k) - 1);
    PUT(f->host, f->host_len);
    PUT("\r\n", 2);
    size_t xff_at = len;
    PUT(xff_k, sizeof(xff_k) - 1);
    for (int i = px_h1_find(p, "x-forwarded-for", 0); i >= 0;
         i = px_h1_find(p, "x-forwarded-for", (uint32_t)i + 1)) {
        if (p->headers[i].value.len == 0)
            continue;
        PUT(px_h1_at(p, p->headers[i].value), p->headers[i].value.len);
        PUT(", ", 2);
    }
    if (!f->keep_xff)
        PUT(f->client_ip, iplen);
    else if (len > xff_at + sizeof(xff_k) - 1)
        len -= 2; /* the last ", " */
    else
        len = xff_at; /* nothing to forward */
    if (len > xff_at)
        PUT("\r\n", 2);
    PUT(xfp_k, sizeof(xfp_k) - 1);
    PUT(proto, strlen(proto));
    PUT("\r\n", 2);
    if (adds != NULL)
        PUT(adds, addlen);
    if (px_h1_is_chunked(p))
        PUT(te, sizeof(te) - 1);
    PUT("\r\n", 2);
#undef PUT
    iov[n++] = uv_buf_init(s, (unsigned)len);
    *out = iov;
    return n;
}

unsigned px_h1_response_head(const struct px_h1_parser *p, bool final, bool keep_alive,
                             bool chunked, struct px_arena *a, uv_buf_t **out)
{
    return px_h1_response_head_edited(p, final, keep_alive, chunked, NULL, a, out);
}

unsigned px_h1_response_head_edited(const struct px_h1_parser *p, bool final, bool keep_alive,
                                    bool chunked, const struct px_h1_edits *edits,
                                    struct px_arena *a, uv_buf_t **out)
{
    uv_buf_t *iov = px_arena_alloc(a, (3 + 2 * (size_t)p->nheaders) * sizeof(*iov));
    unsigned n = 0;

    /* "HTTP/1.1 NNN reason\r\n"; llhttp guarantees three digits. */
    size_t rlen = p->target.len;
    char *line = px_arena_alloc(a, 15 + rlen);
    unsigned st = p->ll.status_code % 1000;
    memcpy(line, "HTTP/1.1 ", 9);
    line[9] = (char)('0' + st / 100);
    line[10] = (char)('0' + st / 10 % 10);
    line[11] = (char)('0' + st % 10);
    line[12] = ' ';
    memcpy(line + 13, px_h1_at(p, p->target), rlen);
    memcpy(line + 13 + rlen, "\r\n", 2);
    iov[n++] = uv_buf_init(line, (unsigned)(15 + rlen));

    n = add_kept_headers(p, false, edits, iov, n);
    size_t addlen = 0;
    char *adds = format_adds(edits, a, &addlen);
    if (adds != NULL)
        iov[n++] = uv_buf_init(adds, (unsigned)addlen);

    const char *tail = "\r\n";
    if (final && keep_alive)
        tail = chunked ? "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
                       : "Connection: keep-alive\r\n\r\n";
    else if (final)
        tail = chunked ? "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                       : "Connection: close\r\n\r\n";
    iov[n++] = uv_buf_init((char *)tail, (unsigned)strlen(tail));
    *out = iov;
    return n;
}

/* ---- framing and the proxy's own responses ----------------------------------------------- */

size_t px_h1_chunk_line(char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t k = 0;
    do {
        tmp[k++] = hex[n & 0xf];
        n >>= 4;
    } while (n != 0);
    size_t len = 0;
    while (k > 0)
        out[len++] = tmp[--k];
    out[len++] = '\r';
    out[len++] = '\n';
    return len;
}

const char *px_h1_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 414:
        return "URI Too Long";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "";
    }
}

size_t px_h1_local_response(struct px_arena *a, int status, const char *msg, const char *detail,
                            size_t detail_len, bool keep_alive, bool head_only, char **out)
{
    return px_h1_local_response_ext(a, status, NULL, msg, detail, detail_len, keep_alive, head_only,
                                    out);
}

size_t px_h1_local_response_ext(struct px_arena *a, int status, const char *extra, const char *msg,
                                const char *detail, size_t detail_len, bool keep_alive,
                                bool head_only, char **out)
{
    size_t mlen = strlen(msg);
    if (detail == NULL)
        detail_len = 0;
    if (extra == NULL)
        extra = "";
    size_t body = mlen + detail_len + 1;
    size_t cap = 192 + strlen(extra) + body;
    char *s = px_arena_alloc(a, cap);
    int n =
        snprintf(s, cap,
                 "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: %zu\r\nConnection: %s\r\n\r\n",
                 status, px_h1_reason(status), extra, body, keep_alive ? "keep-alive" : "close");
    size_t len = (size_t)n;
    if (!head_only) {
        memcpy(s + len, msg, mlen);
        len += mlen;
        if (detail_len)
            memcpy(s + len, detail, detail_len);
        len += detail_len;
        s[len++] = '\n';
    }
    *out = s;
    return len;
}

/* Upgrade tunnels (tunnel.h).
 *
 * The tunnel reuses both legs as they are: client bytes wait in the connection's read buffer
 * and are written to the upstream from there (the buffer is not compacted while that write
 * is in flight); upstream bytes are written to the client from the upstream connection's
 * buffer (its reading stops while the client write is in flight). http.c's loops hand over
 * to px_tunnel_up and px_tunnel_down once c->tunnel is set. */
#include "tunnel.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "log.h"
#include "upstream.h"

/* Returns a copy of iov (n entries) with the line inserted before the last entry (the head's
 * final CRLF, or the tail holding it). */
static uv_buf_t *insert_line(struct px_conn *c, const uv_buf_t *iov, unsigned n, char *line,
                             size_t len)
{
    uv_buf_t *out = px_arena_alloc(&c->arena, (n + 1) * sizeof(*out));
    memcpy(out, iov, (n - 1) * sizeof(*out));
    out[n - 1] = uv_buf_init(line, (unsigned)len);
    out[n] = iov[n - 1];
    return out;
}

/* Whether the comma-separated list (len bytes) names a protocol of the route; *tok gets it. */
static bool allowed(const struct route_upgrades *u, const char *list, size_t len, const char **tok,
                    size_t *toklen)
{
    const char *p = list, *end = list + len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *s = p;
        while (p < end && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        for (size_t i = 0; e > s && i < u->n; i++) {
            if (strlen(u->v[i]) == (size_t)(e - s) &&
                strncasecmp(u->v[i], s, (size_t)(e - s)) == 0) {
                *tok = s;
                *toklen = (size_t)(e - s);
                return true;
            }
        }
    }
    return false;
}

void px_tunnel_prepare(struct px_conn *c)
{
    const struct route_upgrades *u = &c->route->policy->upgrades;
    struct px_h1_parser *p = &c->req;
    if (u->n == 0 || px_h1_has_body(p) || !px_h1_connection_lists(p, "upgrade", 7))
        return;
    int i = px_h1_find(p, "upgrade", 0);
    if (i < 0)
        return;
    const char *tok = NULL;
    size_t toklen = 0;
    if (!allowed(u, px_h1_at(p, p->headers[i].value), p->headers[i].value.len, &tok, &toklen))
        return;
    size_t room = toklen + 48;
    char *line = px_arena_alloc(&c->arena, room);
    int n = snprintf(line, room, "Connection: upgrade\r\nUpgrade: %.*s\r\n", (int)toklen, tok);
    c->head_iov = insert_line(c, c->head_iov, c->head_niov, line, (size_t)n);
    c->head_niov++;
    c->upgrade_ok = 1;
}

void px_tunnel_start(struct px_conn *c)
{
    struct px_h1_parser *p = &c->up->resp;
    uv_buf_t *iov = NULL;
    unsigned k = px_h1_response_head(p, false, false, false, &c->arena, &iov);
    const char *proto = "websocket";
    size_t plen = strlen(proto);
    int ui = px_h1_find(p, "upgrade", 0);
    if (ui >= 0) {
        proto = px_h1_at(p, p->headers[ui].value);
        plen = p->headers[ui].value.len;
    }
    size_t room = plen + 48;
    char *line = px_arena_alloc(&c->arena, room);
    int n = snprintf(line, room, "Connection: upgrade\r\nUpgrade: %.*s\r\n", (int)plen, proto);
    iov = insert_line(c, iov, k, line, (size_t)n);
    c->status = 101;
    c->resp_head_sent = 1;
    c->keep_alive = 0;
    c->tunnel = 1;
    c->body_sent_up = 1; /* the read buffer may be compacted between writes now */
    char pname[64];
    snprintf(pname, sizeof(pname), "%.*s", (int)plen, proto);
    log_debug("tunnel open", "client=%s cluster=%s protocol=%s", c->client_ip, c->cluster->name,
              pname);
    if (px_http_write(c, iov, k + 1) < 0)
        return;
    px_tunnel_down(c);
    if (!c->closing)
        px_tunnel_up(c);
}

void px_tunnel_up(struct px_conn *c)
{
    struct px_upstream *u = c->up;
    struct px_rbuf *rb = c->rb;
    if (c->closing || u == NULL || u->writing || rb == NULL || rb->off == rb->len)
        return;
    uv_buf_t b = uv_buf_init(rb->data + rb->off, rb->len - rb->off);
    rb->off = rb->len;
    if (px_upstream_write(u, &b, 1) < 0)
        px_http_close(c);
}

void px_tunnel_down(struct px_conn *c)
{
    while (!c->closing && c->up != NULL && c->dwrites == 0) {
        struct px_upstream *u = c->up;
        struct px_rbuf *rb = u->rb;
        if (rb == NULL || rb->off == rb->len) {
            if (u->eof) {
                log_debug("tunnel closed", "client=%s by=upstream", c->client_ip);
                px_http_close(c);
            }
            return;
        }
        uv_buf_t b = uv_buf_init(rb->data + rb->off, rb->len - rb->off);
        rb->off = rb->len;
        if (px_http_write(c, &b, 1) < 0)
            return;
    }
}

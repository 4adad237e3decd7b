/* Request routing decisions (request.h). */
#include "request.h"

#include <stdio.h>
#include <string.h>

#include "snapshot.h"
#include "target.h"

static void answer(struct px_verdict *v, int status, const char *msg, const char *detail,
                   size_t detail_len)
{
    v->kind = PX_VERDICT_ANSWER;
    v->status = status;
    v->msg = msg;
    v->detail = detail;
    v->detail_len = detail_len;
}

static void refuse(struct px_verdict *v, const char *msg, const char *why)
{
    answer(v, 400, msg, why, strlen(why));
    v->close = true;
}

/* x_forwarded_proto_redirect: the same authority (without its port) and target, over https. */
static void redirect_to_https(struct px_verdict *v, struct px_arena *a)
{
    if (v->host == NULL || v->host_len == 0) {
        answer(v, 400, "a Host is needed to redirect to https", NULL, 0);
        return;
    }
    size_t hl = px_host_without_port(v->host, v->host_len);
    size_t room = 8 + hl + v->path_len + 1 + v->query_len + 1; /* and the NUL snprintf writes */
    char *loc = px_arena_alloc(a, room);
    int n =
        snprintf(loc, room, "https://%.*s%.*s%s%.*s", (int)hl, v->host, (int)v->path_len, v->path,
                 v->query ? "?" : "", v->query ? (int)v->query_len : 0, v->query ? v->query : "");
    v->kind = PX_VERDICT_REDIRECT;
    v->status = 301;
    v->location = loc;
    v->location_len = (size_t)n;
}

void px_request_route(const struct px_h1_parser *p, const struct px_snapshot *snap,
                      const char *client_ip, struct px_arena *a, struct px_verdict *v)
{
    memset(v, 0, sizeof(*v));
    int hi = px_h1_find(p, "host", 0);
    if (hi >= 0) {
        v->host = px_h1_at(p, p->headers[hi].value);
        v->host_len = p->headers[hi].value.len;
    }
    /* The target's form was checked with the head (http1.c). An absolute-form authority
     * replaces Host (RFC 9112 3.2.2); the path is routed and forwarded normalised, so that no
     * spelling of it reaches a prefix the router did not pick (target.h, docs/security.md). */
    struct px_target tg;
    const char *why = NULL;
    if (px_target_split(px_h1_at(p, p->target), p->target.len, p->ll.method == HTTP_OPTIONS, &tg,
                        &why) != 0) {
        refuse(v, "bad request target: ", why);
        return;
    }
    if (tg.asterisk) {
        /* A question about the server, which the proxy is to the client. */
        answer(v, 200, "OPTIONS * is answered by the proxy", NULL, 0);
        return;
    }
    if (tg.authority != NULL) {
        v->host = tg.authority;
        v->host_len = tg.authority_len;
    }
    char *npath = px_arena_alloc(a, tg.path_len + 1);
    bool merge = snap != NULL && snap->table->settings.merge_slashes;
    long nl = px_path_normalize(tg.path, tg.path_len, merge, npath, &why);
    if (nl < 0) {
        refuse(v, "bad request path: ", why);
        return;
    }
    npath[nl] = '\0';
    v->path = npath;
    v->path_len = (size_t)nl;
    v->query = tg.query;
    v->query_len = tg.query_len;
    if (snap == NULL) {
        answer(v, 503, "no route table yet", NULL, 0);
        return;
    }

    v->nheaders = p->nheaders;
    v->headers = px_arena_alloc(a, (p->nheaders + 1) * sizeof(*v->headers));
    for (uint32_t i = 0; i < p->nheaders; i++) {
        v->headers[i].name = px_h1_at(p, p->headers[i].name);
        v->headers[i].name_len = p->headers[i].name.len;
        v->headers[i].value = px_h1_at(p, p->headers[i].value);
        v->headers[i].value_len = p->headers[i].value.len;
    }
    /* The ambassador Module at the edge (edge.h): who the client is, whether it may come in,
     * which scheme it used. */
    v->edge = px_arena_alloc(a, sizeof(*v->edge));
    px_edge_check(&snap->table->settings, client_ip, v->headers, p->nheaders, v->edge);
    if (v->edge->denied) {
        answer(v, 403, "denied by ip_allow/ip_deny: client ", v->edge->client,
               strlen(v->edge->client));
        return;
    }
    if (v->edge->redirect_https) {
        redirect_to_https(v, a);
        return;
    }

    const char *method = llhttp_method_name((llhttp_method_t)p->ll.method);
    struct px_request_view view = {
        .method = method,
        .method_len = strlen(method),
        .path = v->path,
        .path_len = v->path_len,
        .query = v->query,
        .query_len = v->query_len,
        .host = v->host,
        .host_len = v->host_len,
        .headers = v->headers,
        .nheaders = p->nheaders,
    };
    v->route = px_router_match(snap->router, &view);
    if (v->route == NULL) {
        answer(v, 404, "no route for ", v->path, v->path_len);
        return;
    }
    v->kind = PX_VERDICT_ROUTE;
}

/* A route with host_redirect answers instead of proxying (router.h, px_router_location). */
static void redirect_route(struct px_verdict *v, const struct route *r,
                           const struct px_router *router, struct px_arena *a)
{
    size_t room = 64 + strlen(r->host_redirect) + 3 * v->path_len + v->query_len +
                  (r->path_redirect ? strlen(r->path_redirect) : 0) +
                  (r->prefix_redirect ? strlen(r->prefix_redirect) : 0) +
                  (r->regex_redirect.substitution ? 2 * strlen(r->regex_redirect.substitution) : 0);
    char *loc = px_arena_alloc(a, room);
    long n = px_router_location(router, r, v->edge->proto, v->path, v->path_len, v->query,
                                v->query_len, loc, room);
    if (n <= 0) {
        answer(v, 500, "cannot build the redirect location", NULL, 0);
        return;
    }
    v->kind = PX_VERDICT_REDIRECT;
    v->status = r->redirect_code ? r->redirect_code : ROUTE_REDIRECT_DEFAULT;
    v->location = loc;
    v->location_len = (size_t)n;
}

const struct px_h1_edits *px_request_edits(struct px_arena *a, char *const *remove, size_t nremove,
                                           const struct route_header_add *add, size_t nadd)
{
    if (nremove == 0 && nadd == 0)
        return NULL;
    struct px_h1_edits *e = px_arena_alloc(a, sizeof(*e));
    *e = (struct px_h1_edits){ remove, nremove, add, nadd };
    return e;
}

int px_request_forward(struct px_verdict *v, const struct route *r, const struct route_table *t,
                       const struct px_router *router, const char *client_ip, struct px_arena *a,
                       struct px_h1_forward *f)
{
    if (r->host_redirect != NULL) {
        redirect_route(v, r, router, a);
        return 1;
    }
    size_t cap = px_router_rewrite_room(r, v->path_len, v->query_len);
    char *target = px_arena_alloc(a, cap);
    long tl =
        px_router_rewrite(router, r, v->path, v->path_len, v->query, v->query_len, target, cap);
    if (tl <= 0) {
        answer(v, 500, "cannot rewrite the request target", NULL, 0);
        return -1;
    }
    *f = (struct px_h1_forward){
        .target = target,
        .target_len = (size_t)tl,
        .client_ip = client_ip,
        .keep_xff = !t->settings.use_remote_address,
        .proto = v->edge->proto,
        .edits = px_request_edits(a, r->remove_request_headers, r->nremove_request_headers,
                                  r->add_request_headers, r->nadd_request_headers),
    };
    if (r->host_rewrite != NULL) {
        f->host = r->host_rewrite;
        f->host_len = strlen(r->host_rewrite);
    } else if (v->host != NULL && v->host_len > 0) {
        f->host = v->host;
        f->host_len = v->host_len;
    } else {
        /* An HTTP/1.0 client without Host: name the upstream itself. */
        const struct route_cluster *cl = &t->clusters[r->cluster];
        size_t room = strlen(cl->host) + 8;
        char *h = px_arena_alloc(a, room);
        int n = cl->port == 80 ? snprintf(h, room, "%s", cl->host)
                               : snprintf(h, room, "%s:%u", cl->host, (unsigned)cl->port);
        f->host = h;
        f->host_len = (size_t)n;
    }
    return 0;
}

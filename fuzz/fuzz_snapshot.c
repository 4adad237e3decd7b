/* libFuzzer target: the proxy's control-socket input, from bytes to routed requests.
 *
 * Input: one byte saying where to cut, then the stream. The bytes go through the frame decoder
 * in two feeds (cut where the first byte says), and every whole frame through what
 * proxy/control.c does with it: its own reader (px_control_parse: json-c with its flags, the
 * trailing-bytes check), the type and protocol checks, route_table_from_json. A loaded table
 *   - must survive the wire (fuzz_wire_roundtrip) unchanged: what the proxy reads back from its
 *     own JSON form is the same table;
 *   - builds a router (px_router_build) unless it holds what router.h lets it refuse (a regex
 *     that does not compile, a Host over 255 bytes, ...: decided again by fuzz_ref_new), and
 *     then only with a reason;
 *   - routes requests made from its routes, and one request made from the bytes the decoder
 *     holds at the end (an unfinished frame: method, Host, path?query, then "name: value"
 *     lines), exactly as the linear scan of fuzz_ref_match does. */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "frame.h"
#include "fuzz.h"
#include "route.h"
#include "router.h"
#include "strmap.h"
#include "xalloc.h"

#define SNAP_MAX_FRAME     ((size_t)1 << 20)
#define SNAP_ROUTER_BUDGET 256 /* lookups per table: the scan is linear, keep inputs fast */

/* One request from free-form bytes: "METHOD\nHOST\nPATH[?QUERY]\nname: value\n...". An empty
 * Host line means no Host header. */
static void snap_route_tail(const struct px_router *r, const struct fuzz_ref *ref, const char *p,
                            size_t n)
{
    struct px_header hdr[FUZZ_REQ_HEADERS];
    struct px_request_view v = { 0 };
    const char *line[3] = { "", "", "" };
    size_t len[3] = { 0, 0, 0 };
    const char *end = p + n;
    for (int i = 0; i < 3 + FUZZ_REQ_HEADERS && p < end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (i < 3) {
            line[i] = p;
            len[i] = l;
        } else {
            const char *colon = memchr(p, ':', l);
            size_t nlen = colon ? (size_t)(colon - p) : l;
            const char *val = colon ? colon + 1 : p + l;
            while (val < p + l && *val == ' ')
                val++;
            hdr[v.nheaders].name = p;
            hdr[v.nheaders].name_len = nlen;
            hdr[v.nheaders].value = val;
            hdr[v.nheaders].value_len = (size_t)(p + l - val);
            v.nheaders++;
        }
        p = nl ? nl + 1 : end;
    }
    v.method = line[0];
    v.method_len = len[0];
    v.host = len[1] ? line[1] : NULL;
    v.host_len = len[1];
    const char *qm = memchr(line[2], '?', len[2]);
    v.path = line[2];
    v.path_len = qm ? (size_t)(qm - line[2]) : len[2];
    v.query = qm ? qm + 1 : NULL;
    v.query_len = qm ? len[2] - v.path_len - 1 : 0;
    v.headers = hdr;
    fuzz_check_match(r, ref, &v);
}

static void snap_check_table(struct route_table *t, const char *tail, size_t tail_len)
{
    char err[512] = "";
    struct route_table *again = fuzz_wire_roundtrip(t, err, sizeof(err));
    if (again == NULL)
        fuzz_fail(err, __FILE__, __LINE__); /* what the proxy wrote, it must read back */
    FUZZ_CHECK(again->version == t->version);
    FUZZ_CHECK(route_table_equal(t, again));
    route_table_free(again);

    /* The router refuses exactly the tables the linear scan cannot take either. */
    err[0] = '\0';
    struct px_router *r = px_router_build(t, err, sizeof(err));
    struct fuzz_ref *ref = fuzz_ref_new(t);
    FUZZ_CHECK((r == NULL) == (ref == NULL));
    if (r == NULL) {
        FUZZ_CHECK(err[0] != '\0');
        return;
    }
    FUZZ_CHECK(px_router_memory(r) > 0);
    fuzz_check_router(r, ref, strmap_hash(STRMAP_HASH_INIT, tail, tail_len), SNAP_ROUTER_BUDGET);
    snap_route_tail(r, ref, tail, tail_len);
    fuzz_ref_free(ref);
    px_router_free(r);
}

/* What proxy/control.c's handle_frame does with one payload, minus the socket. */
static void snap_frame(const char *p, size_t n, const char *tail, size_t tail_len)
{
    const char *why = NULL;
    json_object *msg = px_control_parse(p, n, &why);
    if (msg == NULL) {
        FUZZ_CHECK(why != NULL && why[0] != '\0');
        return;
    }
    json_object *v = NULL;
    if (!json_object_is_type(msg, json_type_object) ||
        !json_object_object_get_ex(msg, "type", &v) || !json_object_is_type(v, json_type_string) ||
        strcmp(json_object_get_string(v), "snapshot") != 0)
        goto out;
    if (json_object_object_get_ex(msg, "protocol", &v) &&
        (!json_object_is_type(v, json_type_int) ||
         json_object_get_int64(v) != ROUTE_PROTOCOL_VERSION))
        goto out;
    struct route_table *t = NULL;
    char err[256] = "";
    if (route_table_from_json(msg, &t, err, sizeof(err)) != 0) {
        FUZZ_CHECK(t == NULL && err[0] != '\0'); /* a nack always says why */
        goto out;
    }
    snap_check_table(t, tail, tail_len);
    route_table_free(t);
out:
    json_object_put(msg);
}

int fuzz_snapshot(const uint8_t *data, size_t size)
{
    struct frame_decoder d;
    fuzz_logs(size & 1);
    frame_decoder_init(&d, SNAP_MAX_FRAME);
    size_t cut = size ? data[0] % (size + 1) : 0;
    const char *body = size ? (const char *)data + 1 : (const char *)data;
    size_t len = size ? size - 1 : 0;
    if (cut > len)
        cut = len;
    const char *parts[2] = { body, body + cut };
    size_t lens[2] = { cut, len - cut };
    /* The frames come first; the requests are made from what is left at the end, so the
     * payloads are collected before any of them is routed. */
    const char *payload[8];
    size_t plen[8], np = 0;
    int i;
    for (i = 0; i < 2; i++) {
        if (frame_decoder_feed(&d, parts[i], lens[i]) != 0)
            break;
        const char *p;
        size_t n;
        int rc;
        while ((rc = frame_decoder_next(&d, &p, &n)) == 1) {
            FUZZ_CHECK(n <= SNAP_MAX_FRAME && p >= d.in.data && p + n <= d.in.data + d.in.len);
            /* Payloads stay valid until the next feed: copy them out. */
            if (np < ARRAY_SIZE(payload)) {
                payload[np] = xstrndup(p, n);
                plen[np++] = n;
            }
        }
        if (rc < 0)
            break;
    }
    const char *tail = d.in.data ? d.in.data + d.off : "";
    size_t tail_len = d.in.len - d.off;
    for (size_t k = 0; k < np; k++)
        snap_frame(payload[k], plen[k], tail, tail_len);
    for (size_t k = 0; k < np; k++)
        free((char *)payload[k]);
    frame_decoder_free(&d);
    return 0;
}

FUZZ_ENTRY(fuzz_snapshot)

/* Tests for proxy/edge.c: the ambassador Module's client address, ip_allow / ip_deny, the
 * trusted scheme and the Server line, table-driven after Envoy's X-Forwarded-For examples. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge.h"
#include "harness.h"
#include "route.h"
#include "xalloc.h"

static struct px_header hdr(const char *name, const char *value)
{
    return (struct px_header){ name, strlen(name), value, strlen(value) };
}

/* Envoy's documented cases (configuration/http/http_conn_man/headers: x-forwarded-for),
 * plus the fallbacks. */
START_TEST(edge_client_address_follows_envoy)
{
    static const struct {
        bool use_remote;
        uint32_t hops;
        const char *xff1, *xff2; /* X-Forwarded-For lines, NULL: absent */
        const char *want;
    } rows[] = {
        /* 1: edge, nobody trusted: the peer, whatever XFF says. */
        { true, 0, "203.0.113.128, 203.0.113.10, 203.0.113.1", NULL, "192.0.2.5" },
        /* 2: internal, behind an edge that appended: the last XFF address. */
        { false, 0, "203.0.113.128, 203.0.113.10, 203.0.113.1, 192.0.2.5", NULL, "192.0.2.5" },
        /* 3: edge with two trusted proxies in front: 2nd from the right of XFF + peer. */
        { true, 2, "203.0.113.128, 203.0.113.10, 203.0.113.1", NULL, "203.0.113.10" },
        /* 4: internal with two trusted proxies: 3rd from the right of XFF. */
        { false, 2, "203.0.113.128, 203.0.113.10, 203.0.113.1, 192.0.2.5", NULL, "203.0.113.10" },
        /* Several XFF lines are one list, in order. */
        { true, 1, "203.0.113.128", "203.0.113.10 ,203.0.113.1", "203.0.113.1" },
        /* Fewer addresses than trusted hops: the peer. */
        { true, 5, "203.0.113.1", NULL, "192.0.2.5" },
        { false, 0, NULL, NULL, "192.0.2.5" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct route_settings s;
        route_settings_init(&s);
        s.use_remote_address = rows[i].use_remote;
        s.xff_num_trusted_hops = rows[i].hops;
        struct px_header hs[3];
        size_t nh = 0;
        hs[nh++] = hdr("Host", "h");
        if (rows[i].xff1)
            hs[nh++] = hdr("X-Forwarded-For", rows[i].xff1);
        if (rows[i].xff2)
            hs[nh++] = hdr("x-forwarded-for", rows[i].xff2);
        struct px_edge e;
        px_edge_check(&s, "192.0.2.5", hs, nh, &e);
        ck_assert_msg(strcmp(e.client, rows[i].want) == 0, "row %zu: client %s, want %s", i,
                      e.client, rows[i].want);
        ck_assert(!e.denied && !e.redirect_https);
    }
}
END_TEST

static struct route_ip_rule rule(const char *cidr, bool remote)
{
    struct route_ip_rule r;
    ck_assert_int_eq(route_ip_rule_parse(cidr, remote, &r), 0);
    return r;
}

START_TEST(edge_ip_allow_and_deny)
{
    struct route_settings s;
    route_settings_init(&s);
    s.xff_num_trusted_hops = 1;
    struct route_ip_rule allow[] = { rule("10.0.0.0/8", true), rule("::1", false) };
    s.ip_allow = allow;
    s.nip_allow = 2;
    struct px_header ok[] = { hdr("X-Forwarded-For", "192.0.2.1, 10.9.8.7") };
    struct px_header bad[] = { hdr("X-Forwarded-For", "10.9.8.7, 192.0.2.1") };
    struct px_header junk[] = { hdr("X-Forwarded-For", "not-an-address") };
    struct px_edge e;
    px_edge_check(&s, "127.0.0.1", ok, 1, &e);
    ck_assert(!e.denied);
    px_edge_check(&s, "127.0.0.1", bad, 1, &e);
    ck_assert(e.denied);
    px_edge_check(&s, "127.0.0.1", junk, 1, &e);
    ck_assert(e.denied); /* an address that does not parse is in no block */
    px_edge_check(&s, "::1", bad, 1, &e);
    ck_assert(!e.denied);                              /* the peer rule */
    px_edge_check(&s, "::ffff:10.1.1.1", NULL, 0, &e); /* no XFF: the client is the peer */
    ck_assert(!e.denied);

    struct route_ip_rule deny[] = { rule("127.0.0.0/8", false) };
    s.ip_allow = NULL;
    s.nip_allow = 0;
    s.ip_deny = deny;
    s.nip_deny = 1;
    px_edge_check(&s, "127.0.0.1", ok, 1, &e);
    ck_assert(e.denied);
    px_edge_check(&s, "192.0.2.9", ok, 1, &e);
    ck_assert(!e.denied);
    for (size_t i = 0; i < 2; i++)
        free(allow[i].cidr);
    free(deny[0].cidr);
}
END_TEST

START_TEST(edge_scheme_redirect_and_server_line)
{
    struct route_settings s;
    route_settings_init(&s);
    s.x_forwarded_proto_redirect = true;
    struct px_header https[] = { hdr("X-Forwarded-Proto", " HTTPS , http") };
    struct px_header http[] = { hdr("X-Forwarded-Proto", "http") };
    struct px_edge e;
    /* Nobody trusted: the connection's scheme, whatever the header says. */
    px_edge_check(&s, "127.0.0.1", https, 1, &e);
    ck_assert_str_eq(e.proto, "http");
    ck_assert(e.redirect_https);
    s.xff_num_trusted_hops = 1;
    px_edge_check(&s, "127.0.0.1", https, 1, &e);
    ck_assert_str_eq(e.proto, "https");
    ck_assert(!e.redirect_https);
    px_edge_check(&s, "127.0.0.1", http, 1, &e);
    ck_assert(e.redirect_https);
    ck_assert_str_eq(e.server_line, "");
    s.server_name = "edge";
    px_edge_check(&s, "127.0.0.1", http, 1, &e);
    ck_assert_str_eq(e.server_line, "Server: edge\r\n");
    s.server_name = "bad\r\nX-Injected: 1";
    px_edge_check(&s, "127.0.0.1", http, 1, &e);
    ck_assert_str_eq(e.server_line, "");
    /* No Module at all: Ambassador's defaults. */
    px_edge_check(NULL, "127.0.0.1", http, 1, &e);
    ck_assert_str_eq(e.client, "127.0.0.1");
    ck_assert(!e.redirect_https && !e.denied);
}
END_TEST

START_TEST(edge_ip_rules_parse_and_contain)
{
    static const char *const bad[] = { "10.0.0.1/8", "10.0.0.0/33",    "1.2.3",     "",
                                       "/8",         "2001:db8::1/32", "10.0.0.0/x" };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        struct route_ip_rule r;
        ck_assert_msg(route_ip_rule_parse(bad[i], false, &r) == -EINVAL, "%s accepted", bad[i]);
    }
    struct route_ip_rule r = rule("2001:db8::/32", true);
    ck_assert_str_eq(r.cidr, "2001:db8::/32");
    uint8_t in[16] = { 0x20, 0x01, 0x0d, 0xb8, 0xff }, out[16] = { 0x20, 0x01, 0x0d, 0xb9 };
    ck_assert(route_ip_rule_contains(&r, 6, in));
    ck_assert(!route_ip_rule_contains(&r, 6, out));
    free(r.cidr);
    r = rule("192.168.4.0/22", false);
    uint8_t a[4] = { 192, 168, 7, 255 }, b[4] = { 192, 168, 8, 0 };
    ck_assert(route_ip_rule_contains(&r, 4, a));
    ck_assert(!route_ip_rule_contains(&r, 4, b));
    ck_assert_str_eq(r.cidr, "192.168.4.0/22");
    free(r.cidr);
    r = rule("0.0.0.0/0", false);
    ck_assert(route_ip_rule_contains(&r, 4, b));
    free(r.cidr);
}
END_TEST

START_TEST(edge_formats_peer_addresses_as_inet_ntop_does)
{
    static const char *const v4[] = { "0.0.0.0",    "127.0.0.1",       "10.20.30.40",
                                      "100.5.99.9", "255.255.255.255", "192.168.100.101" };
    char out[INET6_ADDRSTRLEN], want[INET6_ADDRSTRLEN];
    for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++) {
        struct sockaddr_in a = { .sin_family = AF_INET };
        ck_assert_int_eq(inet_pton(AF_INET, v4[i], &a.sin_addr), 1);
        px_edge_format_peer((const struct sockaddr *)&a, out, sizeof(out));
        ck_assert_str_eq(out, v4[i]);
    }
    for (unsigned n = 0; n < 256; n++) { /* every byte value, in every position */
        struct sockaddr_in a = { .sin_family = AF_INET };
        uint8_t *b = (uint8_t *)&a.sin_addr;
        b[0] = (uint8_t)n, b[1] = (uint8_t)(255 - n), b[2] = (uint8_t)(n * 7), b[3] = (uint8_t)n;
        px_edge_format_peer((const struct sockaddr *)&a, out, sizeof(out));
        ck_assert_ptr_nonnull(inet_ntop(AF_INET, &a.sin_addr, want, sizeof(want)));
        ck_assert_str_eq(out, want);
    }
    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
    ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::1", &a6.sin6_addr), 1);
    px_edge_format_peer((const struct sockaddr *)&a6, out, sizeof(out));
    ck_assert_str_eq(out, "2001:db8::1");
    px_edge_format_peer(NULL, out, sizeof(out));
    ck_assert_str_eq(out, "unknown");
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {
        edge_client_address_follows_envoy,
        edge_ip_allow_and_deny,
        edge_scheme_redirect_and_server_line,
        edge_ip_rules_parse_and_contain,
        edge_formats_peer_addresses_as_inet_ntop_does,
        NULL,
    };
    return harness_main("edge", 0, NULL, NULL, tests);
}

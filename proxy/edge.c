/* The ambassador Module's edge behaviour (edge.h). Envoy's rules, as Ambassador configured
 * them: with use_remote_address (the default) the peer is appended to X-Forwarded-For; the
 * trusted client is then the address xff_num_trusted_hops from the right of that list, or the
 * peer when the list is shorter. */
#include "edge.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "route.h"

static bool name_is(const struct px_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

static const char *trim(const char *s, const char *end, size_t *len)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *len = (size_t)(end - s);
    return s;
}

/* Copies the entry of X-Forwarded-For that is `from_right` places from the right of all its
 * lines together (0: the last) into out. Returns false when there are not that many. */
static bool xff_entry(const struct px_header *hs, size_t nh, size_t from_right, char *out,
                      size_t outlen)
{
    for (size_t i = nh; i-- > 0;) {
        if (!name_is(&hs[i], "x-forwarded-for"))
            continue;
        const char *v = hs[i].value, *end = v + hs[i].value_len;
        while (end > v) {
            const char *comma = end;
            while (comma > v && comma[-1] != ',')
                comma--;
            size_t len;
            const char *e = trim(comma, end, &len);
            end = comma > v ? comma - 1 : v;
            if (len == 0)
                continue;
            if (from_right-- > 0)
                continue;
            if (len >= outlen)
                return false;
            memcpy(out, e, len);
            out[len] = '\0';
            return true;
        }
    }
    return false;
}

/* Parses a textual address ("10.1.2.3", "2001:db8::1", "[2001:db8::1]"); false if it is not
 * one. */
static bool parse_addr(const char *text, int *family, uint8_t addr[16])
{
    char buf[INET6_ADDRSTRLEN];
    size_t n = strlen(text);
    if (n > 1 && text[0] == '[' && text[n - 1] == ']') {
        text++;
        n -= 2;
    }
    if (n >= sizeof(buf))
        return false;
    memcpy(buf, text, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, addr) == 1) {
        *family = 4;
        return true;
    }
    if (inet_pton(AF_INET6, buf, addr) == 1) {
        *family = 6;
        return true;
    }
    return false;
}

static bool any_rule_matches(const struct route_ip_rule *rules, size_t n, const char *peer,
                             const char *client)
{
    int pf = 0, cf = 0;
    uint8_t pa[16], ca[16];
    bool have_peer = parse_addr(peer, &pf, pa), have_client = parse_addr(client, &cf, ca);
    for (size_t i = 0; i < n; i++) {
        if (rules[i].remote ? have_client && route_ip_rule_contains(&rules[i], cf, ca)
                            : have_peer && route_ip_rule_contains(&rules[i], pf, pa))
            return true;
    }
    return false;
}

void px_edge_check(const struct route_settings *s, const char *peer, const struct px_header *hs,
                   size_t nh, struct px_edge *out)
{
    struct route_settings defaults;
    if (s == NULL) {
        route_settings_init(&defaults);
        s = &defaults;
    }
    memset(out, 0, sizeof(*out));

    /* The list is X-Forwarded-For, then the peer when use_remote_address: the entry
     * xff_num_trusted_hops from its right is the client. */
    size_t hops = s->xff_num_trusted_hops;
    bool from_xff = !(s->use_remote_address && hops == 0) &&
                    xff_entry(hs, nh, s->use_remote_address ? hops - 1 : hops, out->client,
                              sizeof(out->client));
    if (!from_xff) {
        size_t n = strnlen(peer, sizeof(out->client) - 1); /* out->client is zeroed */
        memcpy(out->client, peer, n);
    }

    out->proto = "http";
    if (hops > 0 || !s->use_remote_address) {
        for (size_t i = 0; i < nh; i++) {
            if (!name_is(&hs[i], "x-forwarded-proto"))
                continue;
            const char *v = hs[i].value, *end = v + hs[i].value_len, *comma = v;
            while (comma < end && *comma != ',')
                comma++;
            size_t len;
            v = trim(v, comma, &len);
            out->proto = len == 5 && strncasecmp(v, "https", 5) == 0 ? "https" : "http";
            break;
        }
    }
    out->redirect_https = s->x_forwarded_proto_redirect && strcmp(out->proto, "https") != 0;

    if (s->nip_allow > 0)
        out->denied = !any_rule_matches(s->ip_allow, s->nip_allow, peer, out->client);
    else if (s->nip_deny > 0)
        out->denied = any_rule_matches(s->ip_deny, s->nip_deny, peer, out->client);

    /* A name with a line break would inject headers; the controller refuses one, and a
     * snapshot that carries one anyway gets no Server header. */
    const char *name = s->server_name;
    if (name != NULL && strpbrk(name, "\r\n") == NULL &&
        strlen(name) + 11 < sizeof(out->server_line))
        snprintf(out->server_line, sizeof(out->server_line), "Server: %s\r\n", name);
}

/* IPv4 by hand: libuv and glibc both format it with snprintf, which was a tenth of the
 * proxy's instructions per connection with Connection: close. */
void px_edge_format_peer(const struct sockaddr *peer, char *out, size_t size)
{
    if (peer != NULL && peer->sa_family == AF_INET && size >= INET_ADDRSTRLEN) {
        const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in *)peer)->sin_addr;
        char *o = out;
        for (int i = 0; i < 4; i++) {
            if (i > 0)
                *o++ = '.';
            if (a[i] >= 100)
                *o++ = (char)('0' + a[i] / 100);
            if (a[i] >= 10)
                *o++ = (char)('0' + a[i] / 10 % 10);
            *o++ = (char)('0' + a[i] % 10);
        }
        *o = '\0';
        return;
    }
    if (peer == NULL || peer->sa_family != AF_INET6 ||
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, out,
                  (socklen_t)size) == NULL)
        snprintf(out, size, "unknown");
}

/* The `ambassador` Module: listener-wide settings (route_settings) and defaults for every
 * Mapping, read from the Module's `config:` keys through their keyword table. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "annotation_internal.h"
#include "route.h"
#include "xalloc.h"

/* ip_allow, ip_deny: a list of {peer: CIDR} or {remote: CIDR}. */
static int p_ip_rules(struct doc_ctx *d, const struct field *f, const struct ytree_node *v,
                      void *obj)
{
    if (v->type != YTREE_SEQ)
        return value_type_error(&d->report, f->name, v, "a list of {peer: CIDR} or {remote: CIDR}");
    struct route_ip_rule *arr = FIELD_ARRAY(obj, f, struct route_ip_rule, v->nkids);
    size_t *n = FIELD_COUNT(obj, f);
    int rc = 0;
    for (size_t i = 0; i < v->nkids; i++) {
        const struct ytree_node *it = v->kids[i];
        const struct ytree_node *k = it->type == YTREE_MAP && it->nkids == 2 ? it->kids[0] : NULL;
        bool remote = k && ytree_is_text(k) && strcmp(k->value, "remote") == 0;
        if (k == NULL || !ytree_is_text(k) || (!remote && strcmp(k->value, "peer") != 0)) {
            rc = value_type_error(&d->report, f->name, it, "{peer: CIDR} or {remote: CIDR}");
            continue;
        }
        const struct ytree_node *val = it->kids[1];
        if (!ytree_is_text(val) || route_ip_rule_parse(val->value, remote, &arr[*n]) != 0) {
            char got[96];
            ytree_describe(val, got, sizeof(got));
            doc_error(d, f->name, val->line,
                      "%s: %s is not an address block (\"10.0.0.0/8\", \"2001:db8::/32\", or an "
                      "address; host bits must be zero)",
                      f->name, got);
            rc = -EINVAL;
            continue;
        }
        (*n)++;
    }
    return rc;
}

/* regex_type: safe is RE2, which is all Legate has; unsafe (std::regex in Envoy) is read as
 * safe with a warning, since RE2 accepts most of what authors wrote for it. */
static int p_regex_type(struct doc_ctx *d, const struct field *f, const struct ytree_node *v,
                        void *obj)
{
    (void)obj;
    const char *s = value_string(&d->report, f->name, v);
    if (s == NULL)
        return -EINVAL;
    if (strcmp(s, "safe") == 0)
        return 0;
    if (strcmp(s, "unsafe") == 0) {
        doc_warn(d, f->name, v->line,
                 "regex_type: unsafe is treated as safe (RE2 syntax; no backreferences or "
                 "look-around)");
        return 0;
    }
    doc_error(d, f->name, v->line, "regex_type: expected safe or unsafe, got \"%s\"", s);
    return -EINVAL;
}

/* The traffic-policy defaults (annotation_policy.h). */
static int p_policy(struct doc_ctx *d, const struct field *f, const struct ytree_node *v, void *obj)
{
    struct module *mo = obj;
    return annotation_policy_module(f->name, v, &mo->policy, &d->report);
}

#define MO(f) offsetof(struct module, f)
#define S(f)  offsetof(struct module, settings.f)
/* The `config:` keys of the `ambassador` Module. Those that shape routing and are built have
 * a parser; the rest are refused like Mapping fields that are not supported yet. */
static const struct field module_fields[] = {
    FIELD("use_remote_address", field_bool, S(use_remote_address), 0, 0),
    FIELD_UINT("xff_num_trusted_hops", S(xff_num_trusted_hops), 0, 0, 64, ""),
    FIELD("x_forwarded_proto_redirect", field_bool, S(x_forwarded_proto_redirect), 0, 0),
    FIELD("merge_slashes", field_bool, S(merge_slashes), 0, 0),
    FIELD("ip_allow", p_ip_rules, S(ip_allow), S(nip_allow), 0),
    FIELD("ip_deny", p_ip_rules, S(ip_deny), S(nip_deny), 0),
    FIELD("server_name", field_string, S(server_name), 0, F_NO_CONTROL),
    FIELD("regex_type", p_regex_type, 0, 0, 0),
    FIELD("add_request_headers", field_header_adds, MO(add_request_headers),
          MO(nadd_request_headers), 0),
    FIELD("add_response_headers", field_header_adds, MO(add_response_headers),
          MO(nadd_response_headers), 0),
    FIELD_MILLIS("cluster_request_timeout_ms", MO(timeout_ms), MO(timeout_set), F_SET),
};
static const char *const module_not_yet[] = {
    "keepalive",
    "listener_idle_timeout_ms",
    "diagnostics",
    "defaults",
    "enable_grpc_http11_bridge",
    "enable_grpc_web",
    "enable_http10",
    "enable_ipv4",
    "enable_ipv6",
    "envoy_log_type",
    "envoy_log_path",
    "envoy_log_format",
    "error_response_overrides",
    "header_case_overrides",
    "lua_scripts",
    "max_request_headers_kb",
    "preserve_external_request_id",
    "proper_case",
    "readiness_probe",
    "liveness_probe",
    "resolver",
    "service_port",
    "statsd",
    "strip_matching_host_port",
    "suppress_envoy_headers",
    "use_proxy_proto",
    "use_ambassador_namespace_for_service_resolution",
};
static const struct field_table module_table =
    FIELD_TABLE("Module key", module_fields, true, p_policy, module_not_yet);
#undef MO
#undef S

void module_free(struct module *m)
{
    if (m == NULL)
        return;
    route_settings_free_fields(&m->settings);
    route_header_adds_free(m->add_request_headers, m->nadd_request_headers);
    route_header_adds_free(m->add_response_headers, m->nadd_response_headers);
    module_policy_free_fields(&m->policy);
    free(m);
}

/* Reads the keys of config (a map) into mod, each once. */
static void read_config(struct doc_ctx *d, const struct ytree_node *config, struct module *mod)
{
    struct strmap seen;
    strmap_init(&seen);
    for (size_t i = 0; i + 1 < config->nkids; i += 2) {
        const struct ytree_node *k = config->kids[i];
        const struct ytree_node *first = ytree_is_text(k) ? strmap_get(&seen, k->value) : NULL;
        if (!ytree_is_text(k)) {
            value_type_error(&d->report, "config", k, "a key string");
        } else if (first != NULL) {
            doc_error(d, k->value, k->line, "duplicate key \"%s\" (first on line %d)", k->value,
                      first->line);
        } else {
            strmap_put(&seen, k->value, config->kids[i]);
            doc_read_field(d, &module_table, k, config->kids[i + 1], mod);
        }
    }
    strmap_free(&seen, NULL);
    if (mod->settings.nip_allow > 0 && mod->settings.nip_deny > 0) {
        const struct ytree_node *deny = ytree_map_get(config, "ip_deny");
        doc_error(d, "ip_deny", deny ? deny->line : config->line,
                  "ip_allow and ip_deny cannot both be set (Ambassador allows only one)");
    }
}

/* A Module: `ambassador` is read (its `config:` keys through module_fields); `tls` is known
 * and not supported yet; other names are not Modules Ambassador had. */
void module_parse(struct doc_ctx *d, const struct ytree_node *root, const struct strmap *seen,
                  const struct ytree_node *name)
{
    static const char *const keys[] = { "apiVersion", "kind", "name", "ambassador_id", "config" };
    for (size_t i = 0; i + 1 < root->nkids; i += 2) {
        const struct ytree_node *k = root->kids[i];
        size_t j;
        for (j = 0; j < ARRAY_SIZE(keys) && ytree_is_text(k); j++)
            if (strcmp(k->value, keys[j]) == 0)
                break;
        if (ytree_is_text(k) && strmap_get(seen, k->value) == k && j == ARRAY_SIZE(keys))
            doc_unknown_key(d, keys, ARRAY_SIZE(keys), "Module key", k);
    }
    if (name == NULL || !ytree_is_text(name) || doc_has_errors(d))
        return;
    if (strcmp(name->value, "ambassador") != 0) {
        char what[96];
        snprintf(what, sizeof(what), "Module %s", name->value);
        doc_warn_skipped(d, name->line, what);
        return;
    }

    struct module *mod = xcalloc(1, sizeof(*mod));
    route_settings_init(&mod->settings);
    mod->line = root->line;
    mod->name_line = name->line;
    const struct ytree_node *config = ytree_map_get(root, "config");
    if (config != NULL && config->type != YTREE_MAP && !ytree_is_null(config))
        value_type_error(&d->report, "config", config, "a map");
    else if (config != NULL && config->type == YTREE_MAP)
        read_config(d, config, mod);
    struct annotation_result *r = d->res;
    if (!doc_has_errors(d) && r->module != NULL)
        doc_error(d, "name", name->line,
                  "a second ambassador Module in this annotation; the first (line %d) is used",
                  r->module->name_line);
    if (doc_has_errors(d)) {
        module_free(mod);
        return;
    }
    r->module = mod;
}

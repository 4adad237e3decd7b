/* Tests for controller/kube_config.c (kubeconfig, in-cluster, choosing the source) and the
 * ExecCredential parser of controller/kube_auth.c. Each test runs in its own process
 * (CK_FORK), so setenv does not leak between them. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "kube_internal.h"

static char tmp[256];

static void setup(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/legate-kcfg-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    unsetenv("KUBECONFIG");
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    unsetenv("POD_NAMESPACE");
    setenv("HOME", tmp, 1);
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    ck_assert_int_eq(system(cmd), 0);
}

/* Writes text to tmp/rel (creating one level of folder) and returns the path (static). */
static const char *put(const char *rel, const char *text)
{
    static char paths[8][512];
    static int k;
    char *p = paths[k++ % 8];
    snprintf(p, 512, "%s/%s", tmp, rel);
    /* mkdir -p of everything below tmp */
    for (char *slash = p + strlen(tmp) + 1; (slash = strchr(slash, '/')) != NULL; slash++) {
        *slash = '\0';
        mkdir(p, 0700);
        *slash = '/';
    }
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return p;
}

/* "-----BEGIN CERTIFICATE-----\nCA\n" and friends, base64-encoded. */
#define CA_B64   "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkNBCg=="
#define CA_PEM   "-----BEGIN CERTIFICATE-----\nCA\n"
#define CERT_B64 "Y2VydC1wZW0=" /* cert-pem */
#define KEY_B64  "a2V5LXBlbQ==" /* key-pem */

static const char full[] = "apiVersion: v1\n"
                           "kind: Config\n"
                           "current-context: prod\n"
                           "clusters:\n"
                           "- name: other\n"
                           "  cluster: {server: https://wrong:1}\n"
                           "- name: c1\n"
                           "  cluster:\n"
                           "    server: https://api.example:6443/\n"
                           "    certificate-authority: certs/ca.crt\n"
                           "    tls-server-name: kubernetes.default\n"
                           "    proxy-url: http://proxy.corp:3128\n"
                           "users:\n"
                           "- name: u1\n"
                           "  user:\n"
                           "    token: s3cret\n"
                           "    tokenFile: tok\n"
                           "    client-certificate-data: " CERT_B64 "\n"
                           "    client-key-data: " KEY_B64 "\n"
                           "contexts:\n"
                           "- name: prod\n"
                           "  context: {cluster: c1, user: u1, namespace: team-a}\n";

START_TEST(kubeconfig_reads_every_field_and_resolves_relative_paths)
{
    put("kc/certs/ca.crt", CA_PEM);
    put("kc/tok", "filetoken\n");
    const char *path = put("kc/config", full);
    struct kube_config c;
    char err[512] = "";
    ck_assert_msg(kube_config_load(&path, 1, NULL, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c.server, "https://api.example:6443"); /* trailing '/' dropped */
    char want[512];
    snprintf(want, sizeof(want), "%s/kc/certs/ca.crt", tmp);
    ck_assert_str_eq(c.ca_file, want);
    snprintf(want, sizeof(want), "%s/kc/tok", tmp);
    ck_assert_str_eq(c.token_file, want);
    ck_assert_str_eq(c.tls_server_name, "kubernetes.default");
    ck_assert_str_eq(c.proxy_url, "http://proxy.corp:3128");
    ck_assert_str_eq(c.token, "s3cret");
    ck_assert_uint_eq(c.cert_len, 8);
    ck_assert_str_eq(c.cert_data, "cert-pem");
    ck_assert_str_eq(c.key_data, "key-pem");
    ck_assert_str_eq(c.context_ns, "team-a");
    ck_assert(!c.insecure);
    ck_assert_ptr_null(c.exec);
    ck_assert_ptr_null(c.ns); /* the context's namespace does not limit the watch */
    kube_config_free(&c);
}
END_TEST

START_TEST(kubeconfig_data_fields_and_insecure)
{
    const char *path = put("config", "current-context: x\n"
                                     "clusters:\n"
                                     "- name: c\n"
                                     "  cluster:\n"
                                     "    server: http://127.0.0.1:8001\n"
                                     "    certificate-authority-data: " CA_B64 "\n"
                                     "    insecure-skip-tls-verify: true\n"
                                     "contexts:\n"
                                     "- name: x\n"
                                     "  context: {cluster: c}\n");
    struct kube_config c;
    char err[512] = "";
    ck_assert_msg(kube_config_load(&path, 1, NULL, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c.ca_data, CA_PEM);
    ck_assert_uint_eq(c.ca_len, strlen(CA_PEM));
    ck_assert_ptr_null(c.ca_file);
    ck_assert(c.insecure);
    ck_assert_ptr_null(c.token);
    kube_config_free(&c);
}
END_TEST

START_TEST(kubeconfig_bad_base64_names_file_and_line)
{
    const char *path = put("config", "current-context: x\n"
                                     "clusters:\n"
                                     "- name: c\n"
                                     "  cluster:\n"
                                     "    server: https://h\n"
                                     "    certificate-authority-data: '%%%notbase64'\n"
                                     "contexts: [{name: x, context: {cluster: c}}]\n");
    struct kube_config c;
    char err[512] = "";
    ck_assert_int_eq(kube_config_load(&path, 1, NULL, &c, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, ":6]"));
    ck_assert_ptr_nonnull(strstr(err, "certificate-authority-data"));
}
END_TEST

START_TEST(kubeconfig_server_must_be_a_url_with_a_host)
{
    static const char *const bad[] = { "http://", "https:///", "https:///api", "ftp://h",
                                       "h:6443" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text),
                 "current-context: x\n"
                 "clusters: [{name: c, cluster: {server: '%s'}}]\n"
                 "contexts: [{name: x, context: {cluster: c}}]\n",
                 bad[i]);
        const char *path = put("config", text);
        struct kube_config c;
        char err[512] = "";
        ck_assert_msg(kube_config_load(&path, 1, NULL, &c, err, sizeof(err)) == -EINVAL, "%s",
                      bad[i]);
        ck_assert_ptr_nonnull(strstr(err, "server must be"));
    }
}
END_TEST

START_TEST(kubeconfig_missing_current_context_is_an_error)
{
    const char *path = put("config", "clusters: [{name: c, cluster: {server: https://h}}]\n"
                                     "contexts: [{name: x, context: {cluster: c}}]\n");
    struct kube_config c;
    char err[512] = "";
    ck_assert_int_eq(kube_config_load(&path, 1, NULL, &c, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "current-context"));
    /* --context fills the gap. */
    ck_assert_int_eq(kube_config_load(&path, 1, "x", &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.server, "https://h");
    kube_config_free(&c);
}
END_TEST

START_TEST(kubeconfig_dangling_names_are_errors)
{
    const char *path = put("config", "current-context: x\n"
                                     "clusters: [{name: c, cluster: {server: https://h}}]\n"
                                     "contexts:\n"
                                     "- {name: x, context: {cluster: nope}}\n"
                                     "- {name: y, context: {cluster: c, user: ghost}}\n");
    struct kube_config c;
    char err[512] = "";
    ck_assert_int_eq(kube_config_load(&path, 1, NULL, &c, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "cluster \"nope\""));
    ck_assert_int_eq(kube_config_load(&path, 1, "y", &c, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "user \"ghost\""));
    ck_assert_int_eq(kube_config_load(&path, 1, "z", &c, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "context \"z\" not found"));
}
END_TEST

START_TEST(kubeconfig_list_merges_first_value_wins)
{
    /* The first file sets current-context and defines the user; the second defines the
     * cluster (with a CA relative to itself) and a conflicting current-context and user. */
    put("b/ca.crt", CA_PEM);
    const char *a = put("a/config", "current-context: one\n"
                                    "users: [{name: u, user: {token: from-a}}]\n");
    const char *b = put("b/config", "current-context: two\n"
                                    "clusters: [{name: c, cluster: {server: https://b, "
                                    "certificate-authority: ca.crt}}]\n"
                                    "users: [{name: u, user: {token: from-b}}]\n"
                                    "contexts:\n"
                                    "- {name: one, context: {cluster: c, user: u}}\n"
                                    "- {name: two, context: {cluster: c}}\n");
    char list[1200];
    snprintf(list, sizeof(list), "%s/missing:%s::%s", tmp, a, b);
    setenv("KUBECONFIG", list, 1);
    struct kube_flags f = { 0 };
    struct kube_config c;
    char err[512] = "";
    ck_assert_msg(kube_config_resolve(&f, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c.server, "https://b");
    ck_assert_str_eq(c.token, "from-a");
    char want[512];
    snprintf(want, sizeof(want), "%s/b/ca.crt", tmp);
    ck_assert_str_eq(c.ca_file, want);
    kube_config_free(&c);
}
END_TEST

START_TEST(kubeconfig_exec_plugin)
{
    const char *path = put("kc/config", "current-context: x\n"
                                        "clusters: [{name: c, cluster: {server: https://h}}]\n"
                                        "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
                                        "users:\n"
                                        "- name: u\n"
                                        "  user:\n"
                                        "    exec:\n"
                                        "      apiVersion: client.authentication.k8s.io/v1beta1\n"
                                        "      command: bin/get-token\n"
                                        "      args: [--cluster, prod]\n"
                                        "      env: [{name: REGION, value: eu}]\n"
                                        "      installHint: install get-token\n");
    struct kube_config c;
    char err[512] = "";
    ck_assert_msg(kube_config_load(&path, 1, NULL, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_ptr_nonnull(c.exec);
    char want[512];
    snprintf(want, sizeof(want), "%s/kc/bin/get-token", tmp);
    ck_assert_str_eq(c.exec->command, want);
    ck_assert_uint_eq(c.exec->nargs, 2);
    ck_assert_str_eq(c.exec->args[1], "prod");
    ck_assert_uint_eq(c.exec->nenv, 1);
    ck_assert_str_eq(c.exec->env[0], "REGION=eu");
    ck_assert_str_eq(c.exec->api_version, "client.authentication.k8s.io/v1beta1");
    /* A deep copy survives the original. */
    struct kube_config d;
    kube_config_copy(&d, &c);
    kube_config_free(&c);
    ck_assert_str_eq(d.exec->args[0], "--cluster");
    ck_assert_str_eq(d.server, "https://h");
    kube_config_free(&d);
}
END_TEST

START_TEST(kubeconfig_unreadable_ca_and_unsupported_auth_fail_early)
{
    const char *path = put("config", "current-context: x\n"
                                     "clusters: [{name: c, cluster: {server: https://h, "
                                     "certificate-authority: /nonexistent/ca.crt}}]\n"
                                     "contexts: [{name: x, context: {cluster: c}}]\n");
    struct kube_config c;
    char err[512] = "";
    ck_assert_int_eq(kube_config_load(&path, 1, NULL, &c, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/ca.crt"));
    path = put("config2", "current-context: x\n"
                          "clusters: [{name: c, cluster: {server: https://h}}]\n"
                          "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
                          "users: [{name: u, user: {auth-provider: {name: gcp}}}]\n");
    ck_assert_int_eq(kube_config_load(&path, 1, NULL, &c, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "auth-provider"));
}
END_TEST

/* ---- choosing the source ---- */

static void write_sa(const char *dir)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/token", dir);
    put(p + strlen(tmp) + 1, "sa-token\n");
    snprintf(p, sizeof(p), "%s/ca.crt", dir);
    put(p + strlen(tmp) + 1, CA_PEM);
    snprintf(p, sizeof(p), "%s/namespace", dir);
    put(p + strlen(tmp) + 1, "legate\n");
}

START_TEST(resolve_in_cluster_from_serviceaccount_dir)
{
    char sa[512];
    snprintf(sa, sizeof(sa), "%s/sa", tmp);
    write_sa(sa);
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    struct kube_flags f = { .serviceaccount_dir = sa, .ns = "apps" };
    struct kube_config c;
    char err[512] = "";
    ck_assert_msg(kube_config_resolve(&f, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c.server, "https://10.96.0.1:443");
    char want[600];
    snprintf(want, sizeof(want), "%s/token", sa);
    ck_assert_str_eq(c.token_file, want);
    snprintf(want, sizeof(want), "%s/ca.crt", sa);
    ck_assert_str_eq(c.ca_file, want);
    ck_assert_str_eq(c.context_ns, "legate");
    ck_assert_str_eq(c.ns, "apps");
    ck_assert_str_eq(c.source, "in-cluster");
    kube_config_free(&c);

    /* IPv6 gets brackets; POD_NAMESPACE wins over the file. */
    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    setenv("POD_NAMESPACE", "from-env", 1);
    ck_assert_int_eq(kube_config_resolve(&f, &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.server, "https://[fd00::1]:443");
    ck_assert_str_eq(c.context_ns, "from-env");
    kube_config_free(&c);
}
END_TEST

START_TEST(resolve_in_cluster_without_token_fails)
{
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    struct kube_flags f = { .serviceaccount_dir = "/nonexistent" };
    struct kube_config c;
    char err[512] = "";
    ck_assert_int_eq(kube_config_resolve(&f, &c, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/token"));
}
END_TEST

START_TEST(resolve_precedence_flag_then_cluster_then_env_then_home)
{
    const char *flag = put("flag", "current-context: x\n"
                                   "clusters: [{name: c, cluster: {server: https://flag}}]\n"
                                   "contexts: [{name: x, context: {cluster: c}}]\n");
    const char *envf = put("env", "current-context: x\n"
                                  "clusters: [{name: c, cluster: {server: https://env}}]\n"
                                  "contexts: [{name: x, context: {cluster: c}}]\n");
    put(".kube/config", "current-context: x\n"
                        "clusters: [{name: c, cluster: {server: https://home}}]\n"
                        "contexts: [{name: x, context: {cluster: c}}]\n");
    char sa[512];
    snprintf(sa, sizeof(sa), "%s/sa", tmp);
    write_sa(sa);
    struct kube_config c;
    char err[512] = "";

    struct kube_flags f = { .kubeconfig = flag, .serviceaccount_dir = sa };
    setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
    setenv("KUBECONFIG", envf, 1);
    ck_assert_int_eq(kube_config_resolve(&f, &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.server, "https://flag");
    kube_config_free(&c);

    f.kubeconfig = NULL;
    ck_assert_int_eq(kube_config_resolve(&f, &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.server, "https://10.0.0.1:6443");
    kube_config_free(&c);

    unsetenv("KUBERNETES_SERVICE_HOST");
    ck_assert_int_eq(kube_config_resolve(&f, &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.server, "https://env");
    kube_config_free(&c);

    unsetenv("KUBECONFIG");
    ck_assert_int_eq(kube_config_resolve(&f, &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.server, "https://home");
    kube_config_free(&c);
}
END_TEST

START_TEST(resolve_nothing_found_says_what_was_tried)
{
    struct kube_flags f = { 0 };
    struct kube_config c;
    char err[512] = "";
    ck_assert_int_eq(kube_config_resolve(&f, &c, err, sizeof(err)), -ENOENT);
    ck_assert_ptr_nonnull(strstr(err, "--kubeconfig"));
    ck_assert_ptr_nonnull(strstr(err, "KUBERNETES_SERVICE_HOST"));
    ck_assert_ptr_nonnull(strstr(err, "$KUBECONFIG"));
    ck_assert_ptr_nonnull(strstr(err, "/.kube/config"));

    f.kubeconfig = "/nonexistent/kubeconfig";
    ck_assert_int_eq(kube_config_resolve(&f, &c, err, sizeof(err)), -ENOENT);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/kubeconfig"));

    f.kubeconfig = NULL;
    setenv("KUBECONFIG", "/nope/a:/nope/b", 1);
    ck_assert_int_eq(kube_config_resolve(&f, &c, err, sizeof(err)), -ENOENT);
    ck_assert_ptr_nonnull(strstr(err, "/nope/a:/nope/b"));
}
END_TEST

/* ---- helpers ---- */

START_TEST(base64_decodes_and_rejects)
{
    char *out;
    size_t n;
    ck_assert_int_eq(kube_base64_decode("aGVsbG8=", 8, &out, &n), 0);
    ck_assert_str_eq(out, "hello");
    ck_assert_uint_eq(n, 5);
    free(out);
    ck_assert_int_eq(kube_base64_decode("aGVs\nbG8", 8, &out, &n), 0); /* no padding, a newline */
    ck_assert_str_eq(out, "hello");
    free(out);
    ck_assert_int_eq(kube_base64_decode("", 0, &out, &n), 0);
    ck_assert_uint_eq(n, 0);
    free(out);
    ck_assert_int_eq(kube_base64_decode("aGVsbG8*", 8, &out, &n), -EINVAL);
    ck_assert_int_eq(kube_base64_decode("a", 1, &out, &n), -EINVAL);
    ck_assert_int_eq(kube_base64_decode("aG=Vs", 5, &out, &n), -EINVAL);
}
END_TEST

START_TEST(time_parses_rfc3339_forms)
{
    int64_t t;
    ck_assert_int_eq(kube_time_parse("2026-01-01T10:00:00Z", &t), 0);
    ck_assert_int_eq(t, 1767261600);
    ck_assert_int_eq(kube_time_parse("2026-01-01T10:00:00.123456Z", &t), 0);
    ck_assert_int_eq(t, 1767261600);
    ck_assert_int_eq(kube_time_parse("2026-01-01T12:00:00+02:00", &t), 0);
    ck_assert_int_eq(t, 1767261600);
    ck_assert_int_eq(kube_time_parse("2026-01-01 10:00:00Z", &t), -EINVAL);
    ck_assert_int_eq(kube_time_parse("2026-13-01T10:00:00Z", &t), -EINVAL);
    ck_assert_int_eq(kube_time_parse("2026-01-01T10:00:00", &t), -EINVAL);
    char s[32];
    kube_time_format(1767261600, s, sizeof(s));
    ck_assert_str_eq(s, "2026-01-01T10:00:00Z");
}
END_TEST

START_TEST(exec_credential_token_cert_and_errors)
{
    struct kube_exec_cred c;
    char err[256];
    const char *tok = "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":"
                      "\"ExecCredential\",\"status\":{\"token\":\"abc\","
                      "\"expirationTimestamp\":\"2026-01-01T10:00:00Z\"}}";
    ck_assert_int_eq(kube_exec_cred_parse(tok, strlen(tok), "client.authentication.k8s.io/v1", &c,
                                          err, sizeof(err)),
                     0);
    ck_assert_str_eq(c.token, "abc");
    ck_assert_int_eq(c.expiry, 1767261600);
    kube_exec_cred_free(&c);

    const char *cert = "{\"kind\":\"ExecCredential\",\"status\":{\"clientCertificateData\":"
                       "\"CERT\",\"clientKeyData\":\"KEY\"}}";
    ck_assert_int_eq(kube_exec_cred_parse(cert, strlen(cert), NULL, &c, err, sizeof(err)), 0);
    ck_assert_ptr_null(c.token);
    ck_assert_str_eq(c.cert, "CERT");
    ck_assert_str_eq(c.key, "KEY");
    ck_assert_int_eq(c.expiry, 0);
    kube_exec_cred_free(&c);

    /* Wrong apiVersion, nothing usable, half a key pair, not JSON. */
    ck_assert_int_eq(kube_exec_cred_parse(tok, strlen(tok), "client.authentication.k8s.io/v1beta1",
                                          &c, err, sizeof(err)),
                     -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "apiVersion"));
    const char *none = "{\"kind\":\"ExecCredential\",\"status\":{}}";
    ck_assert_int_eq(kube_exec_cred_parse(none, strlen(none), NULL, &c, err, sizeof(err)), -EINVAL);
    const char *half = "{\"kind\":\"ExecCredential\",\"status\":{\"token\":\"t\","
                       "\"clientCertificateData\":\"C\"}}";
    ck_assert_int_eq(kube_exec_cred_parse(half, strlen(half), NULL, &c, err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(kube_exec_cred_parse("token", 5, NULL, &c, err, sizeof(err)), -EINVAL);
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {
        kubeconfig_reads_every_field_and_resolves_relative_paths,
        kubeconfig_data_fields_and_insecure,
        kubeconfig_bad_base64_names_file_and_line,
        kubeconfig_server_must_be_a_url_with_a_host,
        kubeconfig_missing_current_context_is_an_error,
        kubeconfig_dangling_names_are_errors,
        kubeconfig_list_merges_first_value_wins,
        kubeconfig_exec_plugin,
        kubeconfig_unreadable_ca_and_unsupported_auth_fail_early,
        resolve_in_cluster_from_serviceaccount_dir,
        resolve_in_cluster_without_token_fails,
        resolve_precedence_flag_then_cluster_then_env_then_home,
        resolve_nothing_found_says_what_was_tried,
        base64_decodes_and_rejects,
        time_parses_rfc3339_forms,
        exec_credential_token_cert_and_errors,
        NULL,
    };
    return harness_main("kube_config", 0, setup, teardown, tests);
}

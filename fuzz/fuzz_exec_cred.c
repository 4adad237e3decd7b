/* libFuzzer target: what a kubeconfig exec plugin prints (kube_exec_cred_parse), and the RFC
 * 3339 times in it (kube_time_parse).
 *
 * The input is the plugin's output, parsed once expecting no apiVersion and once expecting
 * client.authentication.k8s.io/v1. An accepted credential has a token, or a certificate and
 * its key; a refused one says why and holds nothing. The input's first line is also read as a
 * timestamp: an accepted one (from 1970 to 9999) must format and parse back to the same
 * second. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kube_internal.h"
#include "xalloc.h"

static void ec_parse(const char *json, size_t len, const char *api)
{
    struct kube_exec_cred c;
    char err[256] = "";
    int rc = kube_exec_cred_parse(json, len, api, &c, err, sizeof(err));
    if (rc == 0) {
        FUZZ_CHECK((c.token != NULL && c.token[0] != '\0') || (c.cert != NULL && c.key != NULL));
        FUZZ_CHECK((c.cert == NULL) == (c.key == NULL));
    } else {
        FUZZ_CHECK(rc == -EINVAL && err[0] != '\0');
        FUZZ_CHECK(c.token == NULL && c.cert == NULL && c.key == NULL);
    }
    kube_exec_cred_free(&c);
}

int fuzz_exec_cred(const uint8_t *data, size_t size)
{
    fuzz_logs(size & 1);
    ec_parse((const char *)data, size, NULL);
    ec_parse((const char *)data, size, "client.authentication.k8s.io/v1");

    const uint8_t *nl = memchr(data, '\n', size);
    char *line = xstrndup((const char *)data, nl ? (size_t)(nl - data) : size);
    int64_t t = 0, again = 0;
    /* Years outside 1970-9999 do not format as four digits: not a time Kubernetes writes. */
    if (kube_time_parse(line, &t) == 0 && t >= 0 && t < 253402300800) {
        char s[64];
        kube_time_format(t, s, sizeof(s));
        FUZZ_CHECK(kube_time_parse(s, &again) == 0 && again == t);
    }
    free(line);
    return 0;
}

FUZZ_ENTRY(fuzz_exec_cred)

/* Private declarations of the directory source (controller/source_dir.c): the manifest parser,
 * pure so that its unit tests and fuzz target can call it. The rest of the controller uses
 * source_dir.h. */
#ifndef LEGATE_CONTROLLER_SOURCE_DIR_INTERNAL_H
#define LEGATE_CONTROLLER_SOURCE_DIR_INTERNAL_H

#include <stddef.h>

#include "ytree.h"

/* One Service as a file last described it. */
struct dir_object {
    char *ns; /* "default" when the manifest names none */
    char *name;
    char *uid;        /* metadata.uid, or one made from namespace and name */
    char *version;    /* metadata.resourceVersion, or NULL */
    char *annotation; /* getambassador.io/config, or NULL */
    int line;         /* file line of the annotation's first line; 0 when it cannot be mapped */
};

struct dir_objects {
    struct dir_object *v;
    size_t n;
};

/* Parses a manifest file's text (len bytes; path only names it in logs). Returns 0 with the
 * Services in *out (free with source_dir_objects_free), or -EINVAL with a syntax error in
 * *err and *out empty. `kind: Service` objects with `apiVersion: v1` and the items of a
 * `List`/`ServiceList` are read; objects that are not Services, or unusable ones, are logged
 * and skipped: they are not a reason to distrust the whole file. */
int source_dir_parse(const char *path, const char *text, size_t len, struct dir_objects *out,
                     struct ytree_error *err);
/* Frees what *o holds and empties it. */
void source_dir_objects_free(struct dir_objects *o);

#endif

/* The directory source (--source-dir DIR): Service manifests in files stand in for the
 * Kubernetes API. Every *.yaml, *.yml and *.json directly in DIR (dotfiles skipped, so editor
 * swap files and Kubernetes ConfigMap volumes' ..data entries are not read twice; symlinks are
 * followed) is read as multi-document YAML (JSON as JSON: a file that is JSON is read with
 * JSON's meaning where YAML's differs); `kind: Service` objects with `apiVersion: v1`, and the
 * items of a `List`/`ServiceList`, go into the cache with the file path as origin.
 *
 * Changes are noticed without help: a uv_fs_event watch on the directory (editors replace
 * files by rename; any event rereads the whole directory, which is cheap because unchanged
 * files are skipped by stat, then by content hash) plus a periodic rescan in case the watch
 * misses something (network filesystems, a replaced directory). Only changed content reaches
 * the cache, so only real changes cause a compile. */
#ifndef LEGATE_CONTROLLER_SOURCE_DIR_H
#define LEGATE_CONTROLLER_SOURCE_DIR_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "cache.h"
#include "strmap.h"

#define SOURCE_DIR_RESCAN_MS 2000
#define SOURCE_DIR_SETTLE_MS 20 /* after a watch event, let a burst of writes finish */
#define SOURCE_DIR_FILE_MAX  ((size_t)16 << 20)

struct source_dir {
    uv_loop_t *loop;
    char *dir;
    struct cache *cache;
    uv_fs_event_t watch;
    uv_timer_t rescan;
    uv_timer_t settle;
    struct strmap files; /* path -> struct dir_file * (source_dir.c) */
    bool watching;
    bool dir_lost; /* the last scan could not open DIR */
    int open_handles;
    unsigned long scans; /* completed scans, for tests */
};

/* Reads DIR once (synchronously, so the first compile sees everything), then watches it on
 * loop. rescan_ms 0 means SOURCE_DIR_RESCAN_MS. Returns 0 and *out, or a negative errno when
 * DIR cannot be opened (nothing is started then). */
int source_dir_start(uv_loop_t *loop, const char *dir, struct cache *cache, unsigned rescan_ms,
                     struct source_dir **out);
/* Rereads the directory now and applies what changed to the cache. */
void source_dir_scan(struct source_dir *s);
/* Stops watching and closes the handles; the object is freed in the last close callback, so
 * the loop must run once more. Safe on NULL. */
void source_dir_stop(struct source_dir *s);

#endif

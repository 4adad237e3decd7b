#include "source_dir.h"
#include "source_dir_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "annotation.h"
#include "buf.h"
#include "log.h"
#include "xalloc.h"
#include "ytree.h"

/* A `kind: List` of every Service is one document: 16 MiB of them is ~16 000 Services of ~40
 * nodes each. The cap stops a file of "[a,a,a,..." from costing ~100 bytes per two. */
#define MAX_NODES_PER_DOC 2000000

/* What we know of one file. */
struct dir_file {
    char *path;
    /* stat identity of the content last read */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    struct timespec ctime;
    uint64_t hash;
    bool have_content;
    /* mtime was within a second of when we read it: a write in the same clock tick could
     * leave size and mtime unchanged (git's "racy clean"), so hash it again next time. */
    bool racy;
    bool broken;  /* the last content read did not parse; objs are from before */
    bool present; /* seen by the current scan */
    struct dir_objects objs;
};

void source_dir_objects_free(struct dir_objects *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->v[i].ns);
        free(o->v[i].name);
        free(o->v[i].uid);
        free(o->v[i].version);
        free(o->v[i].annotation);
    }
    free(o->v);
    o->v = NULL;
    o->n = 0;
}

static void file_free(void *p)
{
    struct dir_file *f = p;
    if (f == NULL)
        return;
    source_dir_objects_free(&f->objs);
    free(f->path);
    free(f);
}

/* ---- manifest parsing ---- */

static bool wanted_name(const char *name)
{
    if (name[0] == '.')
        return false; /* dotfiles: editor swap and lock files, ConfigMap ..data */
    const char *dot = strrchr(name, '.');
    return dot != NULL && dot != name &&
           (strcmp(dot, ".yaml") == 0 || strcmp(dot, ".yml") == 0 || strcmp(dot, ".json") == 0);
}

/* A uid that is stable across restarts and unique per (namespace, name), shaped like a
 * Kubernetes one so that later code (Events) can treat every uid alike. */
static char *synth_uid(const char *ns, const char *name)
{
    uint64_t h1 = strmap_hash(STRMAP_HASH_INIT, ns, strlen(ns));
    h1 = strmap_hash(h1, "/", 1);
    h1 = strmap_hash(h1, name, strlen(name));
    uint64_t h2 = strmap_hash(h1 ^ 0x9e3779b97f4a7c15ULL, name, strlen(name));
    char *uid = xmalloc(37);
    snprintf(uid, 37, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(h1 >> 32),
             (unsigned)(h1 >> 16) & 0xffff, (unsigned)h1 & 0xffff, (unsigned)(h2 >> 48),
             (unsigned long long)(h2 & 0xffffffffffffULL));
    return uid;
}

static const char *text_of(const struct ytree_node *n)
{
    return n != NULL && ytree_is_text(n) ? n->value : NULL;
}

/* Reads one Service object into out. Returns 0, 1 when it is not a Service (skipped), or
 * -EINVAL after logging why the object is unusable. */
static int read_service(const char *path, const struct ytree_node *obj, bool in_service_list,
                        struct dir_objects *out)
{
    const char *kind = text_of(ytree_map_get(obj, "kind"));
    const char *api = text_of(ytree_map_get(obj, "apiVersion"));
    if (kind == NULL && in_service_list) {
        kind = "Service"; /* items of a ServiceList carry no kind */
        api = "v1";
    }
    if (kind == NULL || strcmp(kind, "Service") != 0) {
        log_debug("object ignored: not a Service", "file=%s line=%d kind=%s", path, obj->line,
                  kind ? kind : "");
        return 1;
    }
    if (api == NULL || strcmp(api, "v1") != 0) {
        log_warn("object ignored: a Service must be apiVersion v1", "file=%s line=%d apiVersion=%s",
                 path, obj->line, api ? api : "");
        return 1;
    }
    const struct ytree_node *meta = ytree_map_get(obj, "metadata");
    const char *name = text_of(ytree_map_get(meta, "name"));
    if (name == NULL) {
        log_error("invalid manifest", "file=%s line=%d error=%s", path, obj->line,
                  "Service without metadata.name");
        return -EINVAL;
    }
    const char *ns = text_of(ytree_map_get(meta, "namespace"));
    const char *uid = text_of(ytree_map_get(meta, "uid"));
    const char *version = text_of(ytree_map_get(meta, "resourceVersion"));
    const struct ytree_node *ann =
        ytree_map_get(ytree_map_get(meta, "annotations"), ANNOTATION_KEY);
    if (ann != NULL && (ann->type != YTREE_SCALAR || strlen(ann->value) != ann->len)) {
        log_error("invalid manifest", "file=%s line=%d svc=%s error=%s", path, ann->line, name,
                  "annotation " ANNOTATION_KEY " must be a string");
        return -EINVAL;
    }

    out->v = xrealloc(out->v, (out->n + 1) * sizeof(*out->v));
    struct dir_object *o = &out->v[out->n++];
    o->ns = xstrdup(ns ? ns : "default");
    o->name = xstrdup(name);
    o->uid = uid ? xstrdup(uid) : synth_uid(o->ns, name);
    o->version = xstrdup(version);
    o->annotation = ann ? xstrdup(ann->value) : NULL;
    o->line = 0;
    /* Line numbers in the annotation map onto the file only when its lines are kept as they
     * are: a literal block (content starts on the line after the "|") or a one-line value. */
    if (ann != NULL && ann->style == YTREE_LITERAL)
        o->line = ann->line + 1;
    else if (ann != NULL && strchr(ann->value, '\n') == NULL)
        o->line = ann->line;
    return 0;
}

/* The value of the 4 hex digits of a JSON \u escape at p (the text is valid JSON). */
static unsigned hex4(const char *p)
{
    char digits[5] = { p[0], p[1], p[2], p[3], '\0' };
    return (unsigned)strtoul(digits, NULL, 16);
}

/* The text libyaml must read for JSON text to mean what it means as JSON (a *.json manifest
 * is JSON, and kubectl reads it so). YAML's double-quoted scalars are a superset of JSON
 * strings except for: escaped UTF-16 surrogate pairs ("\ud83d\ude00", as Python's json.dump
 * writes every character past U+FFFF), which libyaml refuses; raw characters YAML does not
 * allow (DEL, C1 controls, U+FFFE, U+FFFF) or reads as line breaks (U+0085, U+2028, U+2029).
 * Those are rewritten as YAML escapes (a lone surrogate as U+FFFD, as json-c reads it). Keys
 * are made explicit, and tabs outside strings become spaces (YAML takes no tab before the
 * top-level value). No line break is added or removed, so lines stay where they were.
 * Returns NULL when text is not JSON (json-c, strictly, reads no whole value from it): it is
 * then YAML, and read as it is. The caller frees the result. */
static char *json_for_yaml(const char *text, size_t len, size_t *outlen)
{
    if (len > INT_MAX)
        return NULL;
    json_tokener *tok = json_tokener_new_ex(YTREE_MAX_DEPTH);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    bool json = json_tokener_get_error(tok) == json_tokener_success &&
                json_tokener_get_parse_end(tok) == len;
    json_object_put(o);
    json_tokener_free(tok);
    if (!json)
        return NULL;

    struct buf b;
    buf_init(&b, (size_t)-1 / 2);
    bool in_string = false;
    char open[YTREE_MAX_DEPTH + 2]; /* the collections we are in: '{' or '[' */
    size_t depth = 0;
    char last = '\0'; /* the last character outside strings that is not a blank */
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)text[i];
        unsigned hi = 0, lo = 0;
        if (!in_string) {
            /* A key is made explicit ("? "): libyaml takes an implicit key only up to 1024
             * characters and with its ':' on the same line; JSON has neither limit. */
            if (c == '"' && depth > 0 && open[depth - 1] == '{' && (last == '{' || last == ','))
                buf_append(&b, "? ", 2);
            if ((c == '{' || c == '[') && depth < sizeof(open))
                open[depth++] = (char)c;
            else if ((c == '}' || c == ']') && depth > 0)
                depth--;
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
                last = (char)c;
            in_string = c == '"';
            buf_append(&b, c == '\t' ? " " : text + i, 1);
            i++;
        } else if (c != '\\' && c < 0x7f && c != '"') {
            buf_append(&b, text + i, 1);
            i++;
        } else if (c == '"') {
            in_string = false;
            buf_append(&b, "\"", 1);
            i++;
        } else if (c == '\\' && text[i + 1] == 'u' && (hi = hex4(text + i + 2)) >= 0xd800 &&
                   hi <= 0xdfff) {
            /* Valid JSON: an escape is whole, so text[i + 2, i + 6) exists. */
            if (hi < 0xdc00 && i + 12 <= len && text[i + 6] == '\\' && text[i + 7] == 'u' &&
                (lo = hex4(text + i + 8)) >= 0xdc00 && lo <= 0xdfff) {
                buf_printf(&b, "\\U%08X", 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00));
                i += 12;
            } else {
                buf_append_str(&b, "\\uFFFD");
                i += 6;
            }
        } else if (c == '\\') {
            buf_append(&b, text + i, 2);
            i += 2;
        } else {
            /* DEL, or a UTF-8 sequence (json-c checked it, loosely: libyaml refuses an
             * overlong one later). */
            size_t n = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            n = n < len - i ? n : len - i;
            unsigned cp = n == 1 ? c : c & (0x7fu >> n);
            for (size_t k = 1; k < n; k++)
                cp = cp << 6 | ((unsigned char)text[i + k] & 0x3fu);
            if (cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
                cp == 0xfffe || cp == 0xffff)
                buf_printf(&b, "\\u%04X", cp);
            else
                buf_append(&b, text + i, n);
            i += n;
        }
    }
    *outlen = b.len;
    return b.data != NULL ? b.data : xstrdup("");
}

int source_dir_parse(const char *path, const char *text, size_t len, struct dir_objects *out,
                     struct ytree_error *err)
{
    struct ytree_parser p;
    struct ytree_doc doc;
    int rc;

    out->v = NULL;
    out->n = 0;
    size_t json_len = 0;
    char *json = json_for_yaml(text, len, &json_len);
    if (json != NULL) {
        text = json;
        len = json_len;
    }
    ytree_parser_init(&p, text, len, 0, MAX_NODES_PER_DOC);
    while ((rc = ytree_parser_next(&p, &doc, err)) == 1) {
        const struct ytree_node *root = doc.root;
        if (root != NULL && root->type == YTREE_MAP) {
            const char *kind = text_of(ytree_map_get(root, "kind"));
            const struct ytree_node *items = ytree_map_get(root, "items");
            bool is_list =
                kind != NULL && (strcmp(kind, "List") == 0 || strcmp(kind, "ServiceList") == 0);
            if (is_list && items != NULL && items->type == YTREE_SEQ) {
                for (size_t i = 0; i < items->nkids; i++)
                    if (items->kids[i]->type == YTREE_MAP)
                        read_service(path, items->kids[i], strcmp(kind, "ServiceList") == 0, out);
            } else {
                read_service(path, root, false, out);
            }
        } else if (root != NULL && !ytree_is_null(root)) {
            log_debug("document ignored: not an object", "file=%s line=%d", path, root->line);
        }
        ytree_doc_free(&doc);
    }
    ytree_parser_free(&p);
    free(json);
    if (rc < 0) {
        source_dir_objects_free(out);
        return -EINVAL;
    }
    return 0;
}

/* ---- scanning ---- */

/* Reads the file open as fd (whose stat is *st) into b, at most SOURCE_DIR_FILE_MAX bytes.
 * Returns 0, -EFBIG over the cap, or a negative errno. */
static int read_file(int fd, const struct stat *st, struct buf *b)
{
    if ((size_t)st->st_size > SOURCE_DIR_FILE_MAX)
        return -EFBIG;
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return 0;
        if (buf_append(b, chunk, (size_t)n) != 0)
            return -EFBIG; /* grew past the cap while we read */
    }
}

static bool same_stat(const struct dir_file *f, const struct stat *st)
{
    return f->have_content && f->dev == st->st_dev && f->ino == st->st_ino &&
           f->size == st->st_size && f->mtime.tv_sec == st->st_mtim.tv_sec &&
           f->mtime.tv_nsec == st->st_mtim.tv_nsec && f->ctime.tv_sec == st->st_ctim.tv_sec &&
           f->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

/* Reads and parses the content of f, open as fd. Returns true when the Services it describes
 * changed. */
static bool reread(struct dir_file *f, int fd, const struct stat *st)
{
    struct buf b;
    struct dir_objects objs;
    struct ytree_error err;
    bool changed = false;

    buf_init(&b, SOURCE_DIR_FILE_MAX);
    int rc = read_file(fd, st, &b);
    if (rc != 0) {
        log_error("cannot read manifest", "file=%s error=%s size=%lld", f->path,
                  rc == -EFBIG ? "file is over the 16 MiB limit; keeping what it last held"
                               : strerror(-rc),
                  (long long)st->st_size);
        f->broken = true;
        goto out;
    }
    const char *text = b.data ? b.data : "";
    uint64_t h = strmap_hash(STRMAP_HASH_INIT, text, b.len);
    if (f->have_content && h == f->hash && (off_t)b.len == f->size)
        goto out; /* touched or replaced by the same bytes */
    f->hash = h;
    if (source_dir_parse(f->path, text, b.len, &objs, &err) != 0) {
        /* A half-written or broken file keeps the Services it last produced: deleting routes
         * because an editor saved mid-way would be an outage, and the fix is one save away. */
        char msg[400];
        snprintf(msg, sizeof(msg), "%s; keeping the %zu Services this file last held", err.msg,
                 f->objs.n);
        log_error("cannot parse manifest", "file=%s line=%d error=%s", f->path, err.line, msg);
        f->broken = true;
        goto out;
    }
    if (f->broken)
        log_info("manifest parses again", "file=%s services=%zu", f->path, objs.n);
    f->broken = false;
    source_dir_objects_free(&f->objs);
    f->objs = objs;
    changed = true;
out:
    buf_free(&b);
    return changed;
}

/* Brings one file's record up to date. Returns true when the Services it describes may have
 * changed; clears f->present when the file turns out to be gone or not a regular file. */
static bool refresh_file(struct dir_file *f)
{
    struct stat st;
    bool changed = false;
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) != 0) {
        if (errno == ENOENT) {
            f->present = false; /* vanished between readdir and open: gone */
        } else if (!f->broken) {
            /* Unreadable (permissions?): keep what it held, like a broken file. */
            log_error("cannot read manifest", "file=%s error=%s", f->path, strerror(errno));
            f->broken = true;
        }
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        f->present = false;
        goto out;
    }
    if (same_stat(f, &st) && !f->racy)
        goto out;
    changed = reread(f, fd, &st);
    /* Remember what was read, even when it failed, so the same failure is not logged again
     * on every scan. */
    f->have_content = true;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->size = st.st_size;
    f->mtime = st.st_mtim;
    f->ctime = st.st_ctim;
    f->racy = st.st_mtim.tv_sec >= time(NULL) - 1;
out:
    if (fd >= 0)
        close(fd);
    return changed;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Pushes the directory's whole content into the cache: each file's Services with the file as
 * origin, files in name order, the first file to define a Service winning; then sweeps what
 * no file defines any more. Unchanged objects are no-ops in the cache. */
static void apply(struct source_dir *s, char **gone, size_t ngone)
{
    size_t n = 0;
    char **paths = xmalloc((s->files.count + 1) * sizeof(*paths));
    struct strmap_iter it;
    for (struct strmap_entry *e = strmap_first(&s->files, &it); e; e = strmap_next(&s->files, &it))
        paths[n++] = e->key;
    qsort(paths, n, sizeof(*paths), cmp_str);

    for (size_t i = 0; i < ngone; i++)
        cache_mark(s->cache, gone[i]);
    for (size_t i = 0; i < n; i++)
        cache_mark(s->cache, paths[i]);

    struct strmap owner; /* "ns/name" -> path */
    strmap_init(&owner);
    for (size_t i = 0; i < n; i++) {
        const struct dir_file *f = strmap_get(&s->files, paths[i]);
        for (size_t k = 0; k < f->objs.n; k++) {
            const struct dir_object *o = &f->objs.v[k];
            size_t kl = strlen(o->ns) + strlen(o->name) + 2;
            char *key = xmalloc(kl);
            snprintf(key, kl, "%s/%s", o->ns, o->name);
            const char *first = strmap_get(&owner, key);
            if (first != NULL) {
                log_error("duplicate Service in manifests", "ns=%s svc=%s file=%s first=%s", o->ns,
                          o->name, f->path, first);
            } else {
                strmap_put(&owner, key, f->path);
                struct cache_object co = {
                    .ns = o->ns,
                    .name = o->name,
                    .uid = o->uid,
                    .version = o->version,
                    .annotation = o->annotation,
                    .origin = f->path,
                    .line = o->line,
                };
                cache_upsert(s->cache, &co);
            }
            free(key);
        }
    }
    strmap_free(&owner, NULL);

    for (size_t i = 0; i < ngone; i++)
        cache_sweep(s->cache, gone[i]);
    for (size_t i = 0; i < n; i++)
        cache_sweep(s->cache, paths[i]);
    free(paths);
}

static void watch_dir(struct source_dir *s);

void source_dir_scan(struct source_dir *s)
{
    DIR *d = opendir(s->dir);
    char **names = NULL;
    size_t nnames = 0, cap = 0;
    char **gone = NULL;
    size_t ngone = 0;
    bool changed = false;

    if (d == NULL) {
        /* Keep serving what we had: a directory that vanished is more likely being replaced
         * than meant to delete every route. */
        if (!s->dir_lost)
            log_error("cannot read source directory", "dir=%s error=%s", s->dir, strerror(errno));
        s->dir_lost = true;
        return;
    }
    if (s->dir_lost) {
        log_info("source directory is back", "dir=%s", s->dir);
        s->dir_lost = false;
        if (s->open_handles > 0)
            watch_dir(s); /* the old watch followed the old inode */
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!wanted_name(de->d_name))
            continue;
        if (nnames == cap) {
            cap = cap ? cap * 2 : 32;
            names = xrealloc(names, cap * sizeof(*names));
        }
        names[nnames++] = xstrdup(de->d_name);
    }
    closedir(d);

    struct strmap_iter it;
    for (struct strmap_entry *e = strmap_first(&s->files, &it); e; e = strmap_next(&s->files, &it))
        ((struct dir_file *)e->value)->present = false;
    for (size_t i = 0; i < nnames; i++) {
        size_t pl = strlen(s->dir) + strlen(names[i]) + 2;
        char *path = xmalloc(pl);
        snprintf(path, pl, "%s/%s", s->dir, names[i]);
        struct dir_file *f = strmap_get(&s->files, path);
        if (f == NULL) {
            f = xcalloc(1, sizeof(*f));
            f->path = path;
            strmap_put(&s->files, path, f);
        } else {
            free(path);
        }
        f->present = true;
        changed |= refresh_file(f);
        free(names[i]);
    }
    free(names);

    /* Files that are gone take their Services with them. */
    gone = xmalloc((s->files.count + 1) * sizeof(*gone));
    for (struct strmap_entry *e = strmap_first(&s->files, &it); e;
         e = strmap_next(&s->files, &it)) {
        struct dir_file *f = e->value;
        if (f->present)
            continue;
        gone[ngone++] = xstrdup(f->path);
        strmap_del(&s->files, e->key);
        file_free(f);
        changed = true;
    }
    if (changed)
        apply(s, gone, ngone);
    for (size_t i = 0; i < ngone; i++)
        free(gone[i]);
    free(gone);
    s->scans++;
}

/* ---- watching ---- */

static void on_settled(uv_timer_t *t)
{
    struct source_dir *s = container_of(t, struct source_dir, settle);
    source_dir_scan(s);
}

static void on_dir_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    struct source_dir *s = container_of(h, struct source_dir, watch);
    (void)filename;
    (void)events;
    if (status < 0) {
        log_warn("directory watch failed; rescanning on the timer only", "dir=%s error=%s", s->dir,
                 uv_strerror(status));
        uv_fs_event_stop(h);
        s->watching = false;
        return;
    }
    /* Start, never restart: a steady stream of events must not postpone the scan forever. */
    if (!uv_is_active((uv_handle_t *)&s->settle))
        uv_timer_start(&s->settle, on_settled, SOURCE_DIR_SETTLE_MS, 0);
}

/* (Re)starts the watch on the directory; without one the rescan timer still works. */
static void watch_dir(struct source_dir *s)
{
    if (uv_is_active((uv_handle_t *)&s->watch))
        uv_fs_event_stop(&s->watch);
    int rc = uv_fs_event_start(&s->watch, on_dir_event, s->dir, 0);
    s->watching = rc == 0;
    if (rc != 0)
        log_warn("cannot watch directory; rescanning on the timer only", "dir=%s error=%s", s->dir,
                 uv_strerror(rc));
}

static void on_rescan(uv_timer_t *t)
{
    struct source_dir *s = container_of(t, struct source_dir, rescan);
    source_dir_scan(s);
}

int source_dir_start(uv_loop_t *loop, const char *dir, struct cache *cache, unsigned rescan_ms,
                     struct source_dir **out)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -errno;
    closedir(d);

    struct source_dir *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->dir = xstrdup(dir);
    s->cache = cache;
    strmap_init(&s->files);
    source_dir_scan(s);

    uv_timer_init(loop, &s->rescan);
    uv_timer_init(loop, &s->settle);
    uv_fs_event_init(loop, &s->watch);
    s->open_handles = 3;
    watch_dir(s);
    if (rescan_ms == 0)
        rescan_ms = SOURCE_DIR_RESCAN_MS;
    uv_timer_start(&s->rescan, on_rescan, rescan_ms, rescan_ms);
    log_info("watching source directory", "dir=%s files=%zu services=%zu", dir, s->files.count,
             cache_count(cache));
    *out = s;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    struct source_dir *s = h->data;
    if (--s->open_handles > 0)
        return;
    strmap_free(&s->files, file_free);
    free(s->dir);
    free(s);
}

void source_dir_stop(struct source_dir *s)
{
    if (s == NULL)
        return;
    s->watch.data = s->rescan.data = s->settle.data = s;
    uv_close((uv_handle_t *)&s->watch, on_closed);
    uv_close((uv_handle_t *)&s->rescan, on_closed);
    uv_close((uv_handle_t *)&s->settle, on_closed);
}

/*
 * intents_dir.c: the I/O side of the intent engine. Reads an intents
 * directory into memory and hands the bytes to cg_intents_build() (which
 * does no I/O of its own).
 *
 * API: cg_intents_load_dir() (gateway.h), called by the CLI and by the
 * server's reload on a pool thread; it touches no global state.
 *
 * What is read: every regular file whose name ends in ".json" under dir,
 * recursively (at most DIR_MAX_DEPTH levels), skipping names that start with
 * '.' (editor swap files, .git) and symbolic links to directories (no loops).
 * Paths are "dir/sub/name.json" as given, sorted bytewise, so diagnostics and
 * the snapshot version do not depend on readdir order. Limits: each file at
 * most CG_MAX_FILE_BYTES, at most DIR_MAX_FILES files and DIR_MAX_TOTAL
 * bytes in all. Every file that cannot be read is a diagnostic (error) and
 * refuses the table, after the rest has been checked too.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway.h"

#define DIR_MAX_FILES (CG_MAX_INTENTS + 16)
#define DIR_MAX_DEPTH 16
#define DIR_MAX_TOTAL ((size_t)256 * 1024 * 1024)

typedef struct plist { char **v; size_t n, cap; int full; } plist;

static int plist_add(plist *p, const char *path)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        char **v = realloc(p->v, cap * sizeof *v);
        if (!v) return -1;
        p->v = v;
        p->cap = cap;
    }
    if (!(p->v[p->n] = strdup(path))) return -1;
    p->n++;
    return 0;
}

static int ends_with_json(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, ".json") == 0;
}

/* Collect *.json paths under dir; errors become diagnostics. */
static void walk(const char *dir, int depth, plist *p, cg_diags *d)
{
    if (depth > DIR_MAX_DEPTH) {
        cg_diags_add(d, CG_DIAG_ERROR, dir, 0, 0, "directories nested deeper than %d levels", DIR_MAX_DEPTH);
        return;
    }
    DIR *dp = opendir(dir);
    if (!dp) {
        cg_diags_add(d, CG_DIAG_ERROR, dir, 0, 0, "cannot open directory: %s", strerror(errno));
        return;
    }
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.') continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) {
            cg_diags_add(d, CG_DIAG_ERROR, dir, 0, 0, "path too long: %.60s...", e->d_name);
            continue;
        }
        struct stat st;
        if (lstat(path, &st) != 0) {
            cg_diags_add(d, CG_DIAG_ERROR, path, 0, 0, "cannot read: %s", strerror(errno));
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            walk(path, depth + 1, p, d);
            continue;
        }
        if (!ends_with_json(e->d_name)) continue;
        if (S_ISLNK(st.st_mode) && (stat(path, &st) != 0 || !S_ISREG(st.st_mode))) continue;
        if (!S_ISREG(st.st_mode)) continue;
        if (p->n >= DIR_MAX_FILES) {
            if (!p->full)
                cg_diags_add(d, CG_DIAG_ERROR, dir, 0, 0, "too many files (at most %d)", DIR_MAX_FILES);
            p->full = 1;
            continue;
        }
        if (plist_add(p, path) != 0) {
            cg_diags_add(d, CG_DIAG_ERROR, path, 0, 0, "out of memory");
            p->full = 1;
        }
    }
    closedir(dp);
}

/* The whole file, malloc'd; NULL after a diagnostic. */
static char *read_file(const char *path, size_t *len, size_t *total, cg_diags *d)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cg_diags_add(d, CG_DIAG_ERROR, path, 0, 0, "cannot read: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) != 0) {
        cg_diags_add(d, CG_DIAG_ERROR, path, 0, 0, "cannot read: %s", strerror(errno));
        goto out;
    }
    if (st.st_size > CG_MAX_FILE_BYTES) {
        cg_diags_add(d, CG_DIAG_ERROR, path, 0, 0, "file too large (%lld bytes; at most %d)",
                     (long long)st.st_size, CG_MAX_FILE_BYTES);
        goto out;
    }
    if (*total + (size_t)st.st_size > DIR_MAX_TOTAL) {
        cg_diags_add(d, CG_DIAG_ERROR, path, 0, 0, "the table is too large (more than %zu bytes in all)",
                     DIR_MAX_TOTAL);
        goto out;
    }
    /* read up to one byte past the limit: the file may grow after fstat */
    size_t cap = (size_t)st.st_size + 1, n = 0;
    buf = malloc(cap);
    if (!buf) {
        cg_diags_add(d, CG_DIAG_ERROR, path, 0, 0, "out of memory");
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            cg_diags_add(d, CG_DIAG_ERROR, path, 0, 0, "cannot read: %s", strerror(errno));
            free(buf);
            buf = NULL;
            goto out;
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n == cap) {
            /* grew since fstat: allow up to the limit, refuse past it */
            if (cap > CG_MAX_FILE_BYTES) {
                cg_diags_add(d, CG_DIAG_ERROR, path, 0, 0, "file too large (more than %d bytes)", CG_MAX_FILE_BYTES);
                free(buf);
                buf = NULL;
                goto out;
            }
            size_t ncap = cap * 2 > CG_MAX_FILE_BYTES + 1 ? CG_MAX_FILE_BYTES + 1 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                cg_diags_add(d, CG_DIAG_ERROR, path, 0, 0, "out of memory");
                free(buf);
                buf = NULL;
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
    }
    *len = n;
    *total += n;
out:
    close(fd);
    return buf;
}

static int path_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Contract (gateway.h): dir is read now and not kept. On success *out owns a
 * new snapshot (refs = 1); on failure *out is untouched. Diagnostics, for
 * I/O problems and for the table's content, are appended to d.
 */
int cg_intents_load_dir(const char *dir, const cg_build_opts *opts, cg_intents **out, cg_diags *d)
{
    if (!dir || !out || !d) return -1;
    char root[PATH_MAX];
    size_t rl = strlen(dir);
    while (rl > 1 && dir[rl - 1] == '/') rl--;
    if (rl >= sizeof root) {
        cg_diags_add(d, CG_DIAG_ERROR, dir, 0, 0, "path too long");
        return -1;
    }
    memcpy(root, dir, rl);
    root[rl] = '\0';

    size_t io_errors_before = d->errors;
    plist p = { 0 };
    struct stat st;
    if (stat(root, &st) != 0) cg_diags_add(d, CG_DIAG_ERROR, root, 0, 0, "cannot open directory: %s", strerror(errno));
    else if (!S_ISDIR(st.st_mode)) cg_diags_add(d, CG_DIAG_ERROR, root, 0, 0, "not a directory");
    else walk(strcmp(root, "/") == 0 ? "" : root, 0, &p, d);
    if (p.n) qsort(p.v, p.n, sizeof *p.v, path_cmp);

    cg_intents_file *files = calloc(p.n ? p.n : 1, sizeof *files);
    size_t nf = 0, total = 0;
    int rc = -1;
    if (!files) {
        cg_diags_add(d, CG_DIAG_ERROR, root, 0, 0, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < p.n; i++) {
        size_t len = 0;
        char *data = read_file(p.v[i], &len, &total, d);
        if (!data) continue;
        files[nf++] = (cg_intents_file){ .path = p.v[i], .data = data, .len = len };
    }
    int io_failed = d->errors > io_errors_before;
    cg_intents *t = NULL;
    if (nf || !io_failed) rc = cg_intents_build(files, nf, opts, &t, d);
    if (rc == 0 && io_failed) {
        cg_intents_unref(t);
        rc = -1;
    } else if (rc == 0) {
        *out = t;
    }
out:
    for (size_t i = 0; i < nf; i++) free((char *)files[i].data);
    free(files);
    for (size_t i = 0; i < p.n; i++) free(p.v[i]);
    free(p.v);
    return rc;
}

/*
 * intents_live.c: the intent table while the gateway runs (intents_live.h).
 *
 * One reload at a time, in three steps:
 *   live_begin()  (loop)  the waiters of "next" become those of this reload;
 *                         today's date is fixed (review-date warnings)
 *   live_work()   (pool)  cg_intents_load_dir(): read, validate, index,
 *                         train; with the watcher on, also the list of
 *                         directories to watch (so no directory walk runs
 *                         on the loop thread after the start)
 *   live_after()  (loop)  swap gw->intents or keep it; record the result
 *                         (version, warnings or errors: at most LIVE_MAX_DIAGS
 *                         kept, the totals counted), log every diagnostic,
 *                         count civicgate_intent_reloads_total{result} and
 *                         set the gauges civicgate_intents_reload_failed,
 *                         civicgate_intents_loaded, civicgate_intents_loaded_timestamp_seconds;
 *                         answer the waiters; start the next reload if asked.
 *
 * The watcher (intents.watch): libuv's fs events are inotify on Linux, which
 * does not recurse, so there is one uv_fs_event_t per directory under
 * intents.dir (at most LIVE_MAX_DIRS, names starting with '.' skipped as the
 * loader does). Every event (but those on '.' names: editors' swap files)
 * restarts a debounce timer of intents.watch_debounce_ms; when it fires, a
 * reload with trigger "watch". After each reload the watched set follows
 * the directories found: new ones are watched, gone ones closed; when a new
 * directory appears one more debounced reload runs, for files written into
 * it before its watch began.
 *
 * Version: the engine's content hash of the files (cg_intents.version:
 * FNV-1a over the sorted paths and bytes), computed on the pool thread.
 *
 * Extending: a new field of the info goes in cg_intents_live_info() and
 * docs/admin.md (and docs/openapi.yaml).
 */
#include "intents_live.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "metrics.h"

#define LIVE_MAX_DIAGS  200      /* warnings / errors kept for the API */
#define LIVE_MAX_DIRS   256      /* directories watched */
#define LIVE_MAX_DEPTH  16       /* as the loader's */

typedef struct live_diag { char *path; int line, col; char *msg; } live_diag;
typedef struct live_diags { live_diag v[LIVE_MAX_DIAGS]; size_t n, total; } live_diags;

typedef struct live_waiter {
    struct live_waiter *next;
    cg_intents_live_done done;
    void *ud;
} live_waiter;

typedef struct live_watch {
    uv_fs_event_t h;
    cg_intents_live *l;
    int seen;                     /* still found by the last scan */
    char path[];
} live_watch;

typedef struct dir_list { char **v; size_t n; int full; } dir_list;

struct cg_intents_live {
    cg_gateway *gw;
    /* what serves */
    char loaded_at[32];
    live_diags warnings;
    /* the last reload */
    int have_last;
    cg_live_result last_result;
    char last_at[32], last_trigger[16];
    live_diags errors;            /* of the last refused reload */
    int have_error;
    char error_at[32], error_trigger[16];
    /* the reload in flight */
    uv_work_t work;
    int reloading, again;
    char trigger[16], next_trigger[16];
    live_waiter *current, *next;  /* answered by this reload / by the next one */
    char today[11];
    cg_intents *w_table;          /* pool thread's results */
    cg_diags w_diags;
    int w_rc;
    dir_list w_dirs;
    /* the watcher */
    int watching;
    live_watch *watches[LIVE_MAX_DIRS];
    size_t nwatches;
    uv_timer_t debounce;
    int debounce_open;
    int stopping;
    size_t closing;               /* handles whose close callback is due */
};

/* ---- small helpers ------------------------------------------------------ */

static void live_today(char out[11])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

static void diags_clear(live_diags *k)
{
    for (size_t i = 0; i < k->n; i++) {
        free(k->v[i].path);
        free(k->v[i].msg);
    }
    k->n = k->total = 0;
}

/* Keeps the diagnostics of one level (copies, at most LIVE_MAX_DIAGS). */
static void diags_keep(live_diags *k, const cg_diags *d, cg_diag_level lvl)
{
    diags_clear(k);
    for (size_t i = 0; d && i < d->n; i++) {
        const cg_diag *x = &d->v[i];
        if (x->level != lvl) continue;
        k->total++;
        if (k->n >= LIVE_MAX_DIAGS) continue;
        live_diag *y = &k->v[k->n];
        y->path = strdup(x->path ? x->path : "");
        y->msg = strdup(x->msg ? x->msg : "");
        if (!y->path || !y->msg) {
            free(y->path);
            free(y->msg);
            continue;
        }
        y->line = x->line;
        y->col = x->col;
        k->n++;
    }
}

static cJSON *diags_json(const live_diags *k)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < k->n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o) break;
        cJSON_AddStringToObject(o, "path", k->v[i].path);
        cJSON_AddNumberToObject(o, "line", k->v[i].line);
        cJSON_AddNumberToObject(o, "column", k->v[i].col);
        cJSON_AddStringToObject(o, "message", k->v[i].msg);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

void cg_intents_live_log_diags(const cg_diags *d)
{
    char pos[32];
    for (size_t i = 0; i < d->n; i++) {
        const cg_diag *x = &d->v[i];
        snprintf(pos, sizeof pos, "%d:%d", x->line, x->col);
        cg_log(x->level == CG_DIAG_ERROR ? CG_LOG_ERROR : CG_LOG_WARN, "intent_diagnostic", "path",
               x->path ? x->path : "", "at", pos, "msg", x->msg ? x->msg : "", NULL);
    }
}

/* loaded: a table was just swapped in (or loaded at start). */
static void set_gauges(const cg_intents_live *l, int loaded)
{
    cg_metrics_set_gauge("civicgate_intents_reload_failed", l->have_error ? 1 : 0);
    if (l->gw->intents) cg_metrics_set_gauge("civicgate_intents_loaded", (double)l->gw->intents->nintents);
    if (loaded) cg_metrics_set_gauge("civicgate_intents_loaded_timestamp_seconds", (double)time(NULL));
}

/* ---- directories (pool thread and start) -------------------------------- */

static void dirs_free(dir_list *d)
{
    for (size_t i = 0; i < d->n; i++) free(d->v[i]);
    free(d->v);
    memset(d, 0, sizeof *d);
}

static void dirs_add(dir_list *d, const char *path)
{
    if (d->n >= LIVE_MAX_DIRS) {
        d->full = 1;
        return;
    }
    if (!d->v && !(d->v = calloc(LIVE_MAX_DIRS, sizeof *d->v))) return;
    if ((d->v[d->n] = strdup(path))) d->n++;
}

/* path and every directory under it, as the loader walks them. */
static void dirs_scan(const char *path, int depth, dir_list *d)
{
    if (depth > LIVE_MAX_DEPTH || d->full) return;
    dirs_add(d, path);
    DIR *dp = opendir(path);
    if (!dp) return;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.') continue;
        char sub[PATH_MAX];
        if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub) continue;
        struct stat st;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) dirs_scan(sub, depth + 1, d);
    }
    closedir(dp);
}

/* ---- the watcher (loop thread) ------------------------------------------ */

static void live_maybe_free(cg_intents_live *l);
static void live_debounce_fire(uv_timer_t *t);

static void watch_closed(uv_handle_t *h)
{
    live_watch *w = h->data;
    cg_intents_live *l = w->l;
    free(w);
    l->closing--;
    live_maybe_free(l);
}

static void watch_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    live_watch *w = h->data;
    cg_intents_live *l = w->l;
    (void)events;
    if (status < 0 || l->stopping) return;
    if (filename && filename[0] == '.') return;   /* the loader skips these too */
    uv_timer_start(&l->debounce, live_debounce_fire, (uint64_t)l->gw->cfg->intents_watch_debounce_ms, 0);
}

/* Watch the directories of d; stop watching those no longer in it. Returns
 * the number of directories newly watched. */
static size_t watch_apply(cg_intents_live *l, const dir_list *d)
{
    size_t added = 0;
    for (size_t i = 0; i < l->nwatches; i++) l->watches[i]->seen = 0;
    for (size_t j = 0; j < d->n; j++) {
        size_t i;
        for (i = 0; i < l->nwatches; i++)
            if (!strcmp(l->watches[i]->path, d->v[j])) break;
        if (i < l->nwatches) {
            l->watches[i]->seen = 1;
            continue;
        }
        if (l->nwatches >= LIVE_MAX_DIRS) break;
        size_t n = strlen(d->v[j]);
        live_watch *w = calloc(1, sizeof *w + n + 1);
        if (!w) break;
        memcpy(w->path, d->v[j], n + 1);
        w->l = l;
        w->seen = 1;
        uv_fs_event_init(l->gw->loop, &w->h);
        w->h.data = w;
        int rc = uv_fs_event_start(&w->h, watch_event, w->path, 0);
        if (rc != 0) {
            cg_log(CG_LOG_WARN, "intents_watch_failed", "dir", w->path, "reason", uv_strerror(rc), NULL);
            l->closing++;
            uv_close((uv_handle_t *)&w->h, watch_closed);
            continue;
        }
        l->watches[l->nwatches++] = w;
        added++;
    }
    for (size_t i = 0; i < l->nwatches;) {
        if (l->watches[i]->seen) {
            i++;
            continue;
        }
        live_watch *w = l->watches[i];
        l->watches[i] = l->watches[--l->nwatches];
        uv_fs_event_stop(&w->h);
        l->closing++;
        uv_close((uv_handle_t *)&w->h, watch_closed);
    }
    if (d->full)
        cg_log(CG_LOG_WARN, "intents_watch_partial", "reason", "too many directories", "watched",
               "the first 256", NULL);
    return added;
}

static void live_debounce_fire(uv_timer_t *t)
{
    cg_intents_live *l = t->data;
    if (!l->stopping) cg_intents_live_reload(l, "watch", NULL, NULL);
}

/* ---- reloading ---------------------------------------------------------- */

static void live_begin(cg_intents_live *l);

static void live_work(uv_work_t *req)
{
    cg_intents_live *l = req->data;
    cg_build_opts opts = {.today = l->today};
    l->w_table = NULL;
    memset(&l->w_diags, 0, sizeof l->w_diags);
    l->w_rc = cg_intents_load_dir(l->gw->cfg->intents_dir, &opts, &l->w_table, &l->w_diags);
    if (l->watching) dirs_scan(l->gw->cfg->intents_dir, 0, &l->w_dirs);
}

static void answer(live_waiter *w, cg_live_result r)
{
    while (w) {
        live_waiter *n = w->next;
        if (w->done) w->done(w->ud, r);
        free(w);
        w = n;
    }
}

static void live_after(uv_work_t *req, int status)
{
    cg_intents_live *l = req->data;
    cg_gateway *gw = l->gw;
    l->reloading = 0;
    cg_live_result r;
    char n[32];
    if (l->stopping || gw->stopping) {
        if (l->w_table) cg_intents_unref(l->w_table);
        r = CG_LIVE_STOPPED;
    } else if (status == 0 && l->w_rc == 0 && l->w_table) {
        cg_intents *old = gw->intents;
        gw->intents = l->w_table;            /* the swap: one pointer, loop thread */
        if (old) cg_intents_unref(old);
        cg_log_now_iso(l->loaded_at);
        diags_keep(&l->warnings, &l->w_diags, CG_DIAG_WARNING);
        l->have_error = 0;
        diags_clear(&l->errors);
        cg_intents_live_log_diags(&l->w_diags);
        snprintf(n, sizeof n, "%zu", gw->intents->nintents);
        cg_log(CG_LOG_INFO, "intents_reloaded", "trigger", l->trigger, "intents", n, "version",
               gw->intents->version, NULL);
        cg_metrics_intent_reload(1);
        r = CG_LIVE_OK;
    } else {
        if (l->w_table) cg_intents_unref(l->w_table);
        diags_keep(&l->errors, &l->w_diags, CG_DIAG_ERROR);
        if (l->errors.total == 0 && l->errors.n < LIVE_MAX_DIAGS) {   /* cannot happen; say something */
            l->errors.v[0].path = strdup(gw->cfg->intents_dir);
            l->errors.v[0].msg = strdup(status ? "the reload could not run" : "the table could not be built");
            if (l->errors.v[0].path && l->errors.v[0].msg) l->errors.n = l->errors.total = 1;
        }
        l->have_error = 1;
        cg_log_now_iso(l->error_at);
        snprintf(l->error_trigger, sizeof l->error_trigger, "%s", l->trigger);
        cg_intents_live_log_diags(&l->w_diags);
        snprintf(n, sizeof n, "%zu", l->errors.total);
        cg_log(CG_LOG_ERROR, "intents_reload_failed", "trigger", l->trigger, "errors", n, "kept",
               "previous table", NULL);
        cg_metrics_intent_reload(0);
        r = CG_LIVE_REFUSED;
    }
    l->w_table = NULL;
    cg_diags_free(&l->w_diags);
    if (r != CG_LIVE_STOPPED) {
        l->have_last = 1;
        l->last_result = r;
        cg_log_now_iso(l->last_at);
        snprintf(l->last_trigger, sizeof l->last_trigger, "%s", l->trigger);
        set_gauges(l, r == CG_LIVE_OK);
        if (l->watching && l->w_dirs.n && watch_apply(l, &l->w_dirs) > 0)
            uv_timer_start(&l->debounce, live_debounce_fire, (uint64_t)gw->cfg->intents_watch_debounce_ms, 0);
    }
    dirs_free(&l->w_dirs);
    live_waiter *w = l->current;
    l->current = NULL;
    answer(w, r);
    if (l->stopping) {
        answer(l->next, CG_LIVE_STOPPED);
        l->next = NULL;
        l->again = 0;
        live_maybe_free(l);
        return;
    }
    if (l->again) {
        l->again = 0;
        live_begin(l);
    }
}

static void live_begin(cg_intents_live *l)
{
    l->reloading = 1;
    l->current = l->next;
    l->next = NULL;
    snprintf(l->trigger, sizeof l->trigger, "%s", l->next_trigger[0] ? l->next_trigger : "sighup");
    l->next_trigger[0] = '\0';
    live_today(l->today);
    l->work.data = l;
    cg_log(CG_LOG_INFO, "intents_reloading", "dir", l->gw->cfg->intents_dir, "trigger", l->trigger, NULL);
    if (uv_queue_work(l->gw->loop, &l->work, live_work, live_after) != 0) {
        l->reloading = 0;
        cg_log(CG_LOG_ERROR, "intents_reload_failed", "reason", "cannot queue work", NULL);
        cg_metrics_intent_reload(0);
        live_waiter *w = l->current;
        l->current = NULL;
        answer(w, CG_LIVE_STOPPED);
    }
}

void cg_intents_live_reload(cg_intents_live *l, const char *trigger, cg_intents_live_done done, void *ud)
{
    if (!l || l->stopping || l->gw->stopping) {
        if (done) done(ud, CG_LIVE_STOPPED);
        return;
    }
    live_waiter *w = calloc(1, sizeof *w);
    if (w) {
        w->done = done;
        w->ud = ud;
        w->next = l->next;
        l->next = w;
    } else if (done) {
        done(ud, CG_LIVE_STOPPED);
        return;
    }
    if (!l->next_trigger[0]) snprintf(l->next_trigger, sizeof l->next_trigger, "%s", trigger ? trigger : "?");
    if (l->reloading) {
        l->again = 1;
        return;
    }
    live_begin(l);
}

/* ---- start, info, stop -------------------------------------------------- */

cg_intents_live *cg_intents_live_start(cg_gateway *gw, const cg_diags *d)
{
    cg_intents_live *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->gw = gw;
    cg_log_now_iso(l->loaded_at);
    diags_keep(&l->warnings, d, CG_DIAG_WARNING);
    uv_timer_init(gw->loop, &l->debounce);
    l->debounce.data = l;
    l->debounce_open = 1;
    set_gauges(l, 1);
    if (gw->cfg->intents_watch) {
        l->watching = 1;
        dir_list dl = {0};
        dirs_scan(gw->cfg->intents_dir, 0, &dl);
        watch_apply(l, &dl);
        dirs_free(&dl);
        char n[16], ms[16];
        snprintf(n, sizeof n, "%zu", l->nwatches);
        snprintf(ms, sizeof ms, "%d", gw->cfg->intents_watch_debounce_ms);
        cg_log(CG_LOG_INFO, "intents_watching", "dir", gw->cfg->intents_dir, "directories", n, "debounce_ms", ms,
               NULL);
    }
    return l;
}

cJSON *cg_intents_live_info(const cg_intents_live *l)
{
    const cg_intents *t = l->gw->intents;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "version", t ? t->version : "");
    cJSON_AddStringToObject(o, "loaded_at", l->loaded_at);
    cJSON_AddNumberToObject(o, "intents", t ? (double)t->nintents : 0);
    cJSON *per = cJSON_AddObjectToObject(o, "intents_per_language");
    cJSON *langs = cJSON_AddArrayToObject(o, "languages");
    size_t nl = t ? t->settings.nlanguages : 0;
    for (size_t i = 0; i < nl && i < sizeof t->per_lang_count / sizeof t->per_lang_count[0]; i++) {
        if (per) cJSON_AddNumberToObject(per, t->settings.languages[i], (double)t->per_lang_count[i]);
        if (langs) cJSON_AddItemToArray(langs, cJSON_CreateString(t->settings.languages[i]));
    }
    cJSON_AddItemToObject(o, "warnings", diags_json(&l->warnings));
    cJSON_AddNumberToObject(o, "warnings_total", (double)l->warnings.total);
    if (l->have_last) {
        cJSON *r = cJSON_AddObjectToObject(o, "last_reload");
        if (r) {
            cJSON_AddStringToObject(r, "at", l->last_at);
            cJSON_AddStringToObject(r, "trigger", l->last_trigger);
            cJSON_AddStringToObject(r, "result", l->last_result == CG_LIVE_OK ? "ok" : "refused");
        }
    } else {
        cJSON_AddNullToObject(o, "last_reload");
    }
    if (l->have_error) {
        cJSON *e = cJSON_AddObjectToObject(o, "last_error");
        if (e) {
            cJSON_AddStringToObject(e, "at", l->error_at);
            cJSON_AddStringToObject(e, "trigger", l->error_trigger);
            cJSON_AddItemToObject(e, "errors", diags_json(&l->errors));
            cJSON_AddNumberToObject(e, "errors_total", (double)l->errors.total);
        }
    } else {
        cJSON_AddNullToObject(o, "last_error");
    }
    cJSON_AddBoolToObject(o, "reloading", l->reloading);
    cJSON_AddBoolToObject(o, "watch", l->watching);
    return o;
}

cJSON *cg_intents_live_last(const cg_intents_live *l)
{
    const cg_intents *t = l->gw->intents;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    if (l->have_last && l->last_result == CG_LIVE_REFUSED) {
        cJSON_AddStringToObject(o, "result", "refused");
        cJSON_AddStringToObject(o, "error", "the intent table has errors; the previous table keeps serving");
        cJSON_AddItemToObject(o, "errors", diags_json(&l->errors));
        cJSON_AddNumberToObject(o, "errors_total", (double)l->errors.total);
        cJSON_AddStringToObject(o, "version", t ? t->version : "");
        return o;
    }
    cJSON_AddStringToObject(o, "result", "ok");
    cJSON_AddStringToObject(o, "version", t ? t->version : "");
    cJSON_AddStringToObject(o, "loaded_at", l->loaded_at);
    cJSON_AddNumberToObject(o, "intents", t ? (double)t->nintents : 0);
    cJSON_AddNumberToObject(o, "warnings_total", (double)l->warnings.total);
    return o;
}

static void debounce_closed(uv_handle_t *h)
{
    cg_intents_live *l = h->data;
    l->closing--;
    live_maybe_free(l);
}

static void live_maybe_free(cg_intents_live *l)
{
    if (!l->stopping || l->reloading || l->closing) return;
    diags_clear(&l->warnings);
    diags_clear(&l->errors);
    free(l);
}

void cg_intents_live_stop(cg_intents_live *l)
{
    if (!l || l->stopping) return;
    l->stopping = 1;
    if (l->debounce_open) {
        uv_timer_stop(&l->debounce);
        l->closing++;
        uv_close((uv_handle_t *)&l->debounce, debounce_closed);
        l->debounce_open = 0;
    }
    for (size_t i = 0; i < l->nwatches; i++) {
        uv_fs_event_stop(&l->watches[i]->h);
        l->closing++;
        uv_close((uv_handle_t *)&l->watches[i]->h, watch_closed);
    }
    l->nwatches = 0;
    if (!l->reloading) {
        answer(l->next, CG_LIVE_STOPPED);
        l->next = NULL;
    }
    live_maybe_free(l);
}

/*
 * test_intents_live.c: gateway/intents_live.c on a real libuv loop and a
 * copy of tests/fixtures/loader/valid/ in a temporary directory: reloads
 * asked for while one runs are answered, a broken file is refused with its
 * path:line:column and the table in gw->intents stays the same snapshot,
 * the inotify watcher (subdirectories included) reloads by itself, and the
 * module closes its handles on stop (the loop closes empty; ASan checks
 * leaks). No Redis: the module needs none.
 *
 * Waiting is for events (a reload's answer, the watcher's reload), with a
 * guard against hanging only; no duration is asserted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "intents_live.h"

#define FIX CG_SOURCE_DIR "/tests/fixtures/loader/valid"
#define GUARD_MS 60000   /* a hang fails the test instead of blocking ctest */

static uv_loop_t loop;
static cg_config cfg;
static cg_gateway gw;
static char dir[64];

typedef struct answers { int n; cg_live_result r[8]; } answers;

static void on_done(void *ud, cg_live_result r)
{
    answers *a = ud;
    if (a->n < 8) a->r[a->n] = r;
    a->n++;
}

static void write_file(const char *rel, const char *text)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Runs the loop until cond(ud) holds; fails after GUARD_MS. */
static void run_until(int (*cond)(void *), void *ud)
{
    uint64_t end = uv_hrtime() / 1000000 + GUARD_MS;
    while (!cond(ud)) {
        uv_run(&loop, UV_RUN_ONCE);
        if (uv_hrtime() / 1000000 > end) fail_msg("timed out waiting (guard)");
    }
}

static int answered(void *ud) { return ((answers *)ud)->n > 0; }

/* The intent id is in the table serving. */
static int serves(void *ud) { return cg_intents_find(gw.intents, ud) != NULL; }
static int answered3(void *ud) { return ((answers *)ud)->n >= 3; }

/* info.last_reload is {trigger: "watch", result} and differs from *prev_at. */
typedef struct watch_wait { const char *result; char at[40]; } watch_wait;

static int watched(void *ud)
{
    watch_wait *w = ud;
    cJSON *i = cg_intents_live_info(gw.live);
    const cJSON *lr = cJSON_GetObjectItemCaseSensitive(i, "last_reload");
    const char *trig = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(lr, "trigger"));
    const char *res = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(lr, "result"));
    const char *at = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(lr, "at"));
    int ok = trig && !strcmp(trig, "watch") && res && !strcmp(res, w->result) && at && strcmp(at, w->at) != 0 &&
             !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(i, "reloading"));
    cJSON_Delete(i);
    return ok;
}

static void last_at(char out[40])
{
    cJSON *i = cg_intents_live_info(gw.live);
    const char *at =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(i, "last_reload"), "at"));
    snprintf(out, 40, "%s", at ? at : "");
    cJSON_Delete(i);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/cg-live-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char cmd[256];
    snprintf(cmd, sizeof cmd, "cp -r '%s/.' '%s/'", FIX, dir);
    assert_int_equal(system(cmd), 0);
    cg_config_defaults(&cfg);
    char err[256];
    const char *json = "{\"intents\":{\"watch\":true,\"watch_debounce_ms\":50}}";
    assert_int_equal(cg_config_parse(&cfg, json, strlen(json), "t", err, sizeof err), 0);
    free(cfg.intents_dir);
    cfg.intents_dir = strdup(dir);
    uv_loop_init(&loop);
    memset(&gw, 0, sizeof gw);
    gw.loop = &loop;
    gw.cfg = &cfg;
    cg_build_opts opts = {0};
    cg_diags d = {0};
    assert_int_equal(cg_intents_load_dir(dir, &opts, &gw.intents, &d), 0);
    gw.live = cg_intents_live_start(&gw, &d);
    cg_diags_free(&d);
    assert_non_null(gw.live);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cg_intents_live_stop(gw.live);
    gw.live = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);          /* the watcher's handles close */
    assert_int_equal(uv_loop_close(&loop), 0);
    cg_intents_unref(gw.intents);
    cg_config_free(&cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void test_reloads(void **state)
{
    (void)state;
    cJSON *info = cg_intents_live_info(gw.live);
    char v0[32];
    snprintf(v0, sizeof v0, "%s", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(info, "version")));
    assert_string_equal(v0, gw.intents->version);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(info, "last_reload")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(info, "watch")));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(info, "intents")->valueint, (int)gw.intents->nintents);
    cJSON_Delete(info);

    /* three requests at once: each answered, the same files give the same version */
    answers a = {0};
    cg_intents_live_reload(gw.live, "api", on_done, &a);
    cg_intents_live_reload(gw.live, "api", on_done, &a);
    cg_intents_live_reload(gw.live, "sighup", on_done, &a);
    assert_int_equal(a.n, 0);                /* never before return */
    run_until(answered3, &a);
    assert_int_equal(a.n, 3);
    for (int i = 0; i < 3; i++) assert_int_equal(a.r[i], CG_LIVE_OK);
    assert_string_equal(gw.intents->version, v0);

    /* a broken file: refused with its position; the very same snapshot serves */
    cg_intents *before = gw.intents;
    write_file("city/broken.json", "{\n  \"id\": \"broken\",\n  \"answer\": ,\n}\n");
    answers b = {0};
    cg_intents_live_reload(gw.live, "api", on_done, &b);
    run_until(answered, &b);
    assert_int_equal(b.r[0], CG_LIVE_REFUSED);
    assert_ptr_equal(gw.intents, before);
    cJSON *last = cg_intents_live_last(gw.live);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "result")), "refused");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "version")), v0);
    const cJSON *e0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(last, "errors"), 0);
    assert_non_null(e0);
    char path[128];
    snprintf(path, sizeof path, "%s/city/broken.json", dir);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e0, "path")), path);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(e0, "line")->valueint, 3);
    assert_true(cJSON_GetObjectItemCaseSensitive(e0, "column")->valueint > 0);
    cJSON_Delete(last);
    info = cg_intents_live_info(gw.live);
    assert_false(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(info, "last_error")));
    cJSON_Delete(info);

    /* the watcher: removing the file reloads by itself, and the table is good again */
    watch_wait w = {.result = "ok"};
    last_at(w.at);
    char p[128];
    snprintf(p, sizeof p, "%s/city/broken.json", dir);
    assert_int_equal(unlink(p), 0);
    run_until(watched, &w);
    assert_ptr_not_equal(gw.intents, before);
    assert_string_equal(gw.intents->version, v0);
    info = cg_intents_live_info(gw.live);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(info, "last_error")));
    cJSON_Delete(info);

    /* a new subdirectory, then a new intent in it: watched too */
    size_t n0 = gw.intents->nintents;
    snprintf(p, sizeof p, "%s/new", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    last_at(w.at);
    run_until(watched, &w);                  /* the directory's creation */
    write_file("new/parking.json",
               "{\"id\": \"parking\", \"examples\": {\"en\": [\"parking permit\"], \"es\": [\"permiso de estacionar\"]},\n"
               " \"answer\": {\"en\": \"Parking permits: city hall.\", \"es\": \"Permisos: ayuntamiento.\"}}\n");
    run_until(serves, "parking");
    assert_int_equal(gw.intents->nintents, n0 + 1);
    assert_string_not_equal(gw.intents->version, v0);

    /* files whose names start with '.' do not trigger anything: nothing to
     * wait for, so only checked not to break the next reload */
    write_file(".editor.swp", "x");
    answers c = {0};
    cg_intents_live_reload(gw.live, "api", on_done, &c);
    run_until(answered, &c);
    assert_int_equal(c.r[0], CG_LIVE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reloads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

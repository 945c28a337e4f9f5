/*
 * test_webchat.c: the web-chat frame translator against its case tables.
 *
 *   tests/connectors/webchat/parse/<case>.json   {"name", "user", "frame": <object>
 *       | "<raw text>" or "frame_hex", "expect":{"status":"ok"|"bad_request"|
 *       "too_large", "reason_contains"?, "kind"?, "token"?, "lang"?, "msg"?:
 *       {"kind","user","msg_id","text"?,"payload"?}}}
 *   tests/connectors/webchat/render/cases.json    [{"name", "render":"reply"|
 *       "welcome"|"error", "input":{...}, "expect": <the frame as JSON>}]
 *   tests/connectors/webchat/users.json           [{"token","user"}] with the user
 *       ids computed outside C (Python hashlib) from the documented rule
 *
 * Object frames are serialised compactly (cJSON_PrintUnformatted), so a case
 * can sit exactly on the 8192-byte limit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "civicgate/webchat.h"

#define CASES CG_SOURCE_DIR "/tests/connectors/webchat"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    if (b) b[n] = '\0';
    return b;
}

static cJSON *load(const char *path)
{
    char *s = slurp(path);
    if (!s) fail_msg("cannot read %s", path);
    cJSON *c = cJSON_Parse(s);
    free(s);
    if (!c) fail_msg("%s is not JSON", path);
    return c;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static const char *status_name(cg_err e)
{
    switch (e) {
    case CG_OK: return "ok";
    case CG_E_BAD_REQUEST: return "bad_request";
    case CG_E_TOO_LARGE: return "too_large";
    case CG_E_INTERNAL: return "internal";
    default: return "other";
    }
}

static const char *const kind_names[] = { "hello", "message", "button", "ping" };

static void check_str(const char *cname, const char *field, const char *want, const char *got)
{
    if (!want && !got) return;
    if (!want || !got || strcmp(want, got) != 0)
        fail_msg("%s: %s: want %.80s, got %.80s", cname, field, want ? want : "NULL", got ? got : "NULL");
}

static const char *opt_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void run_parse_case(const char *path)
{
    cJSON *c = load(path);
    const char *cname = opt_str(c, "name");
    const cJSON *frame = cJSON_GetObjectItem(c, "frame");
    char *data;
    size_t len;
    if (opt_str(c, "frame_hex")) {
        const char *hex = opt_str(c, "frame_hex");
        len = strlen(hex) / 2;
        data = malloc(len + 1);
        for (size_t i = 0; i < len; i++) {
            unsigned v;
            sscanf(hex + 2 * i, "%2x", &v);
            data[i] = (char)v;
        }
    } else if (cJSON_IsString(frame)) {
        data = strdup(frame->valuestring);
        len = strlen(data);
    } else {
        data = cJSON_PrintUnformatted(frame);
        len = strlen(data);
    }
    /* not NUL-terminated: the parser must honour len */
    char *exact = malloc(len ? len : 1);
    memcpy(exact, data, len);
    free(data);

    cg_wc_frame out;
    memset(&out, 0x5A, sizeof out);
    char reason[128] = "";
    cg_err e = cg_webchat_parse(exact, len, opt_str(c, "user"), &out, reason, sizeof reason);
    const cJSON *x = cJSON_GetObjectItem(c, "expect");
    if (strcmp(status_name(e), opt_str(x, "status")) != 0)
        fail_msg("%s: status: want %s, got %s (%s)", cname, opt_str(x, "status"), status_name(e), reason);
    if (opt_str(x, "reason_contains") && !strstr(reason, opt_str(x, "reason_contains")))
        fail_msg("%s: reason \"%s\" lacks \"%s\"", cname, reason, opt_str(x, "reason_contains"));
    if (e == CG_OK) {
        check_str(cname, "kind", opt_str(x, "kind"), kind_names[out.kind]);
        if (opt_str(x, "token")) check_str(cname, "token", opt_str(x, "token"), out.token);
        if (opt_str(x, "lang")) check_str(cname, "lang", opt_str(x, "lang"), out.lang);
        const cJSON *m = cJSON_GetObjectItem(x, "msg");
        if (m) {
            check_str(cname, "msg.kind", opt_str(m, "kind"), out.msg.kind == CG_MSG_TEXT ? "text"
                                                        : out.msg.kind == CG_MSG_BUTTON ? "button" : "?");
            check_str(cname, "channel", "webchat", out.msg.channel);
            check_str(cname, "user", opt_str(m, "user"), out.msg.user);
            check_str(cname, "msg_id", opt_str(m, "msg_id"), out.msg.msg_id);
            check_str(cname, "text", opt_str(m, "text"), out.msg.text);
            check_str(cname, "payload", opt_str(m, "payload"), out.msg.payload);
        } else {
            assert_null(out.msg.text);
            assert_null(out.msg.payload);
        }
    } else {
        assert_null(out.msg.text);
        assert_null(out.msg.payload);
    }
    cg_msg_free(&out.msg);
    free(exact);
    cJSON_Delete(c);
}

static void test_parse_cases(void **state)
{
    (void)state;
    const char *dir = CASES "/parse";
    DIR *d = opendir(dir);
    assert_non_null(d);
    char *names[256];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".json") == 0) {
            names[n] = malloc(strlen(dir) + l + 2);
            sprintf(names[n++], "%s/%s", dir, e->d_name);
        }
    }
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_str);
    assert_true(n >= 20);
    for (size_t i = 0; i < n; i++) { run_parse_case(names[i]); free(names[i]); }
    print_message("%zu web-chat parse cases passed\n", n);
}

static void test_render_cases(void **state)
{
    (void)state;
    cJSON *all = load(CASES "/render/cases.json");
    const cJSON *c;
    size_t n = 0;
    cJSON_ArrayForEach(c, all) {
        const char *cname = opt_str(c, "name"), *what = opt_str(c, "render");
        const cJSON *in = cJSON_GetObjectItem(c, "input");
        char *got = NULL;
        if (strcmp(what, "reply") == 0) {
            const cJSON *jr = cJSON_GetObjectItem(in, "reply");
            cg_reply r;
            memset(&r, 0, sizeof r);
            r.text = opt_str(jr, "text") ? strdup(opt_str(jr, "text")) : NULL;
            r.from_agent = cJSON_IsTrue(cJSON_GetObjectItem(jr, "from_agent"));
            const cJSON *b;
            cJSON_ArrayForEach(b, cJSON_GetObjectItem(jr, "buttons")) {
                cg_reply_btn *rb = &r.buttons[r.nbuttons++];
                rb->title = strdup(opt_str(b, "title"));
                if (opt_str(b, "payload")) rb->payload = strdup(opt_str(b, "payload"));
                if (opt_str(b, "url")) rb->url = strdup(opt_str(b, "url"));
            }
            got = cg_webchat_render_reply(&r, opt_str(in, "lang"));
            cg_reply_free(&r);
        } else if (strcmp(what, "welcome") == 0) {
            got = cg_webchat_render_welcome(opt_str(in, "token"), opt_str(in, "history"));
        } else {
            got = cg_webchat_render_error(opt_str(in, "reason"));
        }
        if (!got) fail_msg("%s: NULL", cname);
        cJSON *g = cJSON_Parse(got);
        if (!g || !cJSON_Compare(g, cJSON_GetObjectItem(c, "expect"), 1)) {
            char *want = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "expect"));
            fail_msg("%s:\n want %s\n got  %s", cname, want, got);
        }
        cJSON_Delete(g);
        free(got);
        n++;
    }
    assert_true(n >= 5);
    cJSON_Delete(all);
}

static void test_tokens_and_users(void **state)
{
    (void)state;
    cJSON *all = load(CASES "/users.json");
    const cJSON *c;
    cJSON_ArrayForEach(c, all) {
        char user[CG_USER_MAX];
        memset(user, 'X', sizeof user);
        assert_true(cg_webchat_token_valid(opt_str(c, "token")));
        cg_webchat_user(opt_str(c, "token"), user);
        assert_string_equal(user, opt_str(c, "user"));
    }
    cJSON_Delete(all);
    static const struct { const char *token; int valid; } rows[] = {
        { "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 1 },
        { "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", 0 },
        { "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde", 0 },
        { "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0", 0 },
        { "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde ", 0 },
        { "", 0 },
        { NULL, 0 },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_int_equal(cg_webchat_token_valid(rows[i].token), rows[i].valid);
}

/* Rendered frames are always valid UTF-8 (a browser closes the socket on a
 * text frame that is not): bad bytes become U+FFFD. */
static void test_render_repairs_utf8(void **state)
{
    (void)state;
    static const struct { const char *in, *want; } rows[] = {
        { "caf\xe9 ok", "caf\xef\xbf\xbd ok" },              /* Latin-1 byte */
        { "\xed\xa0\x80x", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdx" },   /* encoded surrogate */
        { "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd" },           /* overlong '/' */
        { "ends in \xe2\x82", "ends in \xef\xbf\xbd\xef\xbf\xbd" }, /* truncated */
        { "\xf0\x9f\x98\x80 fine \xd8\xa7", "\xf0\x9f\x98\x80 fine \xd8\xa7" },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        cg_reply r;
        memset(&r, 0, sizeof r);
        r.text = (char *)rows[i].in;
        r.buttons[0].title = (char *)rows[i].in;
        r.buttons[0].payload = (char *)"p";
        r.nbuttons = 1;
        char *got = cg_webchat_render_reply(&r, "en");
        assert_non_null(got);
        cJSON *g = cJSON_Parse(got);
        assert_non_null(g);
        assert_string_equal(cJSON_GetObjectItem(g, "text")->valuestring, rows[i].want);
        assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(g, "buttons"), 0), "title")->valuestring,
                            rows[i].want);
        cJSON_Delete(g);
        free(got);
    }
}

/* The frames a real client sends, in order, through one connection. */
static void test_conversation(void **state)
{
    (void)state;
    static const char *const frames[] = {
        "{\"type\":\"hello\",\"token\":\"\",\"lang\":\"fr\"}",
        "{\"type\":\"message\",\"id\":\"m1\",\"text\":\"Bonjour\"}",
        "{\"type\":\"button\",\"id\":\"m2\",\"payload\":\"intent:logement\"}",
        "{\"type\":\"ping\"}",
    };
    char user[CG_USER_MAX] = "";
    const char *token = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for (size_t i = 0; i < 4; i++) {
        cg_wc_frame f;
        char reason[64];
        assert_int_equal(cg_webchat_parse(frames[i], strlen(frames[i]), user, &f, reason, sizeof reason), CG_OK);
        if (f.kind == CG_WC_HELLO) {
            assert_string_equal(f.lang, "fr");
            cg_webchat_user(token, user);   /* the transport's new token */
        } else if (f.kind != CG_WC_PING) {
            assert_string_equal(f.msg.user, user);
            assert_memory_equal(f.msg.msg_id, user, strlen(user));
        }
        cg_msg_free(&f.msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_cases),
        cmocka_unit_test(test_render_cases),
        cmocka_unit_test(test_tokens_and_users),
        cmocka_unit_test(test_render_repairs_utf8),
        cmocka_unit_test(test_conversation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

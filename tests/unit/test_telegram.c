/*
 * test_telegram.c: the Telegram connector against its case tables.
 *
 *   tests/connectors/telegram/parse/<case>.json     headers + update body → status, messages
 *   tests/connectors/telegram/render/<case>.json    cg_reply → requests (url + JSON body)
 *   tests/connectors/telegram/classify/<case>.json  HTTP status + Bot API body → send result
 *
 * Case format (documented here because the files are data, not code):
 *   parse:    {"name", "headers":{name:value}, "body": <update object> | "<raw
 *             string>", or "body_hex": "<bytes in hex>", "expect":{"status":
 *             "ok"|"auth"|"bad_request", "reason_contains"?, "messages":[{"kind",
 *             "user", "msg_id", "text"?, "payload"?, "callback_id"?, "name"?,
 *             "lang_hint"?, "media"?, "lat"?, "lon"?, "ts"?}]}}
 *             text/payload/callback_id absent or null mean NULL is expected.
 *   render:   {"name", "cfg":{"token","api_base"}, "reply":{"user","text"?,
 *             "buttons"?:[{"title","payload"|"url"}], "callback_id"?},
 *             "expect":{"status":"ok"|"internal", "requests":[{"url","body"}]}}
 *   classify: {"name", "status", "body": <object> | "<raw>", "expect":{"kind",
 *             "retry_after_ms", "platform_id", "reason_contains"?}}
 * Anywhere a text is expected, an array of segments may stand for it: a
 * string is literal, {"repeat":s,"times":n} is s repeated n times.
 *
 * Every case runs through the same calls the gateway makes (verify, then
 * parse; render; classify); a failing case is named in the output.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "civicgate/connector.h"
#include "civicgate/message.h"
#include "support/conncase.h"

#define CASES CG_SOURCE_DIR "/tests/connectors/telegram"

static const cg_connector *tg(void)
{
    const cg_connector *c = cg_connector_find("telegram");
    assert_non_null(c);
    return c;
}

static cg_channel_cfg cfg_default(void)
{
    cg_channel_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = "telegram";
    cfg.enabled = 1;
    cfg.token = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
    cfg.secret = "s3cret-Token_42";
    cfg.api_base = "https://api.telegram.org";
    return cfg;
}

static void run_parse_case(const char *path)
{
    cJSON *c = cg_case_load(path);
    const char *cname = cJSON_GetObjectItem(c, "name")->valuestring;
    cg_channel_cfg cfg = cfg_default();
    cg_http_in req;
    memset(&req, 0, sizeof req);
    req.method = "POST";
    req.path = "/webhooks/telegram";
    req.query = "";
    const cJSON *h;
    cJSON_ArrayForEach(h, cJSON_GetObjectItem(c, "headers")) {
        assert_true(req.nheaders < CG_HTTP_MAX_HEADERS);
        req.headers[req.nheaders].name = h->string;
        req.headers[req.nheaders].value = h->valuestring;
        req.nheaders++;
    }
    req.headers[req.nheaders].name = "content-type";
    req.headers[req.nheaders++].value = "application/json";
    void *owned = cg_case_body(c, &req);
    const cJSON *expect = cJSON_GetObjectItem(c, "expect");
    const char *want_status = cJSON_GetObjectItem(expect, "status")->valuestring;

    cg_msg out[4];
    memset(out, 0xA5, sizeof out);   /* the connector must not rely on zeroed output */
    size_t n = 99;
    char reason[160] = "";
    cg_err e = tg()->verify(&cfg, &req);
    if (e == CG_OK) {
        assert_true(req.body_len <= tg()->max_body);
        e = tg()->parse(&cfg, &req, out, 4, &n, reason, sizeof reason);
    } else {
        n = 0;
    }
    if (strcmp(cg_case_status_name(e), want_status) != 0)
        fail_msg("%s: status: want %s, got %s (%s)", cname, want_status, cg_case_status_name(e), reason);
    const cJSON *rc = cJSON_GetObjectItem(expect, "reason_contains");
    if (rc && !strstr(reason, rc->valuestring))
        fail_msg("%s: reason \"%s\" lacks \"%s\"", cname, reason, rc->valuestring);
    if (e != CG_OK) assert_int_equal(n, 0);

    const cJSON *msgs = cJSON_GetObjectItem(expect, "messages");
    if ((size_t)cJSON_GetArraySize(msgs) != n)
        fail_msg("%s: want %d messages, got %zu", cname, cJSON_GetArraySize(msgs), n);
    for (size_t i = 0; i < n; i++) {
        const cJSON *w = cJSON_GetArrayItem(msgs, (int)i);
        cg_msg *m = &out[i];
        cg_case_check_str(cname, "kind", cJSON_GetObjectItem(w, "kind")->valuestring, cg_case_kind_name(m->kind));
        cg_case_check_str(cname, "channel", "telegram", m->channel);
        cg_case_check_str(cname, "user", cJSON_GetObjectItem(w, "user")->valuestring, m->user);
        cg_case_check_str(cname, "msg_id", cJSON_GetObjectItem(w, "msg_id")->valuestring, m->msg_id);
        static const char *const owned_fields[] = { "text", "payload", "callback_id" };
        const char *got_owned[] = { m->text, m->payload, m->callback_id };
        for (size_t k = 0; k < 3; k++) {
            char *want = cg_case_expand(cJSON_GetObjectItem(w, owned_fields[k]));
            cg_case_check_str(cname, owned_fields[k], want, got_owned[k]);
            free(want);
        }
        const cJSON *v;
        if ((v = cJSON_GetObjectItem(w, "name"))) cg_case_check_str(cname, "name", cJSON_IsNull(v) ? NULL : v->valuestring, m->name);
        if ((v = cJSON_GetObjectItem(w, "lang_hint"))) cg_case_check_str(cname, "lang_hint", v->valuestring, m->lang_hint);
        cg_case_check_str(cname, "media", cJSON_GetObjectItem(w, "media") ? cJSON_GetObjectItem(w, "media")->valuestring : "",
                  m->media);
        if ((v = cJSON_GetObjectItem(w, "ts")) && (int64_t)v->valuedouble != m->ts)
            fail_msg("%s: ts: want %.0f, got %lld", cname, v->valuedouble, (long long)m->ts);
        if ((v = cJSON_GetObjectItem(w, "lat")) && fabs(v->valuedouble - m->lat) > 1e-9)
            fail_msg("%s: lat: want %f, got %f", cname, v->valuedouble, m->lat);
        if ((v = cJSON_GetObjectItem(w, "lon")) && fabs(v->valuedouble - m->lon) > 1e-9)
            fail_msg("%s: lon: want %f, got %f", cname, v->valuedouble, m->lon);
        cg_msg_free(m);
        cg_msg_free(m);   /* idempotent */
    }
    free(owned);
    cJSON_Delete(c);
}

static void run_render_case(const char *path)
{
    cJSON *c = cg_case_load(path);
    const char *cname = cJSON_GetObjectItem(c, "name")->valuestring;
    cg_channel_cfg cfg = cfg_default();
    const cJSON *jc = cJSON_GetObjectItem(c, "cfg");
    cfg.token = cJSON_GetObjectItem(jc, "token")->valuestring;
    cfg.api_base = cJSON_GetObjectItem(jc, "api_base")->valuestring;

    cg_reply r;
    cg_case_reply(cJSON_GetObjectItem(c, "reply"), "telegram", &r);
    cJSON *expect = cJSON_GetObjectItem(c, "expect");
    cg_case_expand_texts(expect);
    cg_http_out out[CG_MAX_OUT_REQUESTS];
    memset(out, 0, sizeof out);
    size_t n = 99;
    cg_err e = tg()->render(&cfg, &r, out, CG_MAX_OUT_REQUESTS, &n);
    static const char *const headers[] = { "Content-Type: application/json" };
    cg_case_check_render(cname, expect, e, out, n, headers, 1, 1, NULL);
    cg_reply_free(&r);
    cg_reply_free(&r);
    cJSON_Delete(c);
}

static void run_classify_case(const char *path) { cg_case_classify(tg(), path); }

static void test_parse_cases(void **state) { (void)state; cg_case_run_dir(CASES "/parse", run_parse_case, 25); }
static void test_render_cases(void **state) { (void)state; cg_case_run_dir(CASES "/render", run_render_case, 10); }
static void test_classify_cases(void **state) { (void)state; cg_case_run_dir(CASES "/classify", run_classify_case, 10); }

/* Properties no single case file can show. */
static void test_split_pieces_fit(void **state)
{
    (void)state;
    /* mixed text with lines, sentences and astral characters; every piece
     * must be within 4096 UTF-16 units and the pieces must rebuild the text */
    size_t cap = 40000, len = 0;
    char *text = malloc(cap);
    static const char *const parts[] = { "Line one is short.\n", "Ünïcödé sentence here. ", "😀😀 ",
                                         "a&b<c>d ", "longwordwithoutanyspaces" };
    for (unsigned i = 0; len < 20000; i = i * 7 + 3) {
        const char *p = parts[i % 5];
        memcpy(text + len, p, strlen(p));
        len += strlen(p);
    }
    text[len] = '\0';
    cg_reply r;
    memset(&r, 0, sizeof r);
    snprintf(r.user, sizeof r.user, "42");
    r.text = text;
    cg_channel_cfg cfg = cfg_default();
    cg_http_out out[CG_MAX_OUT_REQUESTS];
    size_t n = 0;
    assert_int_equal(tg()->render(&cfg, &r, out, CG_MAX_OUT_REQUESTS, &n), CG_OK);
    assert_true(n >= 5);
    char *rebuilt = calloc(1, cap);
    for (size_t i = 0; i < n; i++) {
        cJSON *b = cJSON_Parse(out[i].body);
        const char *t = cJSON_GetObjectItem(b, "text")->valuestring;
        size_t units = 0;
        for (const unsigned char *p = (const unsigned char *)t; *p; p++) {
            if ((*p & 0xC0) == 0x80) continue;
            units += (*p >= 0xF0) ? 2 : 1;
        }
        /* escaped entities count as one character for Telegram */
        for (const char *p = t; (p = strchr(p, '&')); p++) units -= strncmp(p, "&amp;", 5) == 0 ? 4 : 3;
        assert_true(units <= 4096);
        strcat(rebuilt, t);
        cJSON_Delete(b);
        cg_http_out_free(&out[i]);
    }
    /* compare ignoring blanks, after unescaping */
    char *a = text, *b2 = rebuilt;
    size_t ia = 0, ib = 0;
    for (;;) {
        while (a[ia] == ' ' || a[ia] == '\n') ia++;
        while (b2[ib] == ' ' || b2[ib] == '\n') ib++;
        if (!a[ia] || !b2[ib]) break;
        char ca = a[ia++], cb = b2[ib++];
        if (cb == '&') {
            if (strncmp(b2 + ib, "amp;", 4) == 0) { cb = '&'; ib += 4; }
            else if (strncmp(b2 + ib, "lt;", 3) == 0) { cb = '<'; ib += 3; }
            else if (strncmp(b2 + ib, "gt;", 3) == 0) { cb = '>'; ib += 3; }
        }
        assert_int_equal(ca, cb);
    }
    assert_int_equal(a[ia], '\0');
    assert_int_equal(b2[ib], '\0');
    free(rebuilt);
    free(text);
}

static void test_secure_equal(void **state)
{
    (void)state;
    assert_true(cg_secure_equal("abc", 3, "abc", 3));
    assert_false(cg_secure_equal("abc", 3, "abd", 3));
    assert_false(cg_secure_equal("abc", 3, "abc", 2));
    assert_false(cg_secure_equal("abc", 3, "abcd", 4));
    assert_true(cg_secure_equal("", 0, NULL, 0));
    assert_false(cg_secure_equal("", 0, "a", 1));
    assert_false(cg_secure_equal(NULL, 3, "abc", 3));
    /* embedded NUL bytes are compared too */
    assert_false(cg_secure_equal("ab\0c", 4, "ab\0d", 4));
    assert_true(cg_secure_equal("ab\0c", 4, "ab\0c", 4));
}

static void test_verify_fails_closed(void **state)
{
    (void)state;
    cg_channel_cfg cfg = cfg_default();
    cg_http_in req;
    memset(&req, 0, sizeof req);
    req.headers[0].name = "x-telegram-bot-api-secret-token";
    req.headers[0].value = "";
    req.nheaders = 1;
    cfg.secret = "";
    assert_int_equal(tg()->verify(&cfg, &req), CG_E_AUTH);
    cfg.secret = NULL;
    assert_int_equal(tg()->verify(&cfg, &req), CG_E_AUTH);
}

static void test_http_helpers(void **state)
{
    (void)state;
    static const struct { const char *query, *name; int rc; const char *value; } rows[] = {
        { "hub.mode=subscribe&hub.verify_token=abc%20d&hub.challenge=1158201444", "hub.challenge", 0, "1158201444" },
        { "hub.mode=subscribe&hub.verify_token=abc%20d", "hub.verify_token", 0, "abc d" },
        { "a=1+2&b", "a", 0, "1 2" },
        { "a=1&b", "b", 0, "" },
        { "a=1", "c", -1, "" },
        { "a=%zz", "a", -1, "" },
        { "a=%4", "a", -1, "" },
        { "a=%00", "a", -1, "" },
        { "x%2Ey=7", "x.y", 0, "7" },
        { "a=0123456789abcdef", "a", -1, "" },     /* does not fit the 16-byte buffer */
        { "", "a", -1, "" },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        cg_http_in req;
        memset(&req, 0, sizeof req);
        req.query = rows[i].query;
        char buf[16];
        int rc = cg_http_in_query(&req, rows[i].name, buf, sizeof buf);
        if (rc != rows[i].rc || strcmp(buf, rows[i].value) != 0)
            fail_msg("query %s name %s: rc %d value '%s'", rows[i].query, rows[i].name, rc, buf);
    }
    cg_http_in req;
    memset(&req, 0, sizeof req);
    req.headers[0] = (cg_header){ "content-type", "application/json" };
    req.headers[1] = (cg_header){ "x-hub-signature-256", "sha256=ab" };
    req.nheaders = 2;
    assert_string_equal(cg_http_in_header(&req, "x-hub-signature-256"), "sha256=ab");
    assert_null(cg_http_in_header(&req, "x-missing"));
    static const struct { cg_err e; int status; } map[] = {
        { CG_OK, 200 }, { CG_E_AUTH, 401 }, { CG_E_FORBIDDEN, 403 }, { CG_E_BAD_REQUEST, 400 },
        { CG_E_TOO_LARGE, 413 }, { CG_E_UNAVAILABLE, 503 }, { CG_E_NOMEM, 500 }, { CG_E_INTERNAL, 500 },
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        assert_int_equal(cg_err_http_status(map[i].e), map[i].status);
    assert_ptr_equal(cg_connector_find("telegram"), cg_connectors[0]);
    /* the descriptor the gateway relies on: body limit checked before parse,
     * no handshake, no raw-body HMAC, Telegram's 4,096-character limit */
    assert_int_equal(tg()->max_body, 1024 * 1024);
    assert_int_equal(tg()->max_text, 4096);
    assert_int_equal(tg()->flags, 0);
    assert_null(tg()->handshake);
    assert_non_null(tg()->verify);
    assert_non_null(tg()->parse);
    assert_non_null(tg()->render);
    assert_non_null(tg()->classify);
    assert_null(cg_connector_find("Telegram"));
    assert_null(cg_connector_find(NULL));
}

/* The JSON writer's strings (the request bodies): every byte class, at the
 * start, inside and at the end of runs of plain bytes. */
static void test_jw_strings(void **state)
{
    (void)state;
    static const struct { const char *in; int html; const char *want; } rows[] = {
        { "", 0, "\"\"" },
        { "plain text, no escapes", 0, "\"plain text, no escapes\"" },
        { "a\"b\\c", 0, "\"a\\\"b\\\\c\"" },
        { "\n\r\t\b\f", 0, "\"\\n\\r\\t\\b\\f\"" },
        { "x\x01y\x1f", 0, "\"x\\u0001y\\u001f\"" },
        { "<b>&</b>", 0, "\"<b>&</b>\"" },
        { "<b>&</b>", 1, "\"&lt;b&gt;&amp;&lt;/b&gt;\"" },
        { "Tom & Jerry \"quoted\"\n", 1, "\"Tom &amp; Jerry \\\"quoted\\\"\\n\"" },
        { "caf\xc3\xa9 \xd8\xb3\xd9\x84\xd8\xa7\xd9\x85 \x7f", 0, "\"caf\xc3\xa9 \xd8\xb3\xd9\x84\xd8\xa7\xd9\x85 \x7f\"" },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        cg_jw w = {0};
        if (rows[i].html) cg_jw_str_html(&w, rows[i].in, strlen(rows[i].in));
        else cg_jw_str(&w, rows[i].in, strlen(rows[i].in));
        size_t len = 0;
        char *got = cg_jw_take(&w, &len);
        assert_non_null(got);
        assert_string_equal(got, rows[i].want);
        assert_int_equal(len, strlen(rows[i].want));
        free(got);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_cases),
        cmocka_unit_test(test_render_cases),
        cmocka_unit_test(test_classify_cases),
        cmocka_unit_test(test_split_pieces_fit),
        cmocka_unit_test(test_secure_equal),
        cmocka_unit_test(test_verify_fails_closed),
        cmocka_unit_test(test_http_helpers),
        cmocka_unit_test(test_jw_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

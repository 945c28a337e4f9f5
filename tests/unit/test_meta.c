/*
 * test_meta.c: the WhatsApp Cloud API and Messenger connectors against their case
 * tables: one runner, run once per connector (META_CONNS below).
 *
 *   tests/connectors/<name>/parse/<case>.json      headers + webhook body → status, messages
 *   tests/connectors/<name>/handshake/<case>.json  GET query → status, challenge echoed
 *   tests/connectors/<name>/render/<case>.json     cg_reply → requests (url + JSON body)
 *   tests/connectors/<name>/classify/<case>.json   HTTP status + Graph API body → send result
 *
 * Case format (documented here because the files are data, not code):
 *   parse:     {"name", "cfg"?:{"secret"?,"phone_number_id"?}, "headers"?:{name:value},
 *              "body": <object> | "<raw string>", or "body_hex", "max"?: n,
 *              "expect":{"status":"ok"|"auth"|"bad_request"|"too_large",
 *              "reason_contains"?, "messages":[{"kind","user","msg_id","text"?,
 *              "payload"?,"name"?,"media"?,"lat"?,"lon"?,"ts"?}]}}
 *              When "headers" is absent the harness signs the exact body bytes
 *              with the configured app secret (X-Hub-Signature-256); the
 *              signature cases carry their header, computed with
 *              `openssl dgst -sha256 -hmac`, and a raw string body.
 *              text/payload absent or null mean NULL is expected.
 *   handshake: {"name", "cfg"?:{"verify_token"}, "query", "expect":{"status":
 *              "ok"|"forbidden"|"bad_request", "body"?}}
 *   render:    {"name", "cfg"?:{"token","api_base","api_version","phone_number_id",
 *              "template_name","template_language"},
 *              "reply":{"user","text"?,"buttons"?:[{"title","payload"|"url"}],
 *              "callback_id"?,"from_agent"?,"window_closed"?}, "expect":{"status":"ok"|"internal",
 *              "requests":[{"url","body"}]}}
 *   classify:  {"name", "status", "body": <object> | "<raw>", "expect":{"kind",
 *              "retry_after_ms", "platform_id", "code"?, "reason_contains"?, "reason_prefix"?}}
 *   read:      (connectors with render_read) {"name", "user", "msg_id", "expect":
 *              {"status":"ok"|"internal", "url"?, "body"?}}
 * Anywhere a text is expected, an array of segments may stand for it: a
 * string is literal, {"repeat":s,"times":n} is s repeated n times.
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
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "civicgate/connector.h"
#include "civicgate/message.h"
#include "support/conncase.h"
#include "meta.h"

/* What differs between the two connectors' runs; the case files hold the rest. */
typedef struct meta_conn {
    const char *name;            /* connector, route segment and case folder */
    const char *token, *secret, *verify_token, *phone_number_id;
    size_t min_parse;            /* the table must hold at least this many parse cases */
    size_t max_text;             /* the descriptor's limit */
} meta_conn;

static const meta_conn META_CONNS[] = {
    { "whatsapp", "EAAJB3kZCdZCqgBOZCZAtEhrVxZBq7dNmYQZD", "6f1e9c0b2a7d4e83b5c2a9f0d1e4b7c6",
      "civicgate-wa-verify-2f9a", "106540352242922", 20, 4096 },
    { "messenger", "EAAGm0PX4ZCpsBAPageTokenZBZCqZCZAZD", "c4d1a7e9b03f58a2d6e1f4b7a9c0e3d2",
      "civicgate-ms-verify-81bd", NULL, 15, 2000 },
};

static const meta_conn *M;       /* the connector under test (set by the group setup) */
#define CONN_NAME (M->name)

static const char *case_dir(const char *kind)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/tests/connectors/%s/%s", CG_SOURCE_DIR, M->name, kind);
    return path;
}

static const cg_connector *conn(void)
{
    const cg_connector *c = cg_connector_find(CONN_NAME);
    assert_non_null(c);
    return c;
}

static cg_channel_cfg cfg_default(void)
{
    cg_channel_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = CONN_NAME;
    cfg.enabled = 1;
    cfg.token = M->token;
    cfg.secret = M->secret;
    cfg.verify_token = M->verify_token;
    cfg.api_base = "https://graph.facebook.com";
    cfg.api_version = "v21.0";
    cfg.phone_number_id = M->phone_number_id;
    return cfg;
}

static const char *opt_str(const cJSON *o, const char *key, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

/* "sha256=<hex>" of body with secret, into sig (72 bytes). */
static void sign(const char *secret, const unsigned char *body, size_t len, char *sig)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    static const unsigned char empty[1] = { 0 };
    HMAC(EVP_sha256(), secret, (int)strlen(secret), body ? body : empty, len, mac, &ml);
    assert_int_equal(ml, 32);
    strcpy(sig, "sha256=");
    for (unsigned i = 0; i < ml; i++) sprintf(sig + 7 + 2 * i, "%02x", mac[i]);
}

static void run_parse_case(const char *path)
{
    cJSON *c = cg_case_load(path);
    const char *cname = cJSON_GetObjectItem(c, "name")->valuestring;
    cg_channel_cfg cfg = cfg_default();
    const cJSON *jc = cJSON_GetObjectItem(c, "cfg");
    cfg.secret = opt_str(jc, "secret", cfg.secret);
    cfg.phone_number_id = opt_str(jc, "phone_number_id", cfg.phone_number_id);
    cg_http_in req;
    memset(&req, 0, sizeof req);
    req.method = "POST";
    char route[64];
    snprintf(route, sizeof route, "/webhooks/%s", CONN_NAME);
    req.path = route;
    req.query = "";
    void *owned = cg_case_body(c, &req);
    char sig[80];
    const cJSON *headers = cJSON_GetObjectItem(c, "headers");
    if (headers) {
        const cJSON *h;
        cJSON_ArrayForEach(h, headers) {
            assert_true(req.nheaders < CG_HTTP_MAX_HEADERS);
            req.headers[req.nheaders].name = h->string;
            req.headers[req.nheaders].value = h->valuestring;
            req.nheaders++;
        }
    } else {
        sign(cfg.secret, req.body, req.body_len, sig);
        req.headers[req.nheaders].name = "x-hub-signature-256";
        req.headers[req.nheaders++].value = sig;
    }
    req.headers[req.nheaders].name = "content-type";
    req.headers[req.nheaders++].value = "application/json";
    cJSON *expect = cJSON_GetObjectItem(c, "expect");
    const char *want_status = cJSON_GetObjectItem(expect, "status")->valuestring;
    const cJSON *jmax = cJSON_GetObjectItem(c, "max");
    size_t max = jmax ? (size_t)jmax->valuedouble : CG_MAX_MSGS_PER_WEBHOOK;

    cg_msg *out = malloc(CG_MAX_MSGS_PER_WEBHOOK * sizeof *out);
    memset(out, 0xA5, CG_MAX_MSGS_PER_WEBHOOK * sizeof *out);
    size_t n = 99;
    char reason[160] = "";
    cg_err e = CG_E_TOO_LARGE;
    if (req.body_len <= conn()->max_body) {
        e = conn()->verify(&cfg, &req);
        if (e == CG_OK) e = conn()->parse(&cfg, &req, out, max, &n, reason, sizeof reason);
    }
    if (e != CG_OK && e != CG_E_BAD_REQUEST) n = 0;
    if (strcmp(cg_case_status_name(e), want_status) != 0)
        fail_msg("%s: status: want %s, got %s (%s)", cname, want_status, cg_case_status_name(e), reason);
    const cJSON *rc = cJSON_GetObjectItem(expect, "reason_contains");
    if (rc && !strstr(reason, rc->valuestring))
        fail_msg("%s: reason \"%s\" lacks \"%s\"", cname, reason, rc->valuestring);
    if (e != CG_OK) assert_int_equal(n, 0);

    cg_case_expand_texts(expect);
    const cJSON *msgs = cJSON_GetObjectItem(expect, "messages");
    if ((size_t)cJSON_GetArraySize(msgs) != n)
        fail_msg("%s: want %d messages, got %zu", cname, cJSON_GetArraySize(msgs), n);
    for (size_t i = 0; i < n; i++) {
        const cJSON *w = cJSON_GetArrayItem(msgs, (int)i);
        cg_msg *m = &out[i];
        cg_case_check_str(cname, "kind", cJSON_GetObjectItem(w, "kind")->valuestring, cg_case_kind_name(m->kind));
        cg_case_check_str(cname, "channel", CONN_NAME, m->channel);
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
        cg_case_check_str(cname, "lang_hint", "", m->lang_hint);
        cg_case_check_str(cname, "media", opt_str(w, "media", ""), m->media);
        if ((v = cJSON_GetObjectItem(w, "ts")) && (int64_t)v->valuedouble != m->ts)
            fail_msg("%s: ts: want %.0f, got %lld", cname, v->valuedouble, (long long)m->ts);
        if ((v = cJSON_GetObjectItem(w, "lat")) && fabs(v->valuedouble - m->lat) > 1e-9)
            fail_msg("%s: lat: want %f, got %f", cname, v->valuedouble, m->lat);
        if ((v = cJSON_GetObjectItem(w, "lon")) && fabs(v->valuedouble - m->lon) > 1e-9)
            fail_msg("%s: lon: want %f, got %f", cname, v->valuedouble, m->lon);
        cg_msg_free(m);
        cg_msg_free(m);
    }
    free(out);
    free(owned);
    cJSON_Delete(c);
}

static void run_handshake_case(const char *path)
{
    cJSON *c = cg_case_load(path);
    const char *cname = cJSON_GetObjectItem(c, "name")->valuestring;
    cg_channel_cfg cfg = cfg_default();
    const cJSON *jc = cJSON_GetObjectItem(c, "cfg");
    if (cJSON_GetObjectItem(jc, "verify_token")) {
        const cJSON *v = cJSON_GetObjectItem(jc, "verify_token");
        cfg.verify_token = cJSON_IsNull(v) ? NULL : v->valuestring;
    }
    cg_http_in req;
    memset(&req, 0, sizeof req);
    req.method = "GET";
    char route[64];
    snprintf(route, sizeof route, "/webhooks/%s", CONN_NAME);
    req.path = route;
    req.query = cJSON_GetObjectItem(c, "query")->valuestring;
    assert_true(conn()->flags & CG_CONN_HANDSHAKE);
    cg_http_resp resp;
    memset(&resp, 0x5A, sizeof resp);
    cg_err e = conn()->handshake(&cfg, &req, &resp);
    const cJSON *expect = cJSON_GetObjectItem(c, "expect");
    cg_case_check_str(cname, "status", cJSON_GetObjectItem(expect, "status")->valuestring, cg_case_status_name(e));
    if (e == CG_OK) {
        assert_int_equal(resp.status, 200);
        cg_case_check_str(cname, "content_type", "text/plain", resp.content_type);
        assert_true(resp.body_len < sizeof resp.body);
        resp.body[resp.body_len] = '\0';
        cg_case_check_str(cname, "body", cJSON_GetObjectItem(expect, "body")->valuestring, resp.body);
    }
    cJSON_Delete(c);
}

static void run_render_case(const char *path)
{
    cJSON *c = cg_case_load(path);
    const char *cname = cJSON_GetObjectItem(c, "name")->valuestring;
    cg_channel_cfg cfg = cfg_default();
    const cJSON *jc = cJSON_GetObjectItem(c, "cfg");
    cfg.token = opt_str(jc, "token", cfg.token);
    cfg.api_base = opt_str(jc, "api_base", cfg.api_base);
    cfg.api_version = opt_str(jc, "api_version", cfg.api_version);
    cfg.phone_number_id = opt_str(jc, "phone_number_id", cfg.phone_number_id);
    cfg.template_name = opt_str(jc, "template_name", cfg.template_name);
    cfg.template_language = opt_str(jc, "template_language", cfg.template_language);

    cg_reply r;
    cg_case_reply(cJSON_GetObjectItem(c, "reply"), CONN_NAME, &r);
    cJSON *expect = cJSON_GetObjectItem(c, "expect");
    cg_case_expand_texts(expect);
    cg_http_out out[CG_MAX_OUT_REQUESTS];
    memset(out, 0, sizeof out);
    size_t n = 99;
    cg_err e = conn()->render(&cfg, &r, out, CG_MAX_OUT_REQUESTS, &n);
    char auth[512];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", cfg.token);
    const char *const headers[] = { "Content-Type: application/json", auth };
    cg_case_check_render(cname, expect, e, out, n, headers, 2, 0, cfg.token);
    cg_reply_free(&r);
    cJSON_Delete(c);
}

static void run_classify_case(const char *path) { cg_case_classify(conn(), path); }

static void run_read_case(const char *path)
{
    cJSON *c = cg_case_load(path);
    const char *cname = cJSON_GetObjectItem(c, "name")->valuestring;
    cg_channel_cfg cfg = cfg_default();
    const cJSON *expect = cJSON_GetObjectItem(c, "expect");
    cg_http_out out;
    memset(&out, 0x5A, sizeof out);
    cg_err e = conn()->render_read(&cfg, cJSON_GetObjectItem(c, "user")->valuestring,
                                   cJSON_GetObjectItem(c, "msg_id")->valuestring, &out);
    cg_case_check_str(cname, "status", cJSON_GetObjectItem(expect, "status")->valuestring, cg_case_status_name(e));
    if (e == CG_OK) {
        cg_case_check_str(cname, "url", cJSON_GetObjectItem(expect, "url")->valuestring, out.url);
        char auth[512];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", cfg.token);
        assert_int_equal(out.nheaders, 2);
        cg_case_check_str(cname, "header", auth, out.headers[1]);
        cJSON *got = cJSON_Parse(out.body);
        if (!got || !cJSON_Compare(got, cJSON_GetObjectItem(expect, "body"), 1))
            fail_msg("%s: body: got %.400s", cname, out.body);
        cJSON_Delete(got);
        cg_http_out_free(&out);
    }
    cJSON_Delete(c);
}

static void test_parse_cases(void **state) { (void)state; cg_case_run_dir(case_dir("parse"), run_parse_case, M->min_parse); }
static void test_handshake_cases(void **state) { (void)state; cg_case_run_dir(case_dir("handshake"), run_handshake_case, 6); }
static void test_render_cases(void **state) { (void)state; cg_case_run_dir(case_dir("render"), run_render_case, 10); }
static void test_classify_cases(void **state) { (void)state; cg_case_run_dir(case_dir("classify"), run_classify_case, 10); }
static void test_read_cases(void **state)
{
    (void)state;
    if (strcmp(M->name, "messenger") == 0) {   /* no read receipts on Messenger */
        assert_null(conn()->render_read);
        return;
    }
    assert_non_null(conn()->render_read);
    cg_case_run_dir(case_dir("read"), run_read_case, 3);
}

/* Properties no single case file can show. */

/* Long mixed text, with and without buttons: every piece fits the limit
 * (the last one the interactive / template limit), pieces rebuild the text
 * apart from blanks, and no piece ends inside a UTF-8 sequence. */
static void check_split(size_t nbuttons, int url_buttons, size_t piece_max, size_t last_max)
{
    size_t cap = 40000, len = 0;
    char *text = malloc(cap);
    static const char *const parts[] = { "Line one is short.\n", "Ünïcödé sentence here. ", "😀😀 ",
                                         "a&b<c>d ", "longwordwithoutanyspaces", "كيف أجدد رخصتي؟ " };
    for (unsigned i = 0; len < 12000; i = i * 7 + 3) {
        const char *p = parts[i % 6];
        memcpy(text + len, p, strlen(p));
        len += strlen(p);
    }
    text[len] = '\0';
    cg_reply r;
    memset(&r, 0, sizeof r);
    snprintf(r.user, sizeof r.user, "15551234567");
    r.text = text;
    for (size_t i = 0; i < nbuttons; i++) {
        char t[32], p[16];
        snprintf(t, sizeof t, "Choice number %zu", i + 1);
        snprintf(p, sizeof p, "c%zu", i + 1);
        r.buttons[i].title = strdup(t);
        if (url_buttons && i == 0) r.buttons[i].url = strdup("https://gov.example/apply");
        else r.buttons[i].payload = strdup(p);
    }
    r.nbuttons = nbuttons;
    cg_channel_cfg cfg = cfg_default();
    cg_http_out out[CG_MAX_OUT_REQUESTS];
    size_t n = 0;
    assert_int_equal(conn()->render(&cfg, &r, out, CG_MAX_OUT_REQUESTS, &n), CG_OK);
    assert_true(n >= 2);
    char *rebuilt = calloc(1, cap * 2);
    for (size_t i = 0; i < n; i++) {
        cJSON *b = cJSON_Parse(out[i].body);
        assert_non_null(b);
        const char *t = NULL;
        const cJSON *msg = cJSON_GetObjectItem(b, "message");   /* Messenger */
        if (msg) {
            const cJSON *tx = cJSON_GetObjectItem(msg, "text");
            if (tx) t = tx->valuestring;
            else t = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(msg, "attachment"), "payload"),
                                         "text")->valuestring;
        } else {                                                /* WhatsApp */
            const cJSON *tx = cJSON_GetObjectItem(b, "text");
            const cJSON *in = cJSON_GetObjectItem(b, "interactive");
            if (tx) t = cJSON_GetObjectItem(tx, "body")->valuestring;
            else t = cJSON_GetObjectItem(cJSON_GetObjectItem(in, "body"), "text")->valuestring;
        }
        assert_non_null(t);
        size_t units = cg_meta_chars(t, strlen(t));
        if (units > (i + 1 == n ? last_max : piece_max))
            fail_msg("piece %zu of %zu has %zu characters", i, n, units);
        strcat(rebuilt, t);
        strcat(rebuilt, " ");
        cJSON_Delete(b);
        cg_http_out_free(&out[i]);
    }
    size_t ia = 0, ib = 0;
    for (;;) {
        while (text[ia] == ' ' || text[ia] == '\n') ia++;
        while (rebuilt[ib] == ' ' || rebuilt[ib] == '\n') ib++;
        if (!text[ia] || !rebuilt[ib]) break;
        if (text[ia] != rebuilt[ib]) fail_msg("pieces differ from the text at byte %zu", ia);
        ia++, ib++;
    }
    assert_int_equal(text[ia], '\0');
    free(rebuilt);
    r.text = NULL;
    cg_reply_free(&r);
    free(text);
}

static void test_split_pieces_fit(void **state)
{
    (void)state;
    if (!strcmp(M->name, "whatsapp")) {
        check_split(0, 0, 4096, 4096);
        check_split(2, 0, 4096, 1024);     /* reply buttons: body ≤ 1,024 */
        check_split(7, 0, 4096, 1024);     /* list */
    } else {
        check_split(0, 0, 2000, 2000);
        check_split(5, 0, 2000, 2000);     /* quick replies ride on a normal text */
        check_split(2, 1, 2000, 640);      /* button template: text ≤ 640 */
    }
}

/* Shortened titles: within the limit, valid UTF-8, a prefix of the title
 * followed by "…", never cut inside a word when there is an earlier space. */
static void test_shorten(void **state)
{
    (void)state;
    static const char *const titles[] = { "Renew a driving licence", "Ünïcödé ünïcödé ünïcödé ünïcödé",
                                          "😀😀😀😀😀😀😀😀😀😀😀😀😀😀", "Supercalifragilisticexpialidocious",
                                          "تجديد رخصة القيادة في المكتب", "Short", "Exactly twenty chars",
                                          "Twenty-one characters" };
    for (size_t i = 0; i < sizeof titles / sizeof titles[0]; i++) {
        for (size_t max = 8; max <= 24; max += 4) {
            char *s = cg_meta_shorten(titles[i], max);
            assert_non_null(s);
            size_t sl = strlen(s), tl = strlen(titles[i]);
            assert_true(cg_meta_chars(s, sl) <= max);
            if (cg_meta_chars(titles[i], tl) <= max) {
                assert_string_equal(s, titles[i]);
            } else {
                assert_true(sl >= 3 && strcmp(s + sl - 3, "…") == 0);
                size_t keep = sl - 3;
                assert_memory_equal(s, titles[i], keep);
                /* the kept part ends at a word end unless the first word alone is too long */
                if (keep && strchr(titles[i], ' ') && (size_t)(strchr(titles[i], ' ') - titles[i]) < keep)
                    assert_true(titles[i][keep] == ' ' || titles[i][keep] == ',' || titles[i][keep] == '-');
                assert_true(keep == 0 || ((unsigned char)titles[i][keep] & 0xC0) != 0x80);
            }
            free(s);
        }
    }
}

static void test_verify_fails_closed(void **state)
{
    (void)state;
    cg_channel_cfg cfg = cfg_default();
    static const unsigned char body[] = "{}";
    char sig[80];
    sign("", body, 2, sig);
    cg_http_in req;
    memset(&req, 0, sizeof req);
    req.headers[0].name = "x-hub-signature-256";
    req.headers[0].value = sig;
    req.nheaders = 1;
    req.body = body;
    req.body_len = 2;
    cfg.secret = "";
    assert_int_equal(conn()->verify(&cfg, &req), CG_E_AUTH);
    cfg.secret = NULL;
    assert_int_equal(conn()->verify(&cfg, &req), CG_E_AUTH);
    /* upper-case hex is the same signature */
    cfg = cfg_default();
    sign(cfg.secret, body, 2, sig);
    assert_int_equal(conn()->verify(&cfg, &req), CG_OK);
    for (char *p = sig + 7; *p; p++) if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 32);
    assert_int_equal(conn()->verify(&cfg, &req), CG_OK);
    /* an empty body is signed too */
    sign(cfg.secret, NULL, 0, sig);
    req.body = NULL;
    req.body_len = 0;
    assert_int_equal(conn()->verify(&cfg, &req), CG_OK);
    /* the handshake refuses when no verify token is configured */
    cfg.verify_token = "";
    req.query = "hub.mode=subscribe&hub.verify_token=&hub.challenge=123";
    cg_http_resp resp;
    assert_int_equal(conn()->handshake(&cfg, &req, &resp), CG_E_FORBIDDEN);
}

static void test_descriptor(void **state)
{
    (void)state;
    assert_ptr_equal(cg_connector_find("telegram"), cg_connectors[0]);
    assert_non_null(cg_connector_find("whatsapp"));
    assert_non_null(cg_connector_find("messenger"));
    assert_null(cg_connector_find("WhatsApp"));
    assert_int_equal(conn()->flags, CG_CONN_RAW_BODY | CG_CONN_HANDSHAKE);
    assert_int_equal(conn()->max_body, 1024 * 1024);
    assert_int_equal(conn()->max_text, M->max_text);
    assert_non_null(conn()->verify);
    assert_non_null(conn()->handshake);
    assert_non_null(conn()->parse);
    assert_non_null(conn()->render);
    assert_non_null(conn()->classify);
    /* a body of max_body + 1 bytes is refused by parse too, not only by http.c */
    size_t big = conn()->max_body + 1;
    unsigned char *b = malloc(big);
    memset(b, ' ', big);
    cg_http_in req;
    memset(&req, 0, sizeof req);
    req.body = b;
    req.body_len = big;
    cg_msg out[1];
    size_t n = 7;
    char reason[64];
    cg_channel_cfg cfg = cfg_default();
    assert_int_equal(conn()->parse(&cfg, &req, out, 1, &n, reason, sizeof reason), CG_E_TOO_LARGE);
    assert_int_equal(n, 0);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_cases),
        cmocka_unit_test(test_handshake_cases),
        cmocka_unit_test(test_render_cases),
        cmocka_unit_test(test_classify_cases),
        cmocka_unit_test(test_read_cases),
        cmocka_unit_test(test_split_pieces_fit),
        cmocka_unit_test(test_shorten),
        cmocka_unit_test(test_verify_fails_closed),
        cmocka_unit_test(test_descriptor),
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof META_CONNS / sizeof *META_CONNS; i++) {
        M = &META_CONNS[i];
        failed += _cmocka_run_group_tests(M->name, tests, sizeof tests / sizeof *tests, NULL, NULL);
    }
    return failed;
}

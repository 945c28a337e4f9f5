/*
 * conncase.c: see conncase.h.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conncase.h"

char *cg_case_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    if (b) { b[n] = '\0'; if (len) *len = (size_t)n; }
    return b;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **cg_case_list(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    char **v = NULL;
    size_t cnt = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0) continue;
        v = realloc(v, (cnt + 1) * sizeof *v);
        size_t need = strlen(dir) + l + 2;
        v[cnt] = malloc(need);
        snprintf(v[cnt], need, "%s/%s", dir, e->d_name);
        cnt++;
    }
    closedir(d);
    qsort(v, cnt, sizeof *v, cmp_str);
    *n = cnt;
    return v;
}

cJSON *cg_case_load(const char *path)
{
    char *s = cg_case_slurp(path, NULL);
    assert_non_null(s);
    cJSON *c = cJSON_Parse(s);
    free(s);
    if (!c) fail_msg("%s: case file is not JSON", path);
    return c;
}

char *cg_case_expand(const cJSON *spec)
{
    if (!spec || cJSON_IsNull(spec)) return NULL;
    if (cJSON_IsString(spec)) return strdup(spec->valuestring);
    assert_true(cJSON_IsArray(spec));
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    const cJSON *seg;
    cJSON_ArrayForEach(seg, spec) {
        const char *s;
        int times = 1;
        if (cJSON_IsString(seg)) s = seg->valuestring;
        else {
            s = cJSON_GetObjectItem(seg, "repeat")->valuestring;
            times = cJSON_GetObjectItem(seg, "times")->valueint;
        }
        size_t sl = strlen(s);
        for (int i = 0; i < times; i++) {
            if (len + sl + 1 > cap) { cap = (len + sl + 1) * 2; out = realloc(out, cap); }
            memcpy(out + len, s, sl);
            len += sl;
        }
    }
    out[len] = '\0';
    return out;
}

void cg_case_expand_texts(cJSON *node)
{
    cJSON *ch;
    cJSON_ArrayForEach(ch, node) {
        if (ch->string && (strcmp(ch->string, "text") == 0 || strcmp(ch->string, "body") == 0) &&
            cJSON_IsArray(ch)) {
            char *s = cg_case_expand(ch);
            cJSON_ReplaceItemInObjectCaseSensitive(node, ch->string, cJSON_CreateString(s));
            free(s);
            return cg_case_expand_texts(node);
        }
        if (cJSON_IsObject(ch) || cJSON_IsArray(ch)) cg_case_expand_texts(ch);
    }
}

const char *cg_case_kind_name(cg_msg_kind k)
{
    static const char *const names[] = { "text", "button", "start", "language", "location", "media",
                                         "edited", "blocked", "unblocked", "status", "unsupported" };
    return (size_t)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

const char *cg_case_status_name(cg_err e)
{
    switch (e) {
    case CG_OK: return "ok";
    case CG_E_AUTH: return "auth";
    case CG_E_FORBIDDEN: return "forbidden";
    case CG_E_BAD_REQUEST: return "bad_request";
    case CG_E_TOO_LARGE: return "too_large";
    case CG_E_INTERNAL: return "internal";
    case CG_E_NOMEM: return "nomem";
    default: return "other";
    }
}

const char *cg_case_send_name(cg_send_kind k)
{
    static const char *const names[] = { "ok", "retry", "throttled", "contact_gone", "bad_config", "failed",
                                         "window_closed" };
    return (size_t)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

void cg_case_check_str(const char *cname, const char *field, const char *want, const char *got)
{
    if (!want && !got) return;
    if (!want || !got || strcmp(want, got) != 0) {
        fail_msg("%s: %s: want %.80s%s, got %.80s%s", cname, field, want ? want : "NULL",
                 want && strlen(want) > 80 ? "..." : "", got ? got : "NULL",
                 got && strlen(got) > 80 ? "..." : "");
    }
}

unsigned char *cg_case_from_hex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    unsigned char *b = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        b[i] = (unsigned char)v;
    }
    *len = n;
    return b;
}

void *cg_case_body(const cJSON *c, cg_http_in *req)
{
    const cJSON *body = cJSON_GetObjectItem(c, "body");
    if (cJSON_GetObjectItem(c, "body_hex")) {
        unsigned char *bytes = cg_case_from_hex(cJSON_GetObjectItem(c, "body_hex")->valuestring, &req->body_len);
        req->body = bytes;
        return bytes;
    }
    if (cJSON_IsString(body)) {
        req->body = (const unsigned char *)body->valuestring;
        req->body_len = strlen(body->valuestring);
        return NULL;
    }
    char *owned = cJSON_PrintUnformatted(body);
    req->body = (const unsigned char *)owned;
    req->body_len = strlen(owned);
    return owned;
}

void cg_case_run_dir(const char *dir, void (*fn)(const char *), size_t min_cases)
{
    size_t n;
    char **files = cg_case_list(dir, &n);
    if (n < min_cases) fail_msg("%s: only %zu cases", dir, n);
    for (size_t i = 0; i < n; i++) {
        fn(files[i]);
        free(files[i]);
    }
    free(files);
    print_message("%zu cases in %s passed\n", n, dir);
}

/* A classify case: {name, status, body (JSON or a string), expect: {kind,
 * retry_after_ms, platform_id, and optionally reason_contains,
 * reason_prefix, code}}. */
void cg_case_classify(const cg_connector *conn, const char *path)
{
    cJSON *c = cg_case_load(path);
    const char *cname = cJSON_GetObjectItem(c, "name")->valuestring;
    long status = (long)cJSON_GetObjectItem(c, "status")->valuedouble;
    const cJSON *body = cJSON_GetObjectItem(c, "body");
    char *owned = cJSON_IsString(body) ? strdup(body->valuestring) : cJSON_PrintUnformatted(body);
    cg_send_result res;
    memset(&res, 0x5A, sizeof res);
    conn->classify(status, owned, strlen(owned), &res);
    const cJSON *expect = cJSON_GetObjectItem(c, "expect");
    cg_case_check_str(cname, "kind", cJSON_GetObjectItem(expect, "kind")->valuestring, cg_case_send_name(res.kind));
    long want_ra = (long)cJSON_GetObjectItem(expect, "retry_after_ms")->valuedouble;
    if (want_ra != res.retry_after_ms)
        fail_msg("%s: retry_after_ms: want %ld, got %ld", cname, want_ra, res.retry_after_ms);
    assert_non_null(memchr(res.reason, '\0', sizeof res.reason));
    assert_non_null(memchr(res.platform_id, '\0', sizeof res.platform_id));
    cg_case_check_str(cname, "platform_id", cJSON_GetObjectItem(expect, "platform_id")->valuestring, res.platform_id);
    const cJSON *rc = cJSON_GetObjectItem(expect, "reason_contains");
    if (rc && !strstr(res.reason, rc->valuestring))
        fail_msg("%s: reason \"%s\" lacks \"%s\"", cname, res.reason, rc->valuestring);
    const cJSON *rp = cJSON_GetObjectItem(expect, "reason_prefix");
    if (rp && strncmp(res.reason, rp->valuestring, strlen(rp->valuestring)) != 0)
        fail_msg("%s: reason \"%s\" does not start with \"%s\"", cname, res.reason, rp->valuestring);
    const cJSON *code = cJSON_GetObjectItem(expect, "code");
    if (code && (long)code->valuedouble != res.code)
        fail_msg("%s: code: want %ld, got %ld", cname, (long)code->valuedouble, res.code);
    free(owned);
    cJSON_Delete(c);
}

void cg_case_reply(const cJSON *jr, const char *channel, cg_reply *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->channel, sizeof r->channel, "%s", channel);
    snprintf(r->user, sizeof r->user, "%s", cJSON_GetObjectItem(jr, "user")->valuestring);
    r->text = cg_case_expand(cJSON_GetObjectItem(jr, "text"));
    if (cJSON_GetObjectItem(jr, "callback_id"))
        r->callback_id = strdup(cJSON_GetObjectItem(jr, "callback_id")->valuestring);
    r->from_agent = cJSON_IsTrue(cJSON_GetObjectItem(jr, "from_agent"));
    r->window_closed = cJSON_IsTrue(cJSON_GetObjectItem(jr, "window_closed"));
    const cJSON *b;
    cJSON_ArrayForEach(b, cJSON_GetObjectItem(jr, "buttons")) {
        assert_true(r->nbuttons < CG_REPLY_MAX_BUTTONS);
        cg_reply_btn *rb = &r->buttons[r->nbuttons++];
        rb->title = cg_case_expand(cJSON_GetObjectItem(b, "title"));
        if (cJSON_GetObjectItem(b, "payload")) rb->payload = cg_case_expand(cJSON_GetObjectItem(b, "payload"));
        if (cJSON_GetObjectItem(b, "url")) rb->url = strdup(cJSON_GetObjectItem(b, "url")->valuestring);
    }
}

void cg_case_check_render(const char *cname, const cJSON *expect, cg_err e, cg_http_out *out, size_t n,
                          const char *const *headers, size_t nheaders, int secret_in_url, const char *secret)
{
    const char *want_status = cJSON_GetObjectItem(expect, "status")->valuestring;
    if (strcmp(cg_case_status_name(e), want_status) != 0)
        fail_msg("%s: status: want %s, got %s", cname, want_status, cg_case_status_name(e));
    if (e != CG_OK) assert_int_equal(n, 0);
    const cJSON *reqs = cJSON_GetObjectItem(expect, "requests");
    if ((size_t)cJSON_GetArraySize(reqs) != n)
        fail_msg("%s: want %d requests, got %zu", cname, cJSON_GetArraySize(reqs), n);
    for (size_t i = 0; i < n; i++) {
        const cJSON *w = cJSON_GetArrayItem(reqs, (int)i);
        cg_case_check_str(cname, "method", "POST", out[i].method);
        cg_case_check_str(cname, "url", cJSON_GetObjectItem(w, "url")->valuestring, out[i].url);
        assert_int_equal(out[i].secret_in_url, secret_in_url);
        if (!secret_in_url && secret && strstr(out[i].url, secret)) fail_msg("%s: the token is in the URL", cname);
        assert_int_equal(out[i].nheaders, nheaders);
        for (size_t h = 0; h < nheaders; h++) cg_case_check_str(cname, "header", headers[h], out[i].headers[h]);
        assert_int_equal(out[i].body_len, strlen(out[i].body));
        cJSON *got = cJSON_Parse(out[i].body);
        if (!got) fail_msg("%s: request %zu body is not JSON", cname, i);
        if (!cJSON_Compare(got, cJSON_GetObjectItem(w, "body"), 1)) {
            char *want = cJSON_PrintUnformatted(cJSON_GetObjectItem(w, "body"));
            fail_msg("%s: request %zu body:\n want %.400s\n got  %.400s", cname, i, want, out[i].body);
        }
        cJSON_Delete(got);
        cg_http_out_free(&out[i]);
        cg_http_out_free(&out[i]);   /* freeing twice is allowed */
    }
}

/*
 * test_api.c: the JSON API's route lookup and request helpers (gateway/api.c)
 * as a table: method + path → status, route, bound parameters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"

static void h_a(const cg_api_req *r, cg_api_call *c) { (void)r; (void)c; }
static void h_b(const cg_api_req *r, cg_api_call *c) { (void)r; (void)c; }
static void h_c(const cg_api_req *r, cg_api_call *c) { (void)r; (void)c; }
static void h_d(const cg_api_req *r, cg_api_call *c) { (void)r; (void)c; }

static const cg_api_route t1[] = {
    {"GET", "/api/v1/agent/cases", h_a},
    {"POST", "/api/v1/agent/cases/*/claim", h_b},
    {NULL, NULL, NULL},
};
static const cg_api_route t2[] = {
    {"GET", "/api/v1/admin/citizens/*/*/export", h_c},
    {"DELETE", "/api/v1/admin/citizens/*/*", h_d},
    {NULL, NULL, NULL},
};
static const cg_api_route *const tabs[] = {t1, t2};

static const struct {
    const char *method, *path;
    int status;
    cg_api_fn fn;
    const char *p0, *p1;
} cases[] = {
    {"GET", "/api/v1/agent/cases", 200, h_a, NULL, NULL},
    {"POST", "/api/v1/agent/cases", 405, NULL, NULL, NULL},
    {"GET", "/api/v1/agent/cases/", 404, NULL, NULL, NULL},             /* trailing slash: another path */
    {"POST", "/api/v1/agent/cases/telegram:42/claim", 200, h_b, "telegram:42", NULL},
    {"GET", "/api/v1/agent/cases/telegram:42/claim", 405, NULL, NULL, NULL},
    {"POST", "/api/v1/agent/cases//claim", 404, NULL, NULL, NULL},      /* empty segment */
    {"POST", "/api/v1/agent/cases/a/b/claim", 404, NULL, NULL, NULL},   /* "*" is one segment */
    {"GET", "/api/v1/admin/citizens/whatsapp/34600111222/export", 200, h_c, "whatsapp", "34600111222"},
    {"DELETE", "/api/v1/admin/citizens/whatsapp/34600111222", 200, h_d, "whatsapp", "34600111222"},
    {"PUT", "/api/v1/admin/citizens/whatsapp/34600111222", 405, NULL, NULL, NULL},
    {"GET", "/api/v1/admin/citizens/whatsapp", 404, NULL, NULL, NULL},
    {"GET", "/api/v1/unknown", 404, NULL, NULL, NULL},
    {"GET", "", 404, NULL, NULL, NULL},
};

static void test_match_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const cg_api_route *r = (const cg_api_route *)1;
        char segs[CG_API_MAX_PARAMS][CG_API_PARAM_MAX];
        const char *params[CG_API_MAX_PARAMS] = {0};
        size_t n = 99;
        int st = cg_api_match_in(tabs, 2, cases[i].method, cases[i].path, &r, segs, params, &n);
        print_message("case %zu: %s %s → %d\n", i, cases[i].method, cases[i].path, st);
        assert_int_equal(st, cases[i].status);
        if (st != 200) {
            assert_null(r);
            continue;
        }
        assert_ptr_equal(r->fn, cases[i].fn);
        size_t want = cases[i].p1 ? 2 : cases[i].p0 ? 1 : 0;
        assert_int_equal(n, want);
        if (want >= 1) assert_string_equal(params[0], cases[i].p0);
        if (want >= 2) assert_string_equal(params[1], cases[i].p1);
    }
}

static void test_long_segment_is_not_found(void **state)
{
    (void)state;
    char path[400];
    int k = snprintf(path, sizeof path, "/api/v1/agent/cases/");
    memset(path + k, 'x', CG_API_PARAM_MAX);
    snprintf(path + k + CG_API_PARAM_MAX, sizeof path - (size_t)k - CG_API_PARAM_MAX, "/claim");
    const cg_api_route *r;
    char segs[CG_API_MAX_PARAMS][CG_API_PARAM_MAX];
    const char *params[CG_API_MAX_PARAMS];
    size_t n;
    assert_int_equal(cg_api_match_in(tabs, 2, "POST", path, &r, segs, params, &n), 404);
}

static void test_bearer_and_query(void **state)
{
    (void)state;
    cg_api_req req = {.authorization = "Bearer abc.def", .query = "since=2026-11-01&lang=es&q=a%20b"};
    assert_string_equal(cg_api_bearer(&req), "abc.def");
    req.authorization = "bearer   tok";
    assert_string_equal(cg_api_bearer(&req), "tok");
    req.authorization = "Basic dXNlcjpwYXNz";
    assert_null(cg_api_bearer(&req));
    req.authorization = "Bearer ";
    assert_null(cg_api_bearer(&req));
    req.authorization = "";
    assert_null(cg_api_bearer(&req));
    char buf[32];
    assert_int_equal(cg_api_query(&req, "lang", buf, sizeof buf), 0);
    assert_string_equal(buf, "es");
    assert_int_equal(cg_api_query(&req, "q", buf, sizeof buf), 0);
    assert_string_equal(buf, "a b");
    assert_int_equal(cg_api_query(&req, "missing", buf, sizeof buf), -1);
}

static void test_request_copy(void **state)
{
    (void)state;
    char body[] = "{\"text\":\"hola\"}";
    cg_api_req req = {.method = "POST", .path = "/api/v1/agent/cases/c_1/reply", .query = "",
                      .authorization = "Bearer t", .peer = "127.0.0.1", .content_type = "application/json",
                      .body = body, .body_len = strlen(body), .nparams = 1};
    req.params[0] = "c_1";
    cg_api_req *c = cg_api_req_copy(&req);
    assert_non_null(c);
    body[2] = 'X';   /* the copy does not share the caller's storage */
    assert_string_equal(c->method, "POST");
    assert_string_equal(c->path, "/api/v1/agent/cases/c_1/reply");
    assert_string_equal(c->params[0], "c_1");
    assert_int_equal(c->nparams, 1);
    assert_string_equal(c->authorization, "Bearer t");
    assert_string_equal(c->content_type, "application/json");
    assert_int_equal(c->body_len, strlen(body));
    assert_string_equal(c->body, "{\"text\":\"hola\"}");
    assert_ptr_not_equal(c->path, req.path);
    assert_string_equal(c->accept, "");   /* not given by the caller: "" in the copy */
    cg_api_req_free(c);

    char accept[] = "text/csv";
    req.accept = accept;
    c = cg_api_req_copy(&req);
    assert_non_null(c);
    accept[0] = 'X';
    assert_string_equal(c->accept, "text/csv");
    assert_string_equal(c->params[0], "c_1");
    cg_api_req_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_long_segment_is_not_found),
        cmocka_unit_test(test_bearer_and_query),
        cmocka_unit_test(test_request_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

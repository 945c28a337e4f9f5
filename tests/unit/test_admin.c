/*
 * test_admin.c: cg_admin_auth() (gateway/admin.c) as a table: the
 * Authorization header and the route's policy → status, and for the calls
 * let through, who and which role the handler was given. The configuration
 * holds only the tokens' SHA-256 (tests/fixtures/config/full.json's "ops" is
 * the hash of OPS_TOKEN); CIVICGATE_ADMIN_TOKEN adds "env". No agents'
 * module runs here, so any other token is unknown: 401.
 * Also the check of a citizen's channel and id (citizens.c) before any
 * Redis command: ids go into a SCAN pattern and key names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin.h"
#include "citizens.h"

#define OPS_TOKEN "correct-horse-battery-staple-admin-token"
#define ENV_TOKEN "another-long-random-token-from-the-environment"

typedef struct outcome {
    int answered, status, next_ran;
    char who[64], role[16], body[256];
} outcome;

static void done(void *ud, int status, const char *ct, const char *body, size_t len)
{
    outcome *o = ud;
    (void)ct;
    o->answered++;
    o->status = status;
    snprintf(o->body, sizeof o->body, "%.*s", (int)len, body ? body : "");
}

static void next(cg_api_req *copy, cg_api_call *call, const char *who, const char *role)
{
    outcome *o = NULL;
    /* the handler's view: the copy has what the request had */
    assert_string_equal(copy->path, "/api/v1/admin/intents");
    assert_string_equal(copy->method, "GET");
    sscanf(copy->query, "o=%p", (void **)&o);
    assert_non_null(o);
    o->next_ran++;
    snprintf(o->who, sizeof o->who, "%s", who);
    snprintf(o->role, sizeof o->role, "%s", role);
    cg_api_req_free(copy);
    cg_api_error(call, 200, "fine");
}

static const struct {
    const char *authorization;
    int allow_supervisor;
    int status;
    const char *who;        /* NULL: next must not run */
} cases[] = {
    {"", 0, 401, NULL},
    {"", 1, 401, NULL},
    {"Bearer", 0, 401, NULL},
    {"Bearer ", 0, 401, NULL},
    {"Basic b3BzOnBhc3M=", 0, 401, NULL},
    {"Bearer " OPS_TOKEN, 0, 200, "ops"},
    {"bearer   " OPS_TOKEN, 1, 200, "ops"},                 /* scheme is case-insensitive */
    {"Bearer " OPS_TOKEN "x", 0, 401, NULL},                /* one byte more */
    {"Bearer correct-horse-battery-staple-admin-toke", 0, 401, NULL},  /* one byte less */
    {"Bearer CORRECT-HORSE-BATTERY-STAPLE-ADMIN-TOKEN", 0, 401, NULL},
    /* the configured hash itself is not a token */
    {"Bearer 9c0f6fb1cdf62c098eda1dff5f5f93184afdc193667bf224a29e470e71485ae0", 0, 401, NULL},
    {"Bearer " ENV_TOKEN, 0, 200, "env"},
    {"Bearer " ENV_TOKEN, 1, 200, "env"},
    {"Bearer some-agent-session-token", 1, 401, NULL},   /* no agents' module: unknown */
};

static void test_auth_table(void **state)
{
    (void)state;
    setenv("CIVICGATE_ADMIN_TOKEN", ENV_TOKEN, 1);
    cg_config cfg;
    char err[512];
    cg_config_defaults(&cfg);
    int rc = cg_config_load(&cfg, CG_SOURCE_DIR "/tests/fixtures/config/full.json", err, sizeof err);
    if (rc) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    unsetenv("CIVICGATE_ADMIN_TOKEN");
    cg_gateway gw;
    memset(&gw, 0, sizeof gw);
    gw.cfg = &cfg;   /* no store: cg_audit() writes nothing, no agents' module */

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        outcome o;
        memset(&o, 0, sizeof o);
        char query[64];
        snprintf(query, sizeof query, "o=%p", (void *)&o);
        cg_api_req req = {.gw = &gw, .method = "GET", .path = "/api/v1/admin/intents", .query = query,
                          .authorization = cases[i].authorization, .peer = "127.0.0.1", .content_type = "",
                          .body = "", .body_len = 0};
        cg_api_call *call = cg_api_call_new(done, &o);
        assert_non_null(call);
        cg_admin_auth(&req, call, cases[i].allow_supervisor, next);
        if (o.answered != 1 || o.status != cases[i].status || o.next_ran != (cases[i].who ? 1 : 0) ||
            (cases[i].who && strcmp(o.who, cases[i].who) != 0)) {
            print_error("case %zu (%s): answered %d status %d next %d who \"%s\"\n", i, cases[i].authorization,
                        o.answered, o.status, o.next_ran, o.who);
            fail();
        }
        if (cases[i].who) assert_string_equal(o.role, "admin");
        /* a refusal never echoes the token */
        if (!cases[i].who && strlen(cases[i].authorization) > 7)
            assert_null(strstr(o.body, cases[i].authorization + 7));
    }
    cg_config_free(&cfg);
}

static const struct { const char *channel, *user; int ok; } citizen_cases[] = {
    {"telegram", "123456789", 1},
    {"telegram", "-1001234567890", 1},          /* a group chat */
    {"whatsapp", "34600111222", 1},
    {"messenger", "6543210987654321", 1},
    {"webchat", "wc0123456789abcdef0123456789abcd", 1},
    {"signal", "123", 0},                       /* not a channel */
    {"", "123", 0},
    {"telegram", "", 0},
    {"telegram", "12*3", 0},                    /* glob characters would widen the SCAN */
    {"telegram", "1?", 0},
    {"telegram", "[1]", 0},
    {"telegram", "1}:{x", 0},                   /* hash-tag braces */
    {"telegram", "12 3", 0},
    {"telegram", "12\\3", 0},
    {"telegram", "1234567890123456789012345678901234567890123456789012345678901234", 0},  /* 64 bytes */
    {"telegram", "123456789012345678901234567890123456789012345678901234567890123", 1},   /* 63 */
};

static void test_citizen_ids(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof citizen_cases / sizeof citizen_cases[0]; i++) {
        int ok = cg_citizens_valid(citizen_cases[i].channel, citizen_cases[i].user) == 0;
        if (ok != citizen_cases[i].ok) {
            print_error("%s/%s: valid %d, expected %d\n", citizen_cases[i].channel, citizen_cases[i].user, ok,
                        citizen_cases[i].ok);
            fail();
        }
    }
    assert_int_equal(cg_citizens_valid(NULL, "1"), -1);
    assert_int_equal(cg_citizens_valid("telegram", NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_table),
        cmocka_unit_test(test_citizen_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

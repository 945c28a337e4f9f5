/*
 * test_agents_queue.c: the hand-off queue's pure rules (gateway/agents_queue.c)
 * and the office-hours configuration (gateway/config_agents.c), as tables:
 * queue order by priority then time, office hours in real time zones of the
 * system tz database (daylight-saving changes, lunch breaks, holidays, weeks
 * without hours), expected waits, when to tell a citizen their position,
 * case ids and citizen-facing texts.
 */
#define _GNU_SOURCE   /* timegm */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "agents_queue.h"
#include "config.h"

/* "2026-03-27T16:45" (UTC) → seconds. */
static int64_t utc(const char *s)
{
    struct tm t;
    memset(&t, 0, sizeof t);
    if (sscanf(s, "%d-%d-%dT%d:%d", &t.tm_year, &t.tm_mon, &t.tm_mday, &t.tm_hour, &t.tm_min) != 5) fail();
    t.tm_year -= 1900;
    t.tm_mon -= 1;
    return (int64_t)timegm(&t);
}

static void office(cg_office_hours *o, const char *json)
{
    cJSON *j = cJSON_Parse(json);
    char err[256] = "";
    assert_non_null(j);
    memset(o, 0, sizeof *o);
    int rc = cg_config_office_hours(o, j, "agents.office_hours", err, sizeof err);
    if (rc != 0) fail_msg("%s", err);
    cJSON_Delete(j);
}

/* ---- queue order ----------------------------------------------------------- */

static void test_queue_order(void **state)
{
    (void)state;
    /* arrival order (ms) and priority → expected service order */
    static const struct { const char *id; int priority; int64_t at; } in[] = {
        {"a", 0, 1764230400000}, {"b", 0, 1764230400001}, {"c", 5, 1764230460000},
        {"d", 1, 1764230300000}, {"e", 5, 1764230450000}, {"f", -2, 1764230000000},
        {"g", 1000, 1764239999999},   /* clamped to the maximum: still first */
    };
    static const char *const want[] = {"g", "e", "c", "d", "a", "b", "f"};
    size_t n = sizeof in / sizeof in[0];
    size_t order[16];
    for (size_t i = 0; i < n; i++) order[i] = i;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (cg_agents_queue_score(in[order[j]].priority, in[order[j]].at) <
                cg_agents_queue_score(in[order[i]].priority, in[order[i]].at)) {
                size_t t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    for (size_t i = 0; i < n; i++) assert_string_equal(in[order[i]].id, want[i]);
    /* one millisecond apart at the same priority still tells them apart */
    assert_true(cg_agents_queue_score(3, 1764230400000) < cg_agents_queue_score(3, 1764230400001));
    /* a score Redis stores as a double is an exact integer */
    double s = cg_agents_queue_score(100, 1764230400123);
    assert_true(s == (double)(long long)s);
}

/* ---- office hours ---------------------------------------------------------- */

static const char madrid[] =
    "{\"timezone\": \"Europe/Madrid\","
    " \"week\": {\"mon\": [\"09:00-14:00\", \"15:00-17:30\"], \"tue\": [\"09:00-14:00\", \"15:00-17:30\"],"
    "           \"wed\": [\"09:00-14:00\", \"15:00-17:30\"], \"thu\": [\"09:00-14:00\", \"15:00-17:30\"],"
    "           \"fri\": [\"09:00-14:00\"]},"
    " \"holidays\": [\"2026-12-25\", \"2027-01-01\", \"2027-01-06\"]}";

static const char new_york[] =
    "{\"timezone\": \"America/New_York\","
    " \"week\": {\"mon\": [\"08:00-16:00\"], \"tue\": [\"08:00-16:00\"], \"wed\": [\"08:00-16:00\"],"
    "           \"thu\": [\"08:00-16:00\"], \"fri\": [\"08:00-16:00\"], \"sat\": [\"10:00-12:00\"]}}";

static const struct {
    const char *name;
    const char *cfg;
    const char *now;      /* UTC */
    int open;
    const char *opens;    /* UTC, when closed; NULL = none within the search */
} office_cases[] = {
    /* Madrid in winter is UTC+1, in summer UTC+2 */
    {"thursday morning", madrid, "2026-11-26T08:00", 1, NULL},          /* 09:00 local: opening minute */
    {"just before opening", madrid, "2026-11-26T07:59", 0, "2026-11-26T08:00"},
    {"lunch break", madrid, "2026-11-26T13:30", 0, "2026-11-26T14:00"}, /* 14:30 local → 15:00 */
    {"end of the afternoon", madrid, "2026-11-26T16:29", 1, NULL},      /* 17:29 local */
    {"closing minute", madrid, "2026-11-26T16:30", 0, "2026-11-27T08:00"},
    {"friday afternoon: no afternoon hours", madrid, "2026-11-27T14:00", 0, "2026-11-30T08:00"},
    {"saturday", madrid, "2026-11-28T10:00", 0, "2026-11-30T08:00"},
    {"christmas eve evening skips the holiday", madrid, "2026-12-24T17:00", 0, "2026-12-28T08:00"},
    {"on the holiday itself", madrid, "2026-12-25T10:00", 0, "2026-12-28T08:00"},
    {"new year and epiphany", madrid, "2026-12-31T17:00", 0, "2027-01-04T08:00"},
    /* daylight saving starts on Sunday 2026-03-29: Friday closes in winter
     * time, Monday opens in summer time */
    {"across the clock change", madrid, "2026-03-27T13:30", 0, "2026-03-30T07:00"},
    {"summer morning", madrid, "2026-06-15T07:00", 1, NULL},            /* 09:00 CEST */
    {"summer, an hour early", madrid, "2026-06-15T06:30", 0, "2026-06-15T07:00"},
    /* New York: UTC-5 in winter; Saturday has hours */
    {"new york friday before eight", new_york, "2026-11-27T12:59", 0, "2026-11-27T13:00"},
    {"new york friday at eight", new_york, "2026-11-27T13:00", 1, NULL},
    {"new york saturday", new_york, "2026-11-28T15:30", 1, NULL},
    {"new york saturday afternoon", new_york, "2026-11-28T17:00", 0, "2026-11-30T13:00"},
    /* late evening UTC is still Friday in New York */
    {"new york friday evening", new_york, "2026-11-28T00:30", 0, "2026-11-28T15:00"},
};

static void test_office_hours(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof office_cases / sizeof office_cases[0]; i++) {
        cg_office_hours o;
        office(&o, office_cases[i].cfg);
        int64_t opens = -1;
        int open = cg_office_open(&o, utc(office_cases[i].now), &opens);
        if (open != office_cases[i].open) fail_msg("%s: open %d, want %d", office_cases[i].name, open, office_cases[i].open);
        if (!open) {
            int64_t want = office_cases[i].opens ? utc(office_cases[i].opens) : 0;
            if (opens != want) fail_msg("%s: opens %lld, want %lld", office_cases[i].name, (long long)opens, (long long)want);
        }
    }
}

static void test_office_always_open_and_format(void **state)
{
    (void)state;
    cg_office_hours none;
    memset(&none, 0, sizeof none);
    int64_t opens = -1;
    assert_int_equal(cg_office_open(&none, utc("2026-11-28T03:00"), &opens), 1);   /* not configured */
    cg_office_hours o;
    office(&o, "{\"timezone\": \"UTC\", \"week\": {}}");                           /* never open */
    assert_int_equal(cg_office_open(&o, utc("2026-11-28T03:00"), &opens), 0);
    assert_int_equal(opens, 0);
    office(&o, madrid);
    char buf[32];
    cg_office_format(&o, utc("2026-03-30T07:00"), buf, sizeof buf);
    assert_string_equal(buf, "2026-03-30 09:00");
    cg_office_format(&o, utc("2026-12-28T08:00"), buf, sizeof buf);
    assert_string_equal(buf, "2026-12-28 09:00");
    /* the process's own TZ is left as it was */
    setenv("TZ", "Asia/Tokyo", 1);
    cg_office_open(&o, utc("2026-11-26T08:00"), NULL);
    assert_string_equal(getenv("TZ"), "Asia/Tokyo");
    unsetenv("TZ");
}

static const struct { const char *json; const char *err; } office_bad[] = {
    {"{\"timezone\": \"Mars/Olympus\", \"week\": {}}", "agents.office_hours.timezone: required"},
    {"{\"timezone\": \"../etc/passwd\", \"week\": {}}", "agents.office_hours.timezone: required"},
    {"{\"week\": {}}", "agents.office_hours.timezone: required"},
    {"{\"timezone\": \"UTC\"}", "agents.office_hours.week: required"},
    {"{\"timezone\": \"UTC\", \"week\": {\"monday\": []}}", "agents.office_hours.week.monday: unknown day"},
    {"{\"timezone\": \"UTC\", \"week\": {\"mon\": [\"9:00-14:00\"]}}", "agents.office_hours.week.mon[0]: must be"},
    {"{\"timezone\": \"UTC\", \"week\": {\"mon\": [\"14:00-09:00\"]}}", "agents.office_hours.week.mon[0]: must be"},
    {"{\"timezone\": \"UTC\", \"week\": {\"mon\": [\"09:00-14:00\", \"13:00-15:00\"]}}",
     "agents.office_hours.week.mon[1]: overlaps"},
    {"{\"timezone\": \"UTC\", \"week\": {\"mon\": [\"09:00-24:00\"]}, \"holidays\": [\"2026-02-30\"]}",
     "agents.office_hours.holidays[0]: must be a date"},
    {"{\"timezone\": \"UTC\", \"week\": {}, \"closed\": true}", "agents.office_hours.closed: unknown key"},
};

static void test_office_config_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof office_bad / sizeof office_bad[0]; i++) {
        cJSON *j = cJSON_Parse(office_bad[i].json);
        cg_office_hours o;
        char err[256] = "";
        assert_int_equal(cg_config_office_hours(&o, j, "agents.office_hours", err, sizeof err), -1);
        if (strncmp(err, office_bad[i].err, strlen(office_bad[i].err)) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s...\"", i, err, office_bad[i].err);
        cJSON_Delete(j);
    }
}

/* ---- waiting and notices -------------------------------------------------- */

static void test_wait_estimate(void **state)
{
    (void)state;
    static const struct { int pos, agents, avg; int64_t want; int minutes; } t[] = {
        {1, 1, 300, 0, 5},          /* next: "about 5 minutes" at least */
        {2, 1, 300, 300, 5},
        {3, 1, 300, 600, 10},
        {5, 2, 300, 600, 10},       /* 4 ahead, 2 agents: 2 rounds */
        {4, 2, 300, 450, 10},       /* 3 ahead, 2 agents: a round, then half a case on average */
        {4, 2, 600, 900, 15},
        {10, 3, 240, 720, 15},
        {3, 0, 300, -1, 5},         /* nobody online: unknown */
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int64_t w = cg_agents_wait_estimate(t[i].pos, t[i].agents, t[i].avg);
        if (w != t[i].want) fail_msg("case %zu: %lld, want %lld", i, (long long)w, (long long)t[i].want);
        if (w >= 0) assert_int_equal(cg_agents_wait_minutes(w), t[i].minutes);
    }
    assert_int_equal(cg_agents_wait_minutes(301), 10);
    assert_int_equal(cg_agents_wait_minutes(3600), 60);
}

static void test_should_notify(void **state)
{
    (void)state;
    static const struct { int told, now, want; } t[] = {
        {0, 7, 1},    /* never told */
        {7, 7, 0},    /* same */
        {7, 8, 0},    /* worse (a higher priority arrived): not repeated */
        {7, 6, 0},    /* a third of 7 is 2 */
        {7, 5, 1},
        {2, 1, 1},    /* next */
        {3, 2, 1},
        {30, 20, 1},
        {30, 21, 0},
        {1, 1, 0},
        {0, 0, 0},    /* not in the queue */
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (cg_agents_should_notify(t[i].told, t[i].now) != t[i].want)
            fail_msg("told %d now %d: want %d", t[i].told, t[i].now, t[i].want);
}

static void test_case_ids(void **state)
{
    (void)state;
    char id[CG_CASE_ID_MAX];
    const unsigned char rnd[4] = {0xab, 0x01, 0xff, 0x10};
    cg_agents_case_id(id, 1764230400123, rnd);
    assert_string_equal(id, "c_1764230400123_ab01ff10");
    assert_true(cg_agents_case_id_valid(id));
    static const char *const bad[] = {"", "c_", "c_123", "c_123_", "x_123_ab", "c_12_AB", "c_1_2_3",
                                      "c_../etc", "c_1_ab cd", "c_123_abcdefabcdefabcdefabcdefabcdefabcdefabcdef"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cg_agents_case_id_valid(bad[i])) fail_msg("accepted \"%s\"", bad[i]);
}

static void test_texts(void **state)
{
    (void)state;
    /* without a table: the built-in English, placeholders filled */
    char *t = cg_agents_text(NULL, "queue_position", "es", "3", "15", NULL);
    assert_non_null(strstr(t, "number 3 in the queue"));
    assert_non_null(strstr(t, "about 15 minutes"));
    assert_null(strstr(t, "{{"));
    free(t);
    t = cg_agents_text(NULL, "queue_closed", "en", "2", NULL, "2026-11-30 09:00");
    assert_non_null(strstr(t, "opens on 2026-11-30 09:00"));
    free(t);
    /* with a table's phrase in the citizen's language */
    cg_settings s;
    memset(&s, 0, sizeof s);
    snprintf(s.default_language, sizeof s.default_language, "en");
    cg_ltext v[2] = {{"en", "You are #{{position}}, {{wait}} min."}, {"es", "Usted es el {{position}}.º ({{wait}} min)."}};
    struct cg_phrase ph = {"queue_position", {v, 2}};
    s.phrases = &ph;
    s.nphrases = 1;
    t = cg_agents_text(&s, "queue_position", "es", "4", "20", NULL);
    assert_string_equal(t, "Usted es el 4.º (20 min).");
    free(t);
    t = cg_agents_text(&s, "queue_position", "fr", "4", "20", NULL);   /* missing: the default language */
    assert_string_equal(t, "You are #4, 20 min.");
    free(t);
    t = cg_agents_text(&s, "csat_thanks", "es", NULL, NULL, NULL);      /* not in the table: built-in */
    assert_string_equal(t, "Thank you for your answer.");
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_order),
        cmocka_unit_test(test_office_hours),
        cmocka_unit_test(test_office_always_open_and_format),
        cmocka_unit_test(test_office_config_errors),
        cmocka_unit_test(test_wait_estimate),
        cmocka_unit_test(test_should_notify),
        cmocka_unit_test(test_case_ids),
        cmocka_unit_test(test_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

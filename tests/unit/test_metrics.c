/*
 * test_metrics.c: gateway/metrics.c's rendering of what operations need:
 * dead letters by kind (a closed vocabulary, unknown kinds as "other",
 * unknown channels as "other"), the Redis round-trip histogram (cumulative
 * buckets, sum, count), and gauges appearing once set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

/* The value of the sample line that starts with prefix (name and labels). */
static double sample(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, prefix, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
    }
    fail_msg("no sample %s", prefix);
    return -1;
}

static void test_deadletters_by_kind(void **state)
{
    (void)state;
    static const struct { const char *channel, *kind, *want; } rows[] = {
        {"telegram", "failed", "civicgate_deadletters_total{channel=\"telegram\",kind=\"failed\"}"},
        {"telegram", "bad_config", "civicgate_deadletters_total{channel=\"telegram\",kind=\"bad_config\"}"},
        {"whatsapp", "max_attempts", "civicgate_deadletters_total{channel=\"whatsapp\",kind=\"max_attempts\"}"},
        {"messenger", "made-up kind", "civicgate_deadletters_total{channel=\"messenger\",kind=\"other\"}"},
        {"fax", "failed", "civicgate_deadletters_total{channel=\"other\",kind=\"failed\"}"},
        {"webchat", NULL, "civicgate_deadletters_total{channel=\"webchat\",kind=\"other\"}"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) cg_metrics_deadletter(rows[i].channel, rows[i].kind);
    cg_metrics_deadletter("telegram", "failed");
    size_t len;
    char *text = cg_metrics_render(&len);
    assert_non_null(text);
    assert_true(strstr(text, "# TYPE civicgate_deadletters_total counter\n") != NULL);
    assert_true(sample(text, rows[0].want) == 2);
    for (size_t i = 1; i < sizeof rows / sizeof rows[0]; i++) assert_true(sample(text, rows[i].want) == 1);
    assert_null(strstr(text, "made-up"));
    assert_null(strstr(text, "channel=\"fax\""));
    free(text);
}

static void test_redis_roundtrip_histogram(void **state)
{
    (void)state;
    const double obs[] = {0.0002, 0.0007, 0.003, 0.003, 0.2, 42.0};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++) cg_metrics_redis_roundtrip(obs[i]);
    cg_metrics_redis_roundtrip(-1);   /* ignored */
    size_t len;
    char *text = cg_metrics_render(&len);
    assert_non_null(text);
    assert_true(strstr(text, "# TYPE civicgate_redis_roundtrip_seconds histogram\n") != NULL);
    assert_true(sample(text, "civicgate_redis_roundtrip_seconds_bucket{le=\"0.0005\"}") == 1);
    assert_true(sample(text, "civicgate_redis_roundtrip_seconds_bucket{le=\"0.001\"}") == 2);
    assert_true(sample(text, "civicgate_redis_roundtrip_seconds_bucket{le=\"0.005\"}") == 4);
    assert_true(sample(text, "civicgate_redis_roundtrip_seconds_bucket{le=\"0.25\"}") == 5);
    assert_true(sample(text, "civicgate_redis_roundtrip_seconds_bucket{le=\"10\"}") == 5);
    assert_true(sample(text, "civicgate_redis_roundtrip_seconds_bucket{le=\"+Inf\"}") == 6);
    assert_true(sample(text, "civicgate_redis_roundtrip_seconds_count") == 6);
    double sum = sample(text, "civicgate_redis_roundtrip_seconds_sum");
    assert_true(sum > 42.2068 && sum < 42.2070);   /* 0.0002 + 0.0007 + 0.003 × 2 + 0.2 + 42 */
    free(text);
}

static void test_gauges(void **state)
{
    (void)state;
    cg_metrics_set_gauge("civicgate_inbox_oldest_age_seconds", 12.5);
    cg_metrics_set_gauge("civicgate_inbox_oldest_age_seconds", 0.25);   /* replaced, not added */
    cg_metrics_set_gauge("not a name", 1);                             /* refused */
    size_t len;
    char *text = cg_metrics_render(&len);
    assert_non_null(text);
    assert_true(sample(text, "civicgate_inbox_oldest_age_seconds") == 0.25);
    assert_null(strstr(text, "not a name"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadletters_by_kind),
        cmocka_unit_test(test_redis_roundtrip_histogram),
        cmocka_unit_test(test_gauges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

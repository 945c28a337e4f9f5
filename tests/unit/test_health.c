/*
 * test_health.c: per-channel health for /readyz (gateway/health.c) and the
 * bounded civicgate_delivery_failed_total{channel,code} labels
 * (gateway/metrics.c), as tables of what the outbox and the pipeline report.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "health.h"
#include "metrics.h"

static cg_config cfg_with(int tg, int wa, int ms)
{
    cg_config c;
    memset(&c, 0, sizeof c);
    c.telegram.name = "telegram"; c.telegram.enabled = tg;
    c.whatsapp.name = "whatsapp"; c.whatsapp.enabled = wa;
    c.messenger.name = "messenger"; c.messenger.enabled = ms;
    return c;
}

static const char *status_of(const cJSON *o, const char *ch)
{
    const cJSON *s = cJSON_GetObjectItem(cJSON_GetObjectItem(o, ch), "status");
    return cJSON_IsString(s) ? s->valuestring : NULL;
}

/* A sequence of send outcomes and what /readyz shows after each. */
static const struct step {
    const char *channel;
    int failed;               /* 1: credentials refused; 0: a send succeeded */
    const char *reason;
    const char *want_wa, *want_ms;
} steps[] = {
    { NULL, 0, NULL, "ok", "ok" },                                   /* start: everything ok */
    { "whatsapp", 1, "whatsapp 401/190: Error validating access token", "unhealthy", "ok" },
    { "messenger", 0, NULL, "unhealthy", "ok" },                     /* another channel's success changes nothing */
    { "whatsapp", 1, "whatsapp 403/200: Permissions error", "unhealthy", "ok" },
    { "whatsapp", 0, NULL, "ok", "ok" },                             /* a later success: recovered */
    { "messenger", 1, "messenger 400/190: Invalid OAuth access token", "ok", "unhealthy" },
    { "signal", 1, "an unknown channel is ignored", "ok", "unhealthy" },
};

static void test_health_steps(void **state)
{
    (void)state;
    cg_health_reset();
    cg_config c = cfg_with(1, 1, 1);
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        const struct step *s = &steps[i];
        if (s->channel && s->failed) cg_health_channel_failed(s->channel, s->reason, 1764200000000LL + (int64_t)i);
        else if (s->channel) cg_health_channel_ok(s->channel);
        cJSON *o = cg_health_channels_json(&c);
        assert_non_null(o);
        if (strcmp(status_of(o, "whatsapp"), s->want_wa) || strcmp(status_of(o, "messenger"), s->want_ms))
            fail_msg("step %zu: whatsapp %s messenger %s, want %s %s", i, status_of(o, "whatsapp"),
                     status_of(o, "messenger"), s->want_wa, s->want_ms);
        assert_string_equal(status_of(o, "telegram"), "ok");
        const cJSON *wa = cJSON_GetObjectItem(o, "whatsapp");
        int unhealthy = !strcmp(s->want_wa, "unhealthy");
        assert_int_equal(cJSON_GetObjectItem(wa, "reason") != NULL, unhealthy);
        assert_int_equal(cJSON_GetObjectItem(wa, "at") != NULL, unhealthy);
        assert_int_equal(cg_health_channel_unhealthy("whatsapp"), unhealthy);
        cJSON_Delete(o);
    }
    /* the latest refusal's reason and time are shown */
    cJSON *o = cg_health_channels_json(&c);
    const cJSON *ms = cJSON_GetObjectItem(o, "messenger");
    assert_string_equal(cJSON_GetObjectItem(ms, "reason")->valuestring, "messenger 400/190: Invalid OAuth access token");
    assert_true(cJSON_GetObjectItem(ms, "at")->valuedouble == 1764200000005.0);
    cJSON_Delete(o);
}

static void test_health_only_enabled_channels_and_bounded_reason(void **state)
{
    (void)state;
    cg_health_reset();
    cg_config c = cfg_with(0, 1, 0);
    char reason[400];
    memset(reason, 'x', sizeof reason);
    memcpy(reason + 158, "\xC3\xA9\xC3\xA9", 4);       /* "éé" across the 160-byte cut */
    reason[sizeof reason - 1] = '\0';
    cg_health_channel_failed("whatsapp", reason, 1);
    cJSON *o = cg_health_channels_json(&c);
    assert_null(cJSON_GetObjectItem(o, "telegram"));
    assert_null(cJSON_GetObjectItem(o, "messenger"));
    const char *r = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "whatsapp"), "reason")->valuestring;
    assert_true(strlen(r) <= 160);
    assert_int_equal(strlen(r), 160);                    /* "xx…é" ends on a whole character */
    assert_memory_equal(r + 158, "\xC3\xA9", 2);
    cJSON_Delete(o);
}

static unsigned long long failed_count(const char *text, const char *labels)
{
    char want[160];
    snprintf(want, sizeof want, "civicgate_delivery_failed_total{%s} ", labels);
    const char *p = strstr(text, want);
    return p ? strtoull(p + strlen(want), NULL, 10) : 0;
}

static void test_delivery_failed_labels(void **state)
{
    (void)state;
    static const struct { const char *channel, *code; } rows[] = {
        { "whatsapp", "131026" }, { "whatsapp", "131026" }, { "whatsapp", "131049" },
        { "messenger", "131026" }, { "whatsapp", "13\"1" }, { "whatsapp", "" }, { "whatsapp", NULL },
        { "whatsapp", "1234567890123" }, { "signal", "5" },
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) cg_metrics_delivery_failed(rows[i].channel, rows[i].code);
    size_t len;
    char *t = cg_metrics_render(&len);
    assert_non_null(t);
    assert_int_equal(failed_count(t, "channel=\"whatsapp\",code=\"131026\""), 2);
    assert_int_equal(failed_count(t, "channel=\"whatsapp\",code=\"131049\""), 1);
    assert_int_equal(failed_count(t, "channel=\"messenger\",code=\"131026\""), 1);
    assert_int_equal(failed_count(t, "channel=\"whatsapp\",code=\"other\""), 4);   /* quote, empty, NULL, 13 digits */
    assert_int_equal(failed_count(t, "channel=\"other\",code=\"5\""), 1);
    assert_null(strstr(t, "13\"1"));
    free(t);
    /* a flood of distinct codes cannot grow the label set past its bound */
    for (int i = 0; i < 1000; i++) {
        char code[16];
        snprintf(code, sizeof code, "%d", 200000 + i);
        cg_metrics_delivery_failed("whatsapp", code);
    }
    t = cg_metrics_render(&len);
    size_t lines = 0;
    for (const char *p = t; (p = strstr(p, "\ncivicgate_delivery_failed_total{")); p++) lines++;
    assert_true(lines <= 64);
    assert_true(failed_count(t, "channel=\"whatsapp\",code=\"other\"") >= 4 + 1000 - 64);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_steps),
        cmocka_unit_test(test_health_only_enabled_channels_and_bounded_reason),
        cmocka_unit_test(test_delivery_failed_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

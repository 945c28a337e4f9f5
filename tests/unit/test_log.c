/*
 * test_log.c: gateway/log.c. Each case logs through the real cg_log() with
 * stderr redirected to a temporary file, then parses the line back with cJSON:
 * escaping must always give valid JSON with the value intact (or U+FFFD for
 * bytes that are not UTF-8), redaction must never let an id or a text through
 * unless debug_content is on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "log.h"

/* Run cg_log(lvl, "ev", "k", value, NULL) and return the parsed line (NULL
 * when nothing was written). */
static cJSON *log_one(cg_log_level lvl, const char *value, char *raw, size_t rawcap)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), 2) >= 0);
    cg_log(lvl, "ev", "k", value, NULL);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(raw, 1, rawcap - 1, tmp);
    raw[n] = '\0';
    fclose(tmp);
    if (n == 0) return NULL;
    assert_int_equal(raw[n - 1], '\n');
    assert_null(memchr(raw, '\n', n - 1));   /* one line */
    cJSON *o = cJSON_Parse(raw);
    if (!o) print_error("not JSON: %s\n", raw);
    assert_non_null(o);
    return o;
}

static const struct { const char *in, *out; } escape_cases[] = {
    {"plain", "plain"},
    {"quote \" and backslash \\", "quote \" and backslash \\"},
    {"new\nline\r\ttab", "new\nline\r\ttab"},
    {"bell \x07 esc \x1b del \x7f", "bell \x07 esc \x1b del \x7f"},
    {"ñandú 日本 🙂", "ñandú 日本 🙂"},
    {"bad \xff byte", "bad \xef\xbf\xbd byte"},                 /* U+FFFD */
    {"truncated \xe6\x97", "truncated \xef\xbf\xbd\xef\xbf\xbd"},
    {"overlong \xc0\xaf slash", "overlong \xef\xbf\xbd\xef\xbf\xbd slash"},
    {"surrogate \xed\xa0\x80", "surrogate \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"</script><b>", "</script><b>"},
    {"", ""},
};

static void test_escaping(void **state)
{
    (void)state;
    cg_log_init(CG_LOG_DEBUG, 0);
    char raw[16384];
    for (size_t i = 0; i < sizeof escape_cases / sizeof escape_cases[0]; i++) {
        cJSON *o = log_one(CG_LOG_INFO, escape_cases[i].in, raw, sizeof raw);
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "k");
        assert_true(cJSON_IsString(k));
        if (strcmp(k->valuestring, escape_cases[i].out)) {
            print_error("case %zu: got \"%s\" from line %s", i, k->valuestring, raw);
            fail();
        }
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "event")->valuestring, "ev");
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "level")->valuestring, "info");
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "ts");
        assert_true(cJSON_IsString(ts));
        assert_int_equal(strlen(ts->valuestring), strlen("2026-11-26T22:10:00.123Z"));
        assert_int_equal(ts->valuestring[10], 'T');
        assert_int_equal(ts->valuestring[23], 'Z');
        cJSON_Delete(o);
    }
}

static void test_null_value_and_levels(void **state)
{
    (void)state;
    char raw[4096];
    cg_log_init(CG_LOG_WARN, 0);
    assert_null(log_one(CG_LOG_INFO, "x", raw, sizeof raw));   /* below the minimum */
    cJSON *o = log_one(CG_LOG_ERROR, NULL, raw, sizeof raw);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "k")));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "level")->valuestring, "error");
    cJSON_Delete(o);
    assert_int_equal(cg_log_level_parse("debug"), CG_LOG_DEBUG);
    assert_int_equal(cg_log_level_parse("warn"), CG_LOG_WARN);
    assert_int_equal(cg_log_level_parse("error"), CG_LOG_ERROR);
    assert_int_equal(cg_log_level_parse("info"), CG_LOG_INFO);
    assert_int_equal(cg_log_level_parse("loud"), CG_LOG_INFO);
    assert_int_equal(cg_log_level_parse(NULL), CG_LOG_INFO);
}

static void test_long_value_cut(void **state)
{
    (void)state;
    cg_log_init(CG_LOG_DEBUG, 0);
    size_t n = 20000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++) big[i] = (i % 7 == 0) ? '"' : 'a';   /* escapes double the size */
    big[n] = '\0';
    char *raw = malloc(65536);
    assert_non_null(raw);
    cJSON *o = log_one(CG_LOG_INFO, big, raw, 65536);
    assert_true(strlen(raw) <= 8192);
    const char *v = cJSON_GetObjectItemCaseSensitive(o, "k")->valuestring;
    size_t vl = strlen(v);
    assert_true(vl > 1000 && vl < n);
    assert_string_equal(v + vl - 3, "...");
    assert_memory_equal(v, big, vl - 3);
    cJSON_Delete(o);
    free(raw);
    free(big);
}

static int is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

static const char *const users[] = {"4242", "4243", "wc0123456789abcdef0123456789abcd", "+15551234567", ""};

static void test_user_redaction(void **state)
{
    (void)state;
    cg_log_init(CG_LOG_INFO, 0);
    char seen[5][32];
    for (size_t i = 0; i < 5; i++) {
        const char *r = cg_log_user(users[i]);
        assert_int_equal(strlen(r), 14);
        assert_memory_equal(r, "u:", 2);
        assert_true(is_hex(r + 2, 12));
        if (users[i][0]) assert_null(strstr(r, users[i]));
        snprintf(seen[i], sizeof seen[i], "%s", r);
        assert_string_equal(cg_log_user(users[i]), seen[i]);   /* stable within the process */
        for (size_t j = 0; j < i; j++) assert_string_not_equal(seen[i], seen[j]);
    }
    assert_string_equal(cg_log_user(NULL), "-");
}

static const struct { const char *text; const char *redacted; } text_cases[] = {
    {"my social security number is 123-45-6789", "[redacted 40 bytes]"},
    {"", "[redacted 0 bytes]"},
    {"ñ", "[redacted 2 bytes]"},
};

static void test_text_redaction(void **state)
{
    (void)state;
    cg_log_init(CG_LOG_INFO, 0);
    for (size_t i = 0; i < sizeof text_cases / sizeof text_cases[0]; i++)
        assert_string_equal(cg_log_text(text_cases[i].text), text_cases[i].redacted);
    assert_string_equal(cg_log_text(NULL), "-");
}

static void test_debug_content(void **state)
{
    (void)state;
    cg_log_init(CG_LOG_INFO, 1);
    assert_string_equal(cg_log_user("4242"), "4242");
    assert_string_equal(cg_log_text("hola mundo"), "hola mundo");
    /* even with debug_content, personal data is redacted (redact.h) */
    assert_string_equal(cg_log_text("soy ana@correo.es, tel +34 612 345 678, DNI 12345678Z"),
                        "soy <email>, tel <phone>, DNI <id>");
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const char *t = cg_log_text(big);
    assert_true(strlen(t) < sizeof big - 1);
    assert_string_equal(t + strlen(t) - 3, "...");
    cg_log_init(CG_LOG_INFO, 0);
    assert_string_not_equal(cg_log_user("4242"), "4242");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaping),       cmocka_unit_test(test_null_value_and_levels),
        cmocka_unit_test(test_long_value_cut), cmocka_unit_test(test_user_redaction),
        cmocka_unit_test(test_text_redaction), cmocka_unit_test(test_debug_content),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_analytics.c: the pure parts of gateway/analytics.c: the stored
 * question (redacted, normalised), the grouping of near-identical questions,
 * the commit operation's arguments (the unmatched question only) and the
 * conversation hash. Tables of real questions; a failure prints the row.
 * The counters' batch needs Redis: test_store.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics.h"
#include "config.h"

typedef struct text_case {
    const char *what, *in, *lang, *want;   /* want NULL: nothing stored */
} text_case;

static const text_case texts[] = {
    {"en: phone and e-mail", "My phone is +1 (555) 010-9999, email ANA.perez@Example.org!", "en",
     "my phone is <phone> email <email>"},
    {"es: accents go, DNI redacted", "¿Cómo renuevo mi DNI 12345678Z?", "es", "como renuevo mi dni <id>"},
    {"fullwidth at-sign and digits are seen after NFKC", "ana\uFF20correo\uFF0Ees \uFF11\uFF12\uFF13\uFF14", "es",
     "<email> <num>"},
    {"circled digits become digits when normalised, then are redacted", "code \u2460\u2461\u2462\u2463", "en",
     "code <num>"},
    {"ar: Arabic-Indic phone", "\u0631\u0642\u0645\u064A \u0660\u0665\u0660 \u0661\u0662\u0663 \u0664\u0665\u0666\u0667", "ar",
     "\u0631\u0642\u0645\u064A <phone>"},
    {"only punctuation: nothing to store", "?!...", "en", NULL},
    {"invalid UTF-8: nothing", "abc\xff", "en", NULL},
};

static void test_text(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        const text_case *c = &texts[i];
        char *got = cg_analytics_text(c->in, strlen(c->in), c->lang);
        int ok = c->want ? got && strcmp(got, c->want) == 0 : got == NULL;
        if (!ok) {
            fprintf(stderr, "FAIL %s\n  want: %s\n  got:  %s\n", c->what, c->want ? c->want : "(NULL)",
                    got ? got : "(NULL)");
            failed++;
        }
        free(got);
    }
    assert_int_equal(failed, 0);
}

static void test_text_is_cut_at_a_word(void **state)
{
    (void)state;
    char big[1200];
    size_t n = 0;
    while (n + 8 < sizeof big) { memcpy(big + n, "passport ", 9); n += 9; }
    big[n] = '\0';
    char *got = cg_analytics_text(big, n, "en");
    assert_non_null(got);
    assert_true(strlen(got) <= CG_AN_TEXT_MAX);
    assert_true(strlen(got) % 9 == 8);   /* whole words: "passport" × k, single spaces */
    free(got);
}

/* Each row: questions (most asked first) and the expected group of each,
 * as the index of the group's first question. */
typedef struct group_case {
    const char *what, *lang;
    const char *q[8];
    size_t want[8];
} group_case;

static const group_case groups[] = {
    {"en: one word of difference groups; another topic does not", "en",
     {"how do i renew my passport", "how can i renew my passport", "how do i pay my taxes", "how do i renew passport",
      NULL},
     {0, 0, 2, 0}},
    {"en: placeholders count as words", "en",
     {"my case <id> status", "status of my case <id>", "where is my refund", NULL},
     {0, 0, 2}},
    {"es: stems join plural and singular", "es",
     {"necesito cupones de alimentos", "necesito un cupon de alimento", "donde voto", NULL},
     {0, 0, 2}},
    {"en: nothing in common, three groups", "en",
     {"adopt a dog", "register a boat", "swimming pool hours", NULL},
     {0, 1, 2}},
    {"empty texts join only each other", "en",
     {"", "", "hello", NULL},
     {0, 0, 2}},
};

static void test_group(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        const group_case *c = &groups[i];
        size_t n = 0, got[8];
        while (n < 8 && c->q[n]) n++;
        assert_int_equal(cg_analytics_group(c->q, n, c->lang, CG_AN_GROUP_THRESHOLD, got), 0);
        for (size_t k = 0; k < n; k++)
            if (got[k] != c->want[k]) {
                fprintf(stderr, "FAIL %s: \"%s\" in group %zu, want %zu\n", c->what, c->q[k], got[k], c->want[k]);
                failed++;
            }
    }
    assert_int_equal(failed, 0);
}

/* The commit's "an" operation: only a question the bot could not answer,
 * redacted; no counters (the batch writes those, test_store.c). */
static void test_op(void **state)
{
    (void)state;
    cg_config cfg;
    cg_config_defaults(&cfg);
    cfg.analytics_ttl_s = 86400;
    /* 2026-11-27T10:00:00Z */
    cg_analytics_turn t = { .channel = "whatsapp", .user = "15550109999", .text = "call me at 555 010 9999",
                            .lang = "en", .turn = 1, .fallback = 1, .now_ms = 1795773600000LL };
    cg_analytics_op op;
    assert_int_equal(cg_analytics_op_make(&cfg, &t, &op), 0);
    assert_int_equal(op.argc, 6);
    assert_true(op.argc <= CG_AN_OP_ARGS);
    /* expiry: the end of 2026-11-27 (UTC) plus the retention */
    assert_string_equal(op.argv[0], "1795910400");
    assert_string_equal(op.argv[1], "cg:an:day:2026-11-27:whatsapp");
    assert_string_equal(op.argv[2], "cg:an:unm:2026-11-27:en");
    assert_string_equal(op.argv[3], "fallback|whatsapp|call me at <phone>");
    char cid[8];
    cg_analytics_cid("whatsapp", "15550109999", cid);
    assert_string_equal(op.argv[4], cid);
    assert_int_equal(atoi(op.argv[5]), CG_AN_UNM_FIELDS);
    for (int i = 0; i < op.argc; i++) {
        assert_null(strstr(op.argv[i], "15550109999"));
        assert_null(strstr(op.argv[i], "messages"));
    }
    cg_analytics_op_free(&op);

    /* a hand-off of typed text: stored as such */
    cg_analytics_turn h = { .channel = "telegram", .user = "42", .text = "I want a person", .lang = "en",
                            .turn = 1, .handoff = 1, .now_ms = 1795773600000LL };
    assert_int_equal(cg_analytics_op_make(&cfg, &h, &op), 0);
    assert_string_equal(op.argv[3], "handoff|telegram|i want a person");
    cg_analytics_op_free(&op);

    /* nothing to store: no operation at all */
    static const cg_analytics_turn none[] = {
        /* an answer */
        { .channel = "telegram", .user = "42", .text = "medicaid", .lang = "en", .turn = 1,
          .intent = "cms-medicaid", .now_ms = 1795773600000LL },
        /* a message while an agent has the conversation */
        { .channel = "webchat", .user = "wc1", .text = "hello?", .agent = 1, .now_ms = 1795773600000LL },
        /* a rating of a resolved case */
        { .channel = "telegram", .user = "42", .csat = 4, .now_ms = 1795773600000LL },
        /* a fallback to a button or media: no typed text */
        { .channel = "telegram", .user = "42", .lang = "en", .turn = 1, .fallback = 1, .now_ms = 1795773600000LL },
        /* a fallback whose text redacts to nothing */
        { .channel = "telegram", .user = "42", .text = "?!...", .lang = "en", .turn = 1, .fallback = 1,
          .now_ms = 1795773600000LL },
    };
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        assert_int_equal(cg_analytics_op_make(&cfg, &none[i], &op), -1);
        assert_int_equal(op.argc, 0);
        cg_analytics_op_free(&op);
    }
    cg_config_free(&cfg);
}

static void test_cid(void **state)
{
    (void)state;
    char a[8], b[8], c[8];
    cg_analytics_cid("telegram", "123456789", a);
    cg_analytics_cid("telegram", "123456789", b);
    cg_analytics_cid("whatsapp", "123456789", c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_int_equal(strlen(a), 5);
    assert_int_equal(strspn(a, "0123456789abcdef"), 5);
}

static void test_day(void **state)
{
    (void)state;
    char d[11];
    cg_analytics_day(0, d);
    assert_string_equal(d, "1970-01-01");
    cg_analytics_day(1795773600000LL, d);
    assert_string_equal(d, "2026-11-27");
    cg_analytics_day(1709164800000LL, d);   /* leap day */
    assert_string_equal(d, "2024-02-29");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text), cmocka_unit_test(test_text_is_cut_at_a_word), cmocka_unit_test(test_group),
        cmocka_unit_test(test_op),   cmocka_unit_test(test_cid),                   cmocka_unit_test(test_day),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

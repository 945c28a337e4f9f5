/*
 * test_redact.c: gateway/redact.c as a table of real-looking messages in
 * several languages, text in and redacted text out. A failure prints the row.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redact.h"

typedef struct rd_case {
    const char *what;
    const char *in;
    const char *want;   /* NULL: refused (invalid input) */
} rd_case;

static const rd_case cases[] = {
    /* e-mail addresses */
    {"en: e-mail in a sentence", "my email is ana.lopez+gov@example.org, please reply",
     "my email is <email>, please reply"},
    {"es: e-mail at the end with a full stop", "Escríbanme a maria_perez@correo.gob.mx.",
     "Escríbanme a <email>."},
    {"fr: e-mail after a colon", "mail:jean-luc@orange.fr merci", "mail:<email> merci"},
    {"de: umlaut in the local part", "Meine Adresse: jürgen.müller@web.de", "Meine Adresse: <email>"},
    {"an @ that is no address stays", "meet @ the office at 10", "meet @ the office at 10"},
    {"a handle without a domain stays", "follow @usagov", "follow @usagov"},
    {"a one-letter top-level domain is no address", "a@b.c", "a@b.c"},

    /* phone numbers */
    {"en: US number with parentheses", "call me at (555) 123-4567 tomorrow", "call me at <phone> tomorrow"},
    {"en: international with plus", "my number is +1 202 555 0143", "my number is <phone>"},
    {"fr: pairs of digits", "mon numéro: 06 12 34 56 78", "mon numéro: <phone>"},
    {"es: Mexican mobile with dashes", "mi celular es 55-1234-5678 gracias", "mi celular es <phone> gracias"},
    {"pt: Brazilian with plus and no spaces", "whatsapp +5511987654321", "whatsapp <phone>"},
    {"ar: Arabic-Indic digits with spaces",
     "\u0631\u0642\u0645\u064A \u0660\u0665\u0660 \u0661\u0662\u0663 \u0664\u0665\u0666\u0667",
     "\u0631\u0642\u0645\u064A <phone>"},
    {"de: with slash", "Tel. 030/12345678", "Tel. <phone>"},

    /* dates */
    {"en: ISO date of birth", "born 1984-03-07 in Ohio", "born <date> in Ohio"},
    {"es: day/month/year", "nací el 07/03/1984", "nací el <date>"},
    {"de: dotted short year", "am 7.3.84 geboren", "am <date> geboren"},

    /* ID-like tokens */
    {"es: DNI", "mi DNI es 12345678Z", "mi DNI es <id>"},
    {"en: passport number", "passport X1234567 expired", "passport <id> expired"},
    {"en: case reference with dashes", "case AB-2024-00917 status", "case <id> status"},
    {"en: USCIS form name has 3 digits: an id by the rule", "status of my I-485", "status of my <id>"},
    {"en: W-2 keeps its one digit", "where is my W-2", "where is my W-2"},
    {"en: covid19 has two digits: kept", "covid19 vaccine", "covid19 vaccine"},

    {"de: IBAN in groups", "meine IBAN ist DE89 3704 0044 0532 0130 00 danke", "meine IBAN ist <id> danke"},
    {"en: UK IBAN with a letters-only bank code", "GB29 NWBK 6016 1331 9268 19", "<id>"},
    {"fr: IBAN in one run", "IBAN FR1420041010050500013M02606.", "IBAN <id>."},
    {"not an IBAN: two digits, then words", "ab12 hello world again and again", "ab12 hello world again and again"},

    /* digit runs */
    {"en: SSN without separators", "ssn 123456789 please", "ssn <num> please"},
    {"en: ZIP code", "offices near 90210", "offices near <num>"},
    {"en: amounts of three digits or more", "I owe 1,250 dollars", "I owe 1,<num> dollars"},
    {"hi: Devanagari digits", "\u092E\u0947\u0930\u093E \u0928\u0902\u092C\u0930 \u0967\u0968\u0969\u096A\u096B",
     "\u092E\u0947\u0930\u093E \u0928\u0902\u092C\u0930 <num>"},
    {"fullwidth digits", "\uFF11\uFF12\uFF13\uFF14", "<num>"},
    {"one and two digit numbers stay", "section 8 housing for 2 kids aged 11", "section 8 housing for 2 kids aged 11"},

    /* nothing to redact */
    {"plain question", "how do I apply for medicaid?", "how do I apply for medicaid?"},
    {"Arabic question", "\u0643\u064A\u0641 \u0623\u062C\u062F\u062F \u062C\u0648\u0627\u0632 \u0633\u0641\u0631\u064A\u061F",
     "\u0643\u064A\u0641 \u0623\u062C\u062F\u062F \u062C\u0648\u0627\u0632 \u0633\u0641\u0631\u064A\u061F"},
    {"empty", "", ""},

    /* several at once */
    {"all kinds in one message", "I'm ana@x.io, +44 20 7946 0958, ref 77ABC123, born 01/02/1990, PIN 4321",
     "I'm <email>, <phone>, ref <id>, born <date>, PIN <num>"},

    /* refused */
    {"invalid UTF-8", "abc\xff", NULL},
};

static void test_table(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const rd_case *c = &cases[i];
        char *got = cg_redact(c->in, strlen(c->in));
        int ok = c->want ? got && strcmp(got, c->want) == 0 : got == NULL;
        if (!ok) {
            fprintf(stderr, "FAIL %s\n  in:   %s\n  want: %s\n  got:  %s\n", c->what, c->in,
                    c->want ? c->want : "(NULL)", got ? got : "(NULL)");
            failed++;
        }
        free(got);
    }
    assert_int_equal(failed, 0);
}

/* Whatever comes in, no run of 3+ ASCII digits survives and the output is
 * valid for the next step (NUL-terminated, no longer than 5/3 of the input
 * plus a placeholder). */
static void test_no_digit_run_survives(void **state)
{
    (void)state;
    static const char *const inputs[] = {
        "1234", "a1b2c3d4", "12 345", "x 999 y", "+", "+1", "(", "((((1234567", "1-2-3-4-5-6-7-8",
        "0000000000000000000000000", "@@@1234@@@", "a@1234.com", "1.1.1.1", "12/12/12/12/12",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        char *got = cg_redact(inputs[i], strlen(inputs[i]));
        assert_non_null(got);
        int run = 0;
        for (const char *p = got; *p; p++) {
            run = (*p >= '0' && *p <= '9') ? run + 1 : 0;
            if (run >= 3) fail_msg("digits survive in %s -> %s", inputs[i], got);
        }
        free(got);
    }
}

static void test_long_input_is_cut(void **state)
{
    (void)state;
    size_t n = CG_REDACT_MAX_IN * 2;
    char *big = malloc(n + 1);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++) big[i] = "ab "[i % 3];
    big[n] = '\0';
    char *got = cg_redact(big, n);
    assert_non_null(got);
    assert_int_equal(strlen(got), CG_REDACT_MAX_IN);
    free(got);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_no_digit_run_survives),
        cmocka_unit_test(test_long_input_is_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_text.c: engine/text.c, as tables of real text in and canonical text out.
 * Each table row names what it checks; a failure prints the row.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "civicgate/text.h"

typedef struct norm_case {
    const char *what;
    const char *in;
    const char *lang;   /* NULL: generic rules */
    const char *want;
} norm_case;

static const norm_case latin[] = {
    {"case and punctuation", "Hello, World!", "en", "hello world"},
    {"apostrophe inside a word is dropped", "I haven't received it", "en", "i havent received it"},
    {"typographic apostrophe too", "rock\u2019n\u2019roll", "en", "rocknroll"},
    {"leading apostrophe is a space", "'quoted' words", "en", "quoted words"},
    {"ligature fi (NFKC)", "\uFB01nance", "en", "finance"},
    {"fullwidth letters and digits", "\uFF21\uFF22\uFF23\uFF11\uFF12\uFF13", "en", "abc123"},
    {"superscript digit", "x\u00B2", "en", "x2"},
    {"sharp s folds to ss", "Stra\u00DFe", "de", "strasse"},
    {"precomposed accents stripped", "Caf\u00E9 Ol\u00E9", "fr", "cafe ole"},
    {"combining accents stripped", "Cafe\u0301", "fr", "cafe"},
    {"Turkish dotted capital I", "\u0130stanbul", "tr", "istanbul"},
    {"whitespace collapsed and trimmed", "  multiple \t\n  spaces  ", "en", "multiple spaces"},
    {"symbols are spaces", "50% off & $10 <now>", "en", "50 off 10 now"},
    {"only punctuation", "?!...", "en", ""},
    {"empty", "", "en", ""},
    {"no language: generic rules strip accents", "R\u00E9sum\u00E9", NULL, "resume"},
};

static const norm_case spanish[] = {
    {"inverted question mark, accents", "\u00BFD\u00F3nde est\u00E1 mi tarjeta?", "es",
     "donde esta mi tarjeta"},
    {"enye loses its tilde", "\u00D1AND\u00DA A\u00D1O", "es", "nandu ano"},
    {"exclamation and diaeresis", "\u00A1Ling\u00FC\u00EDstica!", "es", "linguistica"},
    {"regional variant tag", "Tambi\u00E9n", "es-MX", "tambien"},
};

static const norm_case arabic[] = {
    {"alef with hamza above", "\u0623\u062D\u0645\u062F", "ar", "\u0627\u062D\u0645\u062F"},
    {"alef with hamza below", "\u0625\u0633\u0644\u0627\u0645", "ar", "\u0627\u0633\u0644\u0627\u0645"},
    {"alef with madda", "\u0622\u0645\u0646", "ar", "\u0627\u0645\u0646"},
    {"alef wasla", "\u0671\u0644\u0644\u0647", "ar", "\u0627\u0644\u0644\u0647"},
    {"alef maqsura to ya", "\u0645\u0633\u062A\u0634\u0641\u0649", "ar",
     "\u0645\u0633\u062A\u0634\u0641\u064A"},
    {"ta marbuta to ha", "\u0645\u062F\u0631\u0633\u0629", "ar", "\u0645\u062F\u0631\u0633\u0647"},
    {"tatweel removed", "\u0643\u0640\u0640\u0640\u062A\u0627\u0628", "ar", "\u0643\u062A\u0627\u0628"},
    {"harakat removed", "\u0643\u064E\u062A\u064E\u0628\u064E", "ar", "\u0643\u062A\u0628"},
    {"shadda and tanwin removed", "\u0634\u064F\u0643\u0652\u0631\u064B\u0627", "ar",
     "\u0634\u0643\u0631\u0627"},
    {"superscript alef removed", "\u0647\u0670\u0630\u0627", "ar", "\u0647\u0630\u0627"},
    {"Arabic-Indic digits", "\u0662\u0660\u0662\u0664", "ar", "2024"},
    {"Persian digits", "\u06F1\u06F2\u06F3", "ar", "123"},
    {"Arabic question mark and comma", "\u0647\u0644\u060C \u0645\u0627\u0630\u0627\u061F", "ar",
     "\u0647\u0644 \u0645\u0627\u0630\u0627"},
    {"presentation form lam-alef ligature", "\uFEFB", "ar", "\u0644\u0627"},
    {"hamza on waw and ya lose the hamza", "\u0624 \u0626", "ar", "\u0648 \u064A"},
};

static const norm_case mixed[] = {
    {"Arabic glued to Latin splits", "\u0628\u0637\u0627\u0642\u0629visa", NULL,
     "\u0628\u0637\u0627\u0642\u0647 visa"},
    {"Latin glued to Arabic splits", "visa\u0628\u0637\u0627\u0642\u0629", "ar",
     "visa \u0628\u0637\u0627\u0642\u0647"},
    {"sentence mixing scripts", "my \u0628\u0637\u0627\u0642\u0629 card!", NULL,
     "my \u0628\u0637\u0627\u0642\u0647 card"},
    {"digits do not split", "\u0628\u0637\u0627\u0642\u0629123", "ar",
     "\u0628\u0637\u0627\u0642\u0647123"},
    {"Cyrillic keeps short i for ru", "\u041F\u0440\u0438\u0432\u0435\u0442 \u0419\u043E\u0434", "ru",
     "\u043F\u0440\u0438\u0432\u0435\u0442 \u0439\u043E\u0434"},
    {"Cyrillic generic rules strip it", "\u0419\u043E\u0434", NULL, "\u0438\u043E\u0434"},
    {"Greek keeps tonos for el", "\u039A\u03B1\u03BB\u03B7\u03BC\u03AD\u03C1\u03B1", "el",
     "\u03BA\u03B1\u03BB\u03B7\u03BC\u03AD\u03C1\u03B1"},
    {"Devanagari vowel signs kept", "\u0928\u092E\u0938\u094D\u0924\u0947", "hi",
     "\u0928\u092E\u0938\u094D\u0924\u0947"},
};

static const norm_case emoji[] = {
    {"emoji between words", "card \U0001F4B3 lost \U0001F622", "en", "card lost"},
    {"skin tone modifier", "\U0001F44D\U0001F3FD ok", "en", "ok"},
    {"variation selector after a symbol", "\u2764\uFE0F thanks", "en", "thanks"},
    {"ZWJ family sequence", "\U0001F468\u200D\U0001F469\u200D\U0001F467 family", "en", "family"},
    {"flag (regional indicators)", "\U0001F1EA\U0001F1F8 spain", "es", "spain"},
    {"emoji glued to a word", "help\U0001F64F", "en", "help"},
    {"only emoji", "\U0001F600\U0001F600", "en", ""},
};

static void run_norm(const norm_case *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *got = cg_text_normalize(t[i].in, strlen(t[i].in), t[i].lang);
        if (!got || strcmp(got, t[i].want) != 0)
            fail_msg("%s: normalize(\"%s\", %s) = \"%s\", want \"%s\"", t[i].what, t[i].in,
                     t[i].lang ? t[i].lang : "NULL", got ? got : "(null)", t[i].want);
        free(got);
    }
}

static void test_latin(void **state) { (void)state; run_norm(latin, sizeof latin / sizeof *latin); }
static void test_spanish(void **state) { (void)state; run_norm(spanish, sizeof spanish / sizeof *spanish); }
static void test_arabic(void **state) { (void)state; run_norm(arabic, sizeof arabic / sizeof *arabic); }
static void test_mixed(void **state) { (void)state; run_norm(mixed, sizeof mixed / sizeof *mixed); }
static void test_emoji(void **state) { (void)state; run_norm(emoji, sizeof emoji / sizeof *emoji); }

/* Pure ASCII takes a fast path; it must agree with the Unicode path. Adding
 * one non-ASCII word forces the Unicode path for the same text. */
static void test_ascii_fast_path_agrees(void **state)
{
    (void)state;
    static const char *const inputs[] = {
        "Hello, World!", "I haven't got my card", "it's 'quoted'", "don`t", "5's and 6's",
        "a--b__c", "\tTAB\r\nline", "x'", "'x", "A.B.C", "100% #1 @home", "~^|{}[]\\/",
        "MiXeD CaSe 123abc", "   ",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s \u00E9t\u00E9", inputs[i]);
        char *fast = cg_text_normalize(inputs[i], strlen(inputs[i]), "en");
        char *slow = cg_text_normalize(buf, strlen(buf), "en");
        assert_non_null(fast);
        assert_non_null(slow);
        char want[160];
        snprintf(want, sizeof want, "%s%sete", fast, fast[0] ? " " : "");
        if (strcmp(want, slow) != 0)
            fail_msg("\"%s\": fast path \"%s\", Unicode path \"%s\"", inputs[i], fast, slow);
        free(fast);
        free(slow);
    }
}

/* Text made only of ASCII and the basic Arabic block takes a fast path too;
 * check it against the Unicode path for every code point of the block, in a
 * few contexts (alone, inside Latin, after an apostrophe, between Arabic
 * letters). */
static void test_arabic_fast_path_agrees(void **state)
{
    (void)state;
    static const char *const ctx[] = {"%s", "x%sy", "'%s", "%sa", "\u0628%s\u0627", "a'%s",
                                      "%s%s", "1%s2"};
    for (unsigned cp = 0x0600; cp <= 0x06FF; cp++) {
        char ch[4] = {(char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F)), 0, 0};
        for (size_t k = 0; k < sizeof ctx / sizeof *ctx; k++) {
            char in[64], forced[80];
            snprintf(in, sizeof in, ctx[k], ch, ch);
            snprintf(forced, sizeof forced, "%s \u00E9", in);
            char *fast = cg_text_normalize(in, strlen(in), "ar");
            char *slow = cg_text_normalize(forced, strlen(forced), "ar");
            assert_non_null(fast);
            assert_non_null(slow);
            char want[96];   /* "é" is kept for ar: no accent stripping */
            snprintf(want, sizeof want, "%s%s\u00E9", fast, fast[0] ? " " : "");
            if (strcmp(want, slow) != 0)
                fail_msg("U+%04X in \"%s\": fast path \"%s\", Unicode path \"%s\"", cp, ctx[k], fast,
                         slow);
            free(fast);
            free(slow);
        }
    }
}

typedef struct bytes_case { const char *what; const char *s; size_t len; } bytes_case;

static const bytes_case invalid[] = {
    {"overlong slash (2 bytes)", "\xC0\xAF", 2},
    {"overlong slash (3 bytes)", "\xE0\x80\xAF", 3},
    {"overlong slash (4 bytes)", "\xF0\x80\x80\xAF", 4},
    {"overlong NUL", "\xC0\x80", 2},
    {"high surrogate", "\xED\xA0\x80", 3},
    {"low surrogate", "\xED\xBF\xBF", 3},
    {"surrogate pair encoded as CESU-8", "\xED\xA0\xBD\xED\xB2\xA9", 6},
    {"truncated 3-byte sequence", "ab\xE2\x82", 4},
    {"truncated 4-byte sequence at end", "\xF0\x9F\x98", 3},
    {"lone continuation byte", "a\x80z", 3},
    {"byte FF", "\xFF", 1},
    {"beyond U+10FFFF", "\xF4\x90\x80\x80", 4},
    {"embedded NUL", "a\0b", 3},
    {"continuation missing mid-text", "caf\xC3 ok", 6},
};

static const bytes_case valid[] = {
    {"empty", "", 0},
    {"ASCII", "hello", 5},
    {"two-byte", "\xC3\xA9", 2},
    {"three-byte euro", "\xE2\x82\xAC", 3},
    {"four-byte emoji", "\xF0\x9F\x98\x80", 4},
    {"last code point U+10FFFF", "\xF4\x8F\xBF\xBF", 4},
    {"U+FFFD", "\xEF\xBF\xBD", 3},
};

static void test_invalid_utf8(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        if (cg_text_valid_utf8(invalid[i].s, invalid[i].len))
            fail_msg("%s: accepted as valid UTF-8", invalid[i].what);
        char *n = cg_text_normalize(invalid[i].s, invalid[i].len, "en");
        if (n)
            fail_msg("%s: normalize returned \"%s\", want NULL", invalid[i].what, n);
    }
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++) {
        if (!cg_text_valid_utf8(valid[i].s, valid[i].len))
            fail_msg("%s: rejected", valid[i].what);
        char *n = cg_text_normalize(valid[i].s, valid[i].len, "en");
        if (!n)
            fail_msg("%s: normalize returned NULL", valid[i].what);
        free(n);
    }
}

/* Not NUL-terminated input: only len bytes are read. */
static void test_length_is_respected(void **state)
{
    (void)state;
    const char text[] = "Card blocked!!! trailing garbage \xFF";
    char *n = cg_text_normalize(text, 15, "en");
    assert_non_null(n);
    assert_string_equal(n, "card blocked");
    free(n);
}

typedef struct tok_case {
    const char *what;
    const char *in;     /* raw text: normalised first */
    const char *lang;
    int stem;
    const char *want;   /* tokens joined by '|' */
} tok_case;

static const tok_case toks[] = {
    {"English stems", "The cards were BLOCKED yesterday", "en", 1, "the|card|were|block|yesterday"},
    {"English without stemming", "The cards were blocked", "en", 0, "the|cards|were|blocked"},
    {"Spanish stems", "Las tarjetas bloqueadas", "es", 1, "las|tarjet|bloqu"},
    {"Spanish after accent stripping", "\u00BFD\u00F3nde est\u00E1 mi tarjeta?", "es", 1,
     "dond|esta|mi|tarjet"},
    {"Arabic stems (definite article, plural)",
     "\u0627\u0644\u0628\u0637\u0627\u0642\u0627\u062A \u0627\u0644\u0645\u0635\u0631\u0641\u064A\u0629",
     "ar", 1, "\u0628\u0637\u0627\u0642|\u0645\u0635\u0631\u0641\u064A\u0647"},
    {"mixed scripts tokenise apart", "\u0628\u0637\u0627\u0642\u0629visa", "ar", 0,
     "\u0628\u0637\u0627\u0642\u0647|visa"},
    {"unknown language: not stemmed", "cards blocked", "xx", 1, "cards|blocked"},
    {"region subtag uses the language's stemmer", "received", "en-GB", 1, "receiv"},
    {"empty text, no tokens", "  ...  ", "en", 1, ""},
};

static void test_tokenize(void **state)
{
    (void)state;
    cg_text_ctx *c = cg_text_ctx_new();
    assert_non_null(c);
    for (size_t i = 0; i < sizeof toks / sizeof *toks; i++) {
        char *n = cg_text_normalize(toks[i].in, strlen(toks[i].in), toks[i].lang);
        assert_non_null(n);
        cg_tokens t = {0};
        assert_int_equal(cg_text_tokenize(c, n, toks[i].lang, toks[i].stem, &t), 0);
        char got[512] = "";
        for (size_t k = 0; k < t.n; k++) {
            if (k)
                strncat(got, "|", sizeof got - strlen(got) - 1);
            strncat(got, t.v[k], sizeof got - strlen(got) - 1);
        }
        if (strcmp(got, toks[i].want) != 0)
            fail_msg("%s: tokens \"%s\", want \"%s\"", toks[i].what, got, toks[i].want);
        cg_tokens_free(&t);
        free(n);
    }
    cg_text_ctx_free(c);
}

static void test_stem_one_word(void **state)
{
    (void)state;
    cg_text_ctx *c = cg_text_ctx_new();
    size_t n;
    const char *s = cg_text_stem(c, "en", "refunds", 7, &n);
    assert_int_equal(n, 6);
    assert_memory_equal(s, "refund", 6);
    /* no stemmer: the word itself comes back */
    const char *w = "xyzzy";
    assert_ptr_equal(cg_text_stem(c, "zz", w, 5, &n), w);
    assert_int_equal(n, 5);
    /* many languages in one ctx: each keeps its own stemmer */
    s = cg_text_stem(c, "es", "tarjetas", 8, &n);
    assert_int_equal(n, 6);
    assert_memory_equal(s, "tarjet", 6);
    s = cg_text_stem(c, "en", "blocked", 7, &n);
    assert_int_equal(n, 5);
    assert_memory_equal(s, "block", 5);
    cg_text_ctx_free(c);
}

static void test_stemmer_names(void **state)
{
    (void)state;
    static const struct { const char *lang, *want; } t[] = {
        {"en", "english"}, {"es", "spanish"}, {"ar", "arabic"}, {"pt-br", "portuguese"},
        {"PT_BR", "portuguese"}, {"fr", "french"}, {"xx", NULL}, {"", NULL}, {NULL, NULL},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        const char *got = cg_text_stemmer_name(t[i].lang);
        if ((got == NULL) != (t[i].want == NULL) || (got && strcmp(got, t[i].want) != 0))
            fail_msg("stemmer_name(%s) = %s, want %s", t[i].lang ? t[i].lang : "NULL",
                     got ? got : "NULL", t[i].want ? t[i].want : "NULL");
    }
    assert_int_equal(cg_text_strips_accents("es"), 1);
    assert_int_equal(cg_text_strips_accents(NULL), 1);
    assert_int_equal(cg_text_strips_accents("ru"), 0);
    assert_int_equal(cg_text_strips_accents("vi"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_latin),
        cmocka_unit_test(test_spanish),
        cmocka_unit_test(test_arabic),
        cmocka_unit_test(test_mixed),
        cmocka_unit_test(test_emoji),
        cmocka_unit_test(test_ascii_fast_path_agrees),
        cmocka_unit_test(test_arabic_fast_path_agrees),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_length_is_respected),
        cmocka_unit_test(test_tokenize),
        cmocka_unit_test(test_stem_one_word),
        cmocka_unit_test(test_stemmer_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

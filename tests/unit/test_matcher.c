/*
 * test_matcher.c: engine/matcher.c on a small table built in memory (no
 * loader, no files): six public-service intents with examples in English and
 * Spanish (one also in Arabic), a "must" keyword, and a fallback intent.
 * Checks typo'd and reworded questions, fallback on unrelated text, language
 * detection, keywords, synonyms, the ambiguity flag, ranking, invalid UTF-8
 * and concurrent use. Accuracy on real datasets is measured in bench/intents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "civicgate/intents.h"
#include "civicgate/text.h"
#include "matcher.h"

/* ---- the table ---------------------------------------------------------- */

typedef struct spec {
    const char *id;
    const char *en[8], *es[8], *ar[4];
    const char *must[2], *should[2];
    cg_special special;
} spec;

/* Sorted by id, as the loader leaves them. */
static const spec table[] = {
    {"garbage-pickup",
     {"when is trash collected", "garbage pickup schedule", "my bins were not emptied",
      "recycling collection day", "the garbage truck skipped my street", "what day do they take the trash"},
     {"cuándo pasa el camión de la basura", "horario de recolección de basura",
      "no recogieron mi basura", "qué día recogen el reciclaje"},
     {NULL}, {NULL}, {NULL}, CG_SPECIAL_NONE},
    {"id-card-renew",
     {"how do i renew my id card", "my identity card expired", "renew national id card",
      "replace an expired identity document", "appointment to renew my id"},
     {"cómo renuevo mi documento de identidad", "mi cédula está vencida", "renovar la cédula de identidad",
      "cita para renovar el documento de identidad"},
     {NULL}, {NULL}, {NULL}, CG_SPECIAL_NONE},
    {"medicare-card",
     {"replace my medicare card", "i lost my medicare card", "new medicare card please",
      "medicare card was stolen"},
     {"perdí mi tarjeta de medicare", "reemplazar la tarjeta de medicare"},
     {NULL}, {"medicare", NULL}, {NULL}, CG_SPECIAL_NONE},
    {"passport-apply",
     {"how do i apply for a passport", "get a new passport", "passport application form",
      "first passport for my child", "where can i request a passport"},
     {"cómo solicito un pasaporte", "quiero sacar el pasaporte", "formulario de solicitud de pasaporte",
      "pasaporte para mi hijo"},
     {NULL}, {NULL}, {NULL}, CG_SPECIAL_NONE},
    {"pothole-report",
     {"report a pothole", "there is a hole in the road", "broken pavement on my street",
      "the road in front of my house is damaged"},
     {"reportar un bache", "hay un hueco en la calle", "la calle está rota frente a mi casa"},
     {NULL}, {NULL}, {NULL}, CG_SPECIAL_NONE},
    {"tax-refund",
     {"where is my tax refund", "when will i get my tax return money", "check the status of my refund",
      "my tax refund has not arrived"},
     {"dónde está mi devolución de impuestos", "cuándo recibo mi reembolso de impuestos",
      "estado de mi devolución"},
     {"\u0623\u064A\u0646 \u0627\u0633\u062A\u0631\u062F\u0627\u062F \u0627\u0644\u0636\u0631\u064A\u0628\u0629",
      "\u0645\u062A\u0649 \u0623\u062D\u0635\u0644 \u0639\u0644\u0649 \u0627\u0633\u062A\u0631\u062F\u0627\u062F \u0627\u0644\u0636\u0631\u0627\u0626\u0628",
      NULL},
     {NULL}, {NULL}, CG_SPECIAL_NONE},
    /* a fallback intent never matches, even with an example (the loader
     * would not give it one) */
    {"zz-fallback", {"sorry what", NULL}, {NULL}, {NULL}, {NULL}, {NULL}, CG_SPECIAL_FALLBACK},
};
#define NSPEC (sizeof table / sizeof *table)

static char *langs[] = {"en", "es", "ar"};

static size_t count(const char *const *v, size_t max)
{
    size_t n = 0;
    while (n < max && v[n])
        n++;
    return n;
}

/* Normalised copies, as the loader stores keywords and synonyms. */
static char **norm_list(const char *const *v, size_t n, const char *lang)
{
    char **out = calloc(n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = cg_text_normalize(v[i], strlen(v[i]), lang);
    return out;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

typedef struct syn_pair { const char *from, *to; } syn_pair;

/* Build a table from specs (sorted by id) and train. syns may be NULL. */
static cg_intents *build_from(const spec *specs, size_t nspec, double threshold, const syn_pair *syns,
                              size_t nsyns, const char *should_on, const char *should_word)
{
    cg_intents *t = calloc(1, sizeof *t);
    t->refs = 1;
    t->settings.languages = langs;
    t->settings.nlanguages = 3;
    snprintf(t->settings.default_language, CG_LANG_MAX, "en");
    t->settings.threshold = threshold;
    t->settings.ambiguity_margin = 0.08;
    t->intents = calloc(nspec, sizeof *t->intents);
    t->nintents = nspec;
    for (size_t i = 0; i < nspec; i++) {
        const spec *s = &specs[i];
        cg_intent *in = &t->intents[i];
        if (i > 0)
            assert_true(strcmp(specs[i - 1].id, s->id) < 0);
        in->id = (char *)s->id;
        in->special = s->special;
        in->examples = calloc(3, sizeof *in->examples);
        const char *const *ex[3] = {s->en, s->es, s->ar};
        size_t max[3] = {8, 8, 4};
        for (size_t l = 0; l < 3; l++) {
            size_t n = count(ex[l], max[l]);
            if (!n)
                continue;
            cg_examples *e = &in->examples[in->nexamples++];
            snprintf(e->lang, CG_LANG_MAX, "%s", langs[l]);
            e->v = (char **)ex[l];
            e->n = n;
        }
        in->nmust = count(s->must, 2);
        in->must = norm_list(s->must, in->nmust, "en");
        if (should_on && strcmp(should_on, s->id) == 0) {
            in->nshould = 1;
            in->should = norm_list(&should_word, 1, "en");
        }
    }
    if (nsyns) {
        t->syn_from = calloc(nsyns, sizeof(char *));
        t->syn_to = calloc(nsyns, sizeof(char *));
        for (size_t i = 0; i < nsyns; i++) {
            t->syn_from[i] = cg_text_normalize(syns[i].from, strlen(syns[i].from), "en");
            t->syn_to[i] = cg_text_normalize(syns[i].to, strlen(syns[i].to), "en");
        }
        t->nsyn = nsyns;
    }
    cg_diags d = {0};
    t->matcher = cg_matcher_train(t, &d);
    assert_non_null(t->matcher);
    assert_int_equal(d.errors, 0);
    cg_diags_free(&d);
    return t;
}

static cg_intents *build(double threshold, const syn_pair *syns, size_t nsyns, const char *should_on,
                         const char *should_word)
{
    return build_from(table, NSPEC, threshold, syns, nsyns, should_on, should_word);
}

static void destroy(cg_intents *t)
{
    cg_matcher_free(t->matcher);
    for (size_t i = 0; i < t->nintents; i++) {
        free(t->intents[i].examples);
        free_list(t->intents[i].must, t->intents[i].nmust);
        free_list(t->intents[i].should, t->intents[i].nshould);
    }
    free(t->intents);
    free_list(t->syn_from, t->nsyn);
    free_list(t->syn_to, t->nsyn);
    free(t);
}

static cg_intents *T;   /* default table, threshold 0.5 */

static int setup(void **state)
{
    (void)state;
    T = build(0.5, NULL, 0, NULL, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    destroy(T);
    return 0;
}

/* ---- cases -------------------------------------------------------------- */

typedef struct mcase {
    const char *what;
    const char *text;
    const char *want;      /* intent id, or NULL: must fall back */
    const char *lang;      /* expected detected language */
} mcase;

static const mcase cases[] = {
    {"exact example", "where is my tax refund", "tax-refund", "en"},
    {"typos", "how do i renw my id crad", "id-card-renew", "en"},
    {"typos and no spaces after punctuation", "pasport aplication,form?", "passport-apply", "en"},
    {"typo in every word", "wher is my tax refnd", "tax-refund", "en"},
    {"reworded", "my identity card has expired, what should i do", "id-card-renew", "en"},
    {"reworded 2", "the trash truck did not come this week", "garbage-pickup", "en"},
    {"capitals and emoji", "THERE IS A HUGE POTHOLE ON MY ROAD \U0001F620", "pothole-report", "en"},
    {"Spanish with accents", "¿Cuándo recogen la basura?", "garbage-pickup", "es"},
    {"Spanish without accents", "cuando recogen la basura", "garbage-pickup", "es"},
    {"Spanish reworded", "necesito un pasaporte nuevo para viajar", "passport-apply", "es"},
    {"Spanish typo", "mi cedula esta vensida", "id-card-renew", "es"},
    {"Arabic", "\u0623\u064A\u0646 \u0627\u0633\u062A\u0631\u062F\u0627\u062F\u064A", "tax-refund", "ar"},
    {"unrelated", "i like turtles and jazz music", NULL, "en"},
    {"unrelated Spanish", "¿quién ganó el partido de fútbol ayer?", NULL, "es"},
    {"empty", "", NULL, "en"},
    {"punctuation only", "?!?", NULL, "en"},
};

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const mcase *c = &cases[i];
        cg_match m;
        assert_int_equal(cg_intents_match(T, c->text, strlen(c->text), NULL, &m), 0);
        const char *got = m.intent ? m.intent->id : NULL;
        if ((got == NULL) != (c->want == NULL) || (got && strcmp(got, c->want) != 0))
            fail_msg("%s: \"%s\" → %s (%.3f; top %s), want %s", c->what, c->text, got ? got : "fallback",
                     m.score, m.nalt ? m.alt[0].intent->id : "-", c->want ? c->want : "fallback");
        if (strcmp(m.lang, c->lang) != 0)
            fail_msg("%s: \"%s\": language %s, want %s", c->what, c->text, m.lang, c->lang);
        assert_true(m.score >= 0 && m.score <= 1);
        if (!c->want)
            assert_true(m.score < T->settings.threshold);
    }
}

static void test_ranking(void **state)
{
    (void)state;
    cg_match m;
    const char *q = "where can i get a passport";
    assert_int_equal(cg_intents_match(T, q, strlen(q), NULL, &m), 0);
    assert_true(m.nalt >= 2 && m.nalt <= CG_MAX_ALTERNATIVES);
    assert_ptr_equal(m.intent, m.alt[0].intent);
    assert_true(m.score == m.alt[0].score);
    for (size_t i = 0; i < m.nalt; i++) {
        assert_true(m.alt[i].score >= 0 && m.alt[i].score <= 1);
        if (i)
            assert_true(m.alt[i].score <= m.alt[i - 1].score);
        for (size_t j = 0; j < i; j++)
            assert_ptr_not_equal(m.alt[i].intent, m.alt[j].intent);
    }
    assert_false(m.ambiguous);
}

static void test_fallback_intent_never_matches(void **state)
{
    (void)state;
    cg_match m;
    const char *q = "sorry what";
    assert_int_equal(cg_intents_match(T, q, strlen(q), NULL, &m), 0);
    for (size_t i = 0; i < m.nalt; i++)
        assert_int_not_equal(m.alt[i].intent->special, CG_SPECIAL_FALLBACK);
}

static void test_must_keyword(void **state)
{
    (void)state;
    cg_match m;
    /* close to the medicare examples, but without the word: not a candidate */
    const char *q = "i lost my card";
    assert_int_equal(cg_intents_match(T, q, strlen(q), NULL, &m), 0);
    for (size_t i = 0; i < m.nalt; i++)
        assert_string_not_equal(m.alt[i].intent->id, "medicare-card");
    /* with it (any case, with a typo elsewhere): the answer */
    q = "I lostt my MEDICARE card";
    assert_int_equal(cg_intents_match(T, q, strlen(q), NULL, &m), 0);
    assert_non_null(m.intent);
    assert_string_equal(m.intent->id, "medicare-card");
}

static double score_of(const cg_match *m, const char *id)
{
    for (size_t i = 0; i < m->nalt; i++)
        if (strcmp(m->alt[i].intent->id, id) == 0)
            return m->alt[i].score;
    return 0;
}

static void test_should_keyword_raises(void **state)
{
    (void)state;
    cg_intents *t = build(0.5, NULL, 0, "pothole-report", "street");
    const char *q = "something about my street";
    cg_match a, b;
    assert_int_equal(cg_intents_match(T, q, strlen(q), "en", &a), 0);
    assert_int_equal(cg_intents_match(t, q, strlen(q), "en", &b), 0);
    assert_true(score_of(&b, "pothole-report") > score_of(&a, "pothole-report"));
    /* without the keyword in the text nothing changes */
    q = "report a pothole";
    assert_int_equal(cg_intents_match(T, q, strlen(q), "en", &a), 0);
    assert_int_equal(cg_intents_match(t, q, strlen(q), "en", &b), 0);
    assert_true(score_of(&b, "pothole-report") == score_of(&a, "pothole-report"));
    destroy(t);
}

static void test_synonyms(void **state)
{
    (void)state;
    static const syn_pair syns[] = {{"rubbish bins", "garbage"}, {"Ausweis", "id card"}};
    cg_intents *t = build(0.5, syns, 2, NULL, NULL);
    cg_match m;
    const char *q = "ausweis abgelaufen";   /* only the synonym is known */
    assert_int_equal(cg_intents_match(T, q, strlen(q), "en", &m), 0);
    assert_null(m.intent);
    assert_int_equal(cg_intents_match(t, q, strlen(q), "en", &m), 0);
    assert_non_null(m.intent);
    assert_string_equal(m.intent->id, "id-card-renew");
    q = "Rubbish bins?";                       /* multi-word variant */
    assert_int_equal(cg_intents_match(t, q, strlen(q), "en", &m), 0);
    assert_non_null(m.intent);
    assert_string_equal(m.intent->id, "garbage-pickup");
    destroy(t);
}

/* Two intents that differ only by one word: a question without that word
 * is as close to one as to the other, and must be flagged ambiguous. */
static const spec twins[] = {
    {"ferry-pass", {"top up my ferry pass", "recharge the ferry pass", "add money to my ferry pass",
                  "ferry pass balance", "transit pass"},
     {NULL}, {NULL}, {NULL}, {NULL}, CG_SPECIAL_NONE},
    {"garbage-pickup", {"when is trash collected", "garbage pickup schedule", "my bins were not emptied"},
     {NULL}, {NULL}, {NULL}, {NULL}, CG_SPECIAL_NONE},
    {"metro-pass", {"top up my metro pass", "recharge the metro pass", "add money to my metro pass",
                    "metro pass balance", "transit pass"},
     {NULL}, {NULL}, {NULL}, {NULL}, CG_SPECIAL_NONE},
    {"pothole-report", {"report a pothole", "there is a hole in the road", "broken pavement on my street"},
     {NULL}, {NULL}, {NULL}, {NULL}, CG_SPECIAL_NONE},
};

static void test_ambiguous(void **state)
{
    (void)state;
    cg_intents *t = build_from(twins, sizeof twins / sizeof *twins, 0.3, NULL, 0, NULL, NULL);
    cg_match m;
    const char *q = "how do i top up my pass";
    assert_int_equal(cg_intents_match(t, q, strlen(q), "en", &m), 0);
    assert_true(m.nalt >= 2);
    const char *a = m.alt[0].intent->id, *b = m.alt[1].intent->id;
    if (!((!strcmp(a, "ferry-pass") && !strcmp(b, "metro-pass")) ||
          (!strcmp(a, "metro-pass") && !strcmp(b, "ferry-pass"))))
        fail_msg("top two: %s %.3f, %s %.3f", a, m.alt[0].score, b, m.alt[1].score);
    if (m.alt[0].score - m.alt[1].score >= t->settings.ambiguity_margin)
        fail_msg("\"%s\": %s %.3f, %s %.3f: not within the margin", q, a, m.alt[0].score, b,
                 m.alt[1].score);
    assert_non_null(m.intent);
    assert_true(m.ambiguous);
    /* the very example two intents share: a tie, whatever the model learnt */
    q = "Transit pass!";
    assert_int_equal(cg_intents_match(t, q, strlen(q), "en", &m), 0);
    assert_true(m.nalt >= 2);
    assert_true(m.alt[0].score == m.alt[1].score);
    assert_true(m.ambiguous);
    a = m.alt[0].intent->id;
    b = m.alt[1].intent->id;
    assert_true((!strcmp(a, "ferry-pass") && !strcmp(b, "metro-pass")) ||
                (!strcmp(a, "metro-pass") && !strcmp(b, "ferry-pass")));
    /* a clear question is not ambiguous */
    q = "garbage pickup schedule";
    assert_int_equal(cg_intents_match(t, q, strlen(q), "en", &m), 0);
    assert_non_null(m.intent);
    assert_string_equal(m.intent->id, "garbage-pickup");
    assert_false(m.ambiguous);
    destroy(t);
}

typedef struct lcase { const char *text; const char *want; } lcase;

static void test_detect_lang(void **state)
{
    (void)state;
    static const lcase l[] = {
        {"where is my refund", "en"},
        {"¿dónde está mi devolución?", "es"},
        {"donde esta mi devolucion", "es"},
        {"quiero renovar mi cedula", "es"},
        {"\u0645\u062A\u0649 \u0623\u062D\u0635\u0644 \u0639\u0644\u0649", "ar"},
        {"my \u0627\u0633\u062A\u0631\u062F\u0627\u062F \u0627\u0644\u0636\u0631\u064A\u0628\u0629 \u0645\u062A\u0649", "ar"},
        {"ok", "en"},                     /* nothing distinctive: the default */
        {"123 456", "en"},
        {"", "en"},
        {"\U0001F600", "en"},
    };
    for (size_t i = 0; i < sizeof l / sizeof *l; i++) {
        const char *got = cg_intents_detect_lang(T, l[i].text, strlen(l[i].text));
        assert_non_null(got);
        if (strcmp(got, l[i].want) != 0)
            fail_msg("detect_lang(\"%s\") = %s, want %s", l[i].text, got, l[i].want);
    }
    /* a given language is used as is */
    cg_match m;
    assert_int_equal(cg_intents_match(T, "pasaporte", 9, "es", &m), 0);
    assert_string_equal(m.lang, "es");
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    cg_match m;
    assert_int_equal(cg_intents_match(T, "caf\xC3", 4, NULL, &m), -1);
    assert_int_equal(cg_intents_match(T, "\xED\xA0\x80", 3, NULL, &m), -1);
    assert_int_equal(cg_intents_match(T, "a\0b", 3, NULL, &m), -1);
    /* not NUL-terminated: only len bytes count */
    assert_int_equal(cg_intents_match(T, "report a pothole\xFF", 16, NULL, &m), 0);
    assert_non_null(m.intent);
    assert_string_equal(m.intent->id, "pothole-report");
}

static void test_long_text_is_clipped(void **state)
{
    (void)state;
    size_t n = CG_MAX_TEXT_BYTES * 3;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i += 2) {   /* "é" repeated: a cut must not split it */
        big[i] = (char)0xC3;
        big[i + 1] = (char)0xA9;
    }
    memcpy(big, "report a pothole  ", 18);
    cg_match m;
    assert_int_equal(cg_intents_match(T, big, n, NULL, &m), 0);
    free(big);
}

/* Hostile sizes: more words than the matcher considers, one enormous word,
 * nothing but symbols, and mixed scripts at the byte limit. */
static void test_hostile_text(void **state)
{
    (void)state;
    static const char *const unit[] = {"pothole ", "x", "\U0001F4A9", "\u0628\u0637a"};
    for (size_t u = 0; u < sizeof unit / sizeof *unit; u++) {
        size_t ul = strlen(unit[u]), n = 0;
        char *big = malloc(CG_MAX_TEXT_BYTES * 2 + 8);
        while (n + ul < CG_MAX_TEXT_BYTES * 2) {
            memcpy(big + n, unit[u], ul);
            n += ul;
        }
        cg_match m;
        assert_int_equal(cg_intents_match(T, big, n, NULL, &m), 0);
        assert_true(m.score >= 0 && m.score <= 1);
        assert_true(m.nalt <= CG_MAX_ALTERNATIVES);
        free(big);
    }
    /* 600 short words: more than the 512 the matcher reads */
    char words[600 * 3 + 1];
    for (size_t i = 0; i < 600; i++)
        memcpy(words + 3 * i, "ab ", 3);
    words[600 * 3] = 0;
    cg_match m;
    assert_int_equal(cg_intents_match(T, words, strlen(words), NULL, &m), 0);
    /* the answer to a question does not depend on trailing noise past the
     * limit */
    const char *q = "where is my tax refund";
    char *tail = malloc(CG_MAX_TEXT_BYTES + 100);
    memset(tail, ' ', CG_MAX_TEXT_BYTES + 100);
    memcpy(tail, q, strlen(q));
    memcpy(tail + CG_MAX_TEXT_BYTES + 10, "passport", 8);
    assert_int_equal(cg_intents_match(T, tail, CG_MAX_TEXT_BYTES + 100, NULL, &m), 0);
    assert_non_null(m.intent);
    assert_string_equal(m.intent->id, "tax-refund");
    free(tail);
}

static void test_memory_and_empty_table(void **state)
{
    (void)state;
    assert_true(cg_matcher_memory(T->matcher) > 0);
    /* a table with only a fallback intent: everything falls back */
    cg_intents t;
    memset(&t, 0, sizeof t);
    cg_intent only;
    memset(&only, 0, sizeof only);
    only.id = "fallback";
    only.special = CG_SPECIAL_FALLBACK;
    t.intents = &only;
    t.nintents = 1;
    snprintf(t.settings.default_language, CG_LANG_MAX, "en");
    t.settings.threshold = 0.5;
    t.matcher = cg_matcher_train(&t, NULL);
    assert_non_null(t.matcher);
    cg_match m;
    assert_int_equal(cg_intents_match(&t, "hello", 5, NULL, &m), 0);
    assert_null(m.intent);
    assert_int_equal(m.nalt, 0);
    cg_matcher_free(t.matcher);
}

/* ---- concurrency: the matcher is shared read-only ------------------------ */

static const char *const thread_qs[] = {
    "where is my tax refund", "pasport aplication", "¿Cuándo recogen la basura?",
    "\u0623\u064A\u0646 \u0627\u0633\u062A\u0631\u062F\u0627\u062F\u064A", "hole in the road", "jazz",
};
#define NQ (sizeof thread_qs / sizeof *thread_qs)

typedef struct worker { const cg_intent *want[NQ]; int bad; } worker;

static void *run_worker(void *p)
{
    worker *w = p;
    for (int r = 0; r < 200; r++)
        for (size_t i = 0; i < NQ; i++) {
            cg_match m;
            if (cg_intents_match(T, thread_qs[i], strlen(thread_qs[i]), NULL, &m) != 0 ||
                m.intent != w->want[i])
                w->bad++;
        }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    worker w[4];
    memset(w, 0, sizeof w);
    for (size_t i = 0; i < NQ; i++) {
        cg_match m;
        assert_int_equal(cg_intents_match(T, thread_qs[i], strlen(thread_qs[i]), NULL, &m), 0);
        for (int k = 0; k < 4; k++)
            w[k].want[i] = m.intent;
    }
    pthread_t th[4];
    for (int k = 0; k < 4; k++)
        assert_int_equal(pthread_create(&th[k], NULL, run_worker, &w[k]), 0);
    for (int k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        assert_int_equal(w[k].bad, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_ranking),
        cmocka_unit_test(test_fallback_intent_never_matches),
        cmocka_unit_test(test_must_keyword),
        cmocka_unit_test(test_should_keyword_raises),
        cmocka_unit_test(test_synonyms),
        cmocka_unit_test(test_ambiguous),
        cmocka_unit_test(test_detect_lang),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_long_text_is_clipped),
        cmocka_unit_test(test_hostile_text),
        cmocka_unit_test(test_memory_and_empty_table),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

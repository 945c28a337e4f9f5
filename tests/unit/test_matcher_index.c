/*
 * test_matcher_index.c: the matcher's large-table model (engine/
 * matcher_index.c, chosen by opts.large_min_intents) on a catalogue built in
 * memory: 20 public services offered at 100 places, 2,000 intents that
 * differ by what is asked and by the place named, plus two intents sharing
 * an example. The knob is set low so that the large path is forced at this
 * size; the checks are those of test_matcher.c that must survive the change
 * of model: examples and rewordings find their intent, unrelated text falls
 * back, a shared example is ambiguous, a "must" keyword excludes, Spanish
 * works, memory is reported, concurrent use agrees with single-threaded use.
 */
#define _GNU_SOURCE
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

#define NPLACES 100

typedef struct service {
    const char *id;
    const char *en[4];   /* "%s": the place */
    const char *es[2];
} service;

static const service services[] = {
    {"birth-certificate", {"how do i get a copy of my birth certificate in %s", "%s birth certificate request",
                           "order a birth certificate from the %s registry", "i need my birth record, %s"}, {NULL}},
    {"building-permit", {"apply for a building permit in %s", "%s permit to build an extension",
                         "do i need planning permission in %s", "construction permit office %s"}, {NULL}},
    {"business-license", {"register a new business in %s", "%s business licence application",
                          "how do i open a shop in %s", "trading license renewal %s"}, {NULL}},
    {"dog-license", {"register my dog in %s", "%s dog licence", "pet registration fee in %s",
                     "license for my puppy %s"}, {NULL}},
    {"driving-test", {"book a driving test in %s", "%s driving exam appointment",
                      "when can i take my road test in %s", "driver test centre %s"}, {NULL}},
    {"flood-warning", {"is there a flood warning in %s", "%s river level alert", "sandbags for flooding in %s",
                       "flood risk today %s"}, {NULL}},
    {"housing-benefit", {"apply for housing benefit in %s", "%s help paying my rent",
                         "rent assistance application in %s", "housing allowance claim %s"}, {NULL}},
    {"id-card-renew", {"how do i renew my id card in %s", "%s identity card expired",
                       "appointment to renew my id in %s", "replace an expired identity document %s"},
     {"renovar la cédula de identidad en %s", "cita para renovar el documento de identidad en %s"}},
    {"library-card", {"get a library card in %s", "%s library membership", "join the public library in %s",
                      "borrow books from the %s library"}, {NULL}},
    {"marriage-registration", {"register a marriage in %s", "%s wedding registration",
                               "book a civil ceremony in %s", "marriage certificate copy %s"}, {NULL}},
    {"medicare-card", {"replace my medicare card in %s", "%s lost medicare card", "new medicare card in %s",
                       "medicare card was stolen %s"}, {NULL}},
    {"noise-complaint", {"report loud neighbours in %s", "%s noise complaint at night",
                         "music too loud next door in %s", "barking dog noise %s"}, {NULL}},
    {"parking-fine", {"pay a parking ticket in %s", "%s parking fine appeal", "i got a parking penalty in %s",
                      "contest my parking citation %s"}, {NULL}},
    {"passport-apply", {"how do i apply for a passport in %s", "%s passport application form",
                        "first passport for my child in %s", "where can i request a passport %s"},
     {"cómo solicito un pasaporte en %s", "formulario de solicitud de pasaporte %s"}},
    {"pothole-report", {"report a pothole in %s", "%s hole in the road", "broken pavement on my street in %s",
                        "damaged road surface %s"}, {NULL}},
    {"property-tax", {"pay my property tax in %s", "%s council tax bill", "when is property tax due in %s",
                      "land tax payment %s"}, {NULL}},
    {"school-enrolment", {"enrol my child in school in %s", "%s school admission",
                          "primary school places in %s", "register for kindergarten %s"}, {NULL}},
    {"tax-refund", {"where is my tax refund in %s", "%s tax return money", "check the status of my refund in %s",
                    "my tax refund has not arrived %s"},
     {"dónde está mi devolución de impuestos en %s", "cuándo recibo mi reembolso de impuestos %s"}},
    {"trash-pickup", {"when is trash collected in %s", "%s garbage pickup schedule",
                      "my bins were not emptied in %s", "recycling collection day %s"}, {NULL}},
    {"voter-registration", {"register to vote in %s", "%s electoral roll", "am i registered to vote in %s",
                            "polling station location %s"}, {NULL}},
};
#define NSERV (sizeof services / sizeof *services)

static const char *const pre[10] = {"Ash", "Bram", "Cal", "Dorn", "Eld", "Fen", "Gar", "Hollow", "Ivy", "Kings"};
static const char *const suf[10] = {"ford", "bury", "wick", "ton", "field", "mouth", "ley", "stead", "haven", "moor"};

static void place(size_t p, char *out, size_t n)
{
    snprintf(out, n, "%s%s", pre[p % 10], suf[(p / 10 + p) % 10]);
}

static char *langs[] = {"en", "es"};

typedef struct table {
    cg_intents t;
    char **strings; size_t nstrings;   /* everything allocated for t */
} table;

static char *keep(table *tb, char *s)
{
    tb->strings[tb->nstrings++] = s;
    return s;
}

static char *fmt(table *tb, const char *f, const char *p)
{
    char *s = NULL;
    if (asprintf(&s, f, p) < 0)
        abort();
    return keep(tb, s);
}

/* intent index of service sv at place p */
static size_t idx(size_t sv, size_t p)
{
    return p * NSERV + sv;
}

static table *build(int large_min)
{
    table *tb = calloc(1, sizeof *tb);
    size_t n = NSERV * NPLACES + 2;
    tb->strings = calloc(n * 10, sizeof *tb->strings);
    cg_intents *t = &tb->t;
    t->refs = 1;
    t->settings.languages = langs;
    t->settings.nlanguages = 2;
    snprintf(t->settings.default_language, CG_LANG_MAX, "en");
    t->settings.threshold = 0.5;
    t->settings.ambiguity_margin = 0.08;
    t->intents = calloc(n, sizeof *t->intents);
    t->nintents = n;
    char pl[32], id[96];
    for (size_t p = 0; p < NPLACES; p++) {
        place(p, pl, sizeof pl);
        for (size_t sv = 0; sv < NSERV; sv++) {
            const service *s = &services[sv];
            cg_intent *in = &t->intents[idx(sv, p)];
            snprintf(id, sizeof id, "%s@%s", s->id, pl);
            in->id = keep(tb, strdup(id));
            in->examples = calloc(2, sizeof *in->examples);
            cg_examples *e = &in->examples[in->nexamples++];
            snprintf(e->lang, CG_LANG_MAX, "en");
            e->v = calloc(4, sizeof *e->v);
            keep(tb, (char *)e->v);
            for (size_t k = 0; k < 4; k++)
                e->v[e->n++] = fmt(tb, s->en[k], pl);
            if (s->es[0]) {
                e = &in->examples[in->nexamples++];
                snprintf(e->lang, CG_LANG_MAX, "es");
                e->v = calloc(2, sizeof *e->v);
                keep(tb, (char *)e->v);
                for (size_t k = 0; k < 2; k++)
                    e->v[e->n++] = fmt(tb, s->es[k], pl);
            }
            if (p == 0 && !strcmp(s->id, "medicare-card")) {
                static const char *const must = "medicare";
                in->nmust = 1;
                in->must = calloc(1, sizeof *in->must);
                in->must[0] = keep(tb, cg_text_normalize(must, strlen(must), "en"));
            }
        }
    }
    /* two intents with one example in common */
    static const char *const ferry[] = {"top up my ferry pass", "ferry pass balance", "transit pass"};
    static const char *const metro[] = {"top up my metro pass", "metro pass balance", "transit pass"};
    const char *const *twins[2] = {ferry, metro};
    static const char *const twin_id[2] = {"zz-ferry-pass", "zz-metro-pass"};
    for (size_t k = 0; k < 2; k++) {
        cg_intent *in = &t->intents[n - 2 + k];
        in->id = (char *)twin_id[k];
        in->examples = calloc(1, sizeof *in->examples);
        in->nexamples = 1;
        snprintf(in->examples[0].lang, CG_LANG_MAX, "en");
        in->examples[0].v = (char **)twins[k];
        in->examples[0].n = 3;
    }
    cg_matcher_opts o;
    cg_matcher_opts_default(&o);
    o.large_min_intents = large_min;
    cg_diags d = {0};
    t->matcher = cg_matcher_train_opts(t, &o, &d);
    assert_non_null(t->matcher);
    assert_int_equal(d.errors, 0);
    cg_diags_free(&d);
    return tb;
}

static void destroy(table *tb)
{
    cg_intents *t = &tb->t;
    cg_matcher_free(t->matcher);
    for (size_t i = 0; i < t->nintents; i++) {
        free(t->intents[i].examples);
        free(t->intents[i].must);
    }
    free(t->intents);
    for (size_t i = 0; i < tb->nstrings; i++)
        free(tb->strings[i]);
    free(tb->strings);
    free(tb);
}

static table *T;

static int setup(void **state)
{
    (void)state;
    T = build(100);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    destroy(T);
    return 0;
}

static void expect(const char *q, const char *lang, const char *want, const char *want_lang)
{
    cg_match m;
    assert_int_equal(cg_intents_match(&T->t, q, strlen(q), lang, &m), 0);
    if (!want) {
        if (m.intent)
            fail_msg("\"%s\": wanted a fallback, got %s (%.3f)", q, m.intent->id, m.score);
        return;
    }
    if (!m.intent || strcmp(m.intent->id, want) != 0)
        fail_msg("\"%s\": wanted %s, got %s (%.3f; top %s)", q, want, m.intent ? m.intent->id : "fallback",
                 m.score, m.nalt ? m.alt[0].intent->id : "none");
    if (want_lang)
        assert_string_equal(m.lang, want_lang);
}

/* Every 7th intent: its examples as written, and reworded (not in the
 * exact-text map, so the index has to find them). */
static void test_own_examples(void **state)
{
    (void)state;
    const cg_intents *t = &T->t;
    size_t checked = 0;
    for (size_t i = 0; i < NSERV * NPLACES; i += 7) {
        const cg_intent *in = &t->intents[i];
        for (size_t k = 0; k < in->examples[0].n; k++) {
            const char *ex = in->examples[0].v[k];
            expect(ex, "en", in->id, "en");
            char q[256];
            snprintf(q, sizeof q, "hello, %s please", ex);
            expect(q, NULL, in->id, "en");
            checked++;
        }
    }
    assert_true(checked >= 1000);
}

static void test_unrelated_falls_back(void **state)
{
    (void)state;
    expect("i like turtles and jazz music", NULL, NULL, NULL);
    expect("what is the capital of mongolia", NULL, NULL, NULL);
    expect("zqxv wplk", NULL, NULL, NULL);
    expect("", NULL, NULL, NULL);
    /* a service without a place: every place fits, none is confident */
    expect("how do i apply for a passport", NULL, NULL, NULL);
}

static void test_shared_example_is_ambiguous(void **state)
{
    (void)state;
    cg_match m;
    const char *q = "Transit pass!";
    assert_int_equal(cg_intents_match(&T->t, q, strlen(q), "en", &m), 0);
    assert_true(m.nalt >= 2);
    assert_true(m.alt[0].score == m.alt[1].score);
    assert_non_null(m.intent);
    assert_true(m.ambiguous);
    const char *a = m.alt[0].intent->id, *b = m.alt[1].intent->id;
    assert_true((!strcmp(a, "zz-ferry-pass") && !strcmp(b, "zz-metro-pass")) ||
                (!strcmp(a, "zz-metro-pass") && !strcmp(b, "zz-ferry-pass")));
    q = "ferry pass balance";
    assert_int_equal(cg_intents_match(&T->t, q, strlen(q), "en", &m), 0);
    assert_non_null(m.intent);
    assert_string_equal(m.intent->id, "zz-ferry-pass");
    assert_false(m.ambiguous);
}

static void test_must_keyword_excludes(void **state)
{
    (void)state;
    char pl[32], want[96], q[128];
    place(0, pl, sizeof pl);
    snprintf(want, sizeof want, "medicare-card@%s", pl);
    snprintf(q, sizeof q, "replace my medicare card in %s", pl);
    expect(q, "en", want, "en");
    /* the same question without the keyword cannot be that intent */
    snprintf(q, sizeof q, "replace my card in %s", pl);
    cg_match m;
    assert_int_equal(cg_intents_match(&T->t, q, strlen(q), "en", &m), 0);
    for (size_t i = 0; i < m.nalt; i++)
        assert_string_not_equal(m.alt[i].intent->id, want);
    /* at another place, where the intent has no keyword, it still matches */
    place(1, pl, sizeof pl);
    snprintf(want, sizeof want, "medicare-card@%s", pl);
    snprintf(q, sizeof q, "replace my card in %s", pl);
    expect(q, "en", want, "en");
}

static void test_spanish(void **state)
{
    (void)state;
    char pl[32], want[96], q[160];
    place(42, pl, sizeof pl);
    snprintf(want, sizeof want, "tax-refund@%s", pl);
    snprintf(q, sizeof q, "¿Cuándo llega mi devolución de impuestos? Vivo en %s", pl);
    expect(q, NULL, want, "es");
    place(57, pl, sizeof pl);
    snprintf(want, sizeof want, "passport-apply@%s", pl);
    snprintf(q, sizeof q, "quiero solicitar un pasaporte en %s", pl);
    expect(q, NULL, want, "es");
}

static void test_memory(void **state)
{
    (void)state;
    size_t mem = cg_matcher_memory(T->t.matcher);
    assert_true(mem > 100000);
    /* a dense liblinear model would need a float per feature and intent;
     * the index holds a small fraction of that */
    assert_true(mem < (size_t)NSERV * NPLACES * 4000);
}

/* ---- concurrency --------------------------------------------------------- */

#define NQ 40

typedef struct worker { const char *q[NQ]; const cg_intent *want[NQ]; int bad; } worker;

static void *run_worker(void *p)
{
    worker *w = p;
    for (int round = 0; round < 5; round++)
        for (size_t i = 0; i < NQ; i++) {
            cg_match m;
            if (cg_intents_match(&T->t, w->q[i], strlen(w->q[i]), NULL, &m) != 0 ||
                (m.nalt ? m.alt[0].intent : NULL) != w->want[i])
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
        const cg_intent *in = &T->t.intents[(i * 97) % (NSERV * NPLACES)];
        w[0].q[i] = in->examples[0].v[i % 4];
        cg_match m;
        assert_int_equal(cg_intents_match(&T->t, w[0].q[i], strlen(w[0].q[i]), NULL, &m), 0);
        w[0].want[i] = m.nalt ? m.alt[0].intent : NULL;
        assert_ptr_equal(w[0].want[i], in);
    }
    for (size_t k = 1; k < 4; k++)
        w[k] = w[0];
    pthread_t th[4];
    for (size_t k = 0; k < 4; k++)
        assert_int_equal(pthread_create(&th[k], NULL, run_worker, &w[k]), 0);
    for (size_t k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        assert_int_equal(w[k].bad, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_examples),
        cmocka_unit_test(test_unrelated_falls_back),
        cmocka_unit_test(test_shared_example_is_ambiguous),
        cmocka_unit_test(test_must_keyword_excludes),
        cmocka_unit_test(test_spanish),
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

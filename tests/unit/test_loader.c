/*
 * test_loader.c: the intent loader (engine/loader.c, loader_json.c,
 * table.c) and the directory reader (gateway/intents_dir.c).
 *
 * The core is a table of cases: each names a directory of files under
 * tests/fixtures/loader/cases/ (the base settings.json and fallback.json of
 * tests/fixtures/loader/valid/ are added unless the case has its own or the
 * case says not to), and the one diagnostic it must produce: level, file,
 * line:column and a message substring. An error case must refuse the table
 * and leave *out untouched; a warning case must load. Then: a valid table
 * whose every field is checked, refusal keeps a previous snapshot intact,
 * the directory reader's limits, and the diagnostics' printed format.
 */
#include <dirent.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <math.h>
#include <cmocka.h>

#include "civicgate/intents.h"
#include "gateway.h"

#define FIX "tests/fixtures/loader"
#define MAXF 64

/* ---- reading fixtures (the test's own I/O) ------------------------------ */

typedef struct fileset {
    cg_intents_file f[MAXF];
    char *paths[MAXF], *data[MAXF];
    size_t n;
} fileset;

static void add_file(fileset *s, const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
    buf[len] = '\0';
    fclose(fp);
    assert_true(s->n < MAXF);
    s->paths[s->n] = strdup(path);
    s->data[s->n] = buf;
    s->f[s->n] = (cg_intents_file){ .path = s->paths[s->n], .data = buf, .len = (size_t)len };
    s->n++;
}

static void add_tree(fileset *s, const char *dir)
{
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.') continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        if (S_ISDIR(st.st_mode)) add_tree(s, p);
        else add_file(s, p);
    }
    closedir(dp);
}

static int has_base(const fileset *s, const char *base)
{
    for (size_t i = 0; i < s->n; i++) {
        const char *b = strrchr(s->paths[i], '/');
        if (strcmp(b ? b + 1 : s->paths[i], base) == 0) return 1;
    }
    return 0;
}

static void fileset_free(fileset *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->paths[i]);
        free(s->data[i]);
    }
    s->n = 0;
}

/* ---- the case table ------------------------------------------------------- */

enum { NO_SETTINGS = 1, NO_FALLBACK = 2 };
#define E CG_DIAG_ERROR
#define W CG_DIAG_WARNING

typedef struct lcase {
    const char *name;      /* directory under cases/ */
    unsigned flags;
    cg_diag_level level;
    const char *file;      /* the diagnostic's path ends with this */
    int line, col;
    const char *msg;       /* substring of the message */
    size_t ndiags;         /* diagnostics expected in all */
} lcase;

static const lcase cases[] = {
    /* syntax: cJSON parses, the scanner places the mistake */
    { "syntax_trailing_comma", 0, E, "water.json", 5, 92, "syntax error: trailing comma before '}'", 1 },
    { "syntax_eof", 0, E, "water.json", 3, 31, "syntax error: line break inside a string (a missing closing '\"'?", 1 },
    { "syntax_tab_in_string", 0, E, "water.json", 3, 18, "syntax error: control character inside a string", 1 },
    { "syntax_comment", 0, E, "water.json", 2, 3, "syntax error: comments are not allowed in JSON", 1 },
    { "syntax_missing_comma", 0, E, "water.json", 3, 3, "syntax error: expected ',' or '}' (a missing comma?)", 1 },
    { "syntax_quotes", 0, E, "water.json", 2, 9, "syntax error: strings need double quotes", 1 },
    { "text_after_value", 0, E, "water.json", 7, 1, "syntax error: text after the end of the JSON value", 1 },
    { "deep_nesting", 0, E, "water.json", 1, 57, "nested deeper than 32 levels", 1 },
    { "bad_utf8", 0, E, "water.json", 3, 22, "invalid UTF-8 (byte 0xFF)", 1 },
    { "nul_byte", 0, E, "water.json", 2, 12, "NUL byte in the file", 1 },
    { "nul_escape", 0, E, "water.json", 3, 19, "\\u0000 is not allowed in strings", 1 },
    /* keys and types */
    { "unknown_key", 0, E, "water.json", 4, 3, "unknown key \"exmaples\" (did you mean \"examples\"?)", 1 },
    { "dup_key", 0, E, "water.json", 6, 3, "duplicate key \"answer\" (first at line 3)", 1 },
    { "wrong_type", 0, E, "water.json", 6, 15, "priority: expected an integer from 0 to 9, found string", 1 },
    { "root_array", 0, E, "water.json", 1, 1, "expected an object (one intent per file), found array", 1 },
    { "bad_id", 0, E, "water.json", 2, 9, "id: \"Water Bill\" is not a valid id", 1 },
    { "dup_id", 0, E, "b-water.json", 2, 9, "id: duplicate id \"water\" (also in " FIX "/cases/dup_id/a-water.json:2:9)", 1 },
    { "unknown_special", 0, E, "water.json", 6, 14, "special: unknown special \"gretting\" (did you mean \"greeting\"?)", 1 },
    { "dup_special", 0, E, "hi.json", 6, 14, "special: \"greeting\" is already the special of intent \"hello\"", 1 },
    /* texts and examples */
    { "empty_example", 0, E, "water.json", 6, 29, "examples.es[1]: empty example", 1 },
    { "no_examples", 0, E, "water.json", 1, 1, "missing required key \"examples\"", 1 },
    { "no_default_examples", 0, E, "water.json", 4, 15, "examples: missing examples in the default language \"en\"", 1 },
    { "missing_default_answer", 0, E, "water.json", 5, 13, "answer: missing text in the default language \"en\"", 1 },
    { "lang_not_in_settings", 0, E, "water.json", 5, 44, "answer: language \"fr\" is not in settings.languages", 1 },
    { "http_url", 0, E, "water.json", 6, 13, "source: \"http://example.gov/water\" is not an https URL (http is allowed only for localhost)", 1 },
    { "bad_date", 0, E, "water.json", 6, 15, "reviewed: \"2026-02-30\" is not a valid date (YYYY-MM-DD)", 1 },
    { "long_answer", 0, W, "water.json", 6, 11, "answer.en: 2050 characters, longer than 2000", 1 },
    { "missing_translation", 0, W, "water.json", 5, 13, "answer.es: missing translation", 1 },
    { "past_review", 0, W, "water.json", 7, 16, "answer past its review date (review_by 2025-01-01)", 1 },
    { "same_example_two_intents", 0, W, "water.json", 4, 23, "examples.en[0]: same as an example of intent \"sewer\" (" FIX "/cases/same_example_two_intents/sewer.json:4:37) once normalised", 1 },
    { "empty_examples_list", 0, E, "water.json", 4, 51, "examples.es: no examples", 1 },
    { "keyword_punctuation", 0, E, "water.json", 6, 34, "keywords.must[1]: \"?!\" is empty once normalised", 1 },
    { "no_owner", 0, W, "water.json", 1, 1, "missing \"owner\"", 1 },
    /* buttons */
    { "unknown_button", 0, E, "water.json", 7, 59, "buttons[0].intent: no intent \"fallbak\" (did you mean \"fallback\"?)", 1 },
    { "button_both", 0, E, "water.json", 7, 61, "buttons[0]: has both \"intent\" and \"url\"", 1 },
    /* flows */
    { "bad_flow_next", 0, E, "water.json", 9, 88, "flow.steps[0].next: no step \"wher\" in this flow (did you mean \"where\"?)", 1 },
    { "bad_choice_next", 0, E, "water.json", 10, 76, "flow.steps[0].choices[0].next: no step \"nowhere\" in this flow", 1 },
    { "bad_regex", 0, E, "water.json", 9, 92, "flow.steps[0].pattern: not a valid POSIX extended regular expression", 1 },
    { "costly_regex", 0, E, "water.json", 9, 92, "flow.steps[0].pattern: repetition counts too large", 1 },
    { "choice_without_choices", 0, E, "water.json", 9, 7, "flow.steps[0]: a choice step needs \"choices\"", 1 },
    { "number_min_max", 0, E, "water.json", 9, 84, "flow.steps[0]: min 10 is greater than max 1", 1 },
    { "pattern_on_number", 0, E, "water.json", 9, 84, "flow.steps[0]: \"pattern\" is only for text steps", 1 },
    { "dup_step_id", 0, E, "water.json", 10, 14, "flow.steps[1].id: duplicate step id \"where\" (first at line 9)", 1 },
    { "unknown_step_type", 0, E, "water.json", 9, 31, "flow.steps[0].type: unknown step type \"txt\" (did you mean \"text\"?)", 1 },
    { "min_on_text_step", 0, E, "water.json", 9, 100, "flow.steps[0]: \"min\" is only for number steps (text steps: \"min_length\")", 1 },
    { "too_many_steps", 0, E, "water.json", 8, 14, "flow.steps: too many steps (33; at most 32)", 1 },
    { "unreachable_step", 0, W, "water.json", 10, 7, "flow.steps[1]: step \"orphan\" is never reached", 1 },
    { "unknown_placeholder", 0, W, "water.json", 7, 20, "flow.done.en: unknown placeholder {{nmae}}", 1 },
    /* the table */
    { "missing_settings", NO_SETTINGS, E, "settings.json", 0, 0, "missing: the table needs one settings.json", 1 },
    { "missing_fallback", NO_FALLBACK, E, "settings.json", 0, 0, "no fallback intent: one intent needs \"special\": \"fallback\"", 1 },
    { "two_settings", 0, E, "two_settings/sub/settings.json", 0, 0, "more than one settings.json", 1 },
    { "settings_default_lang", 0, E, "settings.json", 6, 23, "default_language: \"fr\" is not in languages", 1 },
    { "settings_threshold", 0, E, "settings.json", 7, 16, "threshold: 1.5 is out of range (0 to 1)", 1 },
    { "settings_no_languages", 0, E, "settings.json", 2, 16, "languages: no languages", 1 },
    { "settings_missing_phrase", 0, E, "settings.json", 10, 14, "phrases: missing phrase \"menu\"", 1 },
    { "settings_unknown_phrase", 0, E, "settings.json", 87, 5, "phrases: unknown key \"mneu\" (did you mean \"menu\"?)", 1 },
    { "settings_phrase_translation", 0, W, "settings.json", 79, 13, "phrases.menu.es: missing translation", 1 },
    { "synonym_conflict", 0, E, "synonyms.json", 5, 16, "synonyms.en[1][1]: \"ebt\" already maps to \"snap\" (line 4)", 1 },
    { "synonym_group_short", 0, E, "synonyms.json", 3, 12, "synonyms.en[0]: a group needs at least two words", 1 },
};

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void print_diags(const cg_diags *d) { cg_diags_print(d, stderr); }

static void run_case(const lcase *c)
{
    fileset s = { 0 };
    char dir[256];
    snprintf(dir, sizeof dir, FIX "/cases/%s", c->name);
    add_tree(&s, dir);
    if (!(c->flags & NO_SETTINGS) && !has_base(&s, "settings.json")) add_file(&s, FIX "/valid/settings.json");
    if (!(c->flags & NO_FALLBACK) && !has_base(&s, "fallback.json")) add_file(&s, FIX "/valid/fallback.json");

    cg_build_opts opts = { .today = "2025-06-01", .no_train = 1 };
    cg_diags d = { 0 };
    cg_intents *sentinel = (cg_intents *)&d, *out = sentinel;
    int rc = cg_intents_build(s.f, s.n, &opts, &out, &d);

    int found = 0;
    for (size_t i = 0; i < d.n; i++) {
        const cg_diag *g = &d.v[i];
        if (g->level == c->level && ends_with(g->path, c->file) && g->line == c->line && g->col == c->col &&
            strstr(g->msg, c->msg))
            found = 1;
    }
    if (!found || d.n != c->ndiags) {
        fprintf(stderr, "case %s: expected %s:%d:%d: %s (%zu diagnostics); got:\n", c->name, c->file, c->line,
                c->col, c->msg, c->ndiags);
        print_diags(&d);
    }
    assert_true(found);
    assert_int_equal(d.n, c->ndiags);
    if (c->level == CG_DIAG_ERROR) {
        assert_int_equal(rc, -1);
        assert_ptr_equal(out, sentinel);   /* refused whole: *out untouched */
        assert_true(d.errors >= 1);
    } else {
        assert_int_equal(rc, 0);
        assert_ptr_not_equal(out, sentinel);
        assert_int_equal(d.errors, 0);
        cg_intents_unref(out);
    }
    cg_diags_free(&d);
    fileset_free(&s);
}

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
}

/* Every case directory is in the table (a fixture without a case is a test
 * that silently does not run). */
static void test_every_fixture_has_a_case(void **state)
{
    (void)state;
    DIR *dp = opendir(FIX "/cases");
    assert_non_null(dp);
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.') continue;
        int known = 0;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) known |= strcmp(cases[i].name, e->d_name) == 0;
        if (!known) fprintf(stderr, "fixture without a case: %s\n", e->d_name);
        assert_true(known);
    }
    closedir(dp);
}

/* ---- the valid table -------------------------------------------------------- */

static cg_intents *load_valid(int train, cg_diags *d)
{
    cg_build_opts opts = { .today = "2026-11-26", .no_train = !train };
    cg_intents *t = NULL;
    int rc = cg_intents_load_dir(FIX "/valid/", &opts, &t, d);
    if (rc != 0) print_diags(d);
    assert_int_equal(rc, 0);
    assert_non_null(t);
    return t;
}

static void test_valid_table(void **state)
{
    (void)state;
    cg_diags d = { 0 };
    cg_intents *t = load_valid(1, &d);
    assert_int_equal(d.n, 0);   /* not even a warning */
    assert_non_null(t->matcher);
    assert_int_equal(t->refs, 1);
    assert_int_equal(strlen(t->version), 16);

    /* settings */
    const cg_settings *s = &t->settings;
    assert_int_equal(s->nlanguages, 2);
    assert_string_equal(s->languages[0], "en");
    assert_string_equal(s->languages[1], "es");
    assert_string_equal(s->default_language, "en");
    assert_true(fabs(s->threshold - 0.45) < 1e-9);
    assert_true(fabs(s->ambiguity_margin - 0.1) < 1e-9);
    assert_int_equal(s->fallbacks_before_human, 3);
    assert_int_equal(s->nphrases, 19);
    assert_string_equal(cg_settings_phrase(s, "menu", "es"), "Menú");
    assert_string_equal(cg_settings_phrase(s, "menu", "ar"), "Menu");   /* default language */
    assert_string_equal(cg_settings_phrase(s, "no_such_phrase", "en"), "no_such_phrase");

    /* sorted by id, found by id */
    assert_int_equal(t->nintents, 4);
    assert_string_equal(t->intents[0].id, "city.pothole");
    assert_string_equal(t->intents[1].id, "fallback");
    assert_string_equal(t->intents[2].id, "greeting");
    assert_string_equal(t->intents[3].id, "ssa-retirement");
    assert_null(cg_intents_find(t, "nope"));
    assert_ptr_equal(cg_intents_find(t, "greeting"), &t->intents[2]);
    assert_int_equal(t->per_lang_count[0], 3);   /* every intent but the fallback */
    assert_int_equal(t->per_lang_count[1], 3);

    const cg_intent *f = cg_intents_find(t, "fallback");
    assert_int_equal(f->special, CG_SPECIAL_FALLBACK);
    assert_int_equal(f->nexamples, 0);
    assert_int_equal(cg_intents_find(t, "greeting")->special, CG_SPECIAL_GREETING);

    const cg_intent *r = cg_intents_find(t, "ssa-retirement");
    assert_string_equal(r->path, FIX "/valid/benefits/ssa-retirement.json");
    assert_int_equal(r->special, CG_SPECIAL_NONE);
    assert_string_equal(cg_i18n_get(&r->title, "es", "en"), "Beneficios de jubilación");
    assert_string_equal(cg_i18n_get(&r->title, "fr", "en"), "Retirement benefits");
    assert_string_equal(cg_i18n_get(&r->title, "fr", "de"), "Retirement benefits");   /* first */
    assert_string_equal(r->owner, "Social Security Administration");
    assert_string_equal(r->source, "https://www.ssa.gov/retirement");
    assert_string_equal(r->reviewed, "2026-10-01");
    assert_string_equal(r->review_by, "2027-10-01");
    assert_int_equal(r->nexamples, 2);
    assert_string_equal(r->examples[0].lang, "en");
    assert_int_equal(r->examples[0].n, 3);
    assert_string_equal(r->examples[0].v[1], "when can i retire");
    assert_string_equal(r->examples[1].v[0], "cómo cobro mi jubilación");   /* examples kept as written */
    assert_string_equal(cg_i18n_get(&r->answer, "es", "en"),
                        "Puede solicitar los beneficios de jubilación por internet desde los 61 años y 9 meses.");
    assert_int_equal(r->nmust, 3);
    assert_string_equal(r->must[0], "retire");        /* keywords normalised */
    assert_string_equal(r->must[1], "jubilacion");
    assert_int_equal(r->nshould, 1);
    assert_string_equal(r->should[0], "pension");
    assert_int_equal(r->nbuttons, 2);
    assert_int_equal(r->buttons[0].kind, CG_BUTTON_INTENT);
    assert_string_equal(r->buttons[0].target, "city.pothole");
    assert_string_equal(cg_i18n_get(&r->buttons[0].title, "es", "en"), "Reportar un bache");
    assert_int_equal(r->buttons[1].kind, CG_BUTTON_URL);
    assert_string_equal(r->buttons[1].target, "https://www.ssa.gov/");
    assert_int_equal(r->escalate, 0);
    assert_int_equal(r->priority, 2);
    assert_null(r->flow);

    /* the flow */
    const cg_intent *p = cg_intents_find(t, "city.pothole");
    const cg_flow *fl = p->flow;
    assert_non_null(fl);
    assert_int_equal(fl->nsteps, 4);
    assert_int_equal(fl->handoff, 0);
    assert_int_equal(fl->priority, 1);
    assert_non_null(strstr(cg_i18n_get(&fl->done, "en", "en"), "{{reference}}"));
    const cg_flow_step *st = fl->steps;
    assert_string_equal(st[0].id, "what");
    assert_int_equal(st[0].kind, CG_STEP_CHOICE);
    assert_string_equal(st[0].var, "what");
    assert_string_equal(st[0].next, "where");         /* default: the following step */
    assert_int_equal(st[0].nchoices, 3);
    assert_string_equal(st[0].choices[0].value, "pothole");
    assert_string_equal(st[0].choices[0].next, "where");
    assert_string_equal(st[0].choices[2].next, "end"); /* never a step id: the flow ends */
    assert_string_equal(cg_i18n_get(&st[0].choices[1].title, "es", "en"), "Luz rota");
    assert_string_equal(cg_i18n_get(&st[0].ask, "es", "en"), "¿Cuál es el problema?");
    assert_int_equal(st[1].kind, CG_STEP_LOCATION);
    assert_true(st[1].min == 3 && st[1].max == 200);
    assert_string_equal(st[1].next, "details");
    assert_int_equal(st[2].kind, CG_STEP_TEXT);
    assert_string_equal(st[2].pattern, "^[^<>]*$");
    assert_non_null(st[2].pattern_re);
    assert_int_equal(regexec(st[2].pattern_re, "a plain description", 0, NULL, 0), 0);
    assert_int_not_equal(regexec(st[2].pattern_re, "<script>", 0, NULL, 0), 0);
    assert_string_equal(cg_i18n_get(&st[2].invalid, "en", "en"), "Please write at least 5 characters.");
    assert_int_equal(st[3].kind, CG_STEP_NUMBER);
    assert_string_equal(st[3].var, "affected");
    assert_true(st[3].min == 1 && st[3].max == 20);
    assert_null(st[3].next);                           /* last step ends the flow */
    assert_true(isnan(st[0].min) && isnan(st[0].max));

    /* synonyms: normalised, sorted by variant */
    assert_int_equal(t->nsyn, 5);
    const char *from[] = { "cupones de alimentos", "ebt", "food stamps", "hoyo en la calle", "social security number" };
    const char *to[] = { "snap", "snap", "snap", "bache", "ssn" };
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(t->syn_from[i], from[i]);
        assert_string_equal(t->syn_to[i], to[i]);
    }

    /* shared: the last unref frees (ASan checks) */
    assert_ptr_equal(cg_intents_ref(t), t);
    assert_int_equal(t->refs, 2);
    cg_intents_unref(t);
    assert_int_equal(t->refs, 1);
    cg_intents_unref(t);
    cg_intents_unref(NULL);
    cg_diags_free(&d);
}

/* References are shared across threads (the gateway swaps snapshots while
 * pool threads hold them): the count must stay exact. */
static pthread_barrier_t churn_start;

static void *ref_churn(void *arg)
{
    cg_intents *t = arg;
    pthread_barrier_wait(&churn_start);   /* all threads at once */
    for (int i = 0; i < 2000000; i++) {
        cg_intents_ref(t);
        cg_intents_unref(t);
    }
    return NULL;
}

static void test_refs_threads(void **state)
{
    (void)state;
    cg_diags d = { 0 };
    cg_intents *t = load_valid(0, &d);
    pthread_t th[4];
    assert_int_equal(pthread_barrier_init(&churn_start, NULL, 4), 0);
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, ref_churn, t), 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&churn_start);
    assert_int_equal(t->refs, 1);
    assert_non_null(cg_intents_find(t, "greeting"));
    cg_intents_unref(t);
    cg_diags_free(&d);
}

/* The version depends on every byte and path, and on nothing else. */
static void test_version(void **state)
{
    (void)state;
    fileset s = { 0 };
    add_tree(&s, FIX "/valid");
    cg_build_opts opts = { .no_train = 1 };
    cg_diags d = { 0 };
    cg_intents *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(cg_intents_build(s.f, s.n, &opts, &a, &d), 0);
    /* same files in another order: same version */
    cg_intents_file rev[MAXF];
    for (size_t i = 0; i < s.n; i++) rev[i] = s.f[s.n - 1 - i];
    assert_int_equal(cg_intents_build(rev, s.n, &opts, &b, &d), 0);
    assert_string_equal(a->version, b->version);
    /* one byte of one answer changed: another version */
    for (size_t i = 0; i < s.n; i++) {
        char *hit = strstr(s.data[i], "Hello!");
        if (hit) hit[0] = 'J';
    }
    assert_int_equal(cg_intents_build(s.f, s.n, &opts, &c, &d), 0);
    assert_string_not_equal(a->version, c->version);
    assert_int_equal(d.n, 0);
    cg_intents_unref(a);
    cg_intents_unref(b);
    cg_intents_unref(c);
    fileset_free(&s);
}

/* A broken table is refused whole and the snapshot in use stays intact. */
static void test_refuse_keeps_previous(void **state)
{
    (void)state;
    cg_diags d = { 0 };
    cg_intents *t = load_valid(0, &d);
    cg_intents *before = t;
    char version[17];
    memcpy(version, t->version, sizeof version);

    fileset s = { 0 };
    add_tree(&s, FIX "/valid");
    add_file(&s, FIX "/cases/bad_flow_next/water.json");
    cg_build_opts opts = { .no_train = 1 };
    assert_int_equal(cg_intents_build(s.f, s.n, &opts, &t, &d), -1);
    assert_ptr_equal(t, before);
    assert_string_equal(t->version, version);
    assert_int_equal(t->nintents, 4);
    assert_string_equal(cg_intents_find(t, "greeting")->id, "greeting");
    assert_int_equal(d.errors, 1);
    cg_intents_unref(t);
    cg_diags_free(&d);
    fileset_free(&s);
}

/* Limits that need no fixture file: size, and the warnings' switch. */
static void test_limits(void **state)
{
    (void)state;
    fileset s = { 0 };
    add_file(&s, FIX "/valid/settings.json");
    add_file(&s, FIX "/valid/fallback.json");
    size_t big = CG_MAX_FILE_BYTES + 1;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, ' ', big);
    s.f[s.n++] = (cg_intents_file){ .path = "intents/huge.json", .data = huge, .len = big };
    cg_diags d = { 0 };
    cg_intents *t = NULL;
    cg_build_opts opts = { .no_train = 1 };
    assert_int_equal(cg_intents_build(s.f, s.n, &opts, &t, &d), -1);
    assert_null(t);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.v[0].path, "intents/huge.json");
    assert_int_equal(d.v[0].line, 0);
    assert_string_equal(d.v[0].msg, "file too large (1048577 bytes; at most 1048576)");
    s.n--;
    free(huge);
    cg_diags_free(&d);

    /* at most 100 errors shown per file, then one line says so; the table
     * is refused however many there are */
    size_t cap = 64 + 150 * 4 + 128, len = 0;
    char *many = malloc(cap);
    assert_non_null(many);
    len += (size_t)snprintf(many + len, cap - len, "{\"id\": \"many\", \"owner\": \"x\", \"examples\": {\"en\": [");
    for (int i = 0; i < 150; i++) len += (size_t)snprintf(many + len, cap - len, "%s\"\"", i ? "," : "");
    len += (size_t)snprintf(many + len, cap - len, "]}, \"answer\": {\"en\": \"a\", \"es\": \"b\"}}");
    assert_true(len < cap);
    s.f[s.n++] = (cg_intents_file){ .path = "many.json", .data = many, .len = len };
    assert_int_equal(cg_intents_build(s.f, s.n, &opts, &t, &d), -1);
    assert_null(t);
    size_t empties = 0, notes = 0;
    for (size_t i = 0; i < d.n; i++) {
        empties += strstr(d.v[i].msg, ": empty example") != NULL;
        notes += strcmp(d.v[i].msg, "too many errors in this file; the rest are not shown") == 0;
    }
    assert_int_equal(empties, 100);
    assert_int_equal(notes, 1);
    s.n--;
    free(many);
    cg_diags_free(&d);

    /* no today: no review-date warning */
    add_file(&s, FIX "/cases/past_review/water.json");
    opts.today = NULL;
    assert_int_equal(cg_intents_build(s.f, s.n, &opts, &t, &d), 0);
    assert_int_equal(d.n, 0);
    cg_intents_unref(t);
    t = NULL;

    fileset_free(&s);

    /* a UTF-8 byte order mark is skipped and not counted as a column */
    static const char bom[] = "\xEF\xBB\xBF{\"id\": \"Bad Id\", \"owner\": \"W\", \"examples\": {\"en\": [\"a\"], "
                              "\"es\": [\"b\"]}, \"answer\": {\"en\": \"a\", \"es\": \"b\"}}\n";
    add_file(&s, FIX "/valid/settings.json");
    add_file(&s, FIX "/valid/fallback.json");
    s.paths[s.n] = s.data[s.n] = NULL;
    s.f[s.n++] = (cg_intents_file){ .path = "bom.json", .data = bom, .len = sizeof bom - 1 };
    assert_int_equal(cg_intents_build(s.f, s.n, &opts, &t, &d), -1);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.v[0].line, 1);
    assert_int_equal(d.v[0].col, 8);
    assert_non_null(strstr(d.v[0].msg, "id: \"Bad Id\" is not a valid id"));
    cg_diags_free(&d);
    fileset_free(&s);
}

/* Patterns: regcomp's cost grows with the square of the expanded size, so
 * the loader bounds the expansion (1000 elements). Ordinary patterns pass. */
static void test_pattern_cost(void **state)
{
    (void)state;
    static const struct { const char *pattern; int ok; } pats[] = {
        { "^[0-9]{5}(-[0-9]{4})?$", 1 },
        { "^[A-Z]{2}[0-9]{6,8}$", 1 },
        { "^[^<>]{5,500}$", 1 },
        { "(a*){1,1000}", 1 },                  /* 1000: the limit */
        { "((a{0,0}){1,30}){1,30}", 1 },        /* 900 */
        { "\\\\{5000}", 1 },                    /* JSON for \{5000}: an escaped brace is a literal */
        { "[{]x", 1 },
        { "(a*){1,1001}", 0 },
        { "((a{0,0}){1,40}){1,50}", 0 },        /* 2000 */
        { "((a{00,00}){1,100}){1,100}", 0 },    /* found by the fuzzer: gigabytes */
        { "(x+){600}", 0 },                     /* x+ is two copies */
        { "a{2000,}", 0 },
        { "[[:alpha:]]{1001}", 0 },
    };
    fileset s = { 0 };
    add_file(&s, FIX "/valid/settings.json");
    add_file(&s, FIX "/valid/fallback.json");
    cg_build_opts opts = { .no_train = 1 };
    for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++) {
        char json[512];
        int n = snprintf(json, sizeof json,
                         "{\"id\": \"p\", \"owner\": \"x\", \"examples\": {\"en\": [\"a\"], \"es\": [\"b\"]}, "
                         "\"answer\": {\"en\": \"a\", \"es\": \"b\"}, \"flow\": {\"done\": {\"en\": \"a\", \"es\": \"b\"}, "
                         "\"steps\": [{\"id\": \"s\", \"type\": \"text\", \"ask\": {\"en\": \"a\", \"es\": \"b\"}, "
                         "\"pattern\": \"%s\"}]}}", pats[i].pattern);
        assert_true(n > 0 && (size_t)n < sizeof json);
        s.paths[s.n] = s.data[s.n] = NULL;
        s.f[s.n++] = (cg_intents_file){ .path = "p.json", .data = json, .len = (size_t)n };
        cg_diags d = { 0 };
        cg_intents *t = NULL;
        int rc = cg_intents_build(s.f, s.n, &opts, &t, &d);
        if ((rc == 0) != pats[i].ok) {
            fprintf(stderr, "pattern %s: expected %s\n", pats[i].pattern, pats[i].ok ? "accepted" : "refused");
            print_diags(&d);
        }
        assert_int_equal(rc == 0, pats[i].ok);
        if (!pats[i].ok) assert_non_null(strstr(d.v[0].msg, "repetition counts too large"));
        cg_intents_unref(t);
        cg_diags_free(&d);
        s.n--;
    }
    fileset_free(&s);
}

/* The directory reader: recursion, sorting, hidden and non-JSON files
 * ignored, too-large files reported and refusing the table. */
static void test_load_dir(void **state)
{
    (void)state;
    char dir[] = "/tmp/cg-test-loader-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p[512];
    fileset s = { 0 };
    add_tree(&s, FIX "/valid");
    for (size_t i = 0; i < s.n; i++) {   /* flatten valid/ into dir/a/ */
        const char *b = strrchr(s.paths[i], '/') + 1;
        snprintf(p, sizeof p, "%s/a", dir);
        mkdir(p, 0700);
        snprintf(p, sizeof p, "%s/a/%s", dir, b);
        FILE *fp = fopen(p, "wb");
        assert_non_null(fp);
        fwrite(s.data[i], 1, s.f[i].len, fp);
        fclose(fp);
    }
    snprintf(p, sizeof p, "%s/.swap.json", dir);   /* hidden: ignored */
    FILE *fp = fopen(p, "w");
    fputs("{ broken", fp);
    fclose(fp);
    snprintf(p, sizeof p, "%s/README.md", dir);    /* not .json: ignored */
    fp = fopen(p, "w");
    fputs("{ broken", fp);
    fclose(fp);

    cg_diags d = { 0 };
    cg_intents *t = NULL;
    cg_build_opts opts = { .no_train = 1 };
    assert_int_equal(cg_intents_load_dir(dir, &opts, &t, &d), 0);
    assert_int_equal(d.n, 0);
    assert_int_equal(t->nintents, 4);
    snprintf(p, sizeof p, "%s/a/greeting.json", dir);
    assert_string_equal(cg_intents_find(t, "greeting")->path, p);

    snprintf(p, sizeof p, "%s/big.json", dir);     /* too large: refuses the table */
    fp = fopen(p, "wb");
    for (int i = 0; i <= CG_MAX_FILE_BYTES; i++) fputc(' ', fp);
    fclose(fp);
    cg_intents *keep = t;
    assert_int_equal(cg_intents_load_dir(dir, &opts, &t, &d), -1);
    assert_ptr_equal(t, keep);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.v[0].path, p);
    assert_string_equal(d.v[0].msg, "file too large (1048577 bytes; at most 1048576)");
    unlink(p);
    cg_diags_free(&d);

    assert_int_equal(cg_intents_load_dir("/nonexistent/intents", &opts, &t, &d), -1);
    assert_ptr_equal(t, keep);
    assert_true(d.errors >= 1);
    assert_non_null(strstr(d.v[0].msg, "cannot open directory"));
    cg_diags_free(&d);

    cg_intents_unref(t);
    for (size_t i = 0; i < s.n; i++) {
        snprintf(p, sizeof p, "%s/a/%s", dir, strrchr(s.paths[i], '/') + 1);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/a", dir);
    rmdir(p);
    snprintf(p, sizeof p, "%s/.swap.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/README.md", dir);
    unlink(p);
    rmdir(dir);
    fileset_free(&s);
}

/* The printed form admins and editors read. */
static void test_diags_print(void **state)
{
    (void)state;
    cg_diags d = { 0 };
    cg_diags_add(&d, CG_DIAG_ERROR, "intents/a.json", 12, 5, "examples.es[%d]: empty example", 3);
    cg_diags_add(&d, CG_DIAG_WARNING, "intents/b.json", 0, 0, "whole file");
    assert_int_equal(d.errors, 1);
    assert_int_equal(d.warnings, 1);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    cg_diags_print(&d, m);
    fclose(m);
    assert_string_equal(buf, "intents/a.json:12:5: error: examples.es[3]: empty example\n"
                             "intents/b.json: warning: whole file\n");
    free(buf);
    cg_diags_free(&d);
    assert_int_equal(d.n, 0);
    assert_null(d.v);
}

int main(void)
{
    if (chdir(CG_SOURCE_DIR) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_every_fixture_has_a_case),
        cmocka_unit_test(test_valid_table),
        cmocka_unit_test(test_refs_threads),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_refuse_keeps_previous),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_pattern_cost),
        cmocka_unit_test(test_load_dir),
        cmocka_unit_test(test_diags_print),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

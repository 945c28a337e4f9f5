/*
 * test_dialog.c: the dialog manager (engine/dialog.c) driven through whole
 * conversations.
 *
 * The table is tests/fixtures/dialog/ (settings, synonyms, specials, plain
 * intents in en + es with one English-only answer, two near-duplicate
 * intents for ambiguity, an escalating intent, a branching flow and a
 * hand-off flow), built by the real loader and matcher. Each scenario is a
 * table of turns: input → expected substrings of the reply, exact button
 * payloads (URL buttons as their URL), action, intent, language and the
 * state afterwards. Between turns the state goes through
 * cg_dialog_state_to_json / from_json, as it does through Redis in the
 * gateway, so every scenario also exercises the round trip.
 */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "civicgate/intents.h"

#define FIXTURE CG_SOURCE_DIR "/tests/fixtures/dialog"

/* ---- loading the fixture table through the real loader ------------------- */

typedef struct files { cg_intents_file *v; char **bufs, **paths; size_t n, cap; } files;

static void files_add(files *f, const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    assert_true(len >= 0 && len <= CG_MAX_FILE_BYTES);
    char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 32;
        f->v = realloc(f->v, f->cap * sizeof *f->v);
        f->bufs = realloc(f->bufs, f->cap * sizeof *f->bufs);
        f->paths = realloc(f->paths, f->cap * sizeof *f->paths);
        assert_true(f->v && f->bufs && f->paths);
    }
    f->bufs[f->n] = buf;
    f->paths[f->n] = strdup(path);
    f->v[f->n] = (cg_intents_file){ .path = f->paths[f->n], .data = buf, .len = (size_t)len };
    f->n++;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void files_walk(files *f, const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    char *names[256];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        if (S_ISDIR(st.st_mode)) files_walk(f, path);
        else if (strlen(path) > 5 && strcmp(path + strlen(path) - 5, ".json") == 0) files_add(f, path);
        free(names[i]);
    }
}

static cg_intents *T;

static int load_table(void **state)
{
    files f = {0};
    files_walk(&f, FIXTURE);
    cg_diags d = {0};
    int rc = cg_intents_build(f.v, f.n, &(cg_build_opts){0}, &T, &d);
    if (rc != 0 || d.errors) cg_diags_print(&d, stderr);
    cg_diags_free(&d);
    for (size_t i = 0; i < f.n; i++) { free(f.bufs[i]); free(f.paths[i]); }
    free(f.v); free(f.bufs); free(f.paths);
    return rc == 0 && T ? 0 : -1;
}

static int unload_table(void **state)
{
    cg_intents_unref(T);
    T = NULL;
    return 0;
}

/* ---- one turn, and what to expect of it ---------------------------------- */

typedef struct turn_case {
    /* input */
    cg_in_kind kind;
    const char *text;          /* text, or a START deep-link payload */
    const char *payload;       /* CG_IN_BUTTON */
    const char *hint;          /* platform language hint */
    const char *media;
    double lat, lon;
    const char *reference;
    /* expectations: NULL / 0 = not checked unless said otherwise */
    const char *has[4];        /* substrings the reply text must contain */
    const char *lacks;         /* ... and one it must not */
    const char *buttons;       /* exact "|"-joined payloads (URL for URL buttons); "" = none */
    const char *titles;        /* exact "|"-joined button titles */
    cg_turn_action action;     /* always checked */
    int priority;              /* checked when action is CG_ACT_ESCALATE */
    int fallback, ambiguous;   /* always checked */
    const char *intent;        /* out->intent id; "" = NULL */
    const char *lang;          /* out->lang */
    const char *source;        /* out->source */
    const char *vars;          /* substring of out->vars_json */
    const char *pending;       /* state pending afterwards; "" = none */
    const char *step;          /* state step afterwards; "" = no flow */
    int fallbacks;             /* state counter afterwards when check_fb */
    int check_fb;
    int lang_chosen;           /* checked when check_lc */
    int check_lc;
} turn_case;

static void join_buttons(const cg_turn_out *o, int titles, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (size_t i = 0; i < o->nbuttons; i++) {
        const cg_reply_button *b = &o->buttons[i];
        const char *s = titles ? b->title : (b->payload ? b->payload : b->url);
        if (i) strncat(buf, "|", cap - strlen(buf) - 1);
        strncat(buf, s ? s : "(null)", cap - strlen(buf) - 1);
    }
}

static void check(int ok, const char *scen, size_t i, const cg_turn_out *o, const char *fmt, ...)
{
    if (ok) return;
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    char btn[1024];
    join_buttons(o, 0, btn, sizeof btn);
    fail_msg("%s, turn %zu: %s\n  reply: %s\n  buttons: %s\n  action %d, intent %s, lang %s",
             scen, i + 1, why, o->text ? o->text : "(null)", btn, (int)o->action,
             o->intent ? o->intent->id : "(none)", o->lang);
}

/* Store and reload the state as the gateway does between messages. */
static void through_json(cg_dialog_state *s)
{
    char *j = cg_dialog_state_to_json(s);
    assert_non_null(j);
    cg_dialog_state r;
    assert_int_equal(cg_dialog_state_from_json(j, strlen(j), &r), 0);
    char *j2 = cg_dialog_state_to_json(&r);
    assert_string_equal(j, j2);
    free(j);
    free(j2);
    cg_dialog_state_free(s);
    *s = r;
}

static void run(const char *scen, const turn_case *v, size_t n, cg_dialog_state *s)
{
    for (size_t i = 0; i < n; i++) {
        const turn_case *c = &v[i];
        cg_turn_in in = {
            .kind = c->kind, .text = c->text, .len = c->text ? strlen(c->text) : 0,
            .payload = c->payload, .lang_hint = c->hint, .media = c->media,
            .lat = c->lat, .lon = c->lon, .reference = c->reference,
        };
        cg_turn_out o;
        assert_int_equal(cg_dialog_turn(T, s, &in, &o), 0);
        check(o.text != NULL && o.text[0] != '\0', scen, i, &o, "empty reply");
        for (size_t k = 0; k < 4 && c->has[k]; k++)
            check(strstr(o.text, c->has[k]) != NULL, scen, i, &o, "reply lacks \"%s\"", c->has[k]);
        if (c->lacks)
            check(strstr(o.text, c->lacks) == NULL, scen, i, &o, "reply has \"%s\"", c->lacks);
        char buf[1024];
        if (c->buttons) {
            join_buttons(&o, 0, buf, sizeof buf);
            check(strcmp(buf, c->buttons) == 0, scen, i, &o, "buttons \"%s\", want \"%s\"", buf, c->buttons);
        }
        if (c->titles) {
            join_buttons(&o, 1, buf, sizeof buf);
            check(strcmp(buf, c->titles) == 0, scen, i, &o, "titles \"%s\", want \"%s\"", buf, c->titles);
        }
        for (size_t k = 0; k < o.nbuttons; k++)
            check(!o.buttons[k].payload || strlen(o.buttons[k].payload) <= 64, scen, i, &o,
                  "payload over 64 bytes");
        check(o.action == c->action, scen, i, &o, "action %d, want %d", (int)o.action, (int)c->action);
        if (c->action == CG_ACT_ESCALATE)
            check(o.priority == c->priority, scen, i, &o, "priority %d, want %d", o.priority, c->priority);
        check(o.fallback == c->fallback, scen, i, &o, "fallback %d, want %d", o.fallback, c->fallback);
        check(o.ambiguous == c->ambiguous, scen, i, &o, "ambiguous %d, want %d", o.ambiguous, c->ambiguous);
        if (c->intent) {
            const char *got = o.intent ? o.intent->id : "";
            check(strcmp(got, c->intent) == 0, scen, i, &o, "intent \"%s\", want \"%s\"", got, c->intent);
        }
        if (c->lang) check(strcmp(o.lang, c->lang) == 0, scen, i, &o, "lang %s, want %s", o.lang, c->lang);
        if (c->source) {
            check(o.source && strcmp(o.source, c->source) == 0, scen, i, &o, "source %s, want %s",
                  o.source ? o.source : "(null)", c->source);
        }
        if (c->vars) {
            check(o.vars_json && strstr(o.vars_json, c->vars), scen, i, &o, "vars %s lack %s",
                  o.vars_json ? o.vars_json : "(null)", c->vars);
        } else {
            check(o.action == CG_ACT_FLOW_DONE || o.vars_json == NULL, scen, i, &o, "unexpected vars");
        }
        if (c->pending)
            check(strcmp(s->pending, c->pending) == 0, scen, i, &o, "pending \"%s\", want \"%s\"",
                  s->pending, c->pending);
        if (c->step)
            check(strcmp(s->step, c->step) == 0, scen, i, &o, "step \"%s\", want \"%s\"", s->step, c->step);
        if (c->check_fb)
            check(s->fallbacks == c->fallbacks, scen, i, &o, "fallbacks %d, want %d", s->fallbacks,
                  c->fallbacks);
        if (c->check_lc)
            check(s->lang_chosen == c->lang_chosen, scen, i, &o, "lang_chosen %d", s->lang_chosen);
        cg_turn_out_free(&o);
        through_json(s);
    }
}

#define RUN(name, ...) do {                                         \
        static const turn_case v_[] = { __VA_ARGS__ };              \
        cg_dialog_state s_;                                         \
        cg_dialog_state_init(&s_);                                  \
        run(name, v_, sizeof v_ / sizeof v_[0], &s_);               \
        cg_dialog_state_free(&s_);                                  \
    } while (0)

#define TXT(t) .kind = CG_IN_TEXT, .text = (t)
#define BTN(p) .kind = CG_IN_BUTTON, .payload = (p)

#define HELLO_EN "Hello! I am the City of Springfield assistant."
#define MENU_BTNS "i:passport-renew|i:report-problem|i:trash-pickup"
#define PASSPORT_EN "renew your passport by mail with form DS-82"
#define PASSPORT_ES "renovar su pasaporte por correo"
#define FALLBACK_EN "Sorry, I did not understand."
#define HUMAN_EN "I am connecting you with a person."
#define TRASH_EN "Trash is collected every Tuesday"

/* ---- scenarios --------------------------------------------------------- */

static void test_specials(void **state)
{
    RUN("start greets with the menu's buttons",
        { .kind = CG_IN_START, .has = {HELLO_EN}, .buttons = MENU_BTNS "|l:es",
          .titles = "Passport renewal|Report a street problem|Trash pickup|Español", .intent = "greeting",
          .lang = "en" },
        { TXT("hello"), .has = {HELLO_EN}, .buttons = MENU_BTNS "|l:es", .intent = "greeting" },
        { TXT("menu"), .has = {"I can help with these topics:"}, .buttons = MENU_BTNS, .intent = "menu" },
        { TXT("thank you very much"), .has = {"You are welcome."}, .buttons = "", .intent = "thanks" },
        { TXT("talk to a person"), .has = {HUMAN_EN}, .action = CG_ACT_ESCALATE, .priority = 1,
          .intent = "human", .pending = "", .step = "" });
    RUN("language special offers the table's languages",
        { TXT("change language"), .has = {"Which language do you prefer?"}, .buttons = "l:en|l:es",
          .titles = "English|Español", .pending = "language", .intent = "language" },
        { TXT("Español"), .has = {"A partir de ahora responderé en español."}, .lang = "es",
          .pending = "", .check_lc = 1, .lang_chosen = 1 });
    RUN("deep link names an intent; unknown deep link greets",
        { .kind = CG_IN_START, .text = "passport-fees", .has = {"$130"}, .intent = "passport-fees" },
        { .kind = CG_IN_START, .text = "no-such-intent", .has = {HELLO_EN}, .intent = "greeting" },
        { .kind = CG_IN_START, .text = "fallback", .has = {HELLO_EN}, .intent = "greeting" });
}

static void test_match_source_buttons(void **state)
{
    RUN("answer, source line, intent and URL buttons",
        { TXT("how do i renew my passport"), .has = {PASSPORT_EN, "Source: Department of State, https://travel.state.gov/passport-renew"},
          .buttons = "i:passport-fees|https://travel.state.gov/passport-renew",
          .titles = "Passport fees|Official page", .intent = "passport-renew",
          .source = "https://travel.state.gov/passport-renew", .lang = "en" },
        { BTN("i:passport-fees"), .has = {"A passport book renewal costs $130.",
          "Source: Department of State, https://travel.state.gov/passport-fees"}, .intent = "passport-fees" },
        { TXT("report benefits fraud"), .has = {"investigator"}, .action = CG_ACT_ESCALATE,
          .priority = 5, .intent = "report-fraud" });
}

/* The matcher ranks the two parking intents; which comes first is its
 * business, so the checks take the order from the reply. */
static void ambiguous_pick(const char *text, const char *lang, int by_number, size_t pick)
{
    cg_dialog_state s;
    cg_dialog_state_init(&s);
    cg_turn_in in = { .kind = CG_IN_TEXT, .text = text, .len = strlen(text) };
    cg_turn_out o;
    assert_int_equal(cg_dialog_turn(T, &s, &in, &o), 0);
    assert_int_equal(o.ambiguous, 1);
    assert_int_equal(o.fallback, 0);
    assert_null(o.intent);
    assert_string_equal(o.lang, lang);
    assert_string_equal(s.pending, "ambiguous");
    assert_int_equal(o.nbuttons, 3);
    char a[2][80];
    for (size_t i = 0; i < 2; i++) snprintf(a[i], sizeof a[i], "%s", o.buttons[i].payload);
    int permit_first = strcmp(a[0], "a:parking-permit") == 0;
    assert_string_equal(a[permit_first ? 1 : 0], "a:parking-ticket");
    assert_string_equal(a[permit_first ? 0 : 1], "a:parking-permit");
    const char *permit_title = strcmp(lang, "es") == 0 ? "Permiso de estacionamiento" : "Parking permit";
    const char *ticket_title = strcmp(lang, "es") == 0 ? "Multa de estacionamiento" : "Parking ticket";
    assert_string_equal(o.buttons[permit_first ? 0 : 1].title, permit_title);
    assert_string_equal(o.buttons[permit_first ? 1 : 0].title, ticket_title);
    assert_string_equal(o.buttons[2].payload, "a:");
    assert_string_equal(o.buttons[2].title, strcmp(lang, "es") == 0 ? "Ninguna de estas" : "None of these");
    assert_non_null(strstr(o.text, strcmp(lang, "es") == 0 ? "¿Se refiere a una de estas" : "Did you mean one of these?"));
    cg_turn_out_free(&o);
    through_json(&s);

    char num[8];
    snprintf(num, sizeof num, "%zu", pick + 1);
    cg_turn_in in2 = { .kind = by_number ? CG_IN_TEXT : CG_IN_BUTTON, .text = by_number ? num : NULL,
                       .len = by_number ? strlen(num) : 0, .payload = by_number ? NULL : a[pick] };
    assert_int_equal(cg_dialog_turn(T, &s, &in2, &o), 0);
    assert_non_null(o.intent);
    assert_string_equal(o.intent->id, a[pick] + 2);
    assert_int_equal(o.ambiguous, 0);
    assert_string_equal(s.pending, "");
    int es = strcmp(lang, "es") == 0, ticket = strcmp(a[pick] + 2, "parking-ticket") == 0;
    const char *want = ticket ? (es ? "impugnar una multa" : "contest a parking ticket")
                              : (es ? "permiso de estacionamiento en línea" : "parking permit online");
    if (!strstr(o.text, want)) fail_msg("reply \"%s\" lacks \"%s\"", o.text, want);
    assert_string_equal(o.lang, lang);
    cg_turn_out_free(&o);
    cg_dialog_state_free(&s);
}

static void test_ambiguity(void **state)
{
    ambiguous_pick("parking", "en", 0, 0);
    ambiguous_pick("parking", "en", 0, 1);
    ambiguous_pick("parking", "en", 1, 1);
    ambiguous_pick("estacionamiento", "es", 1, 0);
    RUN("none of these counts as a fallback",
        { TXT("parking"), .ambiguous = 1, .pending = "ambiguous", .check_fb = 1, .fallbacks = 0 },
        { BTN("a:"), .has = {FALLBACK_EN}, .buttons = "m|h", .fallback = 1, .check_fb = 1, .fallbacks = 1 },
        { TXT("zxqv plonk wibble"), .has = {"Would you like to talk to a person?"}, .buttons = "y|n",
          .fallback = 1, .pending = "human_offer", .check_fb = 1, .fallbacks = 2 });
    RUN("a new question instead of a pick",
        { TXT("parking"), .ambiguous = 1, .pending = "ambiguous" },
        { TXT("renew passport"), .has = {PASSPORT_EN}, .intent = "passport-renew", .pending = "" });
}

static void test_fallback_to_human(void **state)
{
    RUN("two fallbacks offer a person; yes escalates",
        { TXT("zxqv plonk wibble"), .has = {FALLBACK_EN}, .buttons = "m|h", .titles = "Menu|Talk to a person",
          .fallback = 1, .intent = "", .check_fb = 1, .fallbacks = 1 },
        { TXT("florp quazzle"), .has = {"I still did not understand. Would you like to talk to a person?"},
          .lacks = FALLBACK_EN, .buttons = "y|n", .titles = "Yes|No", .fallback = 1, .pending = "human_offer" },
        { BTN("y"), .has = {HUMAN_EN}, .action = CG_ACT_ESCALATE, .priority = 1, .pending = "",
          .check_fb = 1, .fallbacks = 0 });
    RUN("no shows the menu and resets the count",
        { TXT("zxqv plonk wibble"), .fallback = 1 },
        { TXT("florp quazzle"), .fallback = 1, .pending = "human_offer" },
        { TXT("no"), .has = {"I can help with these topics:"}, .buttons = MENU_BTNS "|h", .pending = "",
          .check_fb = 1, .fallbacks = 0 },
        { TXT("zxqv plonk wibble"), .has = {FALLBACK_EN}, .fallback = 1, .check_fb = 1, .fallbacks = 1 });
    RUN("an understood turn resets the count",
        { TXT("zxqv plonk wibble"), .fallback = 1, .check_fb = 1, .fallbacks = 1 },
        { TXT("renew passport"), .intent = "passport-renew", .check_fb = 1, .fallbacks = 0 },
        { TXT("florp quazzle"), .has = {FALLBACK_EN}, .fallback = 1, .check_fb = 1, .fallbacks = 1 });
    RUN("ignoring the offer and asking something else is a new question",
        { TXT("zxqv plonk wibble"), .fallback = 1 },
        { TXT("florp quazzle"), .fallback = 1, .pending = "human_offer" },
        { TXT("when is trash pickup"), .has = {TRASH_EN}, .intent = "trash-pickup", .pending = "" });
    RUN("empty text is not understood",
        { TXT("   "), .has = {FALLBACK_EN}, .fallback = 1 });
}

static void test_delete_data(void **state)
{
    RUN("yes deletes and resets the state",
        { .kind = CG_IN_BUTTON, .payload = "l:es", .check_lc = 1, .lang_chosen = 1 },
        { TXT("borrar mis datos"), .has = {"¿Borrar todo lo que guardamos"}, .buttons = "y|n",
          .titles = "Sí|No", .pending = "delete_confirm", .intent = "delete-data" },
        { TXT("SÍ"), .has = {"Listo: borramos todo"}, .action = CG_ACT_DELETE_DATA, .pending = "",
          .check_lc = 1, .lang_chosen = 0 });
    RUN("no keeps",
        { TXT("delete my data"), .pending = "delete_confirm" },
        { BTN("n"), .has = {"OK, nothing was deleted."}, .pending = "" });
    RUN("anything else re-asks once, then cancels",
        { TXT("delete my data"), .pending = "delete_confirm" },
        { TXT("banana"), .has = {"Delete everything we keep"}, .buttons = "y|n", .pending = "delete_confirm" },
        { TXT("banana"), .has = {"OK, nothing was deleted."}, .pending = "" },
        { BTN("y"), .has = {FALLBACK_EN}, .fallback = 1, .action = CG_ACT_NONE });
}

static void test_language(void **state)
{
    RUN("choose Spanish; default-language fallback for a missing translation",
        { .kind = CG_IN_LANGUAGE, .has = {"Which language do you prefer?"}, .buttons = "l:en|l:es",
          .titles = "English|Español", .pending = "language" },
        { BTN("l:es"), .has = {"A partir de ahora responderé en español."}, .lang = "es",
          .check_lc = 1, .lang_chosen = 1, .pending = "" },
        { TXT("renovar pasaporte"), .has = {PASSPORT_ES, "Source: Department of State, https://"}, .lang = "es",
          .titles = "Tarifas del pasaporte|Página oficial" },
        { TXT("when is trash pickup"), .has = {TRASH_EN}, .lang = "es", .intent = "trash-pickup" },
        { TXT("zxqv plonk wibble"), .has = {"Lo siento, no entendí."}, .titles = "Menú|Hablar con una persona",
          .fallback = 1, .lang = "es" },
        { BTN("l:en"), .has = {"I will answer in English from now on."}, .lang = "en" },
        { TXT("renovar pasaporte"), .has = {PASSPORT_EN}, .lang = "en" });
    RUN("platform hint",
        { TXT("hello"), .hint = "es-MX", .has = {"¡Hola! Soy el asistente"}, .lang = "es",
          .titles = "Renovar el pasaporte|Reportar un problema en la calle|Recolección de basura|English",
          .check_lc = 1, .lang_chosen = 0 },
        { BTN("m"), .hint = "fr-FR", .has = {"Puedo ayudar"}, .lang = "es" },
        /* two words tell little: the conversation's language beats the phone's */
        { TXT("renew passport"), .hint = "en_US", .has = {PASSPORT_ES}, .lang = "es" },
        /* a sentence is detected, whatever the phone says */
        { TXT("how do i renew my passport"), .hint = "es-MX", .has = {PASSPORT_EN}, .lang = "en" });
    RUN("a first short message follows the platform's hint",
        { TXT("renew passport"), .hint = "es-MX", .has = {PASSPORT_ES}, .lang = "es" });
    RUN("detected from the text",
        { TXT("cómo renuevo mi pasaporte"), .has = {PASSPORT_ES}, .lang = "es" },
        { TXT("how do i renew my passport"), .has = {PASSPORT_EN}, .lang = "en" });
    RUN("a language the table does not offer is offered again",
        { BTN("l:fr"), .has = {"Which language do you prefer?"}, .buttons = "l:en|l:es", .pending = "language",
          .check_lc = 1, .lang_chosen = 0 },
        { TXT("es"), .has = {"A partir de ahora"}, .lang = "es", .check_lc = 1, .lang_chosen = 1 });
}

static void test_flow_pothole(void **state)
{
    RUN("pothole branch to the end, in Spanish",
        { TXT("hay un bache en mi calle"), .has = {"Vamos a reportarlo", "¿Cuál es el problema?"},
          .buttons = "c:pothole|c:streetlight|x", .titles = "Bache|Luz apagada|Cancelar", .lang = "es",
          .intent = "report-problem", .step = "what" },
        { BTN("c:pothole"), .has = {"¿Qué ancho tiene"}, .lacks = "Vamos", .buttons = "b|x", .step = "size",
          .lang = "es" },
        { TXT("3,5"), .has = {"¿Dónde está?"}, .step = "where" },
        { .kind = CG_IN_LOCATION, .lat = 40.7128, .lon = -74.006, .has = {"¿Algo más"}, .step = "details" },
        { TXT("Es muy profundo"), .reference = "SPR-2026-0042",
          .has = {"Su número de referencia es SPR-2026-0042.", "Registramos: Bache en 40.712800,-74.006000.",
                  "Source: Public Works, https://springfield.example.gov/311"},
          .action = CG_ACT_FLOW_DONE, .vars = "\"size\":\"3.5\"", .intent = "report-problem", .step = "",
          .buttons = "m", .titles = "Menú", .source = "https://springfield.example.gov/311" });
}

static void test_flow_streetlight(void **state)
{
    RUN("streetlight branch: typed choice, pattern, back, cancel",
        { TXT("the street light is broken"), .step = "what", .lang = "en" },
        { TXT("2"), .has = {"What is the number on the pole"}, .buttons = "b|x", .step = "pole" },
        { TXT("12345"), .has = {"Pole numbers look like AB1234.", "What is the number on the pole"},
          .step = "pole", .check_fb = 1, .fallbacks = 1 },
        { TXT("ab1234"), .has = {"Where is it?"}, .step = "where", .check_fb = 1, .fallbacks = 0 },
        { TXT("no"), .has = {"Sorry, that is not a valid answer.", "Where is it?"}, .step = "where" },
        { TXT("Main St and 5th Ave"), .has = {"Anything else"}, .step = "details" },
        { TXT("back"), .has = {"Where is it?"}, .lacks = "Anything else", .step = "where" },
        { BTN("b"), .has = {"What is the number on the pole"}, .step = "pole" },
        { TXT("Cancel"), .has = {"OK, I cancelled that."}, .buttons = "m|h", .step = "" },
        { BTN("c:streetlight"), .has = {FALLBACK_EN}, .fallback = 1, .check_fb = 1, .fallbacks = 0 });
    RUN("typed title of a choice, and vars forgotten on back",
        { BTN("i:report-problem"), .step = "what", .intent = "report-problem" },
        { TXT("street light out"), .step = "pole" },
        { TXT("CD9876"), .step = "where" },
        { TXT("Elm Street 12"), .step = "details" },
        { TXT("It has been dark for a week"), .reference = NULL,
          .has = {"Your reference number is -.", "We recorded: Street light out at Elm Street 12."},
          .action = CG_ACT_FLOW_DONE, .vars = "\"pole\":\"CD9876\"", .step = "" });
}

static void test_flow_number_and_invalid(void **state)
{
    RUN("number range, locale forms, three invalid answers offer a person",
        { TXT("report a pothole"), .step = "what" },
        { TXT("pothole"), .step = "size" },
        { TXT("50"), .has = {"between 0.1 and 10", "About how wide"}, .buttons = "b|x", .step = "size" },
        { TXT("wide"), .has = {"between 0.1 and 10"}, .buttons = "b|x", .step = "size" },
        { TXT("0"), .has = {"between 0.1 and 10"}, .buttons = "b|x|h", .step = "size", .check_fb = 1, .fallbacks = 3 },
        { TXT("٠٫٥"), .has = {"Where is it?"}, .buttons = "b|x", .step = "where", .check_fb = 1, .fallbacks = 0 },
        { TXT("ab"), .has = {"Sorry, that is not a valid answer."}, .step = "where" },
        { TXT("Oak Road"), .step = "details" },
        { TXT("deep"), .has = {"not a valid answer", "Anything else"}, .step = "details" },
        { TXT("very deep hole"), .action = CG_ACT_FLOW_DONE, .vars = "\"size\":\"0.5\"", .step = "" });
    RUN("back on the first question",
        { TXT("report a pothole"), .step = "what" },
        { TXT("back"), .has = {"This is the first question.", "What is the problem?"},
          .buttons = "c:pothole|c:streetlight|x", .step = "what" },
        { TXT("pizza"), .has = {"not a valid answer", "What is the problem?"}, .step = "what" },
        { BTN("x"), .has = {"OK, I cancelled that."}, .step = "" });
    RUN("hand-off flow",
        { TXT("call me back"), .has = {"A 311 agent can call you.", "What number should we call?"},
          .buttons = "x", .step = "phone" },
        { TXT("call me at noon"), .has = {"not a valid answer"}, .step = "phone" },
        { TXT("+1 (555) 123-4567"), .reference = "R-7",
          .has = {"An agent will call +1 (555) 123-4567. Reference R-7."}, .action = CG_ACT_ESCALATE,
          .priority = 3, .vars = "\"phone\":\"+1 (555) 123-4567\"", .step = "" });
}

#define OFFICE_BTNS "c:north|c#2|c:south|c:east|c:west|c:central|c:airport|c:harbor|x"

static void test_flow_many_choices(void **state)
{
    RUN("more choices than buttons: numbered in the text; long values by index",
        { TXT("book an appointment"), .has = {"Which office?\n1. North\n2. Motor Vehicles Annex", "\n9. University"},
          .buttons = OFFICE_BTNS, .step = "office" },
        { TXT("9"), .has = {"See you at the University office."}, .action = CG_ACT_FLOW_DONE,
          .vars = "\"office\":\"university\"", .step = "" });
    RUN("the index payload",
        { TXT("book an appointment"), .step = "office" },
        { BTN("c#2"), .has = {"See you at the Motor Vehicles Annex office."}, .action = CG_ACT_FLOW_DONE,
          .vars = "motor-vehicles-annex-building-2", .step = "" });
    RUN("out-of-range number and index payload are invalid",
        { TXT("book an appointment"), .step = "office" },
        { TXT("10"), .has = {"not a valid answer", "Which office?"}, .buttons = OFFICE_BTNS, .step = "office" },
        { BTN("c#0"), .has = {"not a valid answer"}, .step = "office" },
        { TXT("harbor"), .has = {"See you at the Harbor office."}, .action = CG_ACT_FLOW_DONE,
          .vars = "harbor" });
}

static void test_hostile_text(void **state)
{
    static char big[10001], wide[2 * 260 + 1];
    memset(big, 'a', sizeof big - 1);
    for (size_t i = 0; i < 260; i++) memcpy(wide + 2 * i, "\xc3\xa9", 2);   /* 260 x e-acute: 520 bytes */
    RUN("invalid UTF-8 and oversized text",
        { TXT("\xff\xfe renew passport"), .has = {FALLBACK_EN}, .fallback = 1 },
        { TXT(big), .fallback = 1, .check_fb = 1, .fallbacks = 2, .pending = "human_offer" });
    RUN("a flow answer over 500 bytes is refused though under max_length characters",
        { TXT("report a pothole"), .step = "what" },
        { TXT("1"), .step = "size" },
        { TXT("2.5"), .step = "where" },
        { TXT("Oak Road"), .step = "details" },
        { TXT(wide), .has = {"not a valid answer"}, .step = "details" },
        { TXT("\xff\xfe"), .has = {"not a valid answer"}, .step = "details" },
        { TXT("fine, thanks"), .action = CG_ACT_FLOW_DONE, .vars = "\"details\":\"fine, thanks\"" });
}

static void test_flow_interruptions(void **state)
{
    RUN("a person, media, another question, a stale button, /start",
        { TXT("report a pothole"), .step = "what" },
        { .kind = CG_IN_MEDIA, .media = "photo", .has = {"I can only read text", "What is the problem?"},
          .buttons = "c:pothole|c:streetlight|x", .step = "what" },
        { .kind = CG_IN_LOCATION, .lat = 1, .lon = 2, .has = {"I can only read text", "What is the problem?"},
          .step = "what" },
        { BTN("c:pothole"), .step = "size" },
        { BTN("c:streetlight"), .has = {"between 0.1 and 10", "About how wide"}, .step = "size" },
        { BTN("i:gone-after-reload"), .has = {FALLBACK_EN, "About how wide"}, .fallback = 1, .step = "size" },
        { .kind = CG_IN_LANGUAGE, .pending = "language", .step = "size" },
        { BTN("l:es"), .has = {"responderé en español", "¿Qué ancho tiene"}, .step = "size", .lang = "es" },
        { .kind = CG_IN_START, .has = {"¡Hola!"}, .step = "", .intent = "greeting", .lang = "es",
          .buttons = MENU_BTNS });
    RUN("a free-text step: another confident question is answered, the question repeated",
        { TXT("report a pothole"), .step = "what" },
        { TXT("pothole"), .step = "size" },
        { TXT("2"), .step = "where" },
        { TXT("when is trash pickup?"), .has = {TRASH_EN, "Where is it?"}, .buttons = "b|x",
          .intent = "trash-pickup", .step = "where" },
        { TXT("talk to a person"), .has = {HUMAN_EN}, .action = CG_ACT_ESCALATE, .priority = 1, .step = "" });
    RUN("a free-text step: an answer that names a topic is an answer, not a new question",
        { TXT("report a pothole"), .step = "what" },
        { TXT("pothole"), .step = "size" },
        { TXT("2"), .step = "where" },
        { TXT("when is trash pickup"), .step = "details" });
    RUN("asking for a person on a choice step",
        { TXT("report a pothole"), .step = "what" },
        { TXT("i want a human"), .has = {HUMAN_EN}, .action = CG_ACT_ESCALATE, .priority = 1, .step = "" });
    RUN("menu leaves the flow",
        { TXT("report a pothole"), .step = "what" },
        { BTN("m"), .has = {"OK, I cancelled that.", "I can help with these topics:"}, .step = "" });
    RUN("delete data in a flow, declined, returns to the question",
        { TXT("report a pothole"), .step = "what" },
        { BTN("c:pothole"), .step = "size" },
        { TXT("delete my data"), .has = {"Delete everything"}, .pending = "delete_confirm", .step = "size" },
        { TXT("no"), .has = {"nothing was deleted", "About how wide"}, .step = "size", .pending = "" });
}

static void test_stale_and_unsupported(void **state)
{
    RUN("stale and unknown payloads are polite and not counted",
        { BTN("i:removed-by-reload"), .has = {FALLBACK_EN}, .buttons = "m|h", .fallback = 1,
          .check_fb = 1, .fallbacks = 0 },
        { BTN("c:pothole"), .has = {FALLBACK_EN}, .fallback = 1 },
        { BTN("b"), .has = {FALLBACK_EN}, .fallback = 1 },
        { BTN("n"), .has = {FALLBACK_EN}, .fallback = 1 },
        { BTN("a:removed-by-reload"), .has = {FALLBACK_EN}, .fallback = 1 },
        { BTN("zz:whatever"), .has = {FALLBACK_EN}, .fallback = 1 },
        { BTN(""), .has = {FALLBACK_EN}, .fallback = 1 },
        { .kind = CG_IN_BUTTON, .payload = NULL, .has = {FALLBACK_EN}, .fallback = 1,
          .check_fb = 1, .fallbacks = 0 },
        { BTN("x"), .has = {"OK, I cancelled that."}, .step = "" });
    RUN("media and location outside a flow",
        { .kind = CG_IN_MEDIA, .media = "sticker", .has = {"I can only read text messages."},
          .buttons = "m|h" },
        { .kind = CG_IN_LOCATION, .lat = 40, .lon = -74, .has = {"I can only read text messages."},
          .buttons = "m|h" });
}

/* A state naming a flow or step that a reload removed. */
static void test_stale_flow_state(void **state)
{
    static const char *states[] = {
        "{\"v\":1,\"f\":\"gone-flow\",\"st\":\"what\"}",
        "{\"v\":1,\"f\":\"report-problem\",\"st\":\"gone-step\",\"h\":[\"what\"]}",
        "{\"v\":1,\"f\":\"passport-renew\",\"st\":\"what\"}",
    };
    for (size_t i = 0; i < sizeof states / sizeof *states; i++) {
        cg_dialog_state s;
        assert_int_equal(cg_dialog_state_from_json(states[i], strlen(states[i]), &s), 0);
        static const turn_case v[] = {
            { TXT("renew passport"), .has = {PASSPORT_EN}, .intent = "passport-renew", .step = "" },
        };
        run(states[i], v, 1, &s);
        cg_dialog_state_free(&s);
    }
}

static void test_deterministic(void **state)
{
    const char *inputs[] = { "hello", "parking", "report a pothole", "zxqv", "cómo renuevo mi pasaporte" };
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        char *first = NULL;
        for (int k = 0; k < 2; k++) {
            cg_dialog_state s;
            cg_dialog_state_init(&s);
            cg_turn_in in = { .kind = CG_IN_TEXT, .text = inputs[i], .len = strlen(inputs[i]) };
            cg_turn_out o;
            assert_int_equal(cg_dialog_turn(T, &s, &in, &o), 0);
            char *j = cg_dialog_state_to_json(&s);
            size_t len = strlen(o.text) + strlen(j) + 2;
            char *all = malloc(len);
            snprintf(all, len, "%s|%s", o.text, j);
            if (k == 0) first = all;
            else { assert_string_equal(first, all); free(all); }
            free(j);
            cg_turn_out_free(&o);
            cg_dialog_state_free(&s);
        }
        free(first);
    }
}

/* ---- state JSON ---------------------------------------------------------- */

static void test_state_roundtrip(void **state)
{
    cg_dialog_state s;
    cg_dialog_state_init(&s);
    strcpy(s.lang, "es");
    s.lang_chosen = 1;
    s.fallbacks = 2;
    strcpy(s.flow, "report-problem");
    strcpy(s.step, "where");
    strcpy(s.history[0], "what");
    strcpy(s.history[1], "size");
    s.nhistory = 2;
    s.vars_json = strdup("{\"what\":\"pothole\",\"size\":\"3.5\",\"note\":\"\\\"quoted\\\" ñ\"}");
    strcpy(s.pending, "ambiguous");
    strcpy(s.choices[0], "parking-permit");
    strcpy(s.choices[1], "parking-ticket");
    s.nchoices = 2;
    char *j = cg_dialog_state_to_json(&s);
    assert_non_null(j);
    assert_non_null(strstr(j, "\"v\":1"));
    cg_dialog_state r;
    assert_int_equal(cg_dialog_state_from_json(j, strlen(j), &r), 0);
    assert_string_equal(r.lang, "es");
    assert_int_equal(r.lang_chosen, 1);
    assert_int_equal(r.fallbacks, 2);
    assert_string_equal(r.flow, "report-problem");
    assert_string_equal(r.step, "where");
    assert_int_equal(r.nhistory, 2);
    assert_string_equal(r.history[1], "size");
    assert_string_equal(r.vars_json, s.vars_json);
    assert_string_equal(r.pending, "ambiguous");
    assert_int_equal(r.nchoices, 2);
    assert_string_equal(r.choices[1], "parking-ticket");
    free(j);
    cg_dialog_state_free(&r);
    cg_dialog_state_free(&s);

    /* a fresh state is tiny */
    cg_dialog_state_init(&s);
    j = cg_dialog_state_to_json(&s);
    assert_string_equal(j, "{\"v\":1}");
    free(j);
}

static void test_state_garbage(void **state)
{
    char big_var[700], many_vars[6000], long_hist[2000], huge[20000];
    memset(big_var, 0, sizeof big_var);
    strcpy(big_var, "{\"v\":1,\"f\":\"x\",\"st\":\"y\",\"vars\":{\"a\":\"");
    memset(big_var + strlen(big_var), 'a', 501);
    strcat(big_var, "\"}}");
    strcpy(many_vars, "{\"v\":1,\"f\":\"x\",\"st\":\"y\",\"vars\":{");
    for (int i = 0; i < 20; i++)
        snprintf(many_vars + strlen(many_vars), sizeof many_vars - strlen(many_vars),
                 "%s\"k%d\":\"%0250d\"", i ? "," : "", i, 0);
    strcat(many_vars, "}}");
    strcpy(long_hist, "{\"v\":1,\"f\":\"x\",\"st\":\"y\",\"h\":[");
    for (int i = 0; i < 33; i++) strcat(long_hist, i ? ",\"s\"" : "\"s\"");
    strcat(long_hist, "]}");
    memset(huge, ' ', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    memcpy(huge, "{\"v\":1}", 7);

    const char *bad[] = {
        "", "null", "[]", "{}", "42", "\"v\"", "{\"v\":2}", "{\"v\":\"1\"}", "{\"v\":1",
        "{\"v\":1,\"l\":\"EN\"}", "{\"v\":1,\"l\":\"english-long\"}", "{\"v\":1,\"l\":5}",
        "{\"v\":1,\"fb\":-1}", "{\"v\":1,\"fb\":1e9}", "{\"v\":1,\"lc\":\"yes\"}",
        "{\"v\":1,\"f\":\"x\"}", "{\"v\":1,\"st\":\"y\"}",
        "{\"v\":1,\"f\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"st\":\"y\"}",
        "{\"v\":1,\"f\":\"x\",\"st\":\"y\",\"h\":\"what\"}", "{\"v\":1,\"f\":\"x\",\"st\":\"y\",\"h\":[1]}",
        "{\"v\":1,\"h\":[\"a\"]}", "{\"v\":1,\"f\":\"x\",\"st\":\"y\",\"vars\":[]}",
        "{\"v\":1,\"f\":\"x\",\"st\":\"y\",\"vars\":{\"a\":1}}", "{\"v\":1,\"vars\":{}}",
        "{\"v\":1,\"p\":\"launch_missiles\"}", "{\"v\":1,\"p\":7}",
        "{\"v\":1,\"ch\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\"]}", "{\"v\":1,\"ch\":[\"\"]}",
        "{\"v\":1,\"l\":\"e\\u0001\"}", "{\"v\":1,\"st\":\"a\\nb\",\"f\":\"x\"}",
        big_var, many_vars, long_hist, huge,
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cg_dialog_state s;
        memset(&s, 0x5a, sizeof s);    /* from_json must not read what was there */
        int rc = cg_dialog_state_from_json(bad[i], strlen(bad[i]), &s);
        if (rc != -1) fail_msg("accepted garbage #%zu: %.80s", i, bad[i]);
        assert_string_equal(s.lang, "");
        assert_string_equal(s.flow, "");
        assert_string_equal(s.pending, "");
        assert_int_equal(s.fallbacks, 0);
        assert_int_equal(s.nhistory, 0);
        assert_null(s.vars_json);
        cg_dialog_state_free(&s);
    }
    cg_dialog_state s;
    assert_int_equal(cg_dialog_state_from_json(NULL, 0, &s), -1);
    /* length is honoured: the bytes after len are not read */
    const char *ok = "{\"v\":1,\"l\":\"es\"}garbage";
    assert_int_equal(cg_dialog_state_from_json(ok, 16, &s), 0);
    assert_string_equal(s.lang, "es");
    cg_dialog_state_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_specials),
        cmocka_unit_test(test_match_source_buttons),
        cmocka_unit_test(test_ambiguity),
        cmocka_unit_test(test_fallback_to_human),
        cmocka_unit_test(test_delete_data),
        cmocka_unit_test(test_language),
        cmocka_unit_test(test_flow_pothole),
        cmocka_unit_test(test_flow_streetlight),
        cmocka_unit_test(test_flow_number_and_invalid),
        cmocka_unit_test(test_flow_many_choices),
        cmocka_unit_test(test_hostile_text),
        cmocka_unit_test(test_flow_interruptions),
        cmocka_unit_test(test_stale_and_unsupported),
        cmocka_unit_test(test_stale_flow_state),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_state_roundtrip),
        cmocka_unit_test(test_state_garbage),
    };
    return cmocka_run_group_tests(tests, load_table, unload_table);
}

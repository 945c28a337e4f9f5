/*
 * dialog.c: the dialog manager. One pure function, cg_dialog_turn(), takes
 * the intent snapshot, the conversation state and what the citizen sent, and
 * writes the reply and the new state. No clock, no randomness, no I/O, no
 * globals: the same (snapshot, state, input) always gives the same reply.
 *
 * API in call order:
 *   cg_dialog_state_init()       fresh state (or cg_dialog_state_from_json())
 *   cg_dialog_turn()             one message in, one reply out, state updated
 *   cg_turn_out_free()           release the reply
 *   cg_dialog_state_to_json()    store the state (the gateway keeps it in Redis)
 *   cg_dialog_state_free()
 *
 * Behaviour (what a citizen sees):
 *
 * Language. The reply language is, in order: the language the citizen chose
 *   (button or /language), if the table still offers it; for typed text of
 *   at least DLG_DETECT_MIN_WORDS words outside a flow or pending question,
 *   detection from the text (cg_intents_detect_lang: a citizen whose phone
 *   is set to English may well write in Spanish); the last language used in
 *   this conversation (remembered in state.lang with lang_chosen = 0, so that
 *   "menú" or a "3" typed in a Spanish conversation is answered in Spanish);
 *   the platform's hint (the whole tag, then its first two letters, if
 *   offered); detection on a shorter text; else the table's default. Text that falls back does not switch a remembered
 *   language (detection on text nobody understood is a guess). Any missing
 *   translation falls back to the default language (cg_i18n_get /
 *   cg_settings_phrase).
 *
 * Answers. A matched intent says its answer, then "<source phrase>: <owner>, <url>"
 *   when it names a source (the owner only when the answer already links the
 *   source), with its buttons ("i:<id>" or URL buttons). A
 *   greeting without buttons of its own borrows the menu intent's buttons,
 *   and until the citizen has chosen a language it also offers the table's
 *   other languages ("l:<code>", titled in their own names).
 *   Escalating intents and the "human" special return CG_ACT_ESCALATE with the
 *   intent's priority and end any flow. Any understood turn resets the
 *   fallback counter.
 *
 * Not understood. Ambiguous matches (the matcher says so and the runner-up is
 *   above the threshold) ask "ambiguous" with one button per candidate within
 *   the margin ("a:<id>", up to CG_MAX_ALTERNATIVES) plus "none_of_these"
 *   ("a:", which counts as a fallback); the citizen may also type the
 *   candidate's number or title. Below the threshold, the fallback intent's
 *   answer with its buttons plus Menu ("m", when the table has a menu intent)
 *   and Talk to a person ("h"). At the settings.fallbacks_before_human-th
 *   consecutive fallback the reply is the "fallback_human" phrase with Yes
 *   ("y": hand to a person) / No ("n": show the menu, counter reset); it is
 *   offered again at each further fallback until answered, so there is never
 *   a dead end. Typing something else instead of yes/no is handled as a new
 *   question. Stale or unknown button payloads (an old message, an intent a
 *   reload removed) get the fallback answer with Menu / Talk to a person but
 *   are not counted against the citizen.
 *
 * Pending questions (state.pending): "delete_confirm" (yes deletes: action
 *   CG_ACT_DELETE_DATA, "delete_done", and the state is reset to fresh; no or
 *   cancel: "delete_kept"; anything else re-asks once, then "delete_kept"),
 *   "human_offer" (see above), "ambiguous" (see above), "language" (the
 *   citizen may type a language's code or its own name instead of pressing a
 *   button; anything else is handled as a new question). Typed yes / no /
 *   cancel / back are the table's phrases in any of its languages, compared
 *   after cg_text_normalize (so "SÍ" = "si").
 *
 * Flows. A flow intent says its answer (the intro) then the first question.
 *   Each question carries its choice buttons ("c:<value>", or "c#<n>" when
 *   the value would make the payload exceed 64 bytes), Back ("b", not on the
 *   first question: it has nothing to go back to; typed "back" there says
 *   "flow_back_first") and Cancel ("x"); after DLG_INVALID_HELP invalid
 *   answers in a row also Talk to a person ("h"). Answers: choice = button,
 *   typed title (any language), value or number; text = trimmed, min/max
 *   length in characters (default 1..500), pattern (the snapshot's compiled
 *   regex); number = "3", "3,5", "3.5", "-2", Arabic-Indic digits, within
 *   [min, max]; location = a shared location stored as "lat,lon" (6
 *   decimals) or text within the length bounds. Every stored value is at
 *   most DLG_VAR_MAX bytes and vars_json at most DLG_VARS_MAX; an answer
 *   that would exceed either is invalid. Branching by choice.next, else
 *   step.next, else the following step in the array (the format's rule;
 *   the loader may already have filled it in), else the end. Back pops the
 *   history and forgets the answers of the step left and the step returned
 *   to. At the end the flow's done
 *   text is said with {{var}} (a choice's title in the reply language, else
 *   the stored value, "-" when unset) and {{reference}} (in->reference or
 *   "-") substituted, plus the source line; action CG_ACT_FLOW_DONE, or
 *   CG_ACT_ESCALATE with the flow's priority when it hands off; out->vars_json
 *   carries the answers either way.
 *
 * Questions in the middle of a flow (my call): typed text is first checked
 *   for the cancel / back words. Then the matcher runs. The "human",
 *   "language" and "delete_data" specials interrupt at the table threshold on
 *   any step (asking for a person always works); greeting, thanks and menu
 *   never do ("fine, thanks" is an answer; the Menu button leaves a flow);
 *   any other intent interrupts only at DLG_INTERRUPT_SCORE (0.8), never when
 *   ambiguous, never the flow's own intent, and on text and location steps
 *   only when the text is a question ('?' or '¿'): an answer there often
 *   names a topic ("the Medicaid application page fails"). On text and location steps this
 *   check comes before validation (almost any text is a valid answer
 *   there); on choice and number steps after it (a valid answer wins). An interruption by an
 *   ordinary intent answers it and then repeats the current question, the
 *   flow kept; by another flow intent or an escalating one it leaves the
 *   flow. Media and a location sent on a non-location step say
 *   "unsupported_media" and repeat the question. "m" (Menu) leaves the flow.
 *   If a reload removed the running flow or its step, the flow is dropped
 *   silently and the input handled as if no flow were running.
 *
 * Button payloads (closed set, each at most 64 bytes): "i:<id>" answer that
 *   intent (score 1); "a:<id>" / "a:" an ambiguity pick / none of these;
 *   "h" a person; "m" the menu; "l" / "l:<code>" offer / set a language;
 *   "c:<value>" / "c#<n>" a flow choice; "x" cancel the flow; "b" back;
 *   "y" / "n" answer the pending question. Anything else is stale.
 *
 * Start. CG_IN_START ends any flow or pending question (the chosen language
 *   stays), then answers the intent named by the deep-link payload if one
 *   exists, else the greeting.
 *
 * State. state.fallbacks counts consecutive turns the bot could not use: in
 *   normal conversation, fallbacks; inside a flow, invalid answers to the
 *   current question; during "delete_confirm", answers that were neither yes
 *   nor no. It is reset whenever a turn is understood. JSON form: compact,
 *   {"v":1,...}, empty fields left out; from_json checks every field against
 *   the same bounds and gives a fresh state and -1 for anything else, since
 *   it comes from Redis.
 *
 * Extending: a new button payload needs a branch in on_button() and the
 *   list above; a new pending question a value in pending_known[], a branch
 *   in on_pending_text() and in on_button() for its buttons; a new step kind
 *   its validator in flow_take_text() and its buttons in flow_ask().
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "civicgate/intents.h"
#include "civicgate/text.h"

#define DLG_PAYLOAD_MAX      64      /* Telegram callback_data */
#define DLG_VAR_MAX          500     /* bytes of one flow answer */
#define DLG_VARS_MAX         4096    /* bytes of vars_json */
#define DLG_TEXT_DEFAULT_MAX 500     /* characters, text steps without max_length */
#define DLG_STATE_JSON_MAX   16384   /* bytes accepted by from_json */
#define DLG_REPLY_MAX        65536   /* bytes of reply text */
#define DLG_INTERRUPT_SCORE  0.8
#define DLG_INVALID_HELP     3       /* invalid answers before offering a person */
#define DLG_DELETE_REASKS    1
#define DLG_NAME_MAX         64      /* state.step, history entries, var names */

static const char *const pending_known[] = { "delete_confirm", "human_offer", "ambiguous",
                                             "language", NULL };

/* ---- the turn in progress ------------------------------------------------ */

typedef struct turn {
    const cg_intents *t;
    cg_dialog_state *s;       /* working copy, swapped into the caller's on success */
    const cg_turn_in *in;
    cg_turn_out *out;
    const char *lang;         /* reply language: one of t->settings.languages */
    const char *prev_lang;    /* language before this turn, or NULL */
    int detected;             /* lang was detected from this turn's text */
    char *text; size_t n, cap;
    int oom;
} turn;

static const char *deflang(const turn *c) { return c->t->settings.default_language; }

static const char *tr(const turn *c, const cg_i18n *x)
{
    const char *r = cg_i18n_get(x, c->lang, deflang(c));
    return r ? r : "";
}

static const char *phrase(const turn *c, const char *key)
{
    return cg_settings_phrase(&c->t->settings, key, c->lang);
}

/* Append len bytes, cut at a UTF-8 boundary when the reply would exceed
 * DLG_REPLY_MAX. */
static void put(turn *c, const char *p, size_t len)
{
    if (c->oom || !p) return;
    if (c->n + len > DLG_REPLY_MAX) {
        len = DLG_REPLY_MAX - c->n;
        while (len > 0 && ((unsigned char)p[len] & 0xC0) == 0x80) len--;
    }
    if (c->n + len + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 256;
        while (cap < c->n + len + 1) cap *= 2;
        char *q = realloc(c->text, cap);
        if (!q) { c->oom = 1; return; }
        c->text = q;
        c->cap = cap;
    }
    memcpy(c->text + c->n, p, len);
    c->n += len;
    c->text[c->n] = '\0';
}

/* A new paragraph of the reply. */
static void say(turn *c, const char *p)
{
    if (!p || !*p) return;
    if (c->n) put(c, "\n\n", 2);
    put(c, p, strlen(p));
}

/* Add a button unless the reply is full, the payload too long, or a button
 * with the same title is already there. */
static void button(turn *c, const char *title, const char *payload, const char *url)
{
    cg_turn_out *o = c->out;
    if (c->oom || o->nbuttons >= CG_MAX_BUTTONS || !title || !*title) return;
    if (payload && strlen(payload) > DLG_PAYLOAD_MAX) return;
    if (!payload && !url) return;
    for (size_t i = 0; i < o->nbuttons; i++)
        if (strcmp(o->buttons[i].title, title) == 0) return;
    cg_reply_button *b = &o->buttons[o->nbuttons];
    b->title = strdup(title);
    b->payload = payload ? strdup(payload) : NULL;
    b->url = url ? strdup(url) : NULL;
    if (!b->title || (payload && !b->payload) || (url && !b->url)) {
        free(b->title); free(b->payload); free(b->url);
        memset(b, 0, sizeof *b);
        c->oom = 1;
        return;
    }
    o->nbuttons++;
}

static void button_fmt(turn *c, const char *title, const char *prefix, const char *arg)
{
    char p[DLG_PAYLOAD_MAX + 2];
    int k = snprintf(p, sizeof p, "%s%s", prefix, arg ? arg : "");
    if (k < 0 || (size_t)k > DLG_PAYLOAD_MAX) return;
    button(c, title, p, NULL);
}

/* ---- small helpers -------------------------------------------------------- */

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The table's own string for code when the table offers it, else NULL. */
static const char *offered(const cg_intents *t, const char *code)
{
    if (!code || !*code) return NULL;
    for (size_t i = 0; i < t->settings.nlanguages; i++)
        if (strcmp(t->settings.languages[i], code) == 0) return t->settings.languages[i];
    return NULL;
}

static const cg_intent *find_special(const cg_intents *t, cg_special sp)
{
    for (size_t i = 0; i < t->nintents; i++)
        if (t->intents[i].special == sp) return &t->intents[i];
    return NULL;
}

/* Normalised form of a NUL-terminated string, malloc'd, or NULL. */
static char *norm(const char *s, const char *lang)
{
    return s ? cg_text_normalize(s, strlen(s), lang) : NULL;
}

/* 1 when the citizen's normalised text equals the phrase key in any of the
 * table's languages. */
static int is_word(const turn *c, const char *ntext, const char *key)
{
    if (!ntext || !*ntext) return 0;
    const cg_settings *st = &c->t->settings;
    for (size_t i = 0; i < st->nlanguages; i++) {
        char *w = norm(cg_settings_phrase(st, key, st->languages[i]), st->languages[i]);
        int eq = w && *w && strcmp(w, ntext) == 0;
        free(w);
        if (eq) return 1;
    }
    return 0;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

/* Parse a positive integer 1..999 (ASCII or Arabic-Indic digits) that is the
 * whole of s; 0 when it is not one. */
static int parse_index(const char *s);

/* Parse a number: optional sign, digits (ASCII, Arabic-Indic U+0660..0669,
 * Extended U+06F0..06F9), optional one decimal separator ('.', ',' or
 * U+066B) and digits, surrounding spaces. canon gets the ASCII form. */
static int parse_number(const char *s, double *v, char *canon, size_t cap)
{
    size_t k = 0;
    int digits = 0, sep = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '+' || *p == '-') { if (*p == '-') canon[k++] = '-'; p++; }
    while (*p && k + 2 < cap) {
        int d = -1;
        if (*p >= '0' && *p <= '9') { d = *p - '0'; p++; }
        else if (p[0] == 0xD9 && p[1] >= 0xA0 && p[1] <= 0xA9) { d = p[1] - 0xA0; p += 2; }
        else if (p[0] == 0xDB && p[1] >= 0xB0 && p[1] <= 0xB9) { d = p[1] - 0xB0; p += 2; }
        else if (!sep && digits && (*p == '.' || *p == ',')) { sep = 1; canon[k++] = '.'; p++; continue; }
        else if (!sep && digits && p[0] == 0xD9 && p[1] == 0xAB) { sep = 1; canon[k++] = '.'; p += 2; continue; }
        else break;
        canon[k++] = (char)('0' + d);
        digits++;
    }
    while (*p == ' ' || *p == '\t') p++;
    canon[k] = '\0';
    if (*p || !digits || (sep && canon[k - 1] == '.')) return -1;
    char *end;
    *v = strtod(canon, &end);
    if (*end || !isfinite(*v)) return -1;
    return 0;
}

static int parse_index(const char *s)
{
    char canon[32];
    double v;
    if (parse_number(s, &v, canon, sizeof canon) != 0) return 0;
    if (strchr(canon, '.') || v < 1 || v > 999) return 0;
    return (int)v;
}

/* ---- flow variables (a JSON object of strings) --------------------------- */

static cJSON *vars_parse(const cg_dialog_state *s)
{
    cJSON *o = s->vars_json ? cJSON_Parse(s->vars_json) : NULL;
    if (o && !cJSON_IsObject(o)) { cJSON_Delete(o); o = NULL; }
    return o ? o : cJSON_CreateObject();
}

/* Store o into s->vars_json; -1 when it exceeds DLG_VARS_MAX (s unchanged),
 * -2 on ENOMEM. Consumes o. */
static int vars_store(cg_dialog_state *s, cJSON *o)
{
    char *j = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!j) return -2;
    if (strlen(j) > DLG_VARS_MAX) { free(j); return -1; }
    free(s->vars_json);
    s->vars_json = j;
    return 0;
}

static int var_set(turn *c, const char *name, const char *value)
{
    cJSON *o = vars_parse(c->s);
    if (!o) { c->oom = 1; return -1; }
    cJSON_DeleteItemFromObjectCaseSensitive(o, name);
    if (!cJSON_AddStringToObject(o, name, value)) { cJSON_Delete(o); c->oom = 1; return -1; }
    int r = vars_store(c->s, o);
    if (r == -2) c->oom = 1;
    return r == 0 ? 0 : -1;
}

static void var_del(turn *c, const char *name)
{
    if (!c->s->vars_json) return;
    cJSON *o = vars_parse(c->s);
    if (!o) { c->oom = 1; return; }
    cJSON_DeleteItemFromObjectCaseSensitive(o, name);
    if (vars_store(c->s, o) == -2) c->oom = 1;
}

/* ---- state helpers ---------------------------------------------------- */

static void flow_clear(cg_dialog_state *s)
{
    s->flow[0] = s->step[0] = '\0';
    s->nhistory = 0;
    free(s->vars_json);
    s->vars_json = NULL;
}

static void pending_clear(cg_dialog_state *s)
{
    s->pending[0] = '\0';
    s->nchoices = 0;
}

static const cg_intent *flow_intent(const turn *c)
{
    if (!c->s->flow[0]) return NULL;
    const cg_intent *it = cg_intents_find(c->t, c->s->flow);
    return it && it->flow && it->flow->nsteps ? it : NULL;
}

static const cg_flow_step *flow_find_step(const cg_flow *f, const char *id)
{
    if (!id) return NULL;
    for (size_t i = 0; i < f->nsteps; i++)
        if (f->steps[i].id && strcmp(f->steps[i].id, id) == 0) return &f->steps[i];
    return NULL;
}

static const cg_flow_step *flow_step(const turn *c)
{
    const cg_intent *it = flow_intent(c);
    return it ? flow_find_step(it->flow, c->s->step) : NULL;
}

static const char *step_var(const cg_flow_step *st) { return st->var ? st->var : st->id; }

/* ---- replies ---------------------------------------------------------- */

static void nav_buttons(turn *c)
{
    const cg_intent *menu = find_special(c->t, CG_SPECIAL_MENU);
    if (menu) button(c, phrase(c, "menu"), "m", NULL);
    button(c, phrase(c, "human"), "h", NULL);
}

static const char *autonym(const char *code);

/* "<source phrase>: <owner>, <url>" as its own paragraph, and out->source.
 * An answer that already links its source gets the owner only, so that the
 * citizen sees who stands behind it without the same link twice. */
static void say_source(turn *c, const cg_intent *it, const char *answer)
{
    if (!it->source || !*it->source) return;
    c->out->source = it->source;
    int linked = answer && strstr(answer, it->source) != NULL;
    int owner = it->owner && *it->owner;
    if (linked && !owner) return;
    say(c, phrase(c, "source"));
    put(c, ": ", 2);
    if (owner) put(c, it->owner, strlen(it->owner));
    if (owner && !linked) put(c, ", ", 2);
    if (!linked) put(c, it->source, strlen(it->source));
}

static void say_intent(turn *c, const cg_intent *it, double score)
{
    const char *answer = tr(c, &it->answer);
    say(c, answer);
    say_source(c, it, answer);
    const cg_intent *bsrc = it;
    if (it->special == CG_SPECIAL_GREETING && it->nbuttons == 0) {
        const cg_intent *menu = find_special(c->t, CG_SPECIAL_MENU);
        if (menu) bsrc = menu;
    }
    for (size_t i = 0; i < bsrc->nbuttons; i++) {
        const cg_button *b = &bsrc->buttons[i];
        const char *title = cg_i18n_get(&b->title, c->lang, deflang(c));
        if (!title || !*title) title = b->target;
        if (b->kind == CG_BUTTON_URL) button(c, title, NULL, b->target);
        else button_fmt(c, title, "i:", b->target);
    }
    if (it->special == CG_SPECIAL_GREETING && !c->s->lang_chosen) {
        /* a citizen who cannot read this language can switch at once */
        for (size_t i = 0; i < c->t->settings.nlanguages; i++) {
            const char *code = c->t->settings.languages[i];
            if (code != c->lang) button_fmt(c, autonym(code), "l:", code);
        }
    }
    c->out->intent = it;
    c->out->score = score;
}

/* Fallback answer: the fallback intent (or, without one, the fallback_human
 * phrase) with Menu / Talk to a person. */
static void say_fallback(turn *c)
{
    const cg_intent *fb = find_special(c->t, CG_SPECIAL_FALLBACK);
    if (fb) {
        say_intent(c, fb, c->out->score);
        c->out->intent = NULL;
    } else {
        say(c, phrase(c, "fallback_human"));
    }
    nav_buttons(c);
    c->out->fallback = 1;
}

static void yes_no(turn *c)
{
    button(c, phrase(c, "yes"), "y", NULL);
    button(c, phrase(c, "no"), "n", NULL);
}

/* A turn the bot did not understand, counted toward the human offer. */
static void fallback(turn *c)
{
    cg_dialog_state *s = c->s;
    pending_clear(s);
    if (s->fallbacks < 1000) s->fallbacks++;
    int limit = c->t->settings.fallbacks_before_human;   /* 0: never offered (docs/intents.md) */
    if (limit > 0 && s->fallbacks >= limit) {
        say(c, phrase(c, "fallback_human"));
        yes_no(c);
        copy_str(s->pending, sizeof s->pending, "human_offer");
        c->out->fallback = 1;
        return;
    }
    say_fallback(c);
}

/* Unknown or stale button: polite, not counted. */
static void stale(turn *c)
{
    say_fallback(c);
}

static void escalate(turn *c, int priority)
{
    c->out->action = CG_ACT_ESCALATE;
    c->out->priority = priority;
    flow_clear(c->s);
    pending_clear(c->s);
    c->s->fallbacks = 0;
}

static void do_human(turn *c)
{
    const cg_intent *h = find_special(c->t, CG_SPECIAL_HUMAN);
    if (h) {
        say_intent(c, h, c->out->score > 0 ? c->out->score : 1.0);
        escalate(c, h->priority);
    } else {
        say(c, phrase(c, "human"));
        escalate(c, 0);
    }
}

static const struct { const char *code, *name; } autonyms[] = {
    {"en", "English"}, {"es", "Español"}, {"ar", "العربية"}, {"fr", "Français"},
    {"pt", "Português"}, {"pt-br", "Português (Brasil)"}, {"zh", "中文"},
    {"vi", "Tiếng Việt"}, {"ko", "한국어"}, {"tl", "Tagalog"}, {"ru", "Русский"},
    {"ht", "Kreyòl ayisyen"}, {"de", "Deutsch"}, {"it", "Italiano"}, {"ja", "日本語"},
    {"hi", "हिन्दी"}, {"bn", "বাংলা"}, {"ur", "اردو"}, {"fa", "فارسی"}, {"so", "Soomaali"},
    {"sw", "Kiswahili"}, {"uk", "Українська"}, {"pl", "Polski"}, {"tr", "Türkçe"},
    {"am", "አማርኛ"}, {"ne", "नेपाली"}, {"ps", "پښتو"}, {"hy", "Հայերեն"}, {"el", "Ελληνικά"},
    {"ca", "Català"}, {"eu", "Euskara"}, {"gl", "Galego"}, {"nl", "Nederlands"},
    {"id", "Bahasa Indonesia"}, {"ms", "Bahasa Melayu"}, {"th", "ไทย"}, {"he", "עברית"},
    {NULL, NULL}
};

/* A language's name in itself, or its code. */
static const char *autonym(const char *code)
{
    for (size_t i = 0; autonyms[i].code; i++)
        if (strcmp(autonyms[i].code, code) == 0) return autonyms[i].name;
    return code;
}

static void offer_language(turn *c)
{
    say(c, phrase(c, "choose_language"));
    for (size_t i = 0; i < c->t->settings.nlanguages; i++) {
        const char *code = c->t->settings.languages[i];
        button_fmt(c, autonym(code), "l:", code);
    }
    pending_clear(c->s);
    copy_str(c->s->pending, sizeof c->s->pending, "language");
}

static void ask_delete(turn *c, const cg_intent *it)
{
    say(c, phrase(c, "delete_confirm"));
    yes_no(c);
    pending_clear(c->s);
    copy_str(c->s->pending, sizeof c->s->pending, "delete_confirm");
    c->s->fallbacks = 0;
    if (it) { c->out->intent = it; c->out->score = c->out->score > 0 ? c->out->score : 1.0; }
}

static void do_menu(turn *c)
{
    const cg_intent *m = find_special(c->t, CG_SPECIAL_MENU);
    if (!m) m = find_special(c->t, CG_SPECIAL_GREETING);
    if (m) say_intent(c, m, 1.0);
    else say(c, phrase(c, "menu"));
    button(c, phrase(c, "human"), "h", NULL);
    pending_clear(c->s);
    c->s->fallbacks = 0;
}

/* ---- flows ------------------------------------------------------------ */

static void flow_ask(turn *c, const cg_intent *it, const cg_flow_step *st)
{
    say(c, tr(c, &st->ask));
    if (st->kind == CG_STEP_CHOICE) {
        size_t room = CG_MAX_BUTTONS - 2 - (c->s->fallbacks >= DLG_INVALID_HELP);
        int list = st->nchoices > room;
        for (size_t i = 0; i < st->nchoices; i++) {
            const cg_choice *ch = &st->choices[i];
            const char *title = cg_i18n_get(&ch->title, c->lang, deflang(c));
            if (!title || !*title) title = ch->value;
            if (list) {
                char line[600];
                snprintf(line, sizeof line, "%zu. %s", i + 1, title);
                if (c->n) put(c, "\n", 1);
                put(c, line, strlen(line));
            }
            if (i >= room) continue;
            if (strlen(ch->value) + 2 <= DLG_PAYLOAD_MAX) button_fmt(c, title, "c:", ch->value);
            else {
                char idx[24];
                snprintf(idx, sizeof idx, "%zu", i + 1);
                button_fmt(c, title, "c#", idx);
            }
        }
    }
    if (c->s->nhistory > 0) button(c, phrase(c, "back"), "b", NULL);
    button(c, phrase(c, "cancel"), "x", NULL);
    if (c->s->fallbacks >= DLG_INVALID_HELP) button(c, phrase(c, "human"), "h", NULL);
    (void)it;
}

static void flow_start(turn *c, const cg_intent *it, double score)
{
    cg_dialog_state *s = c->s;
    flow_clear(s);
    pending_clear(s);
    s->fallbacks = 0;
    copy_str(s->flow, sizeof s->flow, it->id);
    copy_str(s->step, sizeof s->step, it->flow->steps[0].id);
    say(c, tr(c, &it->answer));
    flow_ask(c, it, &it->flow->steps[0]);
    c->out->intent = it;
    c->out->score = score;
}

/* Value of a variable for the done text: the choice's title for choice
 * steps, the stored value otherwise, "-" when unset. */
static void done_var(turn *c, const cg_flow *f, cJSON *vars, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(vars, name);
    const char *val = cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
    if (!val) { put(c, "-", 1); return; }
    for (size_t i = 0; i < f->nsteps; i++) {
        const cg_flow_step *st = &f->steps[i];
        if (st->kind != CG_STEP_CHOICE || strcmp(step_var(st), name) != 0) continue;
        for (size_t k = 0; k < st->nchoices; k++)
            if (strcmp(st->choices[k].value, val) == 0) {
                const char *title = cg_i18n_get(&st->choices[k].title, c->lang, deflang(c));
                if (title && *title) val = title;
            }
    }
    put(c, val, strlen(val));
}

static void flow_finish(turn *c, const cg_intent *it)
{
    const cg_flow *f = it->flow;
    cJSON *vars = vars_parse(c->s);
    if (!vars) { c->oom = 1; return; }
    const char *tpl = tr(c, &f->done);
    if (c->n && *tpl) put(c, "\n\n", 2);
    for (const char *p = tpl; *p;) {
        const char *open = strstr(p, "{{");
        const char *close = open ? strstr(open + 2, "}}") : NULL;
        if (!open || !close) { put(c, p, strlen(p)); break; }
        put(c, p, (size_t)(open - p));
        const char *a = open + 2, *b = close;
        while (a < b && *a == ' ') a++;
        while (b > a && b[-1] == ' ') b--;
        char name[DLG_NAME_MAX];
        if ((size_t)(b - a) >= sizeof name) {
            put(c, open, (size_t)(close + 2 - open));
        } else {
            memcpy(name, a, (size_t)(b - a));
            name[b - a] = '\0';
            if (strcmp(name, "reference") == 0) {
                const char *ref = c->in->reference && *c->in->reference ? c->in->reference : "-";
                put(c, ref, strlen(ref));
            } else {
                done_var(c, f, vars, name);
            }
        }
        p = close + 2;
    }
    cJSON_Delete(vars);
    say_source(c, it, NULL);
    c->out->vars_json = strdup(c->s->vars_json ? c->s->vars_json : "{}");
    if (!c->out->vars_json) { c->oom = 1; return; }
    c->out->intent = it;
    c->out->score = 1.0;
    if (f->handoff) escalate(c, f->priority);
    else c->out->action = CG_ACT_FLOW_DONE;
    flow_clear(c->s);
    c->s->fallbacks = 0;
    if (find_special(c->t, CG_SPECIAL_MENU)) button(c, phrase(c, "menu"), "m", NULL);
}

/* Store the answer to the current step and move on. */
static void flow_advance(turn *c, const cg_intent *it, const cg_flow_step *st, const char *value,
                         const char *choice_next)
{
    cg_dialog_state *s = c->s;
    if (var_set(c, step_var(st), value) != 0) {
        if (c->oom) return;
        /* vars_json would exceed its bound: not an answer we can keep */
        if (s->fallbacks < 1000) s->fallbacks++;
        const char *inv = tr(c, &st->invalid);
        say(c, *inv ? inv : phrase(c, "flow_invalid"));
        flow_ask(c, it, st);
        return;
    }
    const cg_flow_step *next;
    if (choice_next || st->next) {
        next = flow_find_step(it->flow, choice_next ? choice_next : st->next);
    } else {
        /* the format's default: the following step in the array */
        size_t i = (size_t)(st - it->flow->steps);
        next = i + 1 < it->flow->nsteps ? &it->flow->steps[i + 1] : NULL;
    }
    s->fallbacks = 0;
    if (!next) { flow_finish(c, it); return; }
    if (s->nhistory >= CG_MAX_FLOW_STEPS) {
        memmove(s->history[0], s->history[1], sizeof s->history[0] * (CG_MAX_FLOW_STEPS - 1));
        s->nhistory = CG_MAX_FLOW_STEPS - 1;
    }
    copy_str(s->history[s->nhistory++], sizeof s->history[0], st->id);
    copy_str(s->step, sizeof s->step, next->id);
    flow_ask(c, it, next);
}

static void flow_invalid(turn *c, const cg_intent *it, const cg_flow_step *st)
{
    if (c->s->fallbacks < 1000) c->s->fallbacks++;
    const char *inv = tr(c, &st->invalid);
    say(c, *inv ? inv : phrase(c, "flow_invalid"));
    flow_ask(c, it, st);
}

static void flow_cancel(turn *c)
{
    flow_clear(c->s);
    pending_clear(c->s);
    c->s->fallbacks = 0;
    say(c, phrase(c, "flow_cancelled"));
    nav_buttons(c);
}

static void flow_back(turn *c, const cg_intent *it, const cg_flow_step *st)
{
    cg_dialog_state *s = c->s;
    s->fallbacks = 0;
    if (s->nhistory == 0) {
        say(c, phrase(c, "flow_back_first"));
        flow_ask(c, it, st);
        return;
    }
    const cg_flow_step *prev = flow_find_step(it->flow, s->history[--s->nhistory]);
    if (!prev) prev = &it->flow->steps[0];
    var_del(c, step_var(st));
    var_del(c, step_var(prev));
    copy_str(s->step, sizeof s->step, prev->id);
    flow_ask(c, it, prev);
}

static void flow_choose(turn *c, const cg_intent *it, const cg_flow_step *st, size_t k)
{
    flow_advance(c, it, st, st->choices[k].value, st->choices[k].next);
}

/* Typed answer to a choice step: number, title (any language) or value. */
static int choice_index(const turn *c, const cg_flow_step *st, const char *text, const char *ntext)
{
    int idx = parse_index(text);
    if (idx >= 1 && (size_t)idx <= st->nchoices) return idx - 1;
    if (!ntext || !*ntext) return -1;
    for (size_t k = 0; k < st->nchoices; k++) {
        const cg_choice *ch = &st->choices[k];
        char *nv = norm(ch->value, c->lang);
        int eq = nv && strcmp(nv, ntext) == 0;
        free(nv);
        if (eq) return (int)k;
        for (size_t l = 0; l < ch->title.n; l++) {
            char *nt = norm(ch->title.v[l].text, ch->title.v[l].lang);
            eq = nt && *nt && strcmp(nt, ntext) == 0;
            free(nt);
            if (eq) return (int)k;
        }
    }
    return -1;
}

/* Text or location-as-text answer within the step's bounds. */
static int text_ok(const cg_flow_step *st, const char *text)
{
    size_t chars = utf8_chars(text);
    double lo = isnan(st->min) ? 1 : st->min;
    double hi = isnan(st->max) ? DLG_TEXT_DEFAULT_MAX : st->max;
    if (lo < 1) lo = 1;
    if ((double)chars < lo || (double)chars > hi || strlen(text) > DLG_VAR_MAX) return 0;
    if (st->kind == CG_STEP_TEXT && st->pattern_re &&
        regexec((const regex_t *)st->pattern_re, text, 0, NULL, 0) != 0)
        return 0;
    return 1;
}

static void answer_intent(turn *c, const cg_intent *it, double score);

/* The intents that act instead of answering, in or out of a flow: a person,
 * the language offer, data deletion. 1 when it is one of them and was acted
 * on, 0 otherwise. do_human and ask_delete read c->out->score: a caller that
 * wants score to count there sets it first. */
static int act_special(turn *c, const cg_intent *it, double score)
{
    switch (it->special) {
    case CG_SPECIAL_HUMAN:
        do_human(c);
        return 1;
    case CG_SPECIAL_LANGUAGE:
        offer_language(c);
        c->out->intent = it;
        c->out->score = score;
        return 1;
    case CG_SPECIAL_DELETE_DATA:
        ask_delete(c, it);
        return 1;
    default:
        return 0;
    }
}

/* The citizen asked something else in the middle of a flow (typed text that
 * matched, or an old intent button). */
static void flow_interrupt(turn *c, const cg_intent *fit, const cg_flow_step *st,
                           const cg_intent *it, double score)
{
    if (act_special(c, it, score)) return;
    if (it == fit) { flow_ask(c, fit, st); return; }
    if (it->flow || it->escalate) { flow_clear(c->s); answer_intent(c, it, score); return; }
    say_intent(c, it, score);
    /* the intent's own buttons would compete with the question's */
    for (size_t i = 0; i < c->out->nbuttons; i++) {
        free(c->out->buttons[i].title); free(c->out->buttons[i].payload); free(c->out->buttons[i].url);
        memset(&c->out->buttons[i], 0, sizeof c->out->buttons[i]);
    }
    c->out->nbuttons = 0;
    flow_ask(c, fit, st);
}

/* Matcher check in the middle of a flow: 1 when the text was handled as an
 * interruption. */
static int flow_try_interrupt(turn *c, const cg_intent *fit, const cg_flow_step *st,
                              const char *text)
{
    cg_match m;
    if (cg_intents_match(c->t, text, strlen(text), c->lang, &m) != 0 || !m.intent) return 0;
    if (m.ambiguous || m.intent == fit) return 0;
    cg_special sp = m.intent->special;
    /* "fine, thanks" or "hi" is an answer here, not a new topic */
    if (sp == CG_SPECIAL_GREETING || sp == CG_SPECIAL_THANKS || sp == CG_SPECIAL_MENU) return 0;
    double bar = (sp == CG_SPECIAL_HUMAN || sp == CG_SPECIAL_LANGUAGE ||
                  sp == CG_SPECIAL_DELETE_DATA) ? c->t->settings.threshold : DLG_INTERRUPT_SCORE;
    if (m.score < bar) return 0;
    /* On a free-text step the answer itself often names a topic ("the
     * Medicaid application page does not load"): an ordinary intent takes
     * over only when the citizen asks a question. */
    int free_kind = st->kind == CG_STEP_TEXT || st->kind == CG_STEP_LOCATION;
    if (free_kind && sp == CG_SPECIAL_NONE && !strchr(text, '?') && !strstr(text, "\xc2\xbf")) return 0;
    flow_interrupt(c, fit, st, m.intent, m.score);
    return 1;
}

static void flow_take_text(turn *c, const cg_intent *it, const cg_flow_step *st, const char *text)
{
    char *nt = norm(text, c->lang);
    if (is_word(c, nt, "cancel")) { free(nt); flow_cancel(c); return; }
    if (is_word(c, nt, "back")) { free(nt); flow_back(c, it, st); return; }
    int free_kind = st->kind == CG_STEP_TEXT || st->kind == CG_STEP_LOCATION;
    if (free_kind && flow_try_interrupt(c, it, st, text)) { free(nt); return; }
    switch (st->kind) {
    case CG_STEP_CHOICE: {
        int k = choice_index(c, st, text, nt);
        free(nt);
        if (k >= 0) { flow_choose(c, it, st, (size_t)k); return; }
        break;
    }
    case CG_STEP_NUMBER: {
        free(nt);
        char canon[64];
        double v;
        if (parse_number(text, &v, canon, sizeof canon) == 0 &&
            (isnan(st->min) || v >= st->min) && (isnan(st->max) || v <= st->max)) {
            flow_advance(c, it, st, canon, NULL);
            return;
        }
        break;
    }
    case CG_STEP_TEXT:
    case CG_STEP_LOCATION:
        free(nt);
        if (text_ok(st, text)) { flow_advance(c, it, st, text, NULL); return; }
        flow_invalid(c, it, st);
        return;
    default:
        free(nt);
        break;
    }
    if (flow_try_interrupt(c, it, st, text)) return;
    flow_invalid(c, it, st);
}

/* ---- answering -------------------------------------------------------- */

static void answer_intent(turn *c, const cg_intent *it, double score)
{
    cg_dialog_state *s = c->s;
    pending_clear(s);
    if (it->special != CG_SPECIAL_FALLBACK) s->fallbacks = 0;
    c->out->score = score;
    if (act_special(c, it, score)) return;
    if (it->special == CG_SPECIAL_FALLBACK) { say_fallback(c); return; }
    if (it->flow && it->flow->nsteps) { flow_start(c, it, score); return; }
    say_intent(c, it, score);
    if (it->escalate) escalate(c, it->priority);
}

static void offer_ambiguous(turn *c, const cg_match *m)
{
    cg_dialog_state *s = c->s;
    say(c, phrase(c, "ambiguous"));
    pending_clear(s);
    double top = m->alt[0].score;
    for (size_t i = 0; i < m->nalt && i < CG_MAX_ALTERNATIVES; i++) {
        const cg_intent *it = m->alt[i].intent;
        if (!it) continue;
        if (i >= 2 && (m->alt[i].score < c->t->settings.threshold ||
                       top - m->alt[i].score > c->t->settings.ambiguity_margin))
            break;
        const char *title = cg_i18n_get(&it->title, c->lang, deflang(c));
        if (!title || !*title) title = it->id;
        button_fmt(c, title, "a:", it->id);
        copy_str(s->choices[s->nchoices++], sizeof s->choices[0], it->id);
    }
    button(c, phrase(c, "none_of_these"), "a:", NULL);
    copy_str(s->pending, sizeof s->pending, "ambiguous");
    c->out->ambiguous = 1;
    c->out->score = m->score;
}

/* Text the bot did not understand does not switch the conversation's
 * language: detection on it is a guess. */
static void fallback_text(turn *c)
{
    if (c->detected && c->prev_lang && c->prev_lang != c->lang) {
        c->lang = c->prev_lang;
        copy_str(c->s->lang, sizeof c->s->lang, c->prev_lang);
    }
    fallback(c);
}

static void on_plain_text(turn *c, const char *text)
{
    if (!*text) { fallback_text(c); return; }
    cg_match m;
    if (cg_intents_match(c->t, text, strlen(text), c->lang, &m) != 0) { fallback_text(c); return; }
    c->out->score = m.score;
    if (!m.intent) { fallback_text(c); return; }
    if (m.ambiguous && m.nalt >= 2 && m.alt[1].intent &&
        m.alt[1].score >= c->t->settings.threshold) {
        offer_ambiguous(c, &m);
        return;
    }
    answer_intent(c, m.intent, m.score);
}

static void do_delete(turn *c)
{
    say(c, phrase(c, "delete_done"));
    c->out->action = CG_ACT_DELETE_DATA;
    cg_dialog_state_free(c->s);
    cg_dialog_state_init(c->s);
}

static void delete_kept(turn *c)
{
    pending_clear(c->s);
    c->s->fallbacks = 0;
    say(c, phrase(c, "delete_kept"));
    const cg_flow_step *st = flow_step(c);
    if (st) flow_ask(c, flow_intent(c), st);
    else nav_buttons(c);
}

static void set_language(turn *c, const char *code)
{
    const char *l = offered(c->t, code);
    if (!l) { offer_language(c); return; }
    cg_dialog_state *s = c->s;
    copy_str(s->lang, sizeof s->lang, l);
    s->lang_chosen = 1;
    c->lang = l;
    pending_clear(s);
    say(c, phrase(c, "language_set"));
    const cg_flow_step *st = flow_step(c);
    if (st) flow_ask(c, flow_intent(c), st);
}

/* Typed text while a question is pending: 1 when handled. */
static int on_pending_text(turn *c, const char *text)
{
    cg_dialog_state *s = c->s;
    char *nt = norm(text, c->lang);
    int handled = 1;
    if (strcmp(s->pending, "delete_confirm") == 0) {
        if (is_word(c, nt, "yes")) do_delete(c);
        else if (is_word(c, nt, "no") || is_word(c, nt, "cancel")) delete_kept(c);
        else if (s->fallbacks >= DLG_DELETE_REASKS) delete_kept(c);
        else { s->fallbacks++; say(c, phrase(c, "delete_confirm")); yes_no(c); }
    } else if (strcmp(s->pending, "human_offer") == 0) {
        if (is_word(c, nt, "yes")) { pending_clear(s); do_human(c); }
        else if (is_word(c, nt, "no")) do_menu(c);
        else handled = 0;
    } else if (strcmp(s->pending, "ambiguous") == 0) {
        int idx = parse_index(text);
        const cg_intent *pick = NULL;
        if (idx >= 1 && idx <= s->nchoices) pick = cg_intents_find(c->t, s->choices[idx - 1]);
        for (int i = 0; !pick && nt && *nt && i < s->nchoices; i++) {
            const cg_intent *it = cg_intents_find(c->t, s->choices[i]);
            if (!it) continue;
            for (size_t l = 0; !pick && l < it->title.n; l++) {
                char *ti = norm(it->title.v[l].text, it->title.v[l].lang);
                if (ti && *ti && strcmp(ti, nt) == 0) pick = it;
                free(ti);
            }
        }
        if (pick) answer_intent(c, pick, 1.0);
        else if (is_word(c, nt, "none_of_these")) fallback(c);
        else handled = 0;
    } else if (strcmp(s->pending, "language") == 0) {
        const char *pick = NULL;
        for (size_t i = 0; !pick && nt && i < c->t->settings.nlanguages; i++) {
            const char *code = c->t->settings.languages[i];
            char *na = norm(autonym(code), code);
            if (strcmp(nt, code) == 0 || (na && strcmp(na, nt) == 0)) pick = code;
            free(na);
        }
        if (pick) set_language(c, pick);
        else handled = 0;
    } else {
        handled = 0;
    }
    free(nt);
    if (!handled) pending_clear(s);
    return handled;
}

static void on_text(turn *c, const char *text)
{
    if (c->s->pending[0] && on_pending_text(c, text)) return;
    const cg_intent *fit = flow_intent(c);
    const cg_flow_step *st = fit ? flow_find_step(fit->flow, c->s->step) : NULL;
    if (c->s->flow[0] && !st) flow_clear(c->s);    /* removed by a reload */
    if (st) { flow_take_text(c, fit, st, text); return; }
    on_plain_text(c, text);
}

static void on_button(turn *c, const char *p)
{
    cg_dialog_state *s = c->s;
    char pending[sizeof s->pending];
    copy_str(pending, sizeof pending, s->pending);
    const cg_intent *fit = flow_intent(c);
    const cg_flow_step *st = fit ? flow_find_step(fit->flow, s->step) : NULL;
    if (s->flow[0] && !st) { flow_clear(s); fit = NULL; }
    if (strlen(p) > DLG_PAYLOAD_MAX) { stale(c); return; }

    if (strcmp(p, "y") == 0 || strcmp(p, "n") == 0) {
        int yes = p[0] == 'y';
        if (strcmp(pending, "delete_confirm") == 0) { if (yes) do_delete(c); else delete_kept(c); }
        else if (strcmp(pending, "human_offer") == 0) {
            pending_clear(s);
            if (yes) do_human(c); else do_menu(c);
        } else if (st) {
            pending_clear(s);
            flow_ask(c, fit, st);
        } else {
            pending_clear(s);
            stale(c);
        }
        return;
    }
    pending_clear(s);
    if (strcmp(p, "h") == 0) { do_human(c); return; }
    if (strcmp(p, "m") == 0) {
        if (st) { flow_clear(s); say(c, phrase(c, "flow_cancelled")); }
        do_menu(c);
        return;
    }
    if (strcmp(p, "l") == 0) { offer_language(c); return; }
    if (strncmp(p, "l:", 2) == 0) { set_language(c, p + 2); return; }
    if (strcmp(p, "x") == 0) { flow_cancel(c); return; }
    if (strcmp(p, "b") == 0) {
        if (st) flow_back(c, fit, st);
        else stale(c);
        return;
    }
    if (strncmp(p, "c:", 2) == 0 || strncmp(p, "c#", 2) == 0) {
        if (!st) { stale(c); return; }
        if (st->kind == CG_STEP_CHOICE) {
            for (size_t k = 0; k < st->nchoices; k++) {
                char idx[24];
                snprintf(idx, sizeof idx, "%zu", k + 1);
                if ((p[1] == ':' && strcmp(st->choices[k].value, p + 2) == 0) ||
                    (p[1] == '#' && strcmp(idx, p + 2) == 0)) {
                    flow_choose(c, fit, st, k);
                    return;
                }
            }
        }
        flow_invalid(c, fit, st);    /* a button of another question */
        return;
    }
    if (strcmp(p, "a:") == 0) {
        if (st) flow_ask(c, fit, st);
        else fallback(c);
        return;
    }
    if (strncmp(p, "i:", 2) == 0 || strncmp(p, "a:", 2) == 0) {
        const cg_intent *it = cg_intents_find(c->t, p + 2);
        if (!it) {
            if (st) { say_fallback(c); flow_ask(c, fit, st); }
            else stale(c);
            return;
        }
        if (st) flow_interrupt(c, fit, st, it, 1.0);
        else answer_intent(c, it, 1.0);
        return;
    }
    if (st) flow_ask(c, fit, st);
    else stale(c);
}

static void on_start(turn *c, const char *text)
{
    flow_clear(c->s);
    pending_clear(c->s);
    c->s->fallbacks = 0;
    const cg_intent *it = *text ? cg_intents_find(c->t, text) : NULL;
    if (!it || it->special == CG_SPECIAL_FALLBACK) it = find_special(c->t, CG_SPECIAL_GREETING);
    if (it) answer_intent(c, it, 1.0);
    else do_menu(c);
}

/* Media, or a location outside a location step. */
static void on_unsupported(turn *c)
{
    pending_clear(c->s);
    say(c, phrase(c, "unsupported_media"));
    const cg_flow_step *st = flow_step(c);
    if (st) flow_ask(c, flow_intent(c), st);
    else nav_buttons(c);
}

static void on_location(turn *c)
{
    const cg_flow_step *st = flow_step(c);
    const double lat = c->in->lat, lon = c->in->lon;
    if (!st || st->kind != CG_STEP_LOCATION || !isfinite(lat) || !isfinite(lon) ||
        fabs(lat) > 90 || fabs(lon) > 180) {
        on_unsupported(c);
        return;
    }
    char v[64];
    snprintf(v, sizeof v, "%.6f,%.6f", lat, lon);
    pending_clear(c->s);
    flow_advance(c, flow_intent(c), st, v, NULL);
}

/* Words in text (runs of non-space bytes). */
static size_t word_count(const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p;) {
        while (*p && isspace((unsigned char)*p)) p++;
        if (!*p) break;
        n++;
        while (*p && !isspace((unsigned char)*p)) p++;
    }
    return n;
}

/* Words from which detection is trusted over what the conversation or the
 * platform says: "menú" or "ok" alone tell little about a language. */
#define DLG_DETECT_MIN_WORDS 3

/* Reply language for this turn (see the top of the file). */
static const char *pick_lang(const cg_intents *t, cg_dialog_state *s, const cg_turn_in *in,
                             const char *text, int *detected)
{
    const char *l;
    if (s->lang_chosen) {
        if ((l = offered(t, s->lang))) return l;
        s->lang_chosen = 0;
    }
    int can_detect = in->kind == CG_IN_TEXT && *text && !s->flow[0] && !s->pending[0];
    if (can_detect && word_count(text) >= DLG_DETECT_MIN_WORDS) {
        l = offered(t, cg_intents_detect_lang(t, text, strlen(text)));
        if (l) { copy_str(s->lang, sizeof s->lang, l); *detected = 1; return l; }
    }
    if ((l = offered(t, s->lang))) return l;
    if (in->lang_hint && *in->lang_hint) {
        char h[CG_LANG_MAX];
        size_t n = 0;
        for (const char *p = in->lang_hint; *p && n + 1 < sizeof h; p++)
            h[n++] = *p == '_' ? '-' : (char)tolower((unsigned char)*p);
        h[n] = '\0';
        if (!(l = offered(t, h)) && n >= 2) { h[2] = '\0'; l = offered(t, h); }
        if (l) { copy_str(s->lang, sizeof s->lang, l); return l; }
    }
    if (can_detect) {
        l = offered(t, cg_intents_detect_lang(t, text, strlen(text)));
        if (l) { copy_str(s->lang, sizeof s->lang, l); *detected = 1; return l; }
    }
    l = offered(t, t->settings.default_language);
    return l ? l : (t->settings.nlanguages ? t->settings.languages[0] : "en");
}

/* The citizen's text: NUL-terminated, trimmed, at most CG_MAX_TEXT_BYTES
 * (cut at a character boundary); "" when absent or not valid UTF-8. */
static char *input_text(const cg_turn_in *in)
{
    size_t len = in->text ? in->len : 0;
    const char *p = in->text;
    if (len && !cg_text_valid_utf8(p, len)) len = 0;
    while (len && isspace((unsigned char)*p)) { p++; len--; }
    while (len && isspace((unsigned char)p[len - 1])) len--;
    if (len > CG_MAX_TEXT_BYTES) {
        len = CG_MAX_TEXT_BYTES;
        while (len && ((unsigned char)p[len] & 0xC0) == 0x80) len--;
    }
    char *r = malloc(len + 1);
    if (!r) return NULL;
    if (len) memcpy(r, p, len);
    r[len] = '\0';
    return r;
}

/* ---- public API ------------------------------------------------------- */

void cg_dialog_state_init(cg_dialog_state *s)
{
    memset(s, 0, sizeof *s);
}

void cg_dialog_state_free(cg_dialog_state *s)
{
    if (!s) return;
    free(s->vars_json);
    s->vars_json = NULL;
}

void cg_turn_out_free(cg_turn_out *out)
{
    if (!out) return;
    free(out->text);
    for (size_t i = 0; i < out->nbuttons && i < CG_MAX_BUTTONS; i++) {
        free(out->buttons[i].title);
        free(out->buttons[i].payload);
        free(out->buttons[i].url);
    }
    free(out->vars_json);
    memset(out, 0, sizeof *out);
}

/*
 * Contract: t and in are borrowed for the call; s is read and, when the
 * call returns 0, replaced by the new state (its old vars_json freed); on -1
 * (ENOMEM) s is left as it was. out is overwritten (not freed first): the
 * caller frees it with cg_turn_out_free() after a 0 return; after -1 it
 * holds nothing. out->intent and out->source borrow from t.
 */
int cg_dialog_turn(const cg_intents *t, cg_dialog_state *s, const cg_turn_in *in, cg_turn_out *out)
{
    memset(out, 0, sizeof *out);
    if (!t || !s || !in) return -1;
    cg_dialog_state w = *s;
    w.vars_json = NULL;
    if (s->vars_json && !(w.vars_json = strdup(s->vars_json))) return -1;
    if (w.nhistory < 0 || w.nhistory > CG_MAX_FLOW_STEPS) w.nhistory = 0;
    if (w.nchoices < 0 || w.nchoices > CG_MAX_ALTERNATIVES) w.nchoices = 0;
    char *text = input_text(in);
    if (!text) { free(w.vars_json); return -1; }

    turn c = { .t = t, .s = &w, .in = in, .out = out };
    c.prev_lang = offered(t, w.lang);
    c.lang = pick_lang(t, &w, in, text, &c.detected);
    switch (in->kind) {
    case CG_IN_TEXT:     on_text(&c, text); break;
    case CG_IN_BUTTON:   on_button(&c, in->payload ? in->payload : ""); break;
    case CG_IN_START:    on_start(&c, text); break;
    case CG_IN_LOCATION: on_location(&c); break;
    case CG_IN_LANGUAGE: offer_language(&c); break;
    case CG_IN_MEDIA:
    default:             on_unsupported(&c); break;
    }
    free(text);
    if (!c.oom && !c.text) put(&c, "", 0);
    if (c.oom) {
        free(c.text);
        cg_turn_out_free(out);
        free(w.vars_json);
        return -1;
    }
    out->text = c.text;
    copy_str(out->lang, sizeof out->lang, c.lang);
    free(s->vars_json);
    *s = w;
    return 0;
}

/* ---- state JSON ------------------------------------------------------- */

/* The state's string lists ("h" history, "ch" choices) are rows of fixed
 * size: n strings (at most max) of stride bytes each from rows. */

/* Adds o[key] = those strings as an array; 0 on ENOMEM. */
static int add_strings(cJSON *o, const char *key, const char *rows, size_t stride, int n, int max)
{
    cJSON *a = cJSON_AddArrayToObject(o, key);
    int ok = 1;
    for (int i = 0; ok && a && i < n && i < max; i++) {
        cJSON *e = cJSON_CreateString(rows + (size_t)i * stride);
        ok = e && cJSON_AddItemToArray(a, e);
    }
    return ok && a;
}

/* Reads the array a (at most max non-empty strings shorter than stride)
 * into rows, counting them in *n; -1 when it is anything else. */
static int read_strings(const cJSON *a, char *rows, size_t stride, int *n, int max)
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > max) return -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsString(e) || strlen(e->valuestring) >= stride || !e->valuestring[0]) return -1;
        copy_str(rows + (size_t)*n * stride, stride, e->valuestring);
        (*n)++;
    }
    return 0;
}

char *cg_dialog_state_to_json(const cg_dialog_state *s)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    int ok = cJSON_AddNumberToObject(o, "v", 1) != NULL;
    if (ok && s->lang[0]) ok = cJSON_AddStringToObject(o, "l", s->lang) != NULL;
    if (ok && s->lang_chosen) ok = cJSON_AddNumberToObject(o, "lc", 1) != NULL;
    if (ok && s->fallbacks > 0) ok = cJSON_AddNumberToObject(o, "fb", s->fallbacks) != NULL;
    if (ok && s->flow[0]) {
        ok = cJSON_AddStringToObject(o, "f", s->flow) && cJSON_AddStringToObject(o, "st", s->step);
        if (ok && s->nhistory > 0)
            ok = add_strings(o, "h", (const char *)s->history, sizeof s->history[0], s->nhistory,
                             CG_MAX_FLOW_STEPS);
        if (ok && s->vars_json) {
            cJSON *v = cJSON_Parse(s->vars_json);
            if (v && cJSON_IsObject(v)) ok = cJSON_AddItemToObject(o, "vars", v);
            else cJSON_Delete(v);
        }
    }
    if (ok && s->pending[0]) ok = cJSON_AddStringToObject(o, "p", s->pending) != NULL;
    if (ok && s->nchoices > 0)
        ok = add_strings(o, "ch", (const char *)s->choices, sizeof s->choices[0], s->nchoices,
                         CG_MAX_ALTERNATIVES);
    char *r = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return r;
}

/* Copy a JSON string member into dst when it fits and has no control
 * characters; absent = "" (0); -1 when present but unacceptable. */
static int json_str(const cJSON *o, const char *key, char *dst, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    dst[0] = '\0';
    if (!v) return 0;
    if (!cJSON_IsString(v)) return -1;
    size_t n = strlen(v->valuestring);
    if (n >= cap) return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v->valuestring[i] < 0x20) return -1;
    memcpy(dst, v->valuestring, n + 1);
    return 0;
}

static int state_from_cjson(const cJSON *o, cg_dialog_state *s)
{
    if (!cJSON_IsObject(o)) return -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "v");
    if (!cJSON_IsNumber(v) || v->valuedouble != 1) return -1;
    if (json_str(o, "l", s->lang, sizeof s->lang)) return -1;
    for (const char *p = s->lang; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || *p == '-')) return -1;
    const cJSON *lc = cJSON_GetObjectItemCaseSensitive(o, "lc");
    if (lc && !cJSON_IsNumber(lc)) return -1;
    s->lang_chosen = lc && lc->valuedouble != 0 && s->lang[0];
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(o, "fb");
    if (fb && (!cJSON_IsNumber(fb) || fb->valuedouble < 0 || fb->valuedouble > 1000)) return -1;
    s->fallbacks = fb ? (int)fb->valuedouble : 0;
    if (json_str(o, "f", s->flow, sizeof s->flow) || json_str(o, "st", s->step, sizeof s->step))
        return -1;
    if (!s->flow[0] != !s->step[0]) return -1;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "h");
    if (h && (!s->flow[0] ||
              read_strings(h, (char *)s->history, sizeof s->history[0], &s->nhistory, CG_MAX_FLOW_STEPS)))
        return -1;
    const cJSON *vars = cJSON_GetObjectItemCaseSensitive(o, "vars");
    if (vars) {
        if (!cJSON_IsObject(vars) || !s->flow[0]) return -1;
        const cJSON *e;
        cJSON_ArrayForEach(e, vars) {
            if (!cJSON_IsString(e) || strlen(e->valuestring) > DLG_VAR_MAX ||
                !e->string || strlen(e->string) >= DLG_NAME_MAX)
                return -1;
        }
        char *j = cJSON_PrintUnformatted(vars);
        if (!j) return -1;
        if (strlen(j) > DLG_VARS_MAX) { free(j); return -1; }
        s->vars_json = j;
    }
    if (json_str(o, "p", s->pending, sizeof s->pending)) return -1;
    if (s->pending[0]) {
        int known = 0;
        for (size_t i = 0; pending_known[i]; i++) known |= strcmp(pending_known[i], s->pending) == 0;
        if (!known) return -1;
    }
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(o, "ch");
    if (ch && read_strings(ch, (char *)s->choices, sizeof s->choices[0], &s->nchoices, CG_MAX_ALTERNATIVES))
        return -1;
    return 0;
}

/*
 * Contract: s is treated as uninitialised output (a vars_json it held is not
 * freed); on return it is a valid state the caller frees with
 * cg_dialog_state_free(). Returns 0, or -1 with a fresh state for NULL,
 * oversized, malformed, unknown-version or out-of-bounds input.
 */
int cg_dialog_state_from_json(const char *json, size_t len, cg_dialog_state *s)
{
    cg_dialog_state_init(s);
    if (!json || len == 0 || len > DLG_STATE_JSON_MAX) return -1;
    cJSON *o = cJSON_ParseWithLength(json, len);
    if (!o) return -1;
    int r = state_from_cjson(o, s);
    cJSON_Delete(o);
    if (r != 0) {
        cg_dialog_state_free(s);
        cg_dialog_state_init(s);
        return -1;
    }
    return 0;
}

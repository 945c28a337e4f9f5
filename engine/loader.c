/*
 * loader.c: intent files (bytes) → a validated, immutable snapshot.
 *
 * Every file is parsed by loader_json.c (limits, UTF-8, syntax, positions);
 * this file checks meaning and fills the cg_intents structs, in this order:
 *   1. files sorted by path; "settings.json" and "synonyms.json" recognised
 *      by base name, every other file is one intent
 *   2. settings.json first (the table's languages drive every other check)
 *   3. synonyms.json (optional): variants normalised with cg_text_normalize
 *   4. each intent file: keys, types, ids, texts per language, examples,
 *      keywords, buttons, URLs, dates, flows (steps, branches, regexes)
 *   5. table-wide: duplicate ids, button targets, one intent per special
 *      kind, a fallback intent; then intents sorted by id, counts, version
 *   6. the matcher is trained (unless opts->no_train)
 * Any error refuses the whole table; warnings do not. Every diagnostic names
 * the file, line and column and the key path ("flow.steps[1].next").
 *
 * Everything the snapshot keeps is copied into its arena (table.c); cJSON
 * trees are freed file by file.
 *
 * Extending: a new key needs its name in the key list of its object below
 * (unknown keys are refused), its check and copy here, its field in
 * include/civicgate/intents.h, docs/intents.md and docs/intent.schema.json,
 * and a fixture in tests/fixtures/loader/.
 */
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "civicgate/intents.h"
#include "civicgate/text.h"
#include "loader_internal.h"
#include "matcher.h"

/* Limits on strings and counts (bytes unless said otherwise). */
#define MAX_TEXT_BYTES     16384   /* answers, flow texts, phrases */
#define MAX_TITLE_BYTES    256
#define MAX_SHORT_BYTES    200     /* owner, choice value */
#define MAX_URL_BYTES      2048
#define MAX_NOTES_BYTES    4096
#define MAX_KEYWORDS       50      /* per list */
#define MAX_KEYWORD_BYTES  100
#define MAX_PATTERN_BYTES  256
#define MAX_PATTERN_EXPANSION 1000 /* elements once repetitions are expanded */
#define MAX_STEP_ID        63      /* fits cg_dialog_state.step */
#define MAX_SYN_GROUP      50      /* words per synonym group */
#define MAX_SYN_TOTAL      20000   /* variants in the table */
#define MAX_SYN_BYTES      100
#define MAX_LENGTH_BOUND   CG_MAX_TEXT_BYTES   /* min_length / max_length */
#define DEFAULT_THRESHOLD  0.5
#define DEFAULT_MARGIN     0.08
#define DEFAULT_FALLBACKS  2
#define JP                 192     /* key path buffer */

static const char *const intent_keys[] = { "$schema", "id", "title", "owner", "source", "reviewed",
    "review_by", "examples", "answer", "keywords", "buttons", "escalate", "priority", "special",
    "flow", "notes", NULL };
static const char *const keywords_keys[] = { "must", "should", NULL };
static const char *const button_keys[] = { "title", "intent", "url", NULL };
static const char *const flow_keys[] = { "steps", "done", "handoff", "priority", NULL };
static const char *const step_keys[] = { "id", "type", "ask", "invalid", "var", "choices", "pattern",
    "min_length", "max_length", "min", "max", "next", NULL };
static const char *const choice_keys[] = { "title", "value", "next", NULL };
static const char *const settings_keys[] = { "$schema", "languages", "default_language", "threshold",
    "ambiguity_margin", "fallbacks_before_human", "phrases", "notes", NULL };
static const char *const synonyms_keys[] = { "$schema", "synonyms", "notes", NULL };
static const char *const phrase_keys[] = CG_PHRASE_KEYS;
static const char *const phrase_optional[] = CG_PHRASE_OPTIONAL_KEYS;
/* Indexed by cg_special. */
static const char *const special_names[] = { "", "greeting", "menu", "human", "language",
    "delete_data", "thanks", "fallback", NULL };
/* Indexed by cg_step_kind. */
static const char *const step_types[] = { "choice", "text", "number", "location", NULL };

/* A button's intent target, checked once every id is known. */
typedef struct ref {
    const char *target, *path;
    int line, col;
    char jp[64];
} ref;

/* Where each intent's id and special sit, for table-wide diagnostics. */
typedef struct meta {
    const char *path;
    int id_line, id_col, sp_line, sp_col;
} meta;

typedef struct syn_ent {
    char *from, *to;
    const char *path;
    int line, col;
    char jp[48];
} syn_ent;

/* One example, normalised, for the "same example in two intents" check. */
typedef struct ex_ent {
    char *norm;              /* malloc'd */
    const char *lang, *path;
    size_t intent;           /* index in t->intents, file order */
    int line, col;
    char jp[48];
} ex_ent;

typedef struct bld {
    cg_ld L;
    const cg_build_opts *opts;
    cg_intents *t;
    cg_arena *a;
    const char *langs[CG_LD_MAX_LANGS]; size_t nlangs;   /* 0: unknown (settings broken) */
    const char *deflang;                                 /* NULL: unknown */
    ref *refs; size_t nrefs, caprefs;
    meta *meta;
    syn_ent *syn; size_t nsyn;
    ex_ent *ex; size_t nex, capex;
    int oom;
} bld;

#define ERR(B, at, key, jp, ...) cg_ld_report(&(B)->L, CG_DIAG_ERROR, at, key, jp, __VA_ARGS__)
#define WARN(B, at, key, jp, ...) cg_ld_report(&(B)->L, CG_DIAG_WARNING, at, key, jp, __VA_ARGS__)

/* ---- small helpers ------------------------------------------------------- */

/* Copy src into dst[cap], cut if need be (at a character boundary). */
static void scopy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Key paths ("flow.steps[1].next") are built in JP-byte buffers, cut when
 * longer (never in practice: depth and key names are bounded). out and jp
 * must not overlap. */
static void jp_append(char *out, size_t *n, const char *s)
{
    size_t k = strlen(s);
    if (k > JP - 1 - *n) k = JP - 1 - *n;
    memcpy(out + *n, s, k);
    *n += k;
    out[*n] = '\0';
}

static const char *jp_key(char *out, const char *jp, const char *key)
{
    char b[64];
    size_t n = 0;
    out[0] = '\0';
    jp_append(out, &n, jp);
    if (*jp) jp_append(out, &n, ".");
    jp_append(out, &n, cg_ld_show(b, key));
    return out;
}

static const char *jp_idx(char *out, const char *jp, size_t i)
{
    char num[32];
    size_t n = 0;
    snprintf(num, sizeof num, "[%zu]", i);
    out[0] = '\0';
    jp_append(out, &n, jp);
    jp_append(out, &n, num);
    return out;
}

static void table_report(bld *B, cg_diag_level lvl, const char *path, int line, int col,
                         const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void table_report(bld *B, cg_diag_level lvl, const char *path, int line, int col,
                         const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (lvl == CG_DIAG_ERROR) B->L.errors++;
    cg_diags_add(B->L.d, lvl, path, line, col, "%s", msg);
}

static char *dup(bld *B, const char *s)
{
    char *p = cg_arena_strndup(B->a, s, strlen(s));
    if (!p) B->oom = 1;
    return p;
}

static void *alloc(bld *B, size_t n, size_t size)
{
    if (n && size > SIZE_MAX / n) { B->oom = 1; return NULL; }
    void *p = cg_arena_alloc(B->a, n * size);
    if (!p) B->oom = 1;
    return p;
}

static size_t nchildren(const cJSON *j)
{
    size_t n = 0;
    for (const cJSON *c = j->child; c; c = c->next) n++;
    return n;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static int blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return 0;
    return 1;
}

static int list_index(const char *const *list, const char *s)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0) return i;
    return -1;
}

static size_t list_len(const char *const *list)
{
    size_t n = 0;
    while (list[n]) n++;
    return n;
}

static int type_is(bld *B, const cJSON *j, int ok, const char *jp, const char *want)
{
    if (ok) return 1;
    ERR(B, j, 0, jp, "expected %s, found %s", want, cg_ld_type_name(j));
    return 0;
}

/* Report a missing required key, unless a misspelt key in obj (already
 * reported as unknown, "did you mean") is evidently meant to be it. */
static void missing(bld *B, const cJSON *obj, const char *jp, const char *const *known, const char *key)
{
    size_t n = 0;
    while (known[n]) n++;
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (list_index(known, c->string) >= 0) continue;
        const char *sug = cg_ld_suggest(c->string, known, n);
        if (sug && strcmp(sug, key) == 0) return;
    }
    ERR(B, obj, 0, jp, "missing required key \"%s\"", key);
}

/* id: [a-z0-9][a-z0-9._-]*, at most max bytes (dots only when dots). */
static int id_valid(const char *s, size_t max, int dots)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) return 0;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9'))) return 0;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-') continue;
        if (c == '.' && dots) continue;
        return 0;
    }
    return 1;
}

/* Language code: [a-z]{2,3} with an optional -[a-z0-9]{2,8}, < CG_LANG_MAX. */
static int lang_valid(const char *s)
{
    size_t n = strlen(s), i = 0;
    if (n >= CG_LANG_MAX) return 0;
    while (i < n && s[i] >= 'a' && s[i] <= 'z') i++;
    if (i < 2 || i > 3) return 0;
    if (i == n) return 1;
    if (s[i] != '-') return 0;
    size_t j = ++i;
    while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9'))) i++;
    return i == n && i - j >= 2 && i - j <= 8;
}

/* A key of a per-language object: a code of settings.languages (or, when
 * the settings are broken, any well-formed code). Reports and returns 0. */
static int lang_check(bld *B, const cJSON *c, const char *jp)
{
    char b[64];
    if (B->nlangs) {
        for (size_t i = 0; i < B->nlangs; i++)
            if (strcmp(B->langs[i], c->string) == 0) return 1;
        const char *sug = cg_ld_suggest(c->string, B->langs, B->nlangs);
        if (sug)
            ERR(B, c, 1, jp, "language \"%s\" is not in settings.languages (did you mean \"%s\"?)",
                cg_ld_show(b, c->string), sug);
        else
            ERR(B, c, 1, jp, "language \"%s\" is not in settings.languages", cg_ld_show(b, c->string));
        return 0;
    }
    if (lang_valid(c->string)) return 1;
    ERR(B, c, 1, jp, "\"%s\" is not a language code", cg_ld_show(b, c->string));
    return 0;
}

/* A string value: reports wrong type, empty (with empty_msg) and too long.
 * Returns the arena copy, or NULL after reporting. */
static char *get_str(bld *B, const cJSON *j, const char *jp, size_t max, const char *empty_msg)
{
    if (!type_is(B, j, cJSON_IsString(j), jp, "a string")) return NULL;
    const char *s = j->valuestring;
    size_t n = strlen(s);
    if (blank(s)) {
        ERR(B, j, 0, jp, "%s", empty_msg ? empty_msg : "empty text");
        return NULL;
    }
    if (n > max) {
        ERR(B, j, 0, jp, "too long (%zu bytes; at most %zu)", n, max);
        return NULL;
    }
    return dup(B, s);
}

static int get_bool(bld *B, const cJSON *j, const char *jp, int *out)
{
    if (!type_is(B, j, cJSON_IsBool(j), jp, "true or false")) return 0;
    *out = cJSON_IsTrue(j);
    return 1;
}

static int get_int(bld *B, const cJSON *j, const char *jp, long lo, long hi, long *out)
{
    double v = j->valuedouble;
    if (!cJSON_IsNumber(j) || !isfinite(v) || floor(v) != v) {
        ERR(B, j, 0, jp, "expected an integer from %ld to %ld, found %s", lo, hi,
            cJSON_IsNumber(j) ? "a fraction" : cg_ld_type_name(j));
        return 0;
    }
    if (v < (double)lo || v > (double)hi) {
        ERR(B, j, 0, jp, "%.0f is out of range (%ld to %ld)", v, lo, hi);
        return 0;
    }
    *out = (long)v;
    return 1;
}

static int get_num(bld *B, const cJSON *j, const char *jp, double lo, double hi, double *out)
{
    if (!type_is(B, j, cJSON_IsNumber(j) && isfinite(j->valuedouble), jp, "a number")) return 0;
    if (j->valuedouble < lo || j->valuedouble > hi) {
        ERR(B, j, 0, jp, "%g is out of range (%g to %g)", j->valuedouble, lo, hi);
        return 0;
    }
    *out = j->valuedouble;
    return 1;
}

/* 0 valid https URL; 1 valid but not https (http allowed for localhost);
 * 2 malformed. */
static int url_check(const char *u)
{
    const char *host;
    if (strncmp(u, "https://", 8) == 0) host = u + 8;
    else if (strncmp(u, "http://", 7) == 0) host = u + 7;
    else return 1;
    size_t hl = strcspn(host, "/?#");
    if (hl == 0) return 2;
    for (const char *p = u; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '"' || *p == '<' || *p == '>' || *p == '\\')
            return 2;
    if (host == u + 7) {
        static const char *const local[] = { "localhost", "127.0.0.1", "[::1]", NULL };
        for (int i = 0; local[i]; i++) {
            size_t n = strlen(local[i]);
            if (strncmp(host, local[i], n) == 0 && (n == hl || host[n] == ':')) return 0;
        }
        return 1;
    }
    return 0;
}

static char *get_url(bld *B, const cJSON *j, const char *jp)
{
    char *u = get_str(B, j, jp, MAX_URL_BYTES, "empty URL");
    char b[64];
    if (!u) return NULL;
    switch (url_check(u)) {
    case 0: return u;
    case 1:
        ERR(B, j, 0, jp, "\"%s\" is not an https URL (http is allowed only for localhost)", cg_ld_show(b, u));
        return NULL;
    default:
        ERR(B, j, 0, jp, "\"%s\" is not a valid URL", cg_ld_show(b, u));
        return NULL;
    }
}

static int date_valid(const char *s)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return 0;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (m < 1 || m > 12 || d < 1) return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= days[m - 1] + (m == 2 && leap);
}

static int get_date(bld *B, const cJSON *j, const char *jp, char out[11])
{
    char b[64];
    if (!type_is(B, j, cJSON_IsString(j), jp, "a date \"YYYY-MM-DD\"")) return 0;
    if (!date_valid(j->valuestring)) {
        ERR(B, j, 0, jp, "\"%s\" is not a valid date (YYYY-MM-DD)", cg_ld_show(b, j->valuestring));
        return 0;
    }
    memcpy(out, j->valuestring, 11);
    return 1;
}

/* ---- per-language texts --------------------------------------------------- */

enum {
    I18N_REQUIRED = 1,   /* the default language must be there (error) */
    I18N_WARN_MISSING = 2, /* other table languages should be (warning) */
    I18N_WARN_LONG = 4   /* warn above CG_ANSWER_WARN_CHARS characters */
};

static int i18n_has(const cg_i18n *t, const char *lang)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].lang, lang) == 0) return 1;
    return 0;
}

/* The table languages missing from t: error for the default one when
 * required, warnings for the others when asked. `have` tells whether a
 * language is present (has(ctx, lang)). */
static void langs_missing(bld *B, const cJSON *at, const char *jp, unsigned flags,
                          int (*has)(const void *, const char *), const void *ctx, const char *what)
{
    char sub[JP];
    if (B->deflang && (flags & I18N_REQUIRED) && !has(ctx, B->deflang))
        ERR(B, at, 0, jp, "missing %s in the default language \"%s\"", what, B->deflang);
    if (!(flags & I18N_WARN_MISSING)) return;
    for (size_t i = 0; i < B->nlangs; i++) {
        if (B->deflang && strcmp(B->langs[i], B->deflang) == 0) continue;
        if (!has(ctx, B->langs[i])) WARN(B, at, 0, jp_key(sub, jp, B->langs[i]), "missing translation");
    }
}

static int i18n_has_v(const void *t, const char *lang) { return i18n_has(t, lang); }

static void get_i18n(bld *B, const cJSON *j, const char *jp, size_t max, unsigned flags, cg_i18n *out)
{
    char sub[JP];
    if (!type_is(B, j, cJSON_IsObject(j), jp, "an object of texts by language")) return;
    cg_ld_check_keys(&B->L, j, jp, NULL);
    size_t n = nchildren(j);
    out->v = alloc(B, n ? n : 1, sizeof *out->v);
    if (!out->v) return;
    for (const cJSON *c = j->child; c; c = c->next) {
        if (!lang_check(B, c, jp)) continue;
        jp_key(sub, jp, c->string);
        char *s = get_str(B, c, sub, max, "empty text");
        if (!s || i18n_has(out, c->string)) continue;
        size_t chars = utf8_chars(s);
        if ((flags & I18N_WARN_LONG) && chars > CG_ANSWER_WARN_CHARS)
            WARN(B, c, 0, sub, "%zu characters, longer than %d (Messenger's limit; other platforms cut or split it)",
                 chars, CG_ANSWER_WARN_CHARS);
        cg_ltext *lt = &out->v[out->n++];
        snprintf(lt->lang, sizeof lt->lang, "%s", c->string);
        lt->text = s;
    }
    langs_missing(B, j, jp, flags, i18n_has_v, out, "text");
}

/* ---- examples and keywords -------------------------------------------------- */

typedef struct ex_sort { const char *s; size_t i; } ex_sort;

static int ex_cmp(const void *a, const void *b)
{
    const ex_sort *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

static int examples_has(const void *ctx, const char *lang)
{
    const cg_intent *it = ctx;
    for (size_t i = 0; i < it->nexamples; i++)
        if (strcmp(it->examples[i].lang, lang) == 0) return 1;
    return 0;
}

static void add_example(bld *B, const cJSON *at, const char *jp, const char *text, const char *lang)
{
    if (B->nex == B->capex) {
        size_t cap = B->capex ? B->capex * 2 : 256;
        ex_ent *v = realloc(B->ex, cap * sizeof *v);
        if (!v) { B->oom = 1; return; }
        B->ex = v;
        B->capex = cap;
    }
    char *norm = cg_text_normalize(text, strlen(text), lang);
    if (!norm) { B->oom = 1; return; }
    ex_ent *e = &B->ex[B->nex++];
    e->norm = norm;
    e->lang = lang;
    e->path = B->L.f->path;
    e->intent = B->t->nintents;   /* the intent being read */
    cg_ld_line_col(B->L.f, at, 0, &e->line, &e->col);
    scopy(e->jp, sizeof e->jp, jp);
}

static void get_examples(bld *B, const cJSON *j, cg_intent *it, int fallback)
{
    char jl[JP], sub[JP];
    if (!type_is(B, j, cJSON_IsObject(j), "examples", "an object of example lists by language")) return;
    cg_ld_check_keys(&B->L, j, "examples", NULL);
    size_t n = nchildren(j);
    it->examples = alloc(B, n ? n : 1, sizeof *it->examples);
    if (!it->examples) return;
    for (const cJSON *c = j->child; c; c = c->next) {
        if (!lang_check(B, c, "examples")) continue;
        jp_key(jl, "examples", c->string);
        if (!type_is(B, c, cJSON_IsArray(c), jl, "an array of example sentences")) continue;
        size_t m = nchildren(c);
        if (m == 0 && !fallback) ERR(B, c, 0, jl, "no examples");   /* kept: no second report */
        if (m > CG_MAX_EXAMPLES) {
            ERR(B, c, 0, jl, "too many examples (%zu; at most %d)", m, CG_MAX_EXAMPLES);
            continue;
        }
        if (examples_has(it, c->string)) continue;   /* duplicate key, reported */
        cg_examples *e = &it->examples[it->nexamples];
        e->v = alloc(B, m ? m : 1, sizeof *e->v);
        if (!e->v) return;
        snprintf(e->lang, sizeof e->lang, "%s", c->string);
        size_t k = 0;
        for (const cJSON *x = c->child; x; x = x->next, k++) {
            char *s = get_str(B, x, jp_idx(sub, jl, k), CG_MAX_TEXT_BYTES, "empty example");
            if (!s) continue;
            e->v[e->n++] = s;
            if (!fallback) add_example(B, x, sub, s, e->lang);
        }
        it->nexamples++;
        /* the same sentence twice in one language: harmless but a slip */
        ex_sort *v = malloc((m ? m : 1) * sizeof *v);
        if (!v) { B->oom = 1; return; }
        size_t q = 0;
        k = 0;
        for (const cJSON *x = c->child; x; x = x->next, k++)
            if (cJSON_IsString(x)) v[q++] = (ex_sort){ x->valuestring, k };
        qsort(v, q, sizeof *v, ex_cmp);
        for (size_t i = 1; i < q; i++) {
            if (strcmp(v[i].s, v[i - 1].s) != 0 || blank(v[i].s)) continue;
            size_t first = i - 1;
            while (first > 0 && strcmp(v[first - 1].s, v[i].s) == 0) first--;
            const cJSON *x = cJSON_GetArrayItem(c, (int)v[i].i);
            WARN(B, x, 0, jp_idx(sub, jl, v[i].i), "same as examples.%s[%zu]", c->string, v[first].i);
        }
        free(v);
    }
    if (fallback) {
        if (it->nexamples)
            WARN(B, j, 0, "examples", "ignored: the fallback intent is said when nothing matches, it is never matched");
        return;
    }
    langs_missing(B, j, "examples", I18N_REQUIRED | I18N_WARN_MISSING, examples_has, it, "examples");
}

static char **get_keywords(bld *B, const cJSON *j, const char *jp, size_t *n_out)
{
    char sub[JP], b[64];
    if (!type_is(B, j, cJSON_IsArray(j), jp, "an array of keywords")) return NULL;
    size_t n = nchildren(j);
    if (n > MAX_KEYWORDS) {
        ERR(B, j, 0, jp, "too many keywords (%zu; at most %d)", n, MAX_KEYWORDS);
        return NULL;
    }
    char **v = alloc(B, n ? n : 1, sizeof *v);
    if (!v) return NULL;
    size_t k = 0;
    for (const cJSON *c = j->child; c; c = c->next, k++) {
        jp_idx(sub, jp, k);
        char *s = get_str(B, c, sub, MAX_KEYWORD_BYTES, "empty keyword");
        if (!s) continue;
        char *norm = cg_text_normalize(s, strlen(s), NULL);
        if (!norm) { B->oom = 1; continue; }
        if (!*norm) ERR(B, c, 0, sub, "\"%s\" is empty once normalised", cg_ld_show(b, s));
        else v[(*n_out)++] = dup(B, norm);
        free(norm);
    }
    return v;
}

/* ---- buttons ------------------------------------------------------------------ */

static void add_ref(bld *B, const cJSON *at, const char *jp, const char *target)
{
    if (B->nrefs == B->caprefs) {
        size_t cap = B->caprefs ? B->caprefs * 2 : 64;
        ref *r = realloc(B->refs, cap * sizeof *r);
        if (!r) { B->oom = 1; return; }
        B->refs = r;
        B->caprefs = cap;
    }
    ref *r = &B->refs[B->nrefs++];
    r->target = target;
    r->path = B->L.f->path;
    cg_ld_line_col(B->L.f, at, 0, &r->line, &r->col);
    scopy(r->jp, sizeof r->jp, jp);
}

static void get_buttons(bld *B, const cJSON *j, cg_intent *it)
{
    char jb[JP], sub[JP], b[64];
    if (!type_is(B, j, cJSON_IsArray(j), "buttons", "an array of buttons")) return;
    size_t n = nchildren(j);
    if (n > CG_MAX_BUTTONS) {
        ERR(B, j, 0, "buttons", "too many buttons (%zu; at most %d)", n, CG_MAX_BUTTONS);
        return;
    }
    it->buttons = alloc(B, n ? n : 1, sizeof *it->buttons);
    if (!it->buttons) return;
    size_t k = 0;
    for (const cJSON *c = j->child; c; c = c->next, k++) {
        jp_idx(jb, "buttons", k);
        if (!type_is(B, c, cJSON_IsObject(c), jb, "an object")) continue;
        cg_ld_check_keys(&B->L, c, jb, button_keys);
        cg_button *bt = &it->buttons[it->nbuttons++];
        const cJSON *title = cJSON_GetObjectItemCaseSensitive(c, "title");
        const cJSON *intent = cJSON_GetObjectItemCaseSensitive(c, "intent");
        const cJSON *url = cJSON_GetObjectItemCaseSensitive(c, "url");
        if (title) get_i18n(B, title, jp_key(sub, jb, "title"), MAX_TITLE_BYTES,
                            I18N_REQUIRED | I18N_WARN_MISSING, &bt->title);
        else missing(B, c, jb, button_keys, "title");
        if (intent && url) {
            ERR(B, url, 1, jb, "has both \"intent\" and \"url\"; a button does one thing");
        } else if (intent) {
            jp_key(sub, jb, "intent");
            char *id = get_str(B, intent, sub, CG_INTENT_ID_MAX, "empty intent id");
            if (id && !id_valid(id, CG_INTENT_ID_MAX, 1)) {
                ERR(B, intent, 0, sub, "\"%s\" is not a valid intent id", cg_ld_show(b, id));
            } else if (id) {
                bt->kind = CG_BUTTON_INTENT;
                bt->target = id;
                add_ref(B, intent, sub, id);
            }
        } else if (url) {
            bt->kind = CG_BUTTON_URL;
            bt->target = get_url(B, url, jp_key(sub, jb, "url"));
        } else {
            ERR(B, c, 0, jb, "needs \"intent\" (another answer) or \"url\" (a web page)");
        }
    }
}

/* ---- flows -------------------------------------------------------------------- */

/* Size of a pattern once glibc's regcomp has expanded its repetitions:
 * x{m,n} is max(m, n) copies of x, x{m,} m + 1, x+ two; nested repetitions
 * multiply. regcomp's time and memory grow with the square of this (a
 * fuzzer found ((a{0,0}){1,100}){1,100} taking gigabytes), so it is bounded
 * by MAX_PATTERN_EXPANSION. Unbalanced input is sized anyway; regcomp then
 * rejects it. */
static double pattern_expansion(const char *p)
{
    double total[MAX_PATTERN_BYTES + 2], last[MAX_PATTERN_BYTES + 2];
    int sp = 0;
    total[0] = last[0] = 0;
    for (const char *s = p; *s; s++) {
        switch (*s) {
        case '(':
            if (sp > MAX_PATTERN_BYTES) return 1e18;
            sp++;
            total[sp] = last[sp] = 0;
            continue;
        case ')':
            if (sp > 0) {
                double g = total[sp] < 1 ? 1 : total[sp];
                sp--;
                total[sp] += g;
                last[sp] = g;
                continue;
            }
            break;   /* a stray ')' is a literal */
        case '{': {
            const char *q = s + 1;
            double m = 0, n = -1;
            int digits = 0;
            while (*q >= '0' && *q <= '9') { m = m * 10 + (*q++ - '0'); digits = 1; if (m > 1e9) m = 1e9; }
            if (*q == ',') {
                q++;
                if (*q >= '0' && *q <= '9') {
                    n = 0;
                    while (*q >= '0' && *q <= '9') { n = n * 10 + (*q++ - '0'); if (n > 1e9) n = 1e9; }
                } else {
                    n = m + 1;   /* x{m,} = m copies and x* */
                }
                digits = 1;
            }
            if (*q != '}' || !digits) break;   /* not a bound: a literal '{' */
            double k = m > n ? m : n;
            if (k < 1) k = 1;
            total[sp] += last[sp] * (k - 1);
            last[sp] *= k;
            s = q;
            if (total[sp] > 1e12) return 1e18;
            continue;
        }
        case '+':
            total[sp] += last[sp];
            last[sp] *= 2;
            continue;
        case '*': case '?':
            continue;
        case '|':
            last[sp] = 0;
            continue;
        case '\\':
            if (s[1]) s++;
            break;
        case '[':   /* a bracket expression is one element */
            s++;
            if (*s == '^') s++;
            if (*s == ']') s++;
            while (*s && *s != ']') {
                if (*s == '[' && (s[1] == ':' || s[1] == '.' || s[1] == '=')) {
                    char close = s[1];
                    s += 2;
                    while (*s && !(*s == close && s[1] == ']')) s++;
                    if (*s) s++;
                }
                if (*s) s++;
            }
            if (!*s) s--;
            break;
        default:
            break;
        }
        total[sp] += 1;   /* one element */
        last[sp] = 1;
    }
    double sum = 0;
    for (int i = 0; i <= sp; i++) sum += total[i];
    return sum;
}

static void get_pattern(bld *B, const cJSON *j, const char *jp, cg_flow_step *st)
{
    st->pattern = get_str(B, j, jp, MAX_PATTERN_BYTES, "empty pattern");
    if (!st->pattern) return;
    double size = pattern_expansion(st->pattern);
    if (size > MAX_PATTERN_EXPANSION) {
        ERR(B, j, 0, jp, "repetition counts too large (the pattern expands to %.0f elements; at most %d)",
            size > 1e12 ? 1e12 : size, MAX_PATTERN_EXPANSION);
        return;
    }
    regex_t *re = malloc(sizeof *re);
    if (!re) { B->oom = 1; return; }
    int rc = regcomp(re, st->pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[128];
        regerror(rc, re, msg, sizeof msg);
        ERR(B, j, 0, jp, "not a valid POSIX extended regular expression: %s", msg);
        free(re);
        return;
    }
    st->pattern_re = re;
}

static int step_find(const cg_flow *f, const char *id)
{
    for (size_t i = 0; i < f->nsteps; i++)
        if (f->steps[i].id && strcmp(f->steps[i].id, id) == 0) return (int)i;
    return -1;
}

/* Step ids as a list for suggestions. */
static size_t step_ids(const cg_flow *f, const char **out)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nsteps; i++)
        if (f->steps[i].id) out[n++] = f->steps[i].id;
    return n;
}

typedef struct step_src {          /* where a step's branches are written */
    const cJSON *obj, *next, *choice_next[CG_MAX_BUTTONS];
} step_src;

static void get_step(bld *B, const cJSON *j, const char *js, cg_flow_step *st, step_src *src)
{
    char sub[JP], b[64];
    src->obj = j;
    st->min = st->max = NAN;
    if (!type_is(B, j, cJSON_IsObject(j), js, "an object")) return;
    cg_ld_check_keys(&B->L, j, js, step_keys);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    const cJSON *ask = cJSON_GetObjectItemCaseSensitive(j, "ask");
    const cJSON *x;

    if (!id) missing(B, j, js, step_keys, "id");
    else if ((st->id = get_str(B, id, jp_key(sub, js, "id"), MAX_STEP_ID, "empty step id"))) {
        if (!id_valid(st->id, MAX_STEP_ID, 0)) {
            ERR(B, id, 0, sub, "\"%s\" is not a valid step id (a-z, 0-9, '_' and '-'; at most %d bytes)",
                cg_ld_show(b, st->id), MAX_STEP_ID);
            st->id = NULL;
        } else if (strcmp(st->id, "end") == 0) {
            ERR(B, id, 0, sub, "\"end\" is reserved: \"next\": \"end\" ends the flow");
            st->id = NULL;
        }
    }
    int kind = -1;
    if (!type) missing(B, j, js, step_keys, "type");
    else if (type_is(B, type, cJSON_IsString(type), jp_key(sub, js, "type"), "a string")) {
        kind = list_index(step_types, type->valuestring);
        if (kind < 0) {
            const char *sug = cg_ld_suggest(type->valuestring, step_types, list_len(step_types));
            ERR(B, type, 0, sub, "unknown step type \"%s\"%s%s%s (choice, text, number or location)",
                cg_ld_show(b, type->valuestring), sug ? " (did you mean \"" : "", sug ? sug : "",
                sug ? "\"?)" : "");
        } else {
            st->kind = (cg_step_kind)kind;
        }
    }
    if (!ask) missing(B, j, js, step_keys, "ask");
    else get_i18n(B, ask, jp_key(sub, js, "ask"), MAX_TEXT_BYTES, I18N_REQUIRED | I18N_WARN_MISSING, &st->ask);
    if ((x = cJSON_GetObjectItemCaseSensitive(j, "invalid")))
        get_i18n(B, x, jp_key(sub, js, "invalid"), MAX_TEXT_BYTES, I18N_REQUIRED | I18N_WARN_MISSING,
                 &st->invalid);
    st->var = st->id;
    if ((x = cJSON_GetObjectItemCaseSensitive(j, "var"))) {
        char *v = get_str(B, x, jp_key(sub, js, "var"), MAX_STEP_ID, "empty variable name");
        if (v && !id_valid(v, MAX_STEP_ID, 0))
            ERR(B, x, 0, sub, "\"%s\" is not a valid variable name (a-z, 0-9, '_' and '-')", cg_ld_show(b, v));
        else if (v)
            st->var = v;
    }

    x = cJSON_GetObjectItemCaseSensitive(j, "choices");
    if (kind == CG_STEP_CHOICE && !x) ERR(B, j, 0, js, "a choice step needs \"choices\"");
    if (x && kind >= 0 && kind != CG_STEP_CHOICE) ERR(B, x, 1, js, "\"choices\" is only for choice steps");
    if (x && kind == CG_STEP_CHOICE) {
        char jc[JP], jci[JP];
        jp_key(jc, js, "choices");
        size_t n = cJSON_IsArray(x) ? nchildren(x) : 0;
        if (!type_is(B, x, cJSON_IsArray(x), jc, "an array of choices")) {
        } else if (n == 0) {
            ERR(B, x, 0, jc, "no choices");
        } else if (n > CG_MAX_BUTTONS) {
            ERR(B, x, 0, jc, "too many choices (%zu; at most %d)", n, CG_MAX_BUTTONS);
        } else if ((st->choices = alloc(B, n, sizeof *st->choices))) {
            st->nchoices = n;   /* indexes match the file's, even past a bad entry */
            size_t k = 0;
            for (const cJSON *c = x->child; c; c = c->next, k++) {
                jp_idx(jci, jc, k);
                if (!type_is(B, c, cJSON_IsObject(c), jci, "an object")) continue;
                cg_ld_check_keys(&B->L, c, jci, choice_keys);
                cg_choice *ch = &st->choices[k];
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "title");
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, "value");
                const cJSON *nx = cJSON_GetObjectItemCaseSensitive(c, "next");
                if (!t) missing(B, c, jci, choice_keys, "title");
                else get_i18n(B, t, jp_key(sub, jci, "title"), MAX_TITLE_BYTES,
                              I18N_REQUIRED | I18N_WARN_MISSING, &ch->title);
                if (!v) missing(B, c, jci, choice_keys, "value");
                else ch->value = get_str(B, v, jp_key(sub, jci, "value"), MAX_SHORT_BYTES, "empty value");
                if (nx && type_is(B, nx, cJSON_IsString(nx), jp_key(sub, jci, "next"), "a step id"))
                    src->choice_next[k] = nx;
            }
        }
    }

    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(j, "pattern");
    if (pat && kind >= 0 && kind != CG_STEP_TEXT) ERR(B, pat, 1, js, "\"pattern\" is only for text steps");
    else if (pat) get_pattern(B, pat, jp_key(sub, js, "pattern"), st);

    const cJSON *minl = cJSON_GetObjectItemCaseSensitive(j, "min_length");
    const cJSON *maxl = cJSON_GetObjectItemCaseSensitive(j, "max_length");
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(j, "min");
    const cJSON *mx = cJSON_GetObjectItemCaseSensitive(j, "max");
    int lengths = kind == CG_STEP_TEXT || kind == CG_STEP_LOCATION;
    long l;
    if (kind >= 0 && !lengths && minl) ERR(B, minl, 1, js, "\"min_length\" is only for text and location steps");
    if (kind >= 0 && !lengths && maxl) ERR(B, maxl, 1, js, "\"max_length\" is only for text and location steps");
    if (kind >= 0 && kind != CG_STEP_NUMBER && mn) ERR(B, mn, 1, js, "\"min\" is only for number steps (text steps: \"min_length\")");
    if (kind >= 0 && kind != CG_STEP_NUMBER && mx) ERR(B, mx, 1, js, "\"max\" is only for number steps (text steps: \"max_length\")");
    if (lengths) {
        if (minl && get_int(B, minl, jp_key(sub, js, "min_length"), 0, MAX_LENGTH_BOUND, &l)) st->min = (double)l;
        if (maxl && get_int(B, maxl, jp_key(sub, js, "max_length"), 1, MAX_LENGTH_BOUND, &l)) st->max = (double)l;
        if (!isnan(st->min) && !isnan(st->max) && st->min > st->max)
            ERR(B, minl, 1, js, "min_length %.0f is greater than max_length %.0f", st->min, st->max);
    }
    if (kind == CG_STEP_NUMBER) {
        double d;
        if (mn && get_num(B, mn, jp_key(sub, js, "min"), -1e15, 1e15, &d)) st->min = d;
        if (mx && get_num(B, mx, jp_key(sub, js, "max"), -1e15, 1e15, &d)) st->max = d;
        if (!isnan(st->min) && !isnan(st->max) && st->min > st->max)
            ERR(B, mn, 1, js, "min %g is greater than max %g", st->min, st->max);
    }
    x = cJSON_GetObjectItemCaseSensitive(j, "next");
    if (x && type_is(B, x, cJSON_IsString(x), jp_key(sub, js, "next"), "a step id or \"end\"")) src->next = x;
}

/* A branch target: index of the step, -2 for "end", -1 unknown (reported). */
static int resolve(bld *B, const cg_flow *f, const cJSON *nx, const char *jp)
{
    char b[64];
    if (strcmp(nx->valuestring, "end") == 0) return -2;
    int k = step_find(f, nx->valuestring);
    if (k >= 0) return k;
    const char *ids[CG_MAX_FLOW_STEPS];
    const char *sug = cg_ld_suggest(nx->valuestring, ids, step_ids(f, ids));
    ERR(B, nx, 0, jp, "no step \"%s\" in this flow%s%s%s", cg_ld_show(b, nx->valuestring),
        sug ? " (did you mean \"" : "", sug ? sug : "", sug ? "\"?)" : "");
    return -1;
}

static void flow_placeholders(bld *B, const cJSON *done, const cg_flow *f)
{
    char sub[JP], b[64];
    for (const cJSON *c = done ? done->child : NULL; c; c = c->next) {
        if (!cJSON_IsString(c)) continue;
        for (const char *p = strstr(c->valuestring, "{{"); p; p = strstr(p, "{{")) {
            const char *e = strstr(p + 2, "}}");
            if (!e) break;
            size_t n = (size_t)(e - p - 2);
            char name[72];
            if (n >= sizeof name) n = sizeof name - 1;
            memcpy(name, p + 2, n);
            name[n] = '\0';
            int ok = strcmp(name, "reference") == 0;
            for (size_t i = 0; !ok && i < f->nsteps; i++)
                ok = f->steps[i].var && strcmp(f->steps[i].var, name) == 0;
            if (!ok)
                WARN(B, c, 0, jp_key(sub, "flow.done", c->string),
                     "unknown placeholder {{%s}} (a step's variable or {{reference}})", cg_ld_show(b, name));
            p = e + 2;
        }
    }
}

static void get_flow(bld *B, const cJSON *j, cg_intent *it)
{
    char js[JP], sub[JP];
    if (!type_is(B, j, cJSON_IsObject(j), "flow", "an object")) return;
    cg_ld_check_keys(&B->L, j, "flow", flow_keys);
    cg_flow *f = it->flow = alloc(B, 1, sizeof *f);
    if (!f) return;
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(j, "steps");
    const cJSON *done = cJSON_GetObjectItemCaseSensitive(j, "done");
    const cJSON *x;
    if (!done) missing(B, j, "flow", flow_keys, "done");
    else get_i18n(B, done, "flow.done", MAX_TEXT_BYTES, I18N_REQUIRED | I18N_WARN_MISSING | I18N_WARN_LONG,
                  &f->done);
    if ((x = cJSON_GetObjectItemCaseSensitive(j, "handoff"))) get_bool(B, x, "flow.handoff", &f->handoff);
    long l;
    if ((x = cJSON_GetObjectItemCaseSensitive(j, "priority")) && get_int(B, x, "flow.priority", 0, 9, &l))
        f->priority = (int)l;
    if (!steps) { missing(B, j, "flow", flow_keys, "steps"); return; }
    if (!type_is(B, steps, cJSON_IsArray(steps), "flow.steps", "an array of steps")) return;
    size_t n = nchildren(steps);
    if (n == 0) { ERR(B, steps, 0, "flow.steps", "no steps"); return; }
    if (n > CG_MAX_FLOW_STEPS) {
        ERR(B, steps, 0, "flow.steps", "too many steps (%zu; at most %d)", n, CG_MAX_FLOW_STEPS);
        return;
    }
    f->steps = alloc(B, n, sizeof *f->steps);
    if (!f->steps) return;
    f->nsteps = n;   /* all zeroed: table_free may walk them at any point */
    step_src src[CG_MAX_FLOW_STEPS];
    memset(src, 0, sizeof src);
    size_t k = 0;
    for (const cJSON *c = steps->child; c; c = c->next, k++)
        get_step(B, c, jp_idx(js, "flow.steps", k), &f->steps[k], &src[k]);

    /* unique ids */
    for (size_t i = 0; i < n; i++) {
        if (!f->steps[i].id) continue;
        for (size_t q = 0; q < i; q++) {
            if (!f->steps[q].id || strcmp(f->steps[q].id, f->steps[i].id) != 0) continue;
            int line, col;
            cg_ld_line_col(B->L.f, src[q].obj, 0, &line, &col);
            ERR(B, cJSON_GetObjectItemCaseSensitive(src[i].obj, "id"), 0, jp_key(sub, jp_idx(js, "flow.steps", i), "id"),
                "duplicate step id \"%s\" (first at line %d)", f->steps[i].id, line);
            f->steps[i].id = NULL;
            break;
        }
    }
    /* branches: -2 end, else a step index; edges feed the reachability walk */
    int next[CG_MAX_FLOW_STEPS], cnext[CG_MAX_FLOW_STEPS][CG_MAX_BUTTONS];
    int broken = 0;
    for (size_t i = 0; i < n; i++) {
        cg_flow_step *st = &f->steps[i];
        jp_idx(js, "flow.steps", i);
        if (src[i].next) {
            next[i] = resolve(B, f, src[i].next, jp_key(sub, js, "next"));
            if (next[i] == -1) broken = 1;
        } else {
            next[i] = i + 1 < n ? (int)i + 1 : -2;
        }
        if (next[i] >= 0 && !f->steps[next[i]].id) broken = 1;
        st->next = next[i] >= 0 ? f->steps[next[i]].id : NULL;
        for (size_t q = 0; q < st->nchoices; q++) {
            cnext[i][q] = next[i];
            if (!src[i].choice_next[q]) continue;
            char jc[JP], t1[JP], t2[JP];
            jp_key(jc, jp_idx(t2, jp_key(t1, js, "choices"), q), "next");
            int r = resolve(B, f, src[i].choice_next[q], jc);
            if (r == -1) { broken = 1; continue; }
            cnext[i][q] = r;
            /* "end" stays "end": it is never a step id, so the flow ends */
            st->choices[q].next = r == -2 ? dup(B, "end") : f->steps[r].id;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!f->steps[i].id) broken = 1;
    if (!broken) {
        /* walk from the first step: unreachable steps and endless flows */
        int seen[CG_MAX_FLOW_STEPS] = { 0 }, stack[CG_MAX_FLOW_STEPS], sp = 0, ends = 0;
        seen[0] = 1;
        stack[sp++] = 0;
        while (sp) {
            int i = stack[--sp];
            int tg[CG_MAX_BUTTONS + 1], nt = 0;
            if (f->steps[i].nchoices)
                for (size_t q = 0; q < f->steps[i].nchoices; q++) tg[nt++] = cnext[i][q];
            else
                tg[nt++] = next[i];
            for (int q = 0; q < nt; q++) {
                if (tg[q] == -2) { ends = 1; continue; }
                if (!seen[tg[q]]) { seen[tg[q]] = 1; stack[sp++] = tg[q]; }
            }
        }
        for (size_t i = 0; i < n; i++)
            if (!seen[i])
                WARN(B, src[i].obj, 0, jp_idx(js, "flow.steps", i), "step \"%s\" is never reached", f->steps[i].id);
        if (!ends) WARN(B, steps, 0, "flow.steps", "no path reaches the end of the flow");
    }
    flow_placeholders(B, done, f);
}

/* ---- one intent file ---------------------------------------------------------- */

static void get_intent(bld *B, const cJSON *root, cg_intent *it, meta *m)
{
    char b[64];
    const cJSON *x;
    m->path = B->L.f->path;
    it->path = dup(B, B->L.f->path);
    it->id = "";
    if (!type_is(B, root, cJSON_IsObject(root), "", "an object (one intent per file)")) return;
    cg_ld_check_keys(&B->L, root, "", intent_keys);

    if (!(x = cJSON_GetObjectItemCaseSensitive(root, "id"))) {
        missing(B, root, "", intent_keys, "id");
    } else {
        char *id = get_str(B, x, "id", 1000, "empty id");
        if (id && !id_valid(id, CG_INTENT_ID_MAX, 1))
            ERR(B, x, 0, "id", "\"%s\" is not a valid id (a-z, 0-9, '.', '_' and '-', starting with a letter "
                "or digit; at most %d bytes)", cg_ld_show(b, id), CG_INTENT_ID_MAX);
        else if (id) {
            it->id = id;
            cg_ld_line_col(B->L.f, x, 0, &m->id_line, &m->id_col);
        }
    }
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "special")) &&
        type_is(B, x, cJSON_IsString(x), "special", "a string")) {
        int k = list_index(special_names + 1, x->valuestring);
        if (k < 0) {
            const char *sug = cg_ld_suggest(x->valuestring, special_names + 1, list_len(special_names + 1));
            ERR(B, x, 0, "special", "unknown special \"%s\"%s%s%s (greeting, menu, human, language, "
                "delete_data, thanks or fallback)", cg_ld_show(b, x->valuestring),
                sug ? " (did you mean \"" : "", sug ? sug : "", sug ? "\"?)" : "");
        } else {
            it->special = (cg_special)(k + 1);
            cg_ld_line_col(B->L.f, x, 0, &m->sp_line, &m->sp_col);
        }
    }
    int fallback = it->special == CG_SPECIAL_FALLBACK;
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "title")))
        get_i18n(B, x, "title", MAX_TITLE_BYTES, I18N_REQUIRED | I18N_WARN_MISSING, &it->title);
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "owner")))
        it->owner = get_str(B, x, "owner", MAX_SHORT_BYTES, "empty owner");
    else if (it->special == CG_SPECIAL_NONE)
        WARN(B, root, 0, "", "missing \"owner\" (the office responsible for this answer)");
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "source"))) it->source = get_url(B, x, "source");
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "notes"))) get_str(B, x, "notes", MAX_NOTES_BYTES, "empty notes");
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "$schema"))) get_str(B, x, "$schema", MAX_URL_BYTES, "empty $schema");
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "reviewed"))) get_date(B, x, "reviewed", it->reviewed);
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "review_by")) && get_date(B, x, "review_by", it->review_by)) {
        const char *today = B->opts->today;
        if (today && date_valid(today) && strcmp(it->review_by, today) < 0)
            WARN(B, x, 0, "", "answer past its review date (review_by %s)", it->review_by);
        if (it->reviewed[0] && strcmp(it->review_by, it->reviewed) < 0)
            WARN(B, x, 0, "review_by", "%s is before reviewed (%s)", it->review_by, it->reviewed);
    }
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "examples"))) get_examples(B, x, it, fallback);
    else if (!fallback) missing(B, root, "", intent_keys, "examples");
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "answer")))
        get_i18n(B, x, "answer", MAX_TEXT_BYTES, I18N_REQUIRED | I18N_WARN_MISSING | I18N_WARN_LONG, &it->answer);
    else
        missing(B, root, "", intent_keys, "answer");
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "keywords")) &&
        type_is(B, x, cJSON_IsObject(x), "keywords", "an object with \"must\" and/or \"should\"")) {
        cg_ld_check_keys(&B->L, x, "keywords", keywords_keys);
        const cJSON *k;
        if ((k = cJSON_GetObjectItemCaseSensitive(x, "must"))) it->must = get_keywords(B, k, "keywords.must", &it->nmust);
        if ((k = cJSON_GetObjectItemCaseSensitive(x, "should")))
            it->should = get_keywords(B, k, "keywords.should", &it->nshould);
    }
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "buttons"))) get_buttons(B, x, it);
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "escalate"))) get_bool(B, x, "escalate", &it->escalate);
    long l;
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "priority")) && get_int(B, x, "priority", 0, 9, &l))
        it->priority = (int)l;
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "flow"))) get_flow(B, x, it);
}

/* ---- settings.json -------------------------------------------------------------- */

static void get_settings(bld *B, const cJSON *root)
{
    char sub[JP], b[64];
    cg_settings *s = &B->t->settings;
    const cJSON *x;
    s->threshold = DEFAULT_THRESHOLD;
    s->ambiguity_margin = DEFAULT_MARGIN;
    s->fallbacks_before_human = DEFAULT_FALLBACKS;
    if (!type_is(B, root, cJSON_IsObject(root), "", "an object")) return;
    cg_ld_check_keys(&B->L, root, "", settings_keys);

    if (!(x = cJSON_GetObjectItemCaseSensitive(root, "languages"))) {
        missing(B, root, "", settings_keys, "languages");
    } else if (type_is(B, x, cJSON_IsArray(x), "languages", "an array of language codes")) {
        size_t n = nchildren(x), k = 0;
        int ok = 1;
        if (n == 0) { ERR(B, x, 0, "languages", "no languages"); ok = 0; }
        if (n > CG_LD_MAX_LANGS) { ERR(B, x, 0, "languages", "too many languages (%zu; at most %d)", n, CG_LD_MAX_LANGS); ok = 0; }
        if (ok && (s->languages = alloc(B, n, sizeof *s->languages))) {
            for (const cJSON *c = x->child; c; c = c->next, k++) {
                jp_idx(sub, "languages", k);
                if (!type_is(B, c, cJSON_IsString(c), sub, "a language code")) { ok = 0; continue; }
                if (!lang_valid(c->valuestring)) {
                    ERR(B, c, 0, sub, "\"%s\" is not a language code (like \"en\", \"es\" or \"pt-br\")",
                        cg_ld_show(b, c->valuestring));
                    ok = 0;
                    continue;
                }
                size_t q = 0;
                while (q < s->nlanguages && strcmp(s->languages[q], c->valuestring) != 0) q++;
                if (q < s->nlanguages) {
                    ERR(B, c, 0, sub, "\"%s\" is listed twice", c->valuestring);
                    continue;
                }
                s->languages[s->nlanguages++] = dup(B, c->valuestring);
            }
        }
        if (ok && !B->oom) {
            for (size_t i = 0; i < s->nlanguages; i++) B->langs[i] = s->languages[i];
            B->nlangs = s->nlanguages;
        }
    }
    if (!(x = cJSON_GetObjectItemCaseSensitive(root, "default_language"))) {
        missing(B, root, "", settings_keys, "default_language");
    } else if (type_is(B, x, cJSON_IsString(x), "default_language", "a language code")) {
        size_t q = 0;
        while (q < s->nlanguages && strcmp(s->languages[q], x->valuestring) != 0) q++;
        if (q == s->nlanguages) {
            if (B->nlangs)
                ERR(B, x, 0, "default_language", "\"%s\" is not in languages", cg_ld_show(b, x->valuestring));
        } else {
            snprintf(s->default_language, sizeof s->default_language, "%s", x->valuestring);
            if (B->nlangs) B->deflang = s->default_language;
        }
    }
    double d;
    long l;
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "threshold")) && get_num(B, x, "threshold", 0, 1, &d))
        s->threshold = d;
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "ambiguity_margin")) &&
        get_num(B, x, "ambiguity_margin", 0, 1, &d))
        s->ambiguity_margin = d;
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "fallbacks_before_human")) &&
        get_int(B, x, "fallbacks_before_human", 0, 100, &l))
        s->fallbacks_before_human = (int)l;
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "notes"))) get_str(B, x, "notes", MAX_NOTES_BYTES, "empty notes");
    if ((x = cJSON_GetObjectItemCaseSensitive(root, "$schema"))) get_str(B, x, "$schema", MAX_URL_BYTES, "empty $schema");

    if (!(x = cJSON_GetObjectItemCaseSensitive(root, "phrases"))) {
        missing(B, root, "", settings_keys, "phrases");
        return;
    }
    if (!type_is(B, x, cJSON_IsObject(x), "phrases", "an object of phrases")) return;
    {
        const char *all[64];
        size_t na = 0;
        for (size_t i = 0; phrase_keys[i] && na < 63; i++) all[na++] = phrase_keys[i];
        for (size_t i = 0; phrase_optional[i] && na < 63; i++) all[na++] = phrase_optional[i];
        all[na] = NULL;
        cg_ld_check_keys(&B->L, x, "phrases", all);
    }
    size_t np = list_len(phrase_keys), nopt = list_len(phrase_optional);
    if (!(s->phrases = alloc(B, np + nopt, sizeof *s->phrases))) return;
    for (size_t i = 0; i < np; i++) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(x, phrase_keys[i]);
        if (!p) {
            ERR(B, x, 0, "phrases", "missing phrase \"%s\"", phrase_keys[i]);
            continue;
        }
        struct cg_phrase *ph = &s->phrases[s->nphrases++];
        ph->key = dup(B, phrase_keys[i]);
        get_i18n(B, p, jp_key(sub, "phrases", phrase_keys[i]), MAX_TEXT_BYTES,
                 I18N_REQUIRED | I18N_WARN_MISSING, &ph->text);
    }
    for (size_t i = 0; i < nopt; i++) {   /* optional: absent is fine */
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(x, phrase_optional[i]);
        if (!p) continue;
        struct cg_phrase *ph = &s->phrases[s->nphrases++];
        ph->key = dup(B, phrase_optional[i]);
        get_i18n(B, p, jp_key(sub, "phrases", phrase_optional[i]), MAX_TEXT_BYTES,
                 I18N_REQUIRED | I18N_WARN_MISSING, &ph->text);
    }
}

/* ---- synonyms.json ------------------------------------------------------------ */

static int syn_cmp(const void *a, const void *b)
{
    const syn_ent *x = a, *y = b;
    int c = strcmp(x->from, y->from);
    if (c) return c;
    c = strcmp(x->path, y->path);
    if (c) return c;
    return x->line != y->line ? (x->line > y->line) - (x->line < y->line) : (x->col > y->col) - (x->col < y->col);
}

static char *normalize(bld *B, const char *s, const char *lang)
{
    char *n = cg_text_normalize(s, strlen(s), lang);
    if (!n) { B->oom = 1; return NULL; }
    char *a = dup(B, n);
    free(n);
    return a;
}

static void get_synonyms(bld *B, const cJSON *root)
{
    char jl[JP], jg[JP], sub[JP], b[64], b2[64];
    if (!type_is(B, root, cJSON_IsObject(root), "", "an object")) return;
    cg_ld_check_keys(&B->L, root, "", synonyms_keys);
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, "synonyms");
    if (!x) { missing(B, root, "", synonyms_keys, "synonyms"); return; }
    if (!type_is(B, x, cJSON_IsObject(x), "synonyms", "an object of synonym groups by language")) return;
    cg_ld_check_keys(&B->L, x, "synonyms", NULL);
    size_t cap = 0;
    for (const cJSON *l = x->child; l; l = l->next)
        for (const cJSON *g = l->child; g; g = g->next) cap += nchildren(g);
    if (cap > MAX_SYN_TOTAL) {
        ERR(B, x, 0, "synonyms", "too many words (%zu; at most %d)", cap, MAX_SYN_TOTAL);
        return;
    }
    B->syn = calloc(cap ? cap : 1, sizeof *B->syn);
    if (!B->syn) { B->oom = 1; return; }
    for (const cJSON *l = x->child; l; l = l->next) {
        if (!lang_check(B, l, "synonyms")) continue;
        jp_key(jl, "synonyms", l->string);
        if (!type_is(B, l, cJSON_IsArray(l), jl, "an array of groups")) continue;
        size_t gi = 0;
        for (const cJSON *g = l->child; g; g = g->next, gi++) {
            jp_idx(jg, jl, gi);
            if (!type_is(B, g, cJSON_IsArray(g), jg, "an array of words (the first is the canonical one)")) continue;
            size_t n = nchildren(g);
            if (n < 2) { ERR(B, g, 0, jg, "a group needs at least two words"); continue; }
            if (n > MAX_SYN_GROUP) { ERR(B, g, 0, jg, "too many words (%zu; at most %d)", n, MAX_SYN_GROUP); continue; }
            char *canon = NULL;
            size_t wi = 0;
            for (const cJSON *w = g->child; w; w = w->next, wi++) {
                jp_idx(sub, jg, wi);
                char *s = get_str(B, w, sub, MAX_SYN_BYTES, "empty word");
                if (!s) { if (wi == 0) break; continue; }
                char *nw = normalize(B, s, l->string);
                if (!nw) return;
                if (!*nw) { ERR(B, w, 0, sub, "\"%s\" is empty once normalised", cg_ld_show(b, s)); if (wi == 0) break; continue; }
                if (wi == 0) { canon = nw; continue; }
                if (strcmp(nw, canon) == 0) {
                    WARN(B, w, 0, sub, "\"%s\" is the same as the group's first word once normalised", cg_ld_show(b, s));
                    continue;
                }
                syn_ent *e = &B->syn[B->nsyn++];
                e->from = nw;
                e->to = canon;
                e->path = B->L.f->path;
                cg_ld_line_col(B->L.f, w, 0, &e->line, &e->col);
                scopy(e->jp, sizeof e->jp, sub);
            }
        }
    }
    /* one variant, one meaning: "snap" cannot map to two words */
    qsort(B->syn, B->nsyn, sizeof *B->syn, syn_cmp);
    size_t out = 0;
    for (size_t i = 0; i < B->nsyn; i++) {
        if (out && strcmp(B->syn[out - 1].from, B->syn[i].from) == 0) {
            if (strcmp(B->syn[out - 1].to, B->syn[i].to) != 0)
                table_report(B, CG_DIAG_ERROR, B->syn[i].path, B->syn[i].line, B->syn[i].col,
                             "%s: \"%s\" already maps to \"%s\" (line %d)", B->syn[i].jp,
                             cg_ld_show(b, B->syn[i].from), cg_ld_show(b2, B->syn[out - 1].to), B->syn[out - 1].line);
            continue;
        }
        B->syn[out++] = B->syn[i];
    }
    B->nsyn = out;
    cg_intents *t = B->t;
    t->syn_from = alloc(B, out ? out : 1, sizeof *t->syn_from);
    t->syn_to = alloc(B, out ? out : 1, sizeof *t->syn_to);
    if (!t->syn_from || !t->syn_to) return;
    for (size_t i = 0; i < out; i++) {
        t->syn_from[i] = B->syn[i].from;
        t->syn_to[i] = B->syn[i].to;
    }
    t->nsyn = out;
}

/* ---- the table ---------------------------------------------------------------- */

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int path_cmp(const void *a, const void *b)
{
    const cg_intents_file *x = *(const cg_intents_file *const *)a, *y = *(const cg_intents_file *const *)b;
    return strcmp(x->path ? x->path : "", y->path ? y->path : "");
}

typedef struct id_sort { const char *id; size_t i; } id_sort;

static int id_cmp(const void *a, const void *b)
{
    const id_sort *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

static int intent_cmp(const void *a, const void *b)
{
    const cg_intent *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : strcmp(x->path, y->path);
}

static int ex_same(const ex_ent *a, const ex_ent *b)
{
    return strcmp(a->lang, b->lang) == 0 && strcmp(a->norm, b->norm) == 0;
}

static int ex_ent_cmp(const void *a, const void *b)
{
    const ex_ent *x = a, *y = b;
    int c = strcmp(x->lang, y->lang);
    if (c) return c;
    if ((c = strcmp(x->norm, y->norm))) return c;
    if ((c = strcmp(x->path, y->path))) return c;
    if (x->line != y->line) return (x->line > y->line) - (x->line < y->line);
    return (x->col > y->col) - (x->col < y->col);
}

/* Duplicate ids, button targets, specials, the fallback, examples shared. Runs with intents
 * in file order (meta[i] belongs to intents[i]). */
static void table_checks(bld *B, const char *settings_path)
{
    cg_intents *t = B->t;
    char b[64];
    id_sort *ids = malloc((t->nintents ? t->nintents : 1) * sizeof *ids);
    if (!ids) { B->oom = 1; return; }
    size_t n = 0;
    for (size_t i = 0; i < t->nintents; i++)
        if (*t->intents[i].id) ids[n++] = (id_sort){ t->intents[i].id, i };
    qsort(ids, n, sizeof *ids, id_cmp);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(ids[i].id, ids[i - 1].id) != 0) continue;
        size_t first = i - 1;
        while (first > 0 && strcmp(ids[first - 1].id, ids[i].id) == 0) first--;
        const meta *m = &B->meta[ids[i].i], *f = &B->meta[ids[first].i];
        table_report(B, CG_DIAG_ERROR, m->path, m->id_line, m->id_col,
                     "id: duplicate id \"%s\" (also in %s:%d:%d)", ids[i].id, f->path, f->id_line, f->id_col);
    }
    size_t suggested = 0;
    for (size_t r = 0; r < B->nrefs; r++) {
        const ref *rf = &B->refs[r];
        id_sort key = { rf->target, 0 };
        size_t lo = 0, hi = n;   /* first id >= target */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (strcmp(ids[mid].id, key.id) < 0) lo = mid + 1;
            else hi = mid;
        }
        if (lo < n && strcmp(ids[lo].id, key.id) == 0) continue;
        const char *sug = NULL;
        if (suggested++ < 20) {   /* bounded: each suggestion scans every id */
            size_t best = SIZE_MAX;
            for (size_t i = 0; i < n; i++) {
                const char *one[1] = { ids[i].id };
                if (cg_ld_suggest(rf->target, one, 1)) {
                    size_t dl = strlen(ids[i].id) > strlen(rf->target) ? strlen(ids[i].id) - strlen(rf->target)
                                                                        : strlen(rf->target) - strlen(ids[i].id);
                    if (dl < best) { best = dl; sug = ids[i].id; }
                }
            }
        }
        table_report(B, CG_DIAG_ERROR, rf->path, rf->line, rf->col, "%s: no intent \"%s\"%s%s%s", rf->jp,
                     cg_ld_show(b, rf->target), sug ? " (did you mean \"" : "", sug ? sug : "", sug ? "\"?)" : "");
    }
    free(ids);

    /* the same example (once normalised) in two intents: the matcher cannot
     * tell them apart on it */
    if (B->nex > 1) qsort(B->ex, B->nex, sizeof *B->ex, ex_ent_cmp);
    for (size_t i = 1; i < B->nex; i++) {
        const ex_ent *e = &B->ex[i];
        size_t first = i - 1;
        while (first > 0 && ex_same(&B->ex[first - 1], e)) first--;
        if (!ex_same(&B->ex[first], e) || !*e->norm) continue;
        const ex_ent *f = &B->ex[first];
        if (f->intent == e->intent || strcmp(t->intents[f->intent].id, t->intents[e->intent].id) == 0)
            continue;   /* same intent, or a duplicate id (already an error) */
        table_report(B, CG_DIAG_WARNING, e->path, e->line, e->col,
                     "%s: same as an example of intent \"%s\" (%s:%d:%d) once normalised", e->jp,
                     t->intents[f->intent].id, f->path, f->line, f->col);
    }

    size_t first_of[CG_SPECIAL_FALLBACK + 1];
    for (size_t k = 0; k <= CG_SPECIAL_FALLBACK; k++) first_of[k] = SIZE_MAX;
    for (size_t i = 0; i < t->nintents; i++) {
        cg_special sp = t->intents[i].special;
        if (sp == CG_SPECIAL_NONE) continue;
        if (first_of[sp] == SIZE_MAX) { first_of[sp] = i; continue; }
        const meta *m = &B->meta[i], *f = &B->meta[first_of[sp]];
        table_report(B, CG_DIAG_ERROR, m->path, m->sp_line, m->sp_col,
                     "special: \"%s\" is already the special of intent \"%s\" (%s); one intent per kind",
                     special_names[sp], t->intents[first_of[sp]].id, f->path);
    }
    if (first_of[CG_SPECIAL_FALLBACK] == SIZE_MAX)
        table_report(B, CG_DIAG_ERROR, settings_path, 0, 0,
                     "no fallback intent: one intent needs \"special\": \"fallback\" (what the bot says "
                     "when nothing matches)");
}

/* FNV-1a over every file's path and bytes, in path order. */
static void table_version(cg_intents *t, const cg_intents_file *const *files, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = (const unsigned char *)(files[i]->path ? files[i]->path : "");
        for (; *p; p++) h = (h ^ *p) * 0x100000001b3ULL;
        h = (h ^ 0) * 0x100000001b3ULL;
        uint64_t len = files[i]->len;
        for (int k = 0; k < 8; k++) h = (h ^ ((len >> (8 * k)) & 0xff)) * 0x100000001b3ULL;
        const unsigned char *d = (const unsigned char *)files[i]->data;
        for (size_t k = 0; d && k < files[i]->len; k++) h = (h ^ d[k]) * 0x100000001b3ULL;
    }
    snprintf(t->version, sizeof t->version, "%016llx", (unsigned long long)h);
}

typedef struct diag_sort { cg_diag d; size_t i; } diag_sort;

static int diag_cmp(const void *a, const void *b)
{
    const diag_sort *x = a, *y = b;
    int c = strcmp(x->d.path, y->d.path);
    if (c) return c;
    if (x->d.line != y->d.line) return (x->d.line > y->d.line) - (x->d.line < y->d.line);
    if (x->d.col != y->d.col) return (x->d.col > y->d.col) - (x->d.col < y->d.col);
    return (x->i > y->i) - (x->i < y->i);
}

/* This call's diagnostics in file, line, column order (stable). */
static void diags_sort(cg_diags *d, size_t from)
{
    size_t n = d->n - from;
    if (n < 2) return;
    diag_sort *v = malloc(n * sizeof *v);
    if (!v) return;
    for (size_t i = 0; i < n; i++) v[i] = (diag_sort){ d->v[from + i], i };
    qsort(v, n, sizeof *v, diag_cmp);
    for (size_t i = 0; i < n; i++) d->v[from + i] = v[i].d;
    free(v);
}

/* Open, check and close one file; fn fills the table from its root. */
static void one_file(bld *B, const cg_intents_file *src, void (*fn)(bld *, const cJSON *))
{
    cg_jfile f = { 0 };
    if (cg_jfile_open(&B->L, &f, src) == 0) fn(B, f.root);
    cg_jfile_close(&f);
    B->L.f = NULL;
}

static void one_intent(bld *B, const cg_intents_file *src)
{
    cg_jfile f = { 0 };
    if (cg_jfile_open(&B->L, &f, src) == 0) {
        cg_intents *t = B->t;
        cg_intent *it = &t->intents[t->nintents];
        get_intent(B, f.root, it, &B->meta[t->nintents]);
        t->nintents++;
    }
    cg_jfile_close(&f);
    B->L.f = NULL;
}

/*
 * Contract (see intents.h): files and their bytes are borrowed for the call.
 * On success *out owns a new snapshot (refs = 1); on any error *out is left
 * as it was and everything built is freed. Diagnostics are appended to d
 * (the caller frees them), this call's sorted by file, line and column.
 */
int cg_intents_build(const cg_intents_file *files, size_t nfiles, const cg_build_opts *opts,
                     cg_intents **out, cg_diags *d)
{
    static const cg_build_opts no_opts = { 0 };
    if (!out || !d || (!files && nfiles)) return -1;
    bld B = { .L = { .d = d }, .opts = opts ? opts : &no_opts };
    size_t dstart = d->n;
    B.t = cg_table_new();
    const cg_intents_file **sorted = malloc((nfiles ? nfiles : 1) * sizeof *sorted);
    if (!B.t || !sorted) {
        cg_diags_add(d, CG_DIAG_ERROR, "", 0, 0, "out of memory");
        cg_table_free(B.t);
        free(sorted);
        return -1;
    }
    B.a = cg_table_arena(B.t);
    for (size_t i = 0; i < nfiles; i++) sorted[i] = &files[i];
    qsort(sorted, nfiles, sizeof *sorted, path_cmp);

    const char *settings_path = NULL;
    const cg_intents_file *settings = NULL, *synonyms = NULL;
    size_t nint = 0;
    for (size_t i = 0; i < nfiles; i++) {
        const char *p = sorted[i]->path ? sorted[i]->path : "";
        if (i && strcmp(p, sorted[i - 1]->path ? sorted[i - 1]->path : "") == 0) {
            table_report(&B, CG_DIAG_ERROR, p, 0, 0, "the same file is given twice");
            continue;
        }
        const char *bn = base_name(p);
        if (strcmp(bn, "settings.json") == 0) {
            if (settings)
                table_report(&B, CG_DIAG_ERROR, p, 0, 0, "more than one settings.json (the first is %s)",
                             settings->path);
            else
                settings = sorted[i];
        } else if (strcmp(bn, "synonyms.json") == 0) {
            if (synonyms)
                table_report(&B, CG_DIAG_ERROR, p, 0, 0, "more than one synonyms.json (the first is %s)",
                             synonyms->path);
            else
                synonyms = sorted[i];
        } else {
            nint++;
        }
    }
    if (!settings) {
        settings_path = "settings.json";
        table_report(&B, CG_DIAG_ERROR, settings_path, 0, 0,
                     "missing: the table needs one settings.json (languages, default_language, phrases)");
    } else {
        settings_path = settings->path;
        one_file(&B, settings, get_settings);
    }
    if (synonyms) one_file(&B, synonyms, get_synonyms);

    if (nint > CG_MAX_INTENTS)
        table_report(&B, CG_DIAG_ERROR, settings_path, 0, 0, "too many intent files (%zu; at most %d)", nint,
                     CG_MAX_INTENTS);
    B.t->intents = alloc(&B, nint ? nint : 1, sizeof *B.t->intents);
    B.meta = calloc(nint ? nint : 1, sizeof *B.meta);
    if (!B.meta) B.oom = 1;
    for (size_t i = 0; i < nfiles && nint <= CG_MAX_INTENTS && !B.oom; i++) {
        const char *p = sorted[i]->path ? sorted[i]->path : "";
        if (sorted[i] == settings || sorted[i] == synonyms) continue;
        if (i && strcmp(p, sorted[i - 1]->path ? sorted[i - 1]->path : "") == 0) continue;
        const char *bn = base_name(p);
        if (strcmp(bn, "settings.json") == 0 || strcmp(bn, "synonyms.json") == 0) continue;
        one_intent(&B, sorted[i]);
    }
    if (!B.oom) table_checks(&B, settings_path);

    cg_intents *t = B.t;
    if (!B.oom) {
        qsort(t->intents, t->nintents, sizeof *t->intents, intent_cmp);
        for (size_t l = 0; l < t->settings.nlanguages && l < CG_LD_MAX_LANGS; l++)
            for (size_t i = 0; i < t->nintents; i++)
                for (size_t e = 0; e < t->intents[i].nexamples; e++)
                    if (t->intents[i].examples[e].n &&
                        strcmp(t->intents[i].examples[e].lang, t->settings.languages[l]) == 0)
                        t->per_lang_count[l]++;
        table_version(t, sorted, nfiles);
    }
    if (B.oom) table_report(&B, CG_DIAG_ERROR, settings_path, 0, 0, "out of memory while loading the table");
    if (B.L.errors == 0 && !B.opts->no_train) {
        size_t before = d->errors;
        t->matcher = cg_matcher_train(t, d);
        if (!t->matcher) {
            B.L.errors++;
            if (d->errors == before) cg_diags_add(d, CG_DIAG_ERROR, settings_path, 0, 0, "the matcher could not be trained");
        }
    }
    free(sorted);
    free(B.refs);
    free(B.meta);
    free(B.syn);
    for (size_t i = 0; i < B.nex; i++) free(B.ex[i].norm);
    free(B.ex);
    diags_sort(d, dstart);
    if (B.L.errors) {
        cg_table_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

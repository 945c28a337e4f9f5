/*
 * table.c: the life of an intent snapshot, and the small read-only helpers
 * every user of a snapshot needs.
 *
 * API in call order:
 *   cg_table_new()          (loader only) empty table + arena, refs = 1
 *   cg_arena_alloc/strndup  (loader only) memory owned by the table
 *   cg_intents_ref/unref    share / release; the last unref frees everything
 *   cg_intents_find         id -> intent (binary search, intents are sorted)
 *   cg_i18n_get             per-language text with fallbacks
 *   cg_settings_phrase      fixed dialog phrase by key and language
 *   cg_diags_add/print/free the diagnostics list the loader fills
 *
 * Extending: anything a snapshot owns outside its arena (today: the matcher
 * and each flow step's compiled regex) must be released in cg_table_free().
 */
#include <regex.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "civicgate/intents.h"
#include "loader_internal.h"
#include "matcher.h"

/* ---- arena ------------------------------------------------------------- */

#define ARENA_BLOCK (64 * 1024)
#define ARENA_MAX_ALLOC ((size_t)1 << 30)
#define ARENA_ALIGN 16

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    _Alignas(ARENA_ALIGN) unsigned char data[];
} arena_block;

struct cg_arena { arena_block *head; };

void *cg_arena_alloc(cg_arena *a, size_t n)
{
    if (n > ARENA_MAX_ALLOC) return NULL;
    if (n == 0) n = 1;
    n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK / 4 ? n : ARENA_BLOCK;
        arena_block *nb = malloc(sizeof *nb + cap);
        if (!nb) return NULL;
        nb->used = 0;
        nb->cap = cap;
        if (b && cap != ARENA_BLOCK) {
            /* a big one-off block goes behind the current one so that the
             * current block's free space stays usable */
            nb->next = b->next;
            b->next = nb;
            nb->used = n;
            memset(nb->data, 0, n);
            return nb->data;
        }
        nb->next = b;
        a->head = b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *cg_arena_strndup(cg_arena *a, const char *s, size_t n)
{
    char *p = cg_arena_alloc(a, n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void arena_free(cg_arena *a)
{
    arena_block *b = a->head;
    while (b) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

/* ---- table lifecycle ----------------------------------------------------- */

typedef struct cg_table {
    cg_intents pub;          /* first: a cg_intents * is a cg_table * */
    cg_arena arena;
} cg_table;

_Static_assert(sizeof(_Atomic int) == sizeof(int) && _Alignof(_Atomic int) == _Alignof(int),
               "cg_intents.refs is used as an _Atomic int");

cg_intents *cg_table_new(void)
{
    cg_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    atomic_init((_Atomic int *)&t->pub.refs, 1);
    return &t->pub;
}

cg_arena *cg_table_arena(cg_intents *t)
{
    return &((cg_table *)t)->arena;
}

void cg_table_free(cg_intents *t)
{
    if (!t) return;
    if (t->matcher) cg_matcher_free(t->matcher);
    for (size_t i = 0; i < t->nintents; i++) {
        cg_flow *f = t->intents[i].flow;
        if (!f) continue;
        for (size_t s = 0; s < f->nsteps; s++) {
            if (f->steps[s].pattern_re) {
                regfree(f->steps[s].pattern_re);
                free(f->steps[s].pattern_re);
            }
        }
    }
    cg_table *tb = (cg_table *)t;
    arena_free(&tb->arena);
    free(tb);
}

/* Contract: t must be a live snapshot (refs >= 1); returns t. Safe from any
 * thread. */
cg_intents *cg_intents_ref(cg_intents *t)
{
    if (t) atomic_fetch_add_explicit((_Atomic int *)&t->refs, 1, memory_order_relaxed);
    return t;
}

/* Contract: drops one reference; the last one frees the snapshot, its
 * matcher and compiled regexes. Every pointer borrowed from t dies with it.
 * NULL is a no-op. */
void cg_intents_unref(cg_intents *t)
{
    if (!t) return;
    if (atomic_fetch_sub_explicit((_Atomic int *)&t->refs, 1, memory_order_acq_rel) == 1)
        cg_table_free(t);
}

const cg_intent *cg_intents_find(const cg_intents *t, const char *id)
{
    if (!t || !id) return NULL;
    size_t lo = 0, hi = t->nintents;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(id, t->intents[mid].id);
        if (c == 0) return &t->intents[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

/* ---- texts ---------------------------------------------------------------- */

const char *cg_i18n_get(const cg_i18n *t, const char *lang, const char *fallback_lang)
{
    if (!t || t->n == 0) return NULL;
    if (lang)
        for (size_t i = 0; i < t->n; i++)
            if (strcmp(t->v[i].lang, lang) == 0) return t->v[i].text;
    if (fallback_lang)
        for (size_t i = 0; i < t->n; i++)
            if (strcmp(t->v[i].lang, fallback_lang) == 0) return t->v[i].text;
    return t->v[0].text;
}

const char *cg_settings_phrase(const cg_settings *s, const char *key, const char *lang)
{
    if (!s || !key) return key;
    for (size_t i = 0; i < s->nphrases; i++) {
        if (strcmp(s->phrases[i].key, key) != 0) continue;
        const char *txt = cg_i18n_get(&s->phrases[i].text, lang, s->default_language);
        return txt ? txt : key;
    }
    return key;
}

/* ---- diagnostics ------------------------------------------------------- */

void cg_diags_add(cg_diags *d, cg_diag_level lvl, const char *path, int line, int col,
                  const char *fmt, ...)
{
    if (!d) return;
    /* counted even when the entry cannot be stored, so that a table with an
     * error is never accepted because memory ran out */
    if (lvl == CG_DIAG_ERROR) d->errors++;
    else d->warnings++;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        cg_diag *v = realloc(d->v, cap * sizeof *v);
        if (!v) return;
        d->v = v;
        d->cap = cap;
    }
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *p = strdup(path ? path : "");
    char *m = strdup(buf);
    if (!p || !m) {
        free(p);
        free(m);
        return;
    }
    d->v[d->n++] = (cg_diag){ .level = lvl, .path = p, .line = line, .col = col, .msg = m };
}

void cg_diags_print(const cg_diags *d, void *FILE_stream)
{
    FILE *f = FILE_stream;
    if (!d || !f) return;
    for (size_t i = 0; i < d->n; i++) {
        const cg_diag *g = &d->v[i];
        const char *lvl = g->level == CG_DIAG_ERROR ? "error" : "warning";
        if (g->line > 0)
            fprintf(f, "%s:%d:%d: %s: %s\n", g->path, g->line, g->col, lvl, g->msg);
        else
            fprintf(f, "%s: %s: %s\n", g->path, lvl, g->msg);
    }
}

void cg_diags_free(cg_diags *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].path);
        free(d->v[i].msg);
    }
    free(d->v);
    memset(d, 0, sizeof *d);
}

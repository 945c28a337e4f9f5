/*
 * loader_internal.h: private seam between the intent loader (engine/loader.c)
 * and the snapshot lifecycle (engine/table.c). Not part of any public
 * contract; nothing outside those two files includes it.
 *
 * A snapshot owns one arena: every string and array of the table (intents,
 * examples, buttons, flows, settings, synonyms) is carved from it, so freeing
 * a snapshot is: matcher, compiled regexes, arena. The loader builds into a
 * fresh table and either hands it out (refs = 1) or frees it whole.
 */
#ifndef CG_ENGINE_LOADER_INTERNAL_H
#define CG_ENGINE_LOADER_INTERNAL_H

#include <stddef.h>
#include "civicgate/intents.h"

typedef struct cg_arena cg_arena;

/* New empty table with its arena, refs = 1; NULL on ENOMEM. Free with
 * cg_table_free() (or cg_intents_unref() once handed out). */
cg_intents *cg_table_new(void);
/* The table's arena; borrowed, lives as long as the table. */
cg_arena *cg_table_arena(cg_intents *t);
/* Free everything the table holds: matcher, every step's pattern_re
 * (regfree + free), the arena, the table itself. NULL is a no-op. */
void cg_table_free(cg_intents *t);

/* Zeroed block of n bytes, aligned for any type, owned by the arena;
 * NULL on ENOMEM or when n is absurd (> 1 GiB). */
void *cg_arena_alloc(cg_arena *a, size_t n);
/* NUL-terminated copy of s[0..n), owned by the arena; NULL on ENOMEM. */
char *cg_arena_strndup(cg_arena *a, const char *s, size_t n);


/* ---- between engine/loader.c and engine/loader_json.c ------------------ */

#include <stdint.h>
#include <cjson/cJSON.h>

#define CG_LD_MAX_DEPTH       32    /* JSON nesting levels per file */
#define CG_LD_MAX_FILE_DIAGS  100   /* errors (and warnings) shown per file */
#define CG_LD_MAX_LANGS       16    /* = size of cg_intents.per_lang_count */

/* Where a parsed value sits in its file: byte offsets of its key (the
 * opening quote; UINT32_MAX when it has none) and of the value itself. */
typedef struct cg_jpos { const cJSON *node; uint32_t koff, voff; } cg_jpos;

/* One parsed file. */
typedef struct cg_jfile {
    const char *path;            /* borrowed from the caller's cg_intents_file */
    char *buf; size_t len;       /* NUL-terminated copy of the bytes; owned */
    size_t base;                 /* 3 when the file starts with a UTF-8 BOM */
    cJSON *root;                 /* NULL when the file could not be parsed */
    cg_jpos *pos; size_t npos;   /* sorted by node pointer */
    size_t *lines; size_t nlines;/* offsets of line starts, built on first use */
    unsigned ndiags[2];          /* errors, warnings shown for this file */
    size_t c_off; int c_line, c_col;   /* last position computed (a cursor) */
} cg_jfile;

/* The validation context of one cg_intents_build() call. */
typedef struct cg_ld {
    cg_diags *d;
    size_t errors;               /* every error, shown or not: any refuses the table */
    cg_jfile *f;                 /* file being validated, or NULL (table-wide checks) */
} cg_ld;

/* Parse src into f (zeroed by the caller): size limit, UTF-8 (no NUL),
 * nesting depth, JSON syntax (cJSON) and the position map. Returns 0 with
 * f->root set, or -1 after reporting why. Free with cg_jfile_close(). */
int cg_jfile_open(cg_ld *L, cg_jfile *f, const cg_intents_file *src);
void cg_jfile_close(cg_jfile *f);

/* Report about L->f at value `at` (its key when at_key and it has one;
 * whole-file when at is NULL) as "jp: message" (just "message" when jp is
 * empty). Counts errors in L->errors; shows at most CG_LD_MAX_FILE_DIAGS
 * errors and as many warnings per file (then one line saying so). */
void cg_ld_report(cg_ld *L, cg_diag_level lvl, const cJSON *at, int at_key, const char *jp,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* 1-based line and column (in characters) of `at` in f; 0, 0 when unknown. */
void cg_ld_line_col(cg_jfile *f, const cJSON *at, int at_key, int *line, int *col);

/* Report duplicate keys of object obj and, when known is not NULL (a
 * NULL-terminated list), keys not in it, with a "did you mean" suggestion.
 * Returns the number of errors reported. */
size_t cg_ld_check_keys(cg_ld *L, const cJSON *obj, const char *jp, const char *const *known);

/* The candidate closest to word (edit distance with transpositions), or
 * NULL when none is close enough to be a likely typo. */
const char *cg_ld_suggest(const char *word, const char *const *cands, size_t ncands);

/* s made safe to quote in a one-line diagnostic: at most 40 bytes (cut at a
 * character boundary, "..." appended), control characters and '"' as '?'. */
const char *cg_ld_show(char buf[64], const char *s);

/* "object", "array", "string", "number", "boolean" or "null". */
const char *cg_ld_type_name(const cJSON *j);

#endif

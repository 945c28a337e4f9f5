/*
 * text.h: normalisation and tokenisation of citizens' text (engine/text.c).
 *
 * Pipeline: validate UTF-8 → NFKC + case fold (utf8proc) → strip accents
 * where the language allows → Arabic normalisation (alef/ya variants, ta
 * marbuta, tatweel, diacritics) → punctuation to spaces → tokens → synonyms
 * (by the caller's table) → Snowball stem per language (libstemmer).
 * Pure functions; the stemmer cache is per cg_text_ctx, so one ctx per thread.
 */
#ifndef CIVICGATE_TEXT_H
#define CIVICGATE_TEXT_H

#include <stddef.h>

/* 1 when s[0..len) is valid UTF-8 with no NUL byte, else 0. */
int cg_text_valid_utf8(const char *s, size_t len);

/* Normalised form: NFKC, folded, accents stripped for lang (Latin-script
 * languages), Arabic-normalised, punctuation and symbols as single spaces,
 * trimmed. lang may be NULL (generic rules). Returns a malloc'd NUL-terminated
 * string the caller frees, or NULL on invalid UTF-8 or allocation failure. */
char *cg_text_normalize(const char *s, size_t len, const char *lang);

typedef struct cg_text_ctx cg_text_ctx;   /* stemmers per language */
cg_text_ctx *cg_text_ctx_new(void);
void cg_text_ctx_free(cg_text_ctx *c);

typedef struct cg_tokens {
    char **v;      /* each malloc'd */
    size_t n, cap;
} cg_tokens;

/* The next word of normalised text (words are runs of bytes other than
 * ' ') at or after p: its start, with *end just past it; NULL when only
 * spaces are left. cg_text_tokenize and the matcher split words with it. */
static inline const char *cg_text_next_word(const char *p, const char **end)
{
    while (*p == ' ')
        p++;
    if (!*p)
        return NULL;
    const char *e = p;
    while (*e && *e != ' ')
        e++;
    *end = e;
    return p;
}

/* Split normalised text into tokens and append them to out (stemmed for lang
 * when stem != 0 and libstemmer knows the language). Returns 0 or -1 (ENOMEM). */
int cg_text_tokenize(cg_text_ctx *c, const char *normalized, const char *lang, int stem,
                     cg_tokens *out);
void cg_tokens_free(cg_tokens *t);

/* Snowball algorithm name for an ISO 639-1 code ("en" → "english"), or NULL. */
const char *cg_text_stemmer_name(const char *lang);

/* Added by the matcher (engine/matcher.c) for speed; both are additions. */

/* Stem one token (normalised, UTF-8, len bytes) for lang. Returns a pointer
 * borrowed from c, valid until the next call on c, with its length in
 * *out_len; when lang has no stemmer (or the word is longer than 64 bytes)
 * returns word itself unchanged. Never NULL except on allocation failure. */
const char *cg_text_stem(cg_text_ctx *c, const char *lang, const char *word, size_t len,
                         size_t *out_len);

/* 1 when cg_text_normalize strips accents for lang (Latin-script languages,
 * and NULL / unknown codes), 0 for scripts where marks carry letters
 * (Cyrillic, Greek, Indic...). Arabic harakat are stripped either way. */
int cg_text_strips_accents(const char *lang);

#endif

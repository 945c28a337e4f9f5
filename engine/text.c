/*
 * text.c: normalisation and tokenisation of citizens' text.
 *
 * What: turns what a citizen typed (any UTF-8) into the canonical form the
 * intent engine compares: one pass of utf8proc decomposition (compatibility
 * forms, case folding), a pass over code points that applies the rules below,
 * and utf8proc recomposition. Rules of the code-point pass:
 *   - combining diacritics (U+0300 blocks) are dropped for Latin-script
 *     languages (and for lang == NULL), kept for Cyrillic, Greek, Indic, ...;
 *   - Arabic: alef variants (أ إ آ ٱ) → ا, ى → ي, ة → ه, tatweel dropped,
 *     harakat U+064B–U+065F and U+0670 dropped, Arabic-Indic and Persian
 *     digits → ASCII;
 *   - punctuation, symbols, emoji, controls, separators → one space; an
 *     apostrophe between two letters is dropped ("hasn't" → "hasnt", so that
 *     text typed without it matches);
 *   - a space is put where Arabic-script letters meet other letters, so that
 *     mixed-script text tokenises;
 *   - a combining mark left with no base letter (emoji variation selectors) is
 *     dropped; spaces are collapsed and trimmed.
 * Text that is all ASCII and basic Arabic (most messages) takes a fast path
 * with the same rules and no utf8proc tables (normalize_fast; test_text.c
 * checks it against the Unicode path for every code point of the block).
 * Tokens are the space-separated words of normalised text; stemming is
 * Snowball (libstemmer), one stemmer per language cached in a cg_text_ctx.
 *
 * API in call order: cg_text_valid_utf8, cg_text_normalize, cg_text_ctx_new,
 * cg_text_tokenize / cg_text_stem, cg_tokens_free, cg_text_ctx_free.
 *
 * Extending: a new language needs its Snowball name in stemmer_names[] (if
 * libstemmer has one) and, for a non-Latin script whose marks carry meaning,
 * an entry in keep_marks[]. A new Arabic-script normalisation goes in
 * map_arabic(). Tests: tests/unit/test_text.c.
 */
#include "civicgate/text.h"

#include <libstemmer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define TEXT_MAX_STEM_LANGS 16   /* distinct languages one ctx caches */
#define TEXT_MAX_STEM_WORD  64   /* longer tokens are not stemmed */

/* ---- UTF-8 ------------------------------------------------------------- */

int cg_text_valid_utf8(const char *s, size_t len)
{
    if (!s && len)
        return 0;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {          /* ASCII fast path */
            if (p[i] == 0)
                return 0;
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        size_t rest = len - i;
        utf8proc_ssize_t n = utf8proc_iterate(p + i, rest > 4 ? 4 : (utf8proc_ssize_t)rest, &cp);
        /* utf8proc rejects overlong forms, surrogates, > U+10FFFF and
         * truncated sequences. */
        if (n <= 0 || cp < 0)
            return 0;
        i += (size_t)n;
    }
    return 1;
}

/* ---- languages --------------------------------------------------------- */

/* Primary subtag of lang ("pt-br" → "pt") into buf; "" for NULL. */
static void lang_primary(const char *lang, char buf[8])
{
    size_t i = 0;
    if (lang)
        for (; lang[i] && lang[i] != '-' && lang[i] != '_' && i < 7; i++)
            buf[i] = (char)(lang[i] | 0x20);
    buf[i] = 0;
}

static const struct { const char *iso, *name; } stemmer_names[] = {
    {"ar", "arabic"},     {"hy", "armenian"},  {"eu", "basque"},     {"ca", "catalan"},
    {"da", "danish"},     {"nl", "dutch"},     {"en", "english"},    {"fi", "finnish"},
    {"fr", "french"},     {"de", "german"},    {"el", "greek"},      {"hi", "hindi"},
    {"hu", "hungarian"},  {"id", "indonesian"}, {"ga", "irish"},     {"it", "italian"},
    {"lt", "lithuanian"}, {"ne", "nepali"},    {"no", "norwegian"},  {"nb", "norwegian"},
    {"pt", "portuguese"}, {"ro", "romanian"},  {"ru", "russian"},    {"sr", "serbian"},
    {"es", "spanish"},    {"sv", "swedish"},   {"ta", "tamil"},      {"tr", "turkish"},
    {"yi", "yiddish"},    {NULL, NULL},
};

const char *cg_text_stemmer_name(const char *lang)
{
    char p[8];
    lang_primary(lang, p);
    for (size_t i = 0; stemmer_names[i].iso; i++)
        if (strcmp(stemmer_names[i].iso, p) == 0)
            return stemmer_names[i].name;
    return NULL;
}

/* Languages whose letters are written with combining marks we must keep. */
static const char *const keep_marks[] = {
    "ru", "uk", "bg", "be", "mk", "sr", "el", "hi", "ne", "mr", "bn", "pa", "gu", "ta",
    "te", "kn", "ml", "si", "th", "lo", "km", "my", "ka", "hy", "am", "he", "yi", "fa",
    "ur", "ar", "zh", "ja", "ko", "vi", NULL,
};

int cg_text_strips_accents(const char *lang)
{
    char p[8];
    lang_primary(lang, p);
    for (size_t i = 0; keep_marks[i]; i++)
        if (strcmp(keep_marks[i], p) == 0)
            return 0;
    return 1;
}

/* ---- normalisation ----------------------------------------------------- */

static int is_arabic_script(utf8proc_int32_t c)
{
    return (c >= 0x0600 && c <= 0x06FF) || (c >= 0x0750 && c <= 0x077F) ||
           (c >= 0x08A0 && c <= 0x08FF) || (c >= 0xFB50 && c <= 0xFDFF) ||
           (c >= 0xFE70 && c <= 0xFEFF);
}

static int is_generic_diacritic(utf8proc_int32_t c)
{
    return (c >= 0x0300 && c <= 0x036F) || (c >= 0x1AB0 && c <= 0x1AFF) ||
           (c >= 0x1DC0 && c <= 0x1DFF) || (c >= 0x20D0 && c <= 0x20FF) ||
           (c >= 0xFE20 && c <= 0xFE2F);
}

/* Arabic rules: returns the replacement code point, or -1 to drop c. */
static utf8proc_int32_t map_arabic(utf8proc_int32_t c)
{
    switch (c) {
    case 0x0622: case 0x0623: case 0x0625: case 0x0671:
        return 0x0627;                       /* alef variants → bare alef */
    case 0x0649: return 0x064A;              /* alef maqsura → ya */
    case 0x0629: return 0x0647;              /* ta marbuta → ha */
    case 0x0640: return -1;                  /* tatweel */
    case 0x0670: return -1;                  /* superscript alef */
    default: break;
    }
    if (c >= 0x064B && c <= 0x065F)
        return -1;                           /* harakat, shadda, sukun, hamza marks */
    if (c >= 0x0660 && c <= 0x0669)
        return '0' + (c - 0x0660);           /* Arabic-Indic digits */
    if (c >= 0x06F0 && c <= 0x06F9)
        return '0' + (c - 0x06F0);           /* Extended (Persian) digits */
    return c;
}

static int is_apostrophe(utf8proc_int32_t c)
{
    return c == 0x27 || c == 0x2019 || c == 0x02BC || c == 0x2018 || c == 0x60 || c == 0xB4;
}

enum { K_SPACE, K_LETTER, K_NUMBER, K_MARK };

static int kind_of(utf8proc_int32_t c)
{
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        return K_LETTER;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return K_NUMBER;
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
        return K_MARK;
    default:
        return K_SPACE;
    }
}

/* Arabic-block code points the fast path leaves to the full path: those with
 * a compatibility or canonical decomposition other than the hamza/madda
 * letters handled below, and the Quranic and other combining marks. */
static int arabic_needs_full_path(utf8proc_int32_t c)
{
    return (c >= 0x0610 && c <= 0x061A) || (c >= 0x0675 && c <= 0x0678) || c == 0x06C0 ||
           c == 0x06C2 || c == 0x06D3 || (c >= 0x06D6 && c <= 0x06ED);
}

/* The same rules for text that is all ASCII and basic Arabic (U+0600 to
 * U+06FF), most messages in the languages we serve, without utf8proc's
 * decomposition tables. NULL when s has anything else (the caller then takes
 * the full path, which gives the same result for this subset:
 * test_text.c checks every code point of the block). */
static char *normalize_fast(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x80) {
            if (p[i] == 0)
                return NULL;
            continue;
        }
        if (p[i] < 0xD8 || p[i] > 0xDB || i + 1 >= len)
            return NULL;
        utf8proc_int32_t c = ((p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F);
        if (arabic_needs_full_path(c))
            return NULL;
        i++;
    }
    char *out = malloc(len * 2 + 1);
    if (!out)
        return NULL;
    size_t w = 0;
    int last = K_SPACE, last_arabic = 0;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t c;
        if (p[i] < 0x80) {
            c = p[i++];
        } else {
            c = ((p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F);
            i += 2;
        }
        int k;
        int arabic = 0;
        if (c < 0x80) {
            if (c >= 'A' && c <= 'Z')
                c += 32;
            k = (c >= 'a' && c <= 'z') ? K_LETTER : (c >= '0' && c <= '9') ? K_NUMBER : K_SPACE;
        } else {
            /* decompositions of the hamza/madda letters, hamza then dropped */
            if (c == 0x0624)
                c = 0x0648;
            else if (c == 0x0626)
                c = 0x064A;
            c = map_arabic(c);
            if (c < 0)
                continue;
            arabic = is_arabic_script(c);
            k = kind_of(c);
            if (k == K_MARK) {   /* not reached: marks are dropped or full path */
                free(out);
                return NULL;
            }
        }
        if (k == K_SPACE) {
            if ((c == '\'' || c == '`') && last == K_LETTER && i < len) {
                int next;
                if (p[i] < 0x80)
                    next = ((p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'z') ? K_LETTER : K_SPACE;
                else
                    next = kind_of(((p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F));
                if (next == K_LETTER)
                    continue;                /* hasn't → hasnt */
            }
            if (last != K_SPACE)
                out[w++] = ' ';
            last = K_SPACE;
            continue;
        }
        if (k == K_LETTER && last == K_LETTER && arabic != last_arabic)
            out[w++] = ' ';                  /* script change inside a word */
        if (c < 0x80) {
            out[w++] = (char)c;
        } else {
            out[w++] = (char)(0xC0 | (c >> 6));
            out[w++] = (char)(0x80 | (c & 0x3F));
        }
        last = k;
        if (k == K_LETTER)
            last_arabic = arabic;
    }
    while (w > 0 && out[w - 1] == ' ')
        w--;
    out[w] = 0;
    return out;
}

char *cg_text_normalize(const char *s, size_t len, const char *lang)
{
    if (!cg_text_valid_utf8(s, len))
        return NULL;
    if (len < 4096) {
        char *fast = normalize_fast(s ? s : "", len);
        if (fast)
            return fast;
        /* NULL: not ASCII/Arabic only (or ENOMEM, which the full path meets again) */
    }
    if (len > (size_t)1 << 28)
        return NULL;
    const utf8proc_option_t opts = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT |
                                   UTF8PROC_CASEFOLD;
    const utf8proc_uint8_t *in = (const utf8proc_uint8_t *)(len ? s : "");
    /* Decomposition can grow text (up to 18 code points for one); size it. */
    utf8proc_ssize_t cap = (utf8proc_ssize_t)len + 16;
    utf8proc_int32_t *buf = malloc(((size_t)cap + 1) * sizeof *buf);
    if (!buf)
        return NULL;
    utf8proc_ssize_t n = utf8proc_decompose(in, (utf8proc_ssize_t)len, buf, cap, opts);
    if (n > cap) {
        cap = n;
        utf8proc_int32_t *nb = realloc(buf, ((size_t)cap + 1) * sizeof *buf);
        if (!nb) {
            free(buf);
            return NULL;
        }
        buf = nb;
        n = utf8proc_decompose(in, (utf8proc_ssize_t)len, buf, cap, opts);
    }
    if (n < 0) {
        free(buf);
        return NULL;
    }

    /* A script change inserts a space, so the output may be longer. */
    utf8proc_int32_t *ob = malloc(((size_t)n * 2 + 2) * sizeof *ob);
    if (!ob) {
        free(buf);
        return NULL;
    }
    const int strip = cg_text_strips_accents(lang);
    utf8proc_ssize_t w = 0;
    int last = K_SPACE;          /* kind of the last code point written */
    int last_arabic = 0;         /* script of the last letter written */
    for (utf8proc_ssize_t i = 0; i < n; i++) {
        utf8proc_int32_t c = buf[i];
        int arabic = is_arabic_script(c);
        if (arabic) {
            c = map_arabic(c);
            if (c < 0)
                continue;
            arabic = is_arabic_script(c);
        }
        if (strip && is_generic_diacritic(c))
            continue;
        int k = kind_of(c);
        if (k == K_SPACE && is_apostrophe(c) && last == K_LETTER && i + 1 < n &&
            kind_of(buf[i + 1]) == K_LETTER)
            continue;                        /* hasn't → hasnt */
        if (k == K_MARK) {
            if (last == K_SPACE)
                continue;                    /* no base: variation selector etc. */
            ob[w++] = c;
            continue;
        }
        if (k == K_SPACE) {
            if (last != K_SPACE) {
                ob[w++] = ' ';
                last = K_SPACE;
            }
            continue;
        }
        if (k == K_LETTER && last == K_LETTER && arabic != last_arabic)
            ob[w++] = ' ';                  /* script change inside a word */
        ob[w++] = c;
        last = k;
        if (k == K_LETTER)
            last_arabic = arabic;
    }
    while (w > 0 && ob[w - 1] == ' ')
        w--;
    /* Recompose (NFKC) and encode in place; reencode writes a NUL. */
    utf8proc_ssize_t bytes = utf8proc_reencode(ob, w, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    free(buf);
    if (bytes < 0) {
        free(ob);
        return NULL;
    }
    char *out = malloc((size_t)bytes + 1);
    if (out) {
        memcpy(out, ob, (size_t)bytes);
        out[bytes] = 0;
    }
    free(ob);
    return out;
}

/* ---- stemming ---------------------------------------------------------- */

struct cg_text_ctx {
    struct {
        char lang[8];
        struct sb_stemmer *st;   /* NULL: no stemmer for lang */
    } cache[TEXT_MAX_STEM_LANGS];
    size_t n;
};

cg_text_ctx *cg_text_ctx_new(void)
{
    return calloc(1, sizeof(cg_text_ctx));
}

void cg_text_ctx_free(cg_text_ctx *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        if (c->cache[i].st)
            sb_stemmer_delete(c->cache[i].st);
    free(c);
}

/* Stemmer for lang (NULL when none), created on first use. */
static struct sb_stemmer *ctx_stemmer(cg_text_ctx *c, const char *lang)
{
    char p[8];
    lang_primary(lang, p);
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->cache[i].lang, p) == 0)
            return c->cache[i].st;
    const char *name = cg_text_stemmer_name(p);
    struct sb_stemmer *st = name ? sb_stemmer_new(name, "UTF_8") : NULL;
    if (c->n < TEXT_MAX_STEM_LANGS) {
        memcpy(c->cache[c->n].lang, p, sizeof p);
        c->cache[c->n].st = st;
        c->n++;
    } else if (st) {
        /* Cache full (a table never has this many languages): do not stem
         * rather than leak a stemmer per call. */
        sb_stemmer_delete(st);
        st = NULL;
    }
    return st;
}

const char *cg_text_stem(cg_text_ctx *c, const char *lang, const char *word, size_t len,
                         size_t *out_len)
{
    *out_len = len;
    if (!c || !lang || len == 0 || len > TEXT_MAX_STEM_WORD)
        return word;
    struct sb_stemmer *st = ctx_stemmer(c, lang);
    if (!st)
        return word;
    const sb_symbol *r = sb_stemmer_stem(st, (const sb_symbol *)word, (int)len);
    if (!r)
        return NULL;
    *out_len = (size_t)sb_stemmer_length(st);
    return (const char *)r;
}

/* ---- tokens ------------------------------------------------------------ */

static int tokens_push(cg_tokens *t, const char *s, size_t len)
{
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 16;
        char **nv = realloc(t->v, nc * sizeof *nv);
        if (!nv)
            return -1;
        t->v = nv;
        t->cap = nc;
    }
    char *d = malloc(len + 1);
    if (!d)
        return -1;
    memcpy(d, s, len);
    d[len] = 0;
    t->v[t->n++] = d;
    return 0;
}

int cg_text_tokenize(cg_text_ctx *c, const char *normalized, const char *lang, int stem,
                     cg_tokens *out)
{
    const char *e = normalized;
    for (const char *p = normalized; (p = cg_text_next_word(p, &e)) != NULL; p = e) {
        size_t len = (size_t)(e - p);
        const char *w = p;
        if (stem && c) {
            w = cg_text_stem(c, lang, p, len, &len);
            if (!w)
                return -1;
        }
        if (tokens_push(out, w, len) != 0)
            return -1;
    }
    return 0;
}

void cg_tokens_free(cg_tokens *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i]);
    free(t->v);
    t->v = NULL;
    t->n = t->cap = 0;
}

/*
 * matcher.c: what did the citizen ask? A discriminative linear classifier
 * over the intent table's examples, trained when the table loads.
 *
 * Model. Each text is normalised (cg_text_normalize), split into words,
 * rewritten by the table's synonyms (longest match first), and turned into
 * two blocks of hashed features:
 *   - word block: Snowball stems (unigrams) and stem bigrams;
 *   - char block: character n-grams (opts.char_min..char_max code points,
 *     4-grams by default) of each unstemmed word padded as "<word>", which is
 *     what tolerates typos.
 * Only features seen in training are kept (one dictionary per block from
 * 64-bit hash to index). Values are sublinear TF x smoothed IDF, each block
 * L2-normalised and weighted (opts.char_weight) so that the vector has unit
 * norm; features the table never saw count in the norm but carry no weight.
 * liblinear trains one multi-class model for all languages (each example
 * stemmed with its own language's stemmer): Crammer-Singer by default, whose
 * dual solution leaves the weights exactly sparse; a weight row used by many
 * intents is stored dense and vector-aligned, the rest CSR by feature.
 * Examples that two intents share are kept out of training (they separate
 * nothing) and go into an exact-text map instead: a citizen typing an
 * example gets its intents first (a tie, hence ambiguous, when shared).
 *
 * Large tables. liblinear's Crammer-Singer keeps a dense weight matrix of
 * features x intents and its training work grows with examples x intents:
 * past about a thousand intents it takes many seconds and gigabytes. From
 * opts.large_min_intents trained intents up (1,000 by default, chosen on
 * bench/intents' synthetic catalogues, docs/benchmarks.md "Matcher at
 * 10,000 intents") the same vectors go instead to engine/matcher_index.c:
 * nearest centroid by cosine, found through an inverted index whose work per
 * message is bounded (so time per message grows far slower than the table),
 * the top candidates rescored exactly. Everything else here (features,
 * exact-text map, keywords, language) is shared; match_large() applies it
 * to the candidates, with the confidence described there. On real, distinct
 * intents the centroid model is less accurate than liblinear (about 9
 * points on the 150-intent benchmark), which is why small tables keep
 * liblinear.
 *
 * Confidence. Decision values s go through a softmax (temperature
 * 1/opts.calib_a) in which the runner-up does not count against the top:
 * p1 = e1 / (e1 + rest), p2 = e2 / (e1 + rest). Text unlike every intent
 * spreads the mass and falls below settings.threshold; two near-identical
 * intents both keep a high confidence and come out ambiguous (top two within
 * settings.ambiguity_margin) instead of falling back. Keywords: an intent with
 * "must" keywords none of which appears cannot be the answer; each "should"
 * keyword present adds opts.should_bonus to s. Intents with special ==
 * fallback (or no examples) are not classes.
 *
 * Language. Script first: a text mostly in Arabic letters goes to the
 * table's Arabic-script language; otherwise a naive Bayes model of character
 * 1-3-grams learned from the table's own examples picks among the others, and
 * the default language wins unless another is clearly more likely.
 *
 * Speed. After training, a word cache maps each training word to its stem
 * (per language), its stem's feature and its char n-grams' features, so a
 * known word costs one probe; per-call buffers and the stemmers live in
 * thread-local scratch. bench/intents measures it (docs/benchmarks.md).
 *
 * API in call order: cg_matcher_train() (the loader), cg_intents_match() /
 * cg_intents_detect_lang() (any thread, concurrently), cg_matcher_memory(),
 * cg_matcher_free(). After training the matcher is read-only.
 *
 * Extending: a new feature family goes in split_words()/features() (training
 * and matching both go through them, so they cannot drift; the word cache in
 * wcache_build() must produce the same ids); a new knob in cg_matcher_opts
 * (engine/matcher.h) with its default in cg_matcher_opts_default(); measure
 * with bench/intents/run.sh and update docs/benchmarks.md.
 */
#include "matcher.h"

#include <linear.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "civicgate/text.h"
#include "matcher_index.h"

#define M_MAX_TOKENS    512          /* words of one text considered */
#define M_MAX_LANGS     16
#define M_LM_BUCKETS    (1u << 14)   /* language model: hashed char 1-3-grams */
#define M_LM_MARGIN     1.5          /* nats another language must beat the default by */
#define M_MAX_SYN_TOKENS 8           /* words in one synonym phrase */
#define M_MAX_KW_TOKENS  8           /* words in one keyword phrase */
#define M_LARGE_MAX_K    256         /* candidates rescored on the large path */

/* Eight floats: GCC/Clang vector extension, SSE or AVX as the target has. */
typedef float v8f __attribute__((vector_size(32)));

/* acc[0..8n) += v * row[0..8n), both 32-byte aligned. Compiled for AVX2+FMA
 * as well as the baseline; the loader picks by CPU (GCC target_clones). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("avx2,fma", "default")))
#endif
static void dense_add(float *acc, const float *row, float v, size_t n)
{
    v8f *a = (v8f *)acc;
    const v8f *r = (const v8f *)row;
    v8f vv = {v, v, v, v, v, v, v, v};
    for (size_t j = 0; j < n; j++)
        a[j] += vv * r[j];
}

/* ---- hashing ----------------------------------------------------------- */

#define H_SEED_WORD   0x1111u
#define H_SEED_BIGRAM 0x2222u
#define H_SEED_CHAR   0x3333u
#define H_SEED_LM     0x4444u

static inline uint64_t h_init(uint64_t seed)
{
    return 0xcbf29ce484222325ULL ^ (seed * 0x9E3779B97F4A7C15ULL);
}
static inline uint64_t h_byte(uint64_t h, unsigned char c)
{
    return (h ^ c) * 0x100000001b3ULL;
}
static inline uint64_t h_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}
static uint64_t h_bytes(uint64_t seed, const char *s, size_t n)
{
    uint64_t h = h_init(seed);
    for (size_t i = 0; i < n; i++)
        h = h_byte(h, (unsigned char)s[i]);
    return h_mix(h);
}

/* ---- the model --------------------------------------------------------- */

typedef struct kw {            /* one keyword phrase */
    uint64_t words[M_MAX_KW_TOKENS];               /* unstemmed word hashes */
    uint64_t stems[M_MAX_LANGS][M_MAX_KW_TOKENS];  /* per table language */
    uint8_t n;
} kw;

typedef struct cls_kw {        /* keywords of one class */
    uint32_t cls;
    kw *must; size_t nmust;
    kw *should; size_t nshould;
    /* the kw_present mask bits of every must / should keyword's first word
     * and stems: no bit in the question's mask settles the whole list */
    uint64_t must_any, should_any;
} cls_kw;

typedef struct syn {           /* variant phrase → canonical words */
    uint64_t from[M_MAX_SYN_TOKENS];
    uint8_t nfrom;
    const char *to[M_MAX_SYN_TOKENS];   /* into the matcher's copy of syn_to */
    uint32_t tolen[M_MAX_SYN_TOKENS];
    uint8_t nto;
} syn;

struct cg_matcher {
    cg_matcher_opts o;
    double char_scale, word_scale;

    /* feature dictionaries, one per block (words, chars) so that the word
     * table, probed on every match, stays small and cached: open
     * addressing, key 0 = empty, vals = feature index | block << 31 */
    struct dict { uint64_t *keys; uint32_t *vals; size_t cap, n; } d[2];
    size_t nfeat;
    float *idf;
    double idf_unseen;   /* idf of a feature no training example has */

    /* weights, CSR by feature */
    uint32_t *row;   /* nfeat + 1 */
    uint16_t *wcls;
    float *wval;
    size_t nnz;
    float *bias;     /* per class */
    size_t nclass;
    size_t npad;     /* nclass rounded up to 8 (score vectors) */
    uint32_t *dslot; /* per feature: row of dense[], or UINT32_MAX (sparse) */
    float *dense;    /* [ndense][npad], 32-byte aligned: features used by many classes */
    size_t ndense;
    uint32_t *cls_intent;   /* class → index in t->intents */
    cg_mindex *index;       /* large tables: replaces the weights above */

    /* word cache: unstemmed word hash → its char n-grams' dictionary values */
    uint64_t *wc_keys; uint32_t *wc_off; uint16_t *wc_n; size_t wc_cap;
    uint64_t *wc_stem; uint8_t *wc_li;   /* its stem hash in language wc_li */
    int64_t *wc_sid;                     /* that stem's dictionary value, or -2 */
    uint32_t *wc_ids; size_t wc_nids;

    /* exact examples: text key → the classes that have it as an example */
    uint64_t *ex_keys; uint32_t *ex_off; uint16_t *ex_n; size_t ex_cap;
    uint16_t *ex_cls;

    cls_kw *kws; size_t nkws;
    syn *syns; size_t nsyns;
    char **syn_text; size_t nsyn_text;

    /* languages */
    size_t nlang;
    char lang[M_MAX_LANGS][CG_LANG_MAX];
    int lang_arabic[M_MAX_LANGS];   /* examples mostly in Arabic script */
    int lang_strips[M_MAX_LANGS];   /* cg_text_strips_accents(lang[i]) */
    int def_lang;                   /* index of the default language */
    float *lm;                      /* [nlang][M_LM_BUCKETS] log P(gram | lang) */

    size_t memory;
};

void cg_matcher_opts_default(cg_matcher_opts *o)
{
    /* Measured on BANKING77, HWU64 and ArBanking77 (docs/benchmarks.md):
     * char 4-grams alone train about twice as fast as 2..5 at the same
     * accuracy; Crammer-Singer beats one-vs-rest by about half a point. */
    o->char_min = 4;
    o->char_max = 4;
    o->char_word_min = 1;     /* 3 and 4 measured: no faster, less accurate */
    o->word_bigrams = 1;
    o->stem = 1;
    o->char_weight = 0.6;
    o->solver = MCSVM_CS;
    o->C = 1.0;
    o->eps = 0;           /* auto: tight on small tables, 0.5 on large ones */
    o->min_df = 1;
    o->conf_mode = 3;     /* softmax: spreads out on text unlike every intent */
    o->calib_a = 10.0;
    o->calib_b = 0.0;
    o->should_bonus = 0.1;
    o->large_min_intents = 1000;
    o->large_postings = 256;
    o->large_candidates = 32;
    o->large_calib_a = 40.0;
    o->large_null = 0.2;
}

/* ---- per-thread scratch ------------------------------------------------ */

typedef struct word {
    const char *s; uint32_t len;
    uint64_t h;      /* hash of the unstemmed word */
    uint64_t stem;   /* hash of its stem */
    int64_t slot;    /* its entry in the word cache, or -1 */
    int64_t stem_id; /* dictionary value of the stem feature; -1 not resolved,
                        -2 resolved and absent */
} word;

typedef struct fentry {
    uint64_t h;
    uint32_t tf;
    uint32_t block;
    int64_t id;      /* dictionary value when already known (word cache), else -1 */
} fentry;

typedef struct scratch {
    cg_text_ctx *text;
    word words[M_MAX_TOKENS];
    word raw[M_MAX_TOKENS];
    size_t nwords;
    fentry *tab; size_t tabcap;      /* feature counts of one text (open addressing) */
    uint32_t *used; size_t nused;    /* occupied slots of tab */
    uint32_t *kf; float *kv; uint8_t *kb;   /* known features of one text */
    float *scores; size_t scap;
} scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    scratch *s = p;
    if (!s)
        return;
    cg_text_ctx_free(s->text);
    free(s->tab);
    free(s->used);
    free(s->kf);
    free(s->kv);
    free(s->kb);
    free(s->scores);
    free(s);
}

static void scratch_key_init(void)
{
    (void)pthread_key_create(&scratch_key, scratch_free);
}

/* This thread's scratch; NULL on ENOMEM. */
static scratch *scratch_get(void)
{
    pthread_once(&scratch_once, scratch_key_init);
    scratch *s = pthread_getspecific(scratch_key);
    if (s)
        return s;
    s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->text = cg_text_ctx_new();
    if (!s->text || pthread_setspecific(scratch_key, s) != 0) {
        scratch_free(s);
        return NULL;
    }
    return s;
}

/* ---- analysis: normalised text → words → features ---------------------- */

static int64_t wcache_slot(const cg_matcher *m, uint64_t h);

/* Split norm into words, apply synonyms, stem. Fills s->words. */
static void split_words(const cg_matcher *m, scratch *s, const char *norm, const char *lang, int li)
{
    size_t nraw = 0;
    const char *e = norm;
    for (const char *p = norm; nraw < M_MAX_TOKENS && (p = cg_text_next_word(p, &e)) != NULL; p = e) {
        s->raw[nraw].s = p;
        s->raw[nraw].len = (uint32_t)(e - p);
        s->raw[nraw].h = h_bytes(H_SEED_WORD, p, (size_t)(e - p));
        nraw++;
    }
    size_t n = 0;
    for (size_t i = 0; i < nraw && n < M_MAX_TOKENS;) {
        const syn *best = NULL;
        for (size_t k = 0; k < m->nsyns; k++) {   /* sorted longest first */
            const syn *y = &m->syns[k];
            if (y->from[0] != s->raw[i].h || i + y->nfrom > nraw)
                continue;
            size_t j = 1;
            while (j < y->nfrom && y->from[j] == s->raw[i + j].h)
                j++;
            if (j == y->nfrom) {
                best = y;
                break;
            }
        }
        if (!best) {
            s->words[n++] = s->raw[i++];
            continue;
        }
        for (size_t j = 0; j < best->nto && n < M_MAX_TOKENS; j++) {
            s->words[n].s = best->to[j];
            s->words[n].len = best->tolen[j];
            s->words[n].h = h_bytes(H_SEED_WORD, best->to[j], best->tolen[j]);
            n++;
        }
        i += best->nfrom;
    }
    for (size_t i = 0; i < n; i++) {
        word *w = &s->words[i];
        w->slot = wcache_slot(m, w->h);
        w->stem_id = -1;
        if (w->slot >= 0 && li >= 0 && m->wc_li[w->slot] == li) {
            /* seen in training in this language: stem and its feature known */
            w->stem = m->wc_stem[w->slot];
            w->stem_id = m->wc_sid[w->slot];
            continue;
        }
        size_t sl = w->len;
        const char *st = w->s;
        if (m->o.stem) {
            st = cg_text_stem(s->text, lang, w->s, w->len, &sl);
            if (!st) {
                st = w->s;
                sl = w->len;
            }
        }
        w->stem = h_bytes(H_SEED_WORD, st, sl);
    }
    s->nwords = n;
}

static int tab_reserve(scratch *s, size_t want)
{
    size_t cap = 1024;
    while (cap < want * 2)
        cap <<= 1;
    if (cap <= s->tabcap)
        return 0;
    fentry *t = calloc(cap, sizeof *t);
    uint32_t *u = malloc(cap * sizeof *u);
    uint32_t *kf = malloc(cap * sizeof *kf);
    float *kv = malloc(cap * sizeof *kv);
    uint8_t *kb = malloc(cap);
    if (!t || !u || !kf || !kv || !kb) {
        free(t);
        free(u);
        free(kf);
        free(kv);
        free(kb);
        return -1;
    }
    free(s->tab);
    free(s->used);
    free(s->kf);
    free(s->kv);
    free(s->kb);
    s->tab = t;
    s->used = u;
    s->kf = kf;
    s->kv = kv;
    s->kb = kb;
    s->tabcap = cap;
    s->nused = 0;
    return 0;
}

static inline void tab_add_id(scratch *s, uint64_t h, uint32_t block, int64_t id)
{
    if (h == 0)
        h = 1;
    size_t mask = s->tabcap - 1;
    size_t i = (size_t)h & mask;
    while (s->tab[i].h && s->tab[i].h != h)
        i = (i + 1) & mask;
    if (!s->tab[i].h) {
        s->tab[i].h = h;
        s->tab[i].tf = 0;
        s->tab[i].block = block;
        s->tab[i].id = id;
        s->used[s->nused++] = (uint32_t)i;
    }
    s->tab[i].tf++;
}

static inline void tab_add(scratch *s, uint64_t h, uint32_t block)
{
    tab_add_id(s, h, block, -1);
}

static void tab_clear(scratch *s)
{
    for (size_t i = 0; i < s->nused; i++)
        s->tab[s->used[i]].h = 0;
    s->nused = 0;
}

/* Hashes of the char n-grams of "<w>" (code points) into out, which has
 * room for (len + 2) * (char_max - char_min + 1); returns how many. */
static size_t word_chars(const cg_matcher *m, const char *w, size_t len, uint64_t *out)
{
    uint32_t off[CG_MAX_TEXT_BYTES + 3];
    char buf[CG_MAX_TEXT_BYTES + 3];
    if (len > CG_MAX_TEXT_BYTES)
        return 0;
    size_t bl = 0, np = 0, n_out = 0;
    buf[bl++] = '<';
    memcpy(buf + bl, w, len);
    bl += len;
    buf[bl++] = '>';
    for (size_t b = 0; b < bl; b++)
        if (((unsigned char)buf[b] & 0xC0) != 0x80)
            off[np++] = (uint32_t)b;
    off[np] = (uint32_t)bl;
    if (np - 2 < (size_t)m->o.char_word_min)
        return 0;   /* short (function) words: the word feature says it all */
    for (size_t st = 0; st < np; st++) {
        uint64_t h = h_init(H_SEED_CHAR);
        size_t b = off[st];
        for (int n = 1; n <= m->o.char_max && st + (size_t)n <= np; n++) {
            for (; b < off[st + (size_t)n]; b++)
                h = h_byte(h, (unsigned char)buf[b]);
            if (n >= m->o.char_min)
                out[n_out++] = h_mix(h ^ (uint64_t)n);
        }
    }
    return n_out;
}

/* Features of s->words into s->tab (cleared first). -1 on ENOMEM. */
static int features(const cg_matcher *m, scratch *s)
{
    size_t chars = 0;
    for (size_t i = 0; i < s->nwords; i++)
        chars += s->words[i].len + 2;
    size_t span = (size_t)(m->o.char_max - m->o.char_min + 1);
    if (tab_reserve(s, s->nwords * 2 + chars * span + 16) != 0)
        return -1;
    tab_clear(s);
    for (size_t i = 0; i < s->nwords; i++) {
        tab_add_id(s, s->words[i].stem, 0, s->words[i].stem_id);
        if (m->o.word_bigrams && i + 1 < s->nwords)
            tab_add(s, h_mix(s->words[i].stem * 0x9E3779B97F4A7C15ULL ^ s->words[i + 1].stem ^
                             H_SEED_BIGRAM), 0);
    }
    uint64_t hs[(CG_MAX_TEXT_BYTES + 2) * 8];
    for (size_t i = 0; i < s->nwords; i++) {
        const word *w = &s->words[i];
        size_t nc = 0;
        const uint32_t *ids = NULL;
        if (w->slot >= 0) {
            nc = m->wc_n[w->slot];
            ids = m->wc_ids + m->wc_off[w->slot];
        }
        if (ids) {
            /* known word: its n-grams' dictionary entries, precomputed */
            for (size_t k = 0; k < nc; k++)
                tab_add_id(s, ((uint64_t)ids[k] << 1) | 1u, 1, ids[k]);
            continue;
        }
        size_t n = word_chars(m, w->s, w->len, hs);
        for (size_t k = 0; k < n; k++)
            tab_add(s, hs[k], 1);
    }
    return 0;
}

/* ---- dictionary -------------------------------------------------------- */

/* The one probe of every hash table here (dictionaries, word cache, word
 * set, exact-text map): open addressing with linear probing over keys[0..cap)
 * (cap a power of two, never full, key 0 = empty). Returns the slot holding
 * h (≠ 0), else the empty slot where h would go. */
static inline size_t key_slot(const uint64_t *keys, size_t cap, uint64_t h)
{
    size_t mask = cap - 1;
    size_t i = (size_t)h & mask;
    while (keys[i] && keys[i] != h)
        i = (i + 1) & mask;
    return i;
}

static inline int64_t dict_get(const cg_matcher *m, uint32_t block, uint64_t h)
{
    const struct dict *d = &m->d[block & 1];
    if (!d->cap)
        return -1;
    if (h == 0)
        h = 1;
    size_t i = key_slot(d->keys, d->cap, h);
    return d->keys[i] ? (int64_t)d->vals[i] : -1;
}

/* Rehash d into a table of ncap slots, keeping entries whose index remap
 * (when remap != NULL) does not drop. -1 on ENOMEM. */
static int dict_rehash(struct dict *d, size_t ncap, const uint32_t *remap)
{
    uint64_t *k = calloc(ncap, sizeof *k);
    uint32_t *v = malloc(ncap * sizeof *v);
    if (!k || !v) {
        free(k);
        free(v);
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < d->cap; i++) {
        if (!d->keys[i])
            continue;
        uint32_t val = d->vals[i];
        if (remap) {
            uint32_t r = remap[val & 0x7fffffffu];
            if (r == UINT32_MAX)
                continue;
            val = r | (val & 0x80000000u);
        }
        size_t j = key_slot(k, ncap, d->keys[i]);
        k[j] = d->keys[i];
        v[j] = val;
        n++;
    }
    free(d->keys);
    free(d->vals);
    d->keys = k;
    d->vals = v;
    d->cap = ncap;
    d->n = n;
    return 0;
}

/* Index of h in block's dictionary (with the block in bit 31), inserted as
 * a new feature if absent; -1 on ENOMEM. */
static int64_t dict_put(cg_matcher *m, uint64_t h, uint32_t block)
{
    struct dict *d = &m->d[block & 1];
    if (h == 0)
        h = 1;
    if ((d->n + 1) * 2 > d->cap && dict_rehash(d, d->cap ? d->cap * 2 : 1 << 14, NULL) != 0)
        return -1;
    size_t i = key_slot(d->keys, d->cap, h);
    if (d->keys[i])
        return d->vals[i];
    d->keys[i] = h;
    d->vals[i] = (uint32_t)m->nfeat | (block << 31);
    d->n++;
    return (int64_t)m->nfeat++ | ((int64_t)block << 31);
}

static int64_t wcache_slot(const cg_matcher *m, uint64_t h)
{
    if (!m->wc_cap)
        return -1;
    if (h == 0)
        h = 1;
    size_t i = key_slot(m->wc_keys, m->wc_cap, h);
    return m->wc_keys[i] ? (int64_t)i : -1;
}

/* Training words (unstemmed, distinct), collected for the word cache. */
typedef struct wordset { uint64_t *h; char **s; uint64_t *stem; uint8_t *li; size_t n, cap; } wordset;

static int wordset_add(wordset *ws, uint64_t h, const char *w, size_t len, uint64_t stem, int li)
{
    if (h == 0)
        h = 1;
    if ((ws->n + 1) * 2 > ws->cap) {
        size_t nc = ws->cap ? ws->cap * 2 : 4096;
        uint64_t *nh = calloc(nc, sizeof *nh);
        char **ns = calloc(nc, sizeof *ns);
        uint64_t *nst = calloc(nc, sizeof *nst);
        uint8_t *nli = calloc(nc, 1);
        if (!nh || !ns || !nst || !nli) {
            free(nh);
            free(ns);
            free(nst);
            free(nli);
            return -1;
        }
        for (size_t i = 0; i < ws->cap; i++) {
            if (!ws->h[i])
                continue;
            size_t j = key_slot(nh, nc, ws->h[i]);
            nh[j] = ws->h[i];
            ns[j] = ws->s[i];
            nst[j] = ws->stem[i];
            nli[j] = ws->li[i];
        }
        free(ws->h);
        free(ws->s);
        free(ws->stem);
        free(ws->li);
        ws->h = nh;
        ws->s = ns;
        ws->stem = nst;
        ws->li = nli;
        ws->cap = nc;
    }
    size_t i = key_slot(ws->h, ws->cap, h);
    if (ws->h[i])
        return 0;
    ws->s[i] = strndup(w, len);
    if (!ws->s[i])
        return -1;
    ws->h[i] = h;
    ws->stem[i] = stem;
    ws->li[i] = (uint8_t)(li < 0 ? 0xFF : li);
    ws->n++;
    return 0;
}

static void wordset_free(wordset *ws)
{
    for (size_t i = 0; i < ws->cap; i++)
        free(ws->s[i]);
    free(ws->h);
    free(ws->s);
    free(ws->stem);
    free(ws->li);
    memset(ws, 0, sizeof *ws);
}

/* Build the word cache from the training words once the dictionary is
 * final. Words longer than 64 bytes are left to the slow path. */
static int wcache_build(cg_matcher *m, const wordset *ws)
{
    size_t cap = 1024;
    while (cap < ws->n * 2)
        cap <<= 1;
    size_t span = (size_t)(m->o.char_max - m->o.char_min + 1);
    m->wc_keys = calloc(cap, sizeof *m->wc_keys);
    m->wc_off = calloc(cap, sizeof *m->wc_off);
    m->wc_n = calloc(cap, sizeof *m->wc_n);
    m->wc_stem = calloc(cap, sizeof *m->wc_stem);
    m->wc_li = malloc(cap);
    m->wc_sid = malloc(cap * sizeof *m->wc_sid);
    size_t idcap = 4096, nids = 0;
    uint32_t *ids = malloc(idcap * sizeof *ids);
    if (!m->wc_keys || !m->wc_off || !m->wc_n || !m->wc_stem || !m->wc_li || !m->wc_sid || !ids) {
        free(ids);
        return -1;
    }
    uint64_t hs[66 * 8];
    for (size_t i = 0; i < ws->cap; i++) {
        if (!ws->h[i])
            continue;
        size_t len = strlen(ws->s[i]);
        if (len > 64 || span > 8)
            continue;
        size_t n = word_chars(m, ws->s[i], len, hs);
        if (nids + n > idcap) {
            while (nids + n > idcap)
                idcap *= 2;
            uint32_t *ni = realloc(ids, idcap * sizeof *ni);
            if (!ni) {
                free(ids);
                return -1;
            }
            ids = ni;
        }
        size_t off = nids;
        for (size_t k = 0; k < n; k++) {
            int64_t id = dict_get(m, 1, hs[k]);
            if (id >= 0)
                ids[nids++] = (uint32_t)id;
        }
        size_t j = key_slot(m->wc_keys, cap, ws->h[i]);
        m->wc_keys[j] = ws->h[i];
        m->wc_off[j] = (uint32_t)off;
        m->wc_n[j] = (uint16_t)(nids - off);
        m->wc_stem[j] = ws->stem[i];
        m->wc_li[j] = ws->li[i];
        int64_t sid = dict_get(m, 0, ws->stem[i]);
        m->wc_sid[j] = sid >= 0 ? sid : -2;
    }
    m->wc_ids = ids;
    m->wc_nids = nids;
    m->wc_cap = cap;
    m->memory += cap * (sizeof *m->wc_keys + sizeof *m->wc_off + sizeof *m->wc_n +
                        sizeof *m->wc_stem + sizeof *m->wc_li + sizeof *m->wc_sid) +
                 idcap * sizeof *ids;
    return 0;
}

/* Key of a text for exact matching: its words after synonyms, so that case,
 * accents and punctuation do not matter. 0 for a text without words. */
static uint64_t text_key(const scratch *s)
{
    if (!s->nwords)
        return 0;
    uint64_t h = h_init(0x5555u);
    for (size_t i = 0; i < s->nwords; i++)
        h = h_mix(h ^ s->words[i].h);
    return h ? h : 1;
}

/* One training example's sparse features (fidx/ftf[off..off+n)), its class
 * and its text key. */
typedef struct ex { uint32_t off, n; uint32_t cls; uint64_t key; } ex;

typedef struct keycls { uint64_t key; uint32_t cls; } keycls;

static int keycls_cmp(const void *a, const void *b)
{
    const keycls *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return (x->cls > y->cls) - (x->cls < y->cls);
}

/* Exact-example map from the examples' keys. Examples whose text two or more
 * intents share are marked (n = 0) so that training skips them: they cannot
 * tell those intents apart, and a Crammer-Singer model facing identical
 * examples in two classes learns nothing useful for either. */
static int exact_build(cg_matcher *m, ex *exs, size_t nex)
{
    keycls *v = malloc((nex ? nex : 1) * sizeof *v);
    if (!v)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < nex; i++)
        if (exs[i].key)
            v[n++] = (keycls){exs[i].key, exs[i].cls};
    qsort(v, n, sizeof *v, keycls_cmp);
    size_t cap = 1024;
    while (cap < n * 2)
        cap <<= 1;
    m->ex_keys = calloc(cap, sizeof *m->ex_keys);
    m->ex_off = calloc(cap, sizeof *m->ex_off);
    m->ex_n = calloc(cap, sizeof *m->ex_n);
    m->ex_cls = malloc((n ? n : 1) * sizeof *m->ex_cls);
    if (!m->ex_keys || !m->ex_off || !m->ex_n || !m->ex_cls) {
        free(v);
        return -1;
    }
    m->ex_cap = cap;
    size_t ncls = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i, off = ncls;
        for (; j < n && v[j].key == v[i].key; j++)
            if (j == i || v[j].cls != v[j - 1].cls)
                m->ex_cls[ncls++] = (uint16_t)v[j].cls;
        size_t k = key_slot(m->ex_keys, cap, v[i].key);
        m->ex_keys[k] = v[i].key;
        m->ex_off[k] = (uint32_t)off;
        m->ex_n[k] = (uint16_t)(ncls - off > 65535 ? 65535 : ncls - off);
        i = j;
    }
    free(v);
    m->memory += cap * (sizeof *m->ex_keys + sizeof *m->ex_off + sizeof *m->ex_n) +
                 (n ? n : 1) * sizeof *m->ex_cls;
    /* mark shared examples */
    for (size_t i = 0; i < nex; i++) {
        if (!exs[i].key)
            continue;
        size_t k = key_slot(m->ex_keys, cap, exs[i].key);   /* present: inserted above */
        if (m->ex_n[k] > 1)
            exs[i].n = 0;
    }
    return 0;
}

static const uint16_t *exact_get(const cg_matcher *m, uint64_t key, size_t *n)
{
    if (!key || !m->ex_cap)
        return NULL;
    size_t k = key_slot(m->ex_keys, m->ex_cap, key);
    if (!m->ex_keys[k])
        return NULL;
    *n = m->ex_n[k];
    return m->ex_cls + m->ex_off[k];
}

/* ---- language model ---------------------------------------------------- */

static int is_arabic_lead(const unsigned char *p)
{
    /* U+0600..U+06FF and U+0750..U+077F: lead bytes D8..DB, DD */
    return *p == 0xD8 || *p == 0xD9 || *p == 0xDA || *p == 0xDB || *p == 0xDD;
}

/* Letters of norm in Arabic script vs others (ASCII letters and other
 * non-ASCII letters counted as "other"). */
static void script_counts(const char *norm, size_t *arabic, size_t *other)
{
    *arabic = *other = 0;
    for (const unsigned char *p = (const unsigned char *)norm; *p; p++) {
        if ((*p & 0xC0) == 0x80 || *p == ' ' || (*p >= '0' && *p <= '9'))
            continue;
        if (is_arabic_lead(p))
            (*arabic)++;
        else
            (*other)++;
    }
}

/* Calls fn(bucket) for each char 1-3-gram of " norm " (bytes of code points). */
static void lm_grams(const char *norm, void (*fn)(void *, uint32_t), void *arg)
{
    uint32_t cps[3] = {0, 0, 0};   /* last code points as packed bytes */
    size_t have = 0;
    const unsigned char *p = (const unsigned char *)norm;
    int done = 0;
    uint32_t cur = ' ';
    int first = 1;
    while (!done) {
        if (first) {
            cur = ' ';
            first = 0;
        } else if (!*p) {
            cur = ' ';
            done = 1;
        } else {
            cur = *p++;
            while ((*p & 0xC0) == 0x80)
                cur = (cur << 8) | *p++;
        }
        cps[0] = cps[1];
        cps[1] = cps[2];
        cps[2] = cur;
        if (have < 3)
            have++;
        for (size_t n = 1; n <= have; n++) {
            uint64_t h = h_init(H_SEED_LM + n);
            for (size_t k = 3 - n; k < 3; k++)
                h = (h ^ cps[k]) * 0x100000001b3ULL;
            fn(arg, (uint32_t)(h_mix(h) & (M_LM_BUCKETS - 1)));
        }
    }
}

typedef struct lm_acc { float *row; double sum; } lm_acc;
static void lm_count(void *arg, uint32_t b)
{
    lm_acc *a = arg;
    a->row[b] += 1.0f;
    a->sum += 1.0;
}

typedef struct lm_score { const float *lm; size_t nlang; const int *cand; double *sc; } lm_score;
static void lm_add(void *arg, uint32_t b)
{
    lm_score *a = arg;
    for (size_t l = 0; l < a->nlang; l++)
        if (a->cand[l])
            a->sc[l] += a->lm[l * M_LM_BUCKETS + b];
}

static int lang_index(const cg_matcher *m, const char *lang)
{
    for (size_t i = 0; i < m->nlang; i++)
        if (strcmp(m->lang[i], lang) == 0)
            return (int)i;
    return -1;
}

/* Detect the language of normalised text; returns an index into m->lang. */
static int detect(const cg_matcher *m, const char *norm)
{
    if (m->nlang <= 1)
        return m->def_lang;
    size_t ar, other;
    script_counts(norm, &ar, &other);
    if (ar + other == 0)
        return m->def_lang;
    int want_ar = ar > other;
    int cand[M_MAX_LANGS];
    size_t ncand = 0;
    for (size_t l = 0; l < m->nlang; l++) {
        cand[l] = m->lang_arabic[l] == want_ar;
        ncand += (size_t)cand[l];
    }
    if (ncand == 0) {
        for (size_t l = 0; l < m->nlang; l++)
            cand[l] = 1;
        ncand = m->nlang;
    }
    if (ncand == 1) {
        for (size_t l = 0; l < m->nlang; l++)
            if (cand[l])
                return (int)l;
    }
    double sc[M_MAX_LANGS] = {0};
    lm_score a = {m->lm, m->nlang, cand, sc};
    lm_grams(norm, lm_add, &a);
    int best = -1;
    for (size_t l = 0; l < m->nlang; l++)
        if (cand[l] && (best < 0 || sc[l] > sc[best]))
            best = (int)l;
    if (best != m->def_lang && cand[m->def_lang] && sc[best] - sc[m->def_lang] < M_LM_MARGIN)
        return m->def_lang;
    return best;
}

/* ---- keywords and synonyms --------------------------------------------- */

/* Tokenise a normalised phrase into hashes; returns the count (≤ max). */
static size_t phrase_hashes(const char *s, uint64_t *out, const char **ptr, uint32_t *len,
                            size_t max)
{
    size_t n = 0;
    const char *e = s;
    for (const char *p = s; n < max && (p = cg_text_next_word(p, &e)) != NULL; p = e) {
        out[n] = h_bytes(H_SEED_WORD, p, (size_t)(e - p));
        if (ptr)
            ptr[n] = p;
        if (len)
            len[n] = (uint32_t)(e - p);
        n++;
    }
    return n;
}

static int syn_cmp(const void *a, const void *b)
{
    const syn *x = a, *y = b;
    return (int)y->nfrom - (int)x->nfrom;
}

static int build_synonyms(cg_matcher *m, const cg_intents *t)
{
    if (t->nsyn == 0)
        return 0;
    m->syns = calloc(t->nsyn, sizeof *m->syns);
    m->syn_text = calloc(t->nsyn, sizeof *m->syn_text);
    if (!m->syns || !m->syn_text)
        return -1;
    m->memory += t->nsyn * (sizeof *m->syns + sizeof *m->syn_text);
    for (size_t i = 0; i < t->nsyn; i++) {
        if (!t->syn_from[i] || !t->syn_to[i])
            continue;
        char *to = strdup(t->syn_to[i]);
        if (!to)
            return -1;
        m->syn_text[m->nsyn_text++] = to;
        m->memory += strlen(to) + 1;
        syn *y = &m->syns[m->nsyns];
        uint64_t th[M_MAX_SYN_TOKENS];
        y->nfrom = (uint8_t)phrase_hashes(t->syn_from[i], y->from, NULL, NULL, M_MAX_SYN_TOKENS);
        y->nto = (uint8_t)phrase_hashes(to, th, y->to, y->tolen, M_MAX_SYN_TOKENS);
        if (y->nfrom > 0)
            m->nsyns++;
    }
    qsort(m->syns, m->nsyns, sizeof *m->syns, syn_cmp);
    return 0;
}

/* Keyword phrase: words after synonyms, and stems per table language. */
static void build_kw(cg_matcher *m, scratch *s, const char *phrase, kw *k)
{
    memset(k, 0, sizeof *k);
    for (size_t l = 0; l < m->nlang; l++) {
        split_words(m, s, phrase, m->lang[l], (int)l);
        size_t n = s->nwords < M_MAX_KW_TOKENS ? s->nwords : M_MAX_KW_TOKENS;
        k->n = (uint8_t)n;
        for (size_t j = 0; j < n; j++) {
            k->words[j] = s->words[j].h;
            k->stems[l][j] = s->words[j].stem;
        }
    }
}

/* mask: bit (hash & 63) set for every word and stem of the text (see the
 * keyword loop in cg_intents_match): a phrase whose first word has neither
 * bit set cannot be there, which settles most of an intent table's
 * keywords without scanning the text. */
static uint64_t kw_text_mask(const scratch *s)
{
    uint64_t mask = 0;
    for (size_t i = 0; i < s->nwords; i++)
        mask |= (1ULL << (s->words[i].h & 63)) | (1ULL << (s->words[i].stem & 63));
    return mask;
}

static int kw_present(const kw *k, const scratch *s, int li, uint64_t mask)
{
    if (k->n == 0 || s->nwords < k->n)
        return 0;
    if (!((mask >> (k->words[0] & 63)) & 1) && (li < 0 || !((mask >> (k->stems[li][0] & 63)) & 1)))
        return 0;
    for (size_t i = 0; i + k->n <= s->nwords; i++) {
        size_t j = 0;
        while (j < k->n && s->words[i + j].h == k->words[j])
            j++;
        if (j == k->n)
            return 1;
        if (li < 0)
            continue;
        j = 0;
        while (j < k->n && s->words[i + j].stem == k->stems[li][j])
            j++;
        if (j == k->n)
            return 1;
    }
    return 0;
}

static uint64_t kw_first_bits(const kw *k, size_t n)
{
    uint64_t b = 0;
    for (size_t i = 0; i < n; i++) {
        b |= 1ull << (k[i].words[0] & 63);
        for (size_t l = 0; l < M_MAX_LANGS; l++)
            b |= 1ull << (k[i].stems[l][0] & 63);
    }
    return b;
}

static int build_keywords(cg_matcher *m, const cg_intents *t, scratch *s)
{
    size_t with = 0;
    for (size_t c = 0; c < m->nclass; c++) {
        const cg_intent *in = &t->intents[m->cls_intent[c]];
        with += (in->nmust || in->nshould);
    }
    if (!with)
        return 0;
    m->kws = calloc(with, sizeof *m->kws);
    if (!m->kws)
        return -1;
    m->memory += with * sizeof *m->kws;
    for (size_t c = 0; c < m->nclass; c++) {
        const cg_intent *in = &t->intents[m->cls_intent[c]];
        if (!in->nmust && !in->nshould)
            continue;
        cls_kw *ck = &m->kws[m->nkws++];
        ck->cls = (uint32_t)c;
        ck->must = calloc(in->nmust ? in->nmust : 1, sizeof *ck->must);
        ck->should = calloc(in->nshould ? in->nshould : 1, sizeof *ck->should);
        if (!ck->must || !ck->should)
            return -1;
        m->memory += (in->nmust + in->nshould) * sizeof(kw);
        for (size_t i = 0; i < in->nmust; i++)
            build_kw(m, s, in->must[i] ? in->must[i] : "", &ck->must[ck->nmust++]);
        for (size_t i = 0; i < in->nshould; i++)
            build_kw(m, s, in->should[i] ? in->should[i] : "", &ck->should[ck->nshould++]);
        ck->must_any = kw_first_bits(ck->must, ck->nmust);
        ck->should_any = kw_first_bits(ck->should, ck->nshould);
    }
    return 0;
}

/* ---- training ---------------------------------------------------------- */

void cg_matcher_free(cg_matcher *m)
{
    if (!m)
        return;
    for (int b = 0; b < 2; b++) {
        free(m->d[b].keys);
        free(m->d[b].vals);
    }
    free(m->idf);
    free(m->row);
    free(m->wcls);
    free(m->wval);
    free(m->bias);
    free(m->dslot);
    free(m->dense);
    free(m->wc_keys);
    free(m->wc_off);
    free(m->wc_n);
    free(m->wc_ids);
    free(m->wc_stem);
    free(m->wc_li);
    free(m->wc_sid);
    free(m->ex_keys);
    free(m->ex_off);
    free(m->ex_n);
    free(m->ex_cls);
    free(m->cls_intent);
    cg_mindex_free(m->index);
    for (size_t i = 0; i < m->nkws; i++) {
        free(m->kws[i].must);
        free(m->kws[i].should);
    }
    free(m->kws);
    free(m->syns);
    for (size_t i = 0; i < m->nsyn_text; i++)
        free(m->syn_text[i]);
    free(m->syn_text);
    free(m->lm);
    free(m);
}

size_t cg_matcher_memory(const cg_matcher *m)
{
    return m ? m->memory : 0;
}

static void quiet(const char *s)
{
    (void)s;
}


/* Drop features seen in fewer than opts.min_df examples: from the
 * dictionary (rebuilt smaller), from df[] and from the examples' lists. */
static int prune(cg_matcher *m, uint32_t *df, ex *exs, size_t nex, uint32_t *fidx,
                 uint32_t *ftf, size_t *fn)
{
    uint32_t *remap = malloc((m->nfeat ? m->nfeat : 1) * sizeof *remap);
    if (!remap)
        return -1;
    size_t nk = 0;
    for (size_t f = 0; f < m->nfeat; f++) {
        remap[f] = df[f] >= (uint32_t)m->o.min_df ? (uint32_t)nk++ : UINT32_MAX;
        if (remap[f] != UINT32_MAX)
            df[remap[f]] = df[f];
    }
    for (int b = 0; b < 2; b++) {
        size_t cap = 1024;
        while (cap < m->d[b].n * 2)   /* an upper bound; pruning only shrinks */
            cap <<= 1;
        if (dict_rehash(&m->d[b], cap, remap) != 0) {
            free(remap);
            return -1;
        }
    }
    m->nfeat = nk;
    size_t w = 0;
    for (size_t i = 0; i < nex; i++) {
        uint32_t off = (uint32_t)w;
        for (size_t j = exs[i].off; j < exs[i].off + exs[i].n; j++) {
            uint32_t r = remap[fidx[j] & 0x7fffffffu];
            if (r == UINT32_MAX)
                continue;
            fidx[w] = r | (fidx[j] & 0x80000000u);
            ftf[w++] = ftf[j];
        }
        exs[i].off = off;
        exs[i].n = (uint32_t)(w - off);
    }
    *fn = w;
    free(remap);
    return 0;
}

static int build_langs(cg_matcher *m, const cg_intents *t)
{
    for (size_t i = 0; i < t->settings.nlanguages && m->nlang < M_MAX_LANGS; i++) {
        const char *l = t->settings.languages[i];
        if (l && lang_index(m, l) < 0)
            snprintf(m->lang[m->nlang++], CG_LANG_MAX, "%s", l);
    }
    for (size_t i = 0; i < t->nintents; i++)
        for (size_t e = 0; e < t->intents[i].nexamples; e++) {
            const char *l = t->intents[i].examples[e].lang;
            if (lang_index(m, l) < 0 && m->nlang < M_MAX_LANGS)
                snprintf(m->lang[m->nlang++], CG_LANG_MAX, "%s", l);
        }
    if (m->nlang == 0)
        snprintf(m->lang[m->nlang++], CG_LANG_MAX, "%s",
                 t->settings.default_language[0] ? t->settings.default_language : "en");
    m->def_lang = lang_index(m, t->settings.default_language);
    if (m->def_lang < 0)
        m->def_lang = 0;
    m->lm = calloc(m->nlang * M_LM_BUCKETS, sizeof *m->lm);
    if (!m->lm)
        return -1;
    m->memory += m->nlang * M_LM_BUCKETS * sizeof *m->lm;
    return 0;
}

static void finish_lm(cg_matcher *m, const double *sum, const size_t *ar, const size_t *other)
{
    for (size_t l = 0; l < m->nlang; l++) {
        float *row = m->lm + l * M_LM_BUCKETS;
        double denom = sum[l] + 0.5 * M_LM_BUCKETS;
        for (size_t b = 0; b < M_LM_BUCKETS; b++)
            row[b] = (float)log((row[b] + 0.5) / denom);
        m->lang_arabic[l] = ar[l] > other[l];
        m->lang_strips[l] = cg_text_strips_accents(m->lang[l]);
        if (ar[l] + other[l] == 0)   /* no examples: judge by the code */
            m->lang_arabic[l] = !cg_text_strips_accents(m->lang[l]) &&
                                (strncmp(m->lang[l], "ar", 2) == 0 ||
                                 strncmp(m->lang[l], "fa", 2) == 0 ||
                                 strncmp(m->lang[l], "ur", 2) == 0);
    }
}

/* Move the rows of features with weights for many classes out of the CSR
 * arrays into dense, vector-aligned rows: scoring them is then a few SIMD
 * multiply-adds instead of a scatter. -1 on ENOMEM. */
static int densify(cg_matcher *m)
{
    m->npad = (m->nclass + 7) & ~(size_t)7;
    size_t min = m->npad / 4 > 8 ? m->npad / 4 : 8;
    m->dslot = malloc((m->nfeat ? m->nfeat : 1) * sizeof *m->dslot);
    if (!m->dslot)
        return -1;
    m->memory += m->nfeat * sizeof *m->dslot;
    size_t nd = 0;
    for (size_t f = 0; f < m->nfeat; f++)
        nd += m->row[f + 1] - m->row[f] >= min;
    m->ndense = nd;
    if (nd) {
        m->dense = aligned_alloc(32, nd * m->npad * sizeof *m->dense);
        if (!m->dense)
            return -1;
        memset(m->dense, 0, nd * m->npad * sizeof *m->dense);
        m->memory += nd * m->npad * sizeof *m->dense;
    }
    size_t w = 0, d = 0;
    for (size_t f = 0; f < m->nfeat; f++) {
        uint32_t a = m->row[f], b = m->row[f + 1];
        m->row[f] = (uint32_t)w;
        if (b - a >= min) {
            float *row = m->dense + d * m->npad;
            for (uint32_t k = a; k < b; k++)
                row[m->wcls[k]] = m->wval[k];
            m->dslot[f] = (uint32_t)d++;
            continue;
        }
        m->dslot[f] = UINT32_MAX;
        for (uint32_t k = a; k < b; k++) {
            m->wcls[w] = m->wcls[k];
            m->wval[w++] = m->wval[k];
        }
    }
    m->row[m->nfeat] = (uint32_t)w;
    m->nnz = w;
    return 0;
}

/* Classes with at least one example to train on (not shared, not empty). */
static size_t trained_classes(const cg_matcher *m, const ex *exs, size_t nex)
{
    char *seen = calloc(m->nclass ? m->nclass : 1, 1);
    size_t n = 0;
    if (!seen)
        return 0;
    for (size_t i = 0; i < nex; i++)
        if (exs[i].n && !seen[exs[i].cls]) {
            seen[exs[i].cls] = 1;
            n++;
        }
    free(seen);
    return n;
}

/* The large-table model from the training examples: each example's vector
 * (the same values as its row of the liblinear problem in
 * cg_matcher_train_opts) goes to cg_mindex_build(). Frees *fidx and *ftf
 * (setting them to NULL) once read, to keep the peak low. -1 on ENOMEM. */
static int build_index(cg_matcher *m, const ex *exs, size_t nex, uint32_t **fidx, uint32_t **ftf)
{
    size_t l = 0, nnz = 0;
    for (size_t i = 0; i < nex; i++)
        if (exs[i].n) {
            l++;
            nnz += exs[i].n;
        }
    uint32_t *cls = malloc((l ? l : 1) * sizeof *cls), *fid = malloc((nnz ? nnz : 1) * sizeof *fid);
    size_t *off = malloc((l + 1) * sizeof *off);
    float *val = malloc((nnz ? nnz : 1) * sizeof *val);
    int rc = -1;
    if (cls && fid && off && val) {
        const uint32_t *fi = *fidx, *tf = *ftf;
        size_t w = 0, r = 0;
        for (size_t i = 0; i < nex; i++) {
            if (!exs[i].n)
                continue;   /* shared with another intent, or no words */
            cls[r] = exs[i].cls;
            off[r++] = w;
            double ssq[2] = {0, 0};
            for (size_t k = exs[i].off; k < exs[i].off + exs[i].n; k++) {
                double v = (1.0 + log((double)tf[k])) * m->idf[fi[k] & 0x7fffffffu];
                ssq[fi[k] >> 31] += v * v;
            }
            double sc[2];
            sc[0] = ssq[0] > 0 ? (ssq[1] > 0 ? m->word_scale : 1.0) / sqrt(ssq[0]) : 0;
            sc[1] = ssq[1] > 0 ? (ssq[0] > 0 ? m->char_scale : 1.0) / sqrt(ssq[1]) : 0;
            for (size_t k = exs[i].off; k < exs[i].off + exs[i].n; k++) {
                double v = (1.0 + log((double)tf[k])) * m->idf[fi[k] & 0x7fffffffu];
                fid[w] = fi[k] & 0x7fffffffu;
                val[w++] = (float)(v * sc[fi[k] >> 31]);
            }
        }
        off[l] = w;
        free(*fidx);
        free(*ftf);
        *fidx = *ftf = NULL;
        size_t post = m->o.large_postings > 0 ? (size_t)m->o.large_postings : 1;
        m->index = cg_mindex_build(m->nclass, m->nfeat, l, cls, off, fid, val, post);
        if (m->index) {
            m->memory += cg_mindex_memory(m->index);
            rc = 0;
        }
    }
    free(cls);
    free(fid);
    free(off);
    free(val);
    return rc;
}

cg_matcher *cg_matcher_train(const cg_intents *t, cg_diags *d)
{
    cg_matcher_opts o;
    cg_matcher_opts_default(&o);
    return cg_matcher_train_opts(t, &o, d);
}

#define TRAIN_FAIL(...) do { \
        if (d) cg_diags_add(d, CG_DIAG_ERROR, "matcher", 0, 0, __VA_ARGS__); \
        goto fail; } while (0)

cg_matcher *cg_matcher_train_opts(const cg_intents *t, const cg_matcher_opts *o, cg_diags *d)
{
    cg_matcher *m = calloc(1, sizeof *m);
    ex *exs = NULL;
    uint32_t *fidx = NULL, *ftf = NULL, *df = NULL;
    struct feature_node *nodes = NULL, **xs = NULL;
    double *ys = NULL;
    struct model *model = NULL;
    size_t nex = 0, exscap = 0, fn = 0, fcap = 0;
    wordset ws = {0};
    if (!m)
        return NULL;
    m->o = *o;
    if (m->o.char_min < 1)
        m->o.char_min = 1;
    if (m->o.char_max < m->o.char_min)
        m->o.char_max = m->o.char_min;
    if (m->o.char_max > 8)
        m->o.char_max = 8;
    double cw = m->o.char_weight < 0 ? 0 : m->o.char_weight > 1 ? 1 : m->o.char_weight;
    m->char_scale = sqrt(cw);
    m->word_scale = sqrt(1.0 - cw);
    m->memory = sizeof *m;

    scratch *s = scratch_get();
    if (!s)
        TRAIN_FAIL("matcher: out of memory");
    if (build_langs(m, t) != 0 || build_synonyms(m, t) != 0)
        TRAIN_FAIL("matcher: out of memory");

    /* classes */
    m->cls_intent = malloc((t->nintents ? t->nintents : 1) * sizeof *m->cls_intent);
    if (!m->cls_intent)
        TRAIN_FAIL("matcher: out of memory");
    for (size_t i = 0; i < t->nintents; i++) {
        const cg_intent *in = &t->intents[i];
        size_t n = 0;
        for (size_t e = 0; e < in->nexamples; e++)
            n += in->examples[e].n;
        if (in->special != CG_SPECIAL_FALLBACK && n > 0)
            m->cls_intent[m->nclass++] = (uint32_t)i;
    }
    if (m->nclass > 65535)
        TRAIN_FAIL("matcher: too many intents (%zu)", m->nclass);
    m->memory += m->nclass * sizeof *m->cls_intent;

    /* features of every example, language statistics */
    double lmsum[M_MAX_LANGS] = {0};
    size_t lm_ar[M_MAX_LANGS] = {0}, lm_other[M_MAX_LANGS] = {0};
    for (size_t c = 0; c < m->nclass; c++) {
        const cg_intent *in = &t->intents[m->cls_intent[c]];
        for (size_t e = 0; e < in->nexamples; e++) {
            const cg_examples *ce = &in->examples[e];
            int li = lang_index(m, ce->lang);
            for (size_t k = 0; k < ce->n; k++) {
                const char *txt = ce->v[k];
                if (!txt)
                    continue;
                size_t len = strlen(txt);
                if (len > CG_MAX_TEXT_BYTES)
                    len = CG_MAX_TEXT_BYTES;
                while (len > 0 && len < strlen(txt) && ((unsigned char)txt[len] & 0xC0) == 0x80)
                    len--;
                char *norm = cg_text_normalize(txt, len, ce->lang);
                if (!norm)
                    continue;   /* the loader reports invalid UTF-8 */
                if (li >= 0) {
                    lm_acc a = {m->lm + (size_t)li * M_LM_BUCKETS, 0};
                    lm_grams(norm, lm_count, &a);
                    lmsum[li] += a.sum;
                    size_t ar, ot;
                    script_counts(norm, &ar, &ot);
                    lm_ar[li] += ar;
                    lm_other[li] += ot;
                }
                split_words(m, s, norm, ce->lang, li);
                for (size_t w = 0; w < s->nwords; w++)
                    if (wordset_add(&ws, s->words[w].h, s->words[w].s, s->words[w].len,
                                    s->words[w].stem, li) != 0) {
                        free(norm);
                        TRAIN_FAIL("matcher: out of memory");
                    }
                uint64_t key = text_key(s);
                int rc = features(m, s);
                free(norm);
                if (rc != 0)
                    TRAIN_FAIL("matcher: out of memory");
                if (nex == exscap) {
                    exscap = exscap ? exscap * 2 : 1024;
                    ex *ne = realloc(exs, exscap * sizeof *ne);
                    if (!ne)
                        TRAIN_FAIL("matcher: out of memory");
                    exs = ne;
                }
                if (fn + s->nused > fcap) {
                    size_t nc = fcap ? fcap * 2 : 1 << 16;
                    while (nc < fn + s->nused)
                        nc *= 2;
                    uint32_t *a = realloc(fidx, nc * sizeof *a);
                    if (!a)
                        TRAIN_FAIL("matcher: out of memory");
                    fidx = a;
                    uint32_t *b = realloc(ftf, nc * sizeof *b);
                    if (!b)
                        TRAIN_FAIL("matcher: out of memory");
                    ftf = b;
                    fcap = nc;
                }
                exs[nex].off = (uint32_t)fn;
                exs[nex].cls = (uint32_t)c;
                exs[nex].key = key;
                for (size_t u = 0; u < s->nused; u++) {
                    const fentry *f = &s->tab[s->used[u]];
                    int64_t id = dict_put(m, f->h, f->block);
                    if (id < 0)
                        TRAIN_FAIL("matcher: out of memory");
                    fidx[fn] = (uint32_t)id;
                    ftf[fn] = f->tf;
                    fn++;
                }
                exs[nex].n = (uint32_t)(fn - exs[nex].off);
                nex++;
            }
        }
    }
    finish_lm(m, lmsum, lm_ar, lm_other);
    if (exact_build(m, exs, nex) != 0)
        TRAIN_FAIL("matcher: out of memory");
    if (build_keywords(m, t, s) != 0)
        TRAIN_FAIL("matcher: out of memory");

    /* idf */
    m->idf = malloc((m->nfeat ? m->nfeat : 1) * sizeof *m->idf);
    df = calloc(m->nfeat ? m->nfeat : 1, sizeof *df);
    if (!m->idf || !df)
        TRAIN_FAIL("matcher: out of memory");
    m->memory += m->nfeat * sizeof *m->idf;
    for (size_t i = 0; i < fn; i++)
        df[fidx[i] & 0x7fffffffu]++;
    if (m->o.min_df > 1 && prune(m, df, exs, nex, fidx, ftf, &fn) != 0)
        TRAIN_FAIL("matcher: out of memory");
    for (int b = 0; b < 2; b++)
        m->memory += m->d[b].cap * (sizeof *m->d[b].keys + sizeof *m->d[b].vals);
    for (size_t f = 0; f < m->nfeat; f++)
        m->idf[f] = (float)(log((1.0 + (double)nex) / (1.0 + df[f])) + 1.0);
    m->idf_unseen = log(1.0 + (double)nex) + 1.0;
    if (wcache_build(m, &ws) != 0)
        TRAIN_FAIL("matcher: out of memory");
    wordset_free(&ws);

    m->bias = calloc(m->nclass ? m->nclass : 1, sizeof *m->bias);
    m->row = calloc(m->nfeat + 1, sizeof *m->row);
    if (!m->bias || !m->row)
        TRAIN_FAIL("matcher: out of memory");
    m->memory += m->nclass * sizeof *m->bias + (m->nfeat + 1) * sizeof *m->row;
    if (m->nclass == 0 || nex == 0) {
        m->nclass = 0;   /* nothing to learn: every text falls back */
        goto done;
    }

    if (m->o.large_min_intents > 0 &&
        trained_classes(m, exs, nex) >= (size_t)m->o.large_min_intents) {
        /* too many intents for one liblinear model: nearest centroid with
         * an inverted index (matcher_index.c) */
        if (build_index(m, exs, nex, &fidx, &ftf) != 0)
            TRAIN_FAIL("matcher: out of memory");
        goto done;
    }

    /* liblinear problem: x_i = weighted, block-normalised features + bias */
    nodes = malloc((fn + 2 * nex) * sizeof *nodes);
    xs = malloc(nex * sizeof *xs);
    ys = malloc(nex * sizeof *ys);
    if (!nodes || !xs || !ys)
        TRAIN_FAIL("matcher: out of memory");
    size_t nn = 0, l = 0, ntrained = 0, only = 0;
    char *seen = calloc(m->nclass, 1);
    if (!seen)
        TRAIN_FAIL("matcher: out of memory");
    for (size_t i = 0; i < nex; i++) {
        if (exs[i].n == 0)
            continue;   /* shared with another intent, or no words */
        if (!seen[exs[i].cls]) {
            seen[exs[i].cls] = 1;
            ntrained++;
            only = exs[i].cls;
        }
        xs[l] = nodes + nn;
        ys[l++] = (double)exs[i].cls;
        double ssq[2] = {0, 0};
        size_t start = nn;
        for (size_t k = exs[i].off; k < exs[i].off + exs[i].n; k++) {
            uint32_t f = fidx[k] & 0x7fffffffu;
            double v = (1.0 + log((double)ftf[k])) * m->idf[f];
            ssq[fidx[k] >> 31] += v * v;
            nodes[nn].index = (int)f + 1;
            nodes[nn].value = v;
            nn++;
        }
        double sc[2];
        sc[0] = ssq[0] > 0 ? (ssq[1] > 0 ? m->word_scale : 1.0) / sqrt(ssq[0]) : 0;
        sc[1] = ssq[1] > 0 ? (ssq[0] > 0 ? m->char_scale : 1.0) / sqrt(ssq[1]) : 0;
        for (size_t k = start, j = exs[i].off; k < nn; k++, j++)
            nodes[k].value *= sc[fidx[j] >> 31];
        /* liblinear wants ascending indices */
        for (size_t a = start + 1; a < nn; a++) {
            struct feature_node key = nodes[a];
            size_t b = a;
            while (b > start && nodes[b - 1].index > key.index) {
                nodes[b] = nodes[b - 1];
                b--;
            }
            nodes[b] = key;
        }
        nodes[nn].index = (int)m->nfeat + 1;
        nodes[nn].value = 1.0;
        nn++;
        nodes[nn].index = -1;
        nodes[nn].value = 0;
        nn++;
    }
    free(fidx);
    fidx = NULL;
    free(ftf);
    ftf = NULL;
    /* intents left without examples to train on (every one shared) are
     * reached only by exact match */
    for (size_t c = 0; c < m->nclass; c++)
        if (!seen[c])
            m->bias[c] = -INFINITY;
    free(seen);

    if (ntrained == 0) {
        /* nothing to learn from: exact matches only */
    } else if (ntrained == 1) {
        /* One intent: nothing to discriminate against. Score by similarity
         * to the centroid of its examples (s = 2 cos - 1, so s > 0 when the
         * text shares most of its features with the examples). */
        double *cen = calloc(m->nfeat, sizeof *cen);
        if (!cen)
            TRAIN_FAIL("matcher: out of memory");
        for (size_t i = 0; i < l; i++)
            for (struct feature_node *x = xs[i]; x->index > 0 && x->index <= (int)m->nfeat; x++)
                cen[x->index - 1] += x->value;
        double nrm = 0;
        for (size_t f = 0; f < m->nfeat; f++)
            nrm += cen[f] * cen[f];
        nrm = nrm > 0 ? sqrt(nrm) : 1;
        m->wcls = malloc(m->nfeat * sizeof *m->wcls);
        m->wval = malloc(m->nfeat * sizeof *m->wval);
        if (!m->wcls || !m->wval) {
            free(cen);
            TRAIN_FAIL("matcher: out of memory");
        }
        for (size_t f = 0; f < m->nfeat; f++) {
            m->row[f] = (uint32_t)m->nnz;
            if (cen[f] != 0) {
                m->wcls[m->nnz] = (uint16_t)only;
                m->wval[m->nnz++] = (float)(2.0 * cen[f] / nrm);
            }
        }
        m->row[m->nfeat] = (uint32_t)m->nnz;
        m->bias[only] = -1.0f;
        free(cen);
    } else {
        struct problem prob = {.l = (int)l, .n = (int)m->nfeat + 1, .y = ys, .x = xs,
                               .bias = 1.0};
        /* Stopping tolerance: a loose optimum leaves arbitrary preferences
         * between near-identical intents, a tight one costs time. Tables of
         * a government's size (a few hundred intents x tens of examples)
         * converge tightly in milliseconds; 150 intents x 100 examples and
         * more stop at 1.0 to keep training near two seconds
         * (docs/benchmarks.md). */
        double eps = m->o.eps;
        if (eps <= 0) {
            /* the solver's work per pass grows with examples x intents */
            eps = (double)l * (double)ntrained / 2.2e6;
            eps = eps < 0.001 ? 0.001 : eps > 1.0 ? 1.0 : eps;
        }
        struct parameter par = {.solver_type = m->o.solver, .eps = eps, .C = m->o.C};
        set_print_string_function(quiet);
        /* liblinear shuffles with rand(): seed it so that the same table
         * always trains to the same model (answers must not change between
         * reloads of unchanged files). (The outbox draws retry jitter from
         * rand(); restarting its sequence at a reload is harmless.) */
        srand(1);
        const char *err = check_parameter(&prob, &par);
        if (err)
            TRAIN_FAIL("matcher: liblinear: %s", err);
        model = train(&prob, &par);
        if (!model)
            TRAIN_FAIL("matcher: liblinear failed");
        int nr = model->nr_class;
        int cols = (nr == 2 && m->o.solver != MCSVM_CS) ? 1 : nr;
        /* count nonzeros */
        size_t nnz = 0;
        for (size_t f = 0; f < m->nfeat; f++)
            for (int k = 0; k < cols; k++)
                if (model->w[f * (size_t)cols + (size_t)k] != 0)
                    nnz += (cols == 1) ? 2 : 1;
        m->wcls = malloc((nnz ? nnz : 1) * sizeof *m->wcls);
        m->wval = malloc((nnz ? nnz : 1) * sizeof *m->wval);
        if (!m->wcls || !m->wval)
            TRAIN_FAIL("matcher: out of memory");
        for (size_t f = 0; f < m->nfeat; f++) {
            m->row[f] = (uint32_t)m->nnz;
            for (int k = 0; k < cols; k++) {
                double w = model->w[f * (size_t)cols + (size_t)k];
                if (w == 0)
                    continue;
                m->wcls[m->nnz] = (uint16_t)model->label[k];
                m->wval[m->nnz++] = (float)w;
                if (cols == 1) {
                    m->wcls[m->nnz] = (uint16_t)model->label[1];
                    m->wval[m->nnz++] = (float)-w;
                }
            }
        }
        m->row[m->nfeat] = (uint32_t)m->nnz;
        for (int k = 0; k < cols; k++) {
            double b = model->w[m->nfeat * (size_t)cols + (size_t)k];
            m->bias[model->label[k]] = (float)b;
            if (cols == 1)
                m->bias[model->label[1]] = (float)-b;
        }
    }
    if (densify(m) != 0)
        TRAIN_FAIL("matcher: out of memory");
    m->memory += m->nnz * (sizeof *m->wcls + sizeof *m->wval);

    goto done;

fail:
    cg_matcher_free(m);
    m = NULL;
done:
    if (model)
        free_and_destroy_model(&model);
    free(nodes);
    free(xs);
    free(ys);
    free(exs);
    free(fidx);
    free(ftf);
    free(df);
    wordset_free(&ws);
    return m;
}

/* ---- matching ---------------------------------------------------------- */

/* Longest prefix of text[0..len) within CG_MAX_TEXT_BYTES, cut at a code
 * point boundary. */
static size_t clip(const char *text, size_t len)
{
    if (len <= CG_MAX_TEXT_BYTES)
        return len;
    size_t n = CG_MAX_TEXT_BYTES;
    while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
        n--;
    return n;
}

static const char *lang_of(const cg_intents *t, int i)
{
    return t->matcher->lang[i];
}

const char *cg_intents_detect_lang(const cg_intents *t, const char *text, size_t len)
{
    static const char en[] = "en";
    const char *def = t && t->settings.default_language[0] ? t->settings.default_language : en;
    if (!t || !t->matcher || !text)
        return def;
    len = clip(text, len);
    char *norm = cg_text_normalize(text, len, NULL);
    if (!norm)
        return def;
    int li = detect(t->matcher, norm);
    free(norm);
    return lang_of(t, li);
}

static double conf_of(const cg_matcher *m, double s)
{
    return 1.0 / (1.0 + exp(-m->o.calib_a * (s - m->o.calib_b)));
}

/* Keywords of class c, or NULL (m->kws is in class order). */
static const cls_kw *kws_of(const cg_matcher *m, uint32_t c)
{
    size_t lo = 0, hi = m->nkws;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->kws[mid].cls == c)
            return &m->kws[mid];
        if (m->kws[mid].cls < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* cg_intents_match() on the large-table model: the text's known features
 * s->kf/kv/kb (nk of them, block scales bs) go to the index, which returns
 * the nearest classes by cosine; the exact-text map, keywords and
 * confidences then work as on the liblinear path, over those candidates
 * only (a class the index did not return is not a candidate, whatever its
 * keywords). Confidence: the softmax of conf_mode 3 over the candidates'
 * cosines (temperature 1/opts.large_calib_a) with one more term, a "none of
 * them" pseudo-intent at cosine opts.large_null, so that a text whose best
 * cosine is low cannot reach a high confidence merely for having few rivals. */
static int match_large(const cg_intents *t, const cg_matcher *m, scratch *s, int li, size_t nk,
                       const float *bs, cg_match *out)
{
    /* the candidates, and room for 16 more an exact example names (an
     * example shared by more intents than that ranks only its first 16) */
    uint32_t cls[M_LARGE_MAX_K + 16];
    float sc[M_LARGE_MAX_K + 16];
    for (size_t u = 0; u < nk; u++)
        s->kv[u] *= bs[s->kb[u]];
    size_t k = m->o.large_candidates < 1 ? 1
             : m->o.large_candidates > M_LARGE_MAX_K ? M_LARGE_MAX_K : (size_t)m->o.large_candidates;
    int rc = cg_mindex_query(m->index, s->kf, s->kv, nk, k, cls, sc, k);
    if (rc < 0)
        return -1;
    size_t nc = (size_t)rc;

    /* the text is one of the examples: its intents first (see cg_intents_match) */
    size_t nx;
    const uint16_t *xc = exact_get(m, text_key(s), &nx);
    if (xc) {
        float best = nc ? sc[0] : 0;
        for (size_t j = 0; j < nx; j++) {
            size_t i = 0;
            while (i < nc && cls[i] != xc[j])
                i++;
            if (i == nc && nc < sizeof cls / sizeof *cls)
                cls[nc++] = xc[j];
            if (i < nc)
                sc[i] = best + 1.0f;
        }
    }

    /* keywords, then rank (insertion sort: a few dozen candidates) */
    size_t n = 0;
    uint64_t kmask = m->nkws ? kw_text_mask(s) : 0;
    for (size_t i = 0; i < nc; i++) {
        uint32_t c = cls[i];
        const cls_kw *ck = kws_of(m, c);
        float v = sc[i];
        if (ck) {
            int any = ck->nmust == 0;
            for (size_t j = 0; j < ck->nmust && !any && (ck->must_any & kmask); j++)
                any = kw_present(&ck->must[j], s, li, kmask);
            if (!any)
                continue;
            for (size_t j = 0; j < ck->nshould && (ck->should_any & kmask); j++)
                if (kw_present(&ck->should[j], s, li, kmask))
                    v += (float)m->o.should_bonus;
        }
        size_t p = n++;
        while (p > 0 && sc[p - 1] < v) {
            sc[p] = sc[p - 1];
            cls[p] = cls[p - 1];
            p--;
        }
        sc[p] = v;
        cls[p] = c;
    }
    if (n == 0)
        return 0;
    double a = m->o.large_calib_a;
    double z = exp(a * (m->o.large_null - sc[0]));
    for (size_t i = 2; i < n; i++)
        z += exp(a * (sc[i] - sc[0]));
    double e2 = n > 1 ? exp(a * (sc[1] - sc[0])) : 0;
    size_t ntop = n < CG_MAX_ALTERNATIVES ? n : CG_MAX_ALTERNATIVES;
    for (size_t i = 0; i < ntop; i++) {
        out->alt[i].intent = &t->intents[m->cls_intent[cls[i]]];
        double ei = exp(a * (sc[i] - sc[0]));
        double p = i < 2 ? ei / (z + 1.0) : ei / (z + 1.0 + e2);
        if (i > 0 && p > out->alt[i - 1].score)
            p = out->alt[i - 1].score;
        out->alt[i].score = p;
    }
    out->nalt = ntop;
    out->score = out->alt[0].score;
    if (out->score >= t->settings.threshold) {
        out->intent = out->alt[0].intent;
        out->ambiguous = ntop > 1 && out->alt[0].score - out->alt[1].score < t->settings.ambiguity_margin;
    }
    return 0;
}

int cg_intents_match(const cg_intents *t, const char *text, size_t len, const char *lang,
                     cg_match *out)
{
    memset(out, 0, sizeof *out);
    if (!t || (!text && len))
        return -1;
    len = clip(text ? text : "", len);
    const cg_matcher *m = t->matcher;
    const char *def = t->settings.default_language[0] ? t->settings.default_language : "en";
    if (!m) {
        if (!cg_text_valid_utf8(text, len))
            return -1;
        snprintf(out->lang, sizeof out->lang, "%s", lang ? lang : def);
        return 0;
    }
    char *norm = cg_text_normalize(text ? text : "", len, lang);
    if (!norm)
        return -1;
    int li = lang ? lang_index(m, lang) : detect(m, norm);
    const char *use = lang ? lang : lang_of(t, li);
    snprintf(out->lang, sizeof out->lang, "%s", use);
    if (!lang && li >= 0 && !m->lang_strips[li]) {
        /* detected a language whose marks matter: redo without stripping */
        char *again = cg_text_normalize(text, len, use);
        if (again) {
            free(norm);
            norm = again;
        }
    }
    scratch *s = scratch_get();
    if (!s) {
        free(norm);
        return -1;
    }
    split_words(m, s, norm, use, li);
    int rc = features(m, s);
    free(norm);
    if (rc != 0)
        return -1;
    if (m->nclass == 0)
        return 0;

    /* weights of known features, block norms */
    double ssq[2] = {0, 0};
    size_t nk = 0;
    for (size_t u = 0; u < s->nused; u++) {
        const fentry *f = &s->tab[s->used[u]];
        int64_t id = f->id >= 0 ? f->id : f->id == -2 ? -1 : dict_get(m, f->block, f->h);
        if (id < 0) {
            /* Unknown features carry no weight but count in the norm, as if
             * seen in no example: a text made mostly of words the table never
             * saw keeps only a small vector, so it scores low everywhere
             * instead of being blown up to unit length by its stop words. */
            double v = (f->tf == 1 ? 1.0 : 1.0 + log((double)f->tf)) * m->idf_unseen;
            ssq[f->block & 1] += v * v;
            continue;
        }
        uint32_t fi = (uint32_t)id & 0x7fffffffu;
        double v = (f->tf == 1 ? 1.0 : 1.0 + log((double)f->tf)) * m->idf[fi];
        ssq[(uint32_t)id >> 31] += v * v;
        s->kf[nk] = fi;
        s->kv[nk] = (float)v;
        s->kb[nk] = (uint8_t)((uint32_t)id >> 31);
        nk++;
    }
    tab_clear(s);
    float bs[2];
    bs[0] = ssq[0] > 0 ? (float)((ssq[1] > 0 ? m->word_scale : 1.0) / sqrt(ssq[0])) : 0;
    bs[1] = ssq[1] > 0 ? (float)((ssq[0] > 0 ? m->char_scale : 1.0) / sqrt(ssq[1])) : 0;
    if (m->index)
        return match_large(t, m, s, li, nk, bs, out);

    if (s->scap < m->npad) {
        float *ns = aligned_alloc(32, m->npad * sizeof *ns);
        if (!ns)
            return -1;
        free(s->scores);
        s->scores = ns;
        s->scap = m->npad;
    }
    float *sc = s->scores;
    memset(sc, 0, m->npad * sizeof *sc);
    memcpy(sc, m->bias, m->nclass * sizeof *sc);
    for (size_t u = 0; u < nk; u++) {
        float v = s->kv[u] * bs[s->kb[u]];
        uint32_t fi = s->kf[u];
        if (m->dslot[fi] != UINT32_MAX) {
            dense_add(sc, m->dense + (size_t)m->dslot[fi] * m->npad, v, m->npad / 8);
            continue;
        }
        for (uint32_t k = m->row[fi]; k < m->row[fi + 1]; k++)
            sc[m->wcls[k]] += v * m->wval[k];
    }

    /* the text is one of the examples: its intents (more than one: a tie,
     * hence ambiguous) rank first, a margin of 1 above the best score */
    size_t nx;
    const uint16_t *xc = exact_get(m, text_key(s), &nx);
    if (xc) {
        float best = -INFINITY;
        for (size_t c = 0; c < m->nclass; c++)
            best = sc[c] > best ? sc[c] : best;
        if (best == -INFINITY)
            best = 0;
        for (size_t k = 0; k < nx; k++)
            sc[xc[k]] = best + 1.0f;
    }

    /* keywords */
    uint64_t kmask = m->nkws ? kw_text_mask(s) : 0;
    for (size_t i = 0; i < m->nkws; i++) {
        const cls_kw *ck = &m->kws[i];
        if (ck->nmust) {
            int any = 0;
            for (size_t k = 0; k < ck->nmust && !any && (ck->must_any & kmask); k++)
                any = kw_present(&ck->must[k], s, li, kmask);
            if (!any) {
                sc[ck->cls] = -INFINITY;
                continue;
            }
        }
        for (size_t k = 0; k < ck->nshould && (ck->should_any & kmask); k++)
            if (kw_present(&ck->should[k], s, li, kmask))
                sc[ck->cls] += (float)m->o.should_bonus;
    }

    /* top candidates */
    size_t top[CG_MAX_ALTERNATIVES];
    size_t ntop = 0;
    for (size_t c = 0; c < m->nclass; c++) {
        if (sc[c] == -INFINITY)
            continue;
        if (ntop == CG_MAX_ALTERNATIVES && sc[c] <= sc[top[ntop - 1]])
            continue;
        size_t p = ntop < CG_MAX_ALTERNATIVES ? ntop++ : ntop - 1;
        while (p > 0 && sc[top[p - 1]] < sc[c]) {
            top[p] = top[p - 1];
            p--;
        }
        top[p] = c;
    }
    double z = 0;
    if ((m->o.conf_mode == 1 || m->o.conf_mode == 3) && ntop) {
        /* terms below e^-16 of the top move a confidence by < 1e-4 */
        float a = (float)m->o.calib_a, floor_s = sc[top[0]] - 16.0f / a;
        for (size_t c = 0; c < m->nclass; c++)
            if (sc[c] > floor_s && c != top[0] && (ntop < 2 || c != top[1]))
                z += expf(a * (sc[c] - sc[top[0]]));
    }
    /* z: the sum over every intent but the top two (their terms added below) */
    for (size_t i = 0; i < ntop; i++) {
        out->alt[i].intent = &t->intents[m->cls_intent[top[i]]];
        double x = sc[top[i]];
        if (m->o.conf_mode == 3) {
            /* softmax in which the runner-up does not count against the top:
             * p1 = e1 / (e1 + rest), p2 = e2 / (e1 + rest), rest = every
             * other intent. Two near-identical intents both keep a high
             * confidence (and come out ambiguous) instead of splitting it
             * and falling back; a clear runner-up stays low. */
            double e1 = 1.0, e2 = ntop > 1 ? exp(m->o.calib_a * (sc[top[1]] - sc[top[0]])) : 0;
            double ei = exp(m->o.calib_a * (x - sc[top[0]]));
            double p = i < 2 ? ei / (z + e1) : ei / (z + e1 + e2);
            if (i > 0 && p > out->alt[i - 1].score)
                p = out->alt[i - 1].score;
            out->alt[i].score = p;
        } else if (m->o.conf_mode == 1)
            out->alt[i].score = exp(m->o.calib_a * (x - sc[top[0]])) /
                                (z + 1.0 + (ntop > 1 ? exp(m->o.calib_a * (sc[top[1]] - sc[top[0]])) : 0));
        else if (m->o.conf_mode == 2)
            out->alt[i].score = conf_of(m, x - (i == 0 ? (ntop > 1 ? sc[top[1]] : x - 10)
                                                       : sc[top[0]]));
        else
            out->alt[i].score = conf_of(m, x);
    }
    out->nalt = ntop;
    if (ntop == 0)
        return 0;
    out->score = out->alt[0].score;
    if (out->score >= t->settings.threshold) {
        out->intent = out->alt[0].intent;
        out->ambiguous = ntop > 1 && out->alt[0].score - out->alt[1].score < t->settings.ambiguity_margin;
    }
    return 0;
}

/*
 * matcher_index.c: the matcher's model for tables too large for one
 * liblinear model (thousands of intents: a national catalogue). matcher.c
 * chooses it from opts.large_min_intents classes up; below that this file
 * is not used.
 *
 * Model. Each class is the centroid of its examples' vectors (the same
 * weighted, block-normalised TF-IDF vectors liblinear is trained on),
 * L2-normalised; a text's score for a class is the cosine between its
 * vector and the centroid. Unknown features count in the text's norm (see
 * matcher.c), so text unlike the table scores low everywhere.
 *
 * Retrieval. An inverted index maps each feature to postings (class,
 * centroid weight), heaviest first, and keeps at most opts.large_postings
 * of them per feature: the long lists are those of function words and
 * common character n-grams, whose light tails decide nothing, and cutting
 * them bounds the work of one query to (query features x postings) however
 * many intents the table has. Every entry dropped from a list weighs no
 * more than its cut (pcut[f]; ties at the cut are all dropped), which lets
 * the second stage be exact.
 *
 * Rerank. The k classes with the best partial sums are rescored exactly:
 * for each query feature whose list was cut, the class's own weight is
 * looked up in its centroid (binary search) and added if the list did not
 * already hold it. The output is their exact cosines, best first; the
 * caller applies the exact-text map, keywords and confidences.
 *
 * API in call order: cg_mindex_build() (matcher.c, at training),
 * cg_mindex_query() (any thread, concurrently), cg_mindex_memory(),
 * cg_mindex_free(). After building the index is read-only.
 *
 * Extending: another exact score (e.g. nearest example instead of the
 * centroid) goes in the rerank loop of cg_mindex_query(), with what it
 * needs stored by cg_mindex_build(); measure with bench/intents/run.sh
 * (the scale rows) and update docs/benchmarks.md.
 */
#include "matcher_index.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct cg_mindex {
    size_t nclass, nfeat;
    /* centroids, CSR by class, features ascending */
    uint32_t *crow;   /* nclass + 1 */
    uint32_t *cf;
    float *cv;
    /* postings, CSR by feature, weight descending, cut */
    uint32_t *prow;   /* nfeat + 1 */
    uint16_t *pcls;
    float *pw;
    float *pcut;      /* per feature: dropped entries weigh <= this; 0: none dropped */
    size_t memory;
};

void cg_mindex_free(cg_mindex *x)
{
    if (!x)
        return;
    free(x->crow);
    free(x->cf);
    free(x->cv);
    free(x->prow);
    free(x->pcls);
    free(x->pw);
    free(x->pcut);
    free(x);
}

size_t cg_mindex_memory(const cg_mindex *x)
{
    return x ? x->memory : 0;
}

typedef struct post { uint16_t cls; float w; } post;

static int post_cmp(const void *a, const void *b)
{
    const post *x = a, *y = b;
    if (x->w != y->w)
        return x->w > y->w ? -1 : 1;
    return (x->cls > y->cls) - (x->cls < y->cls);
}

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Centroids: per class, the sum of its examples' vectors (features merged
 * in a dense accumulator), L2-normalised. -1 on ENOMEM. */
static int build_centroids(cg_mindex *x, size_t nex, const uint32_t *cls, const size_t *off,
                           const uint32_t *fid, const float *val)
{
    size_t nc = x->nclass;
    uint32_t *start = calloc(nc + 1, sizeof *start), *order = malloc((nex ? nex : 1) * sizeof *order);
    double *acc = calloc(x->nfeat ? x->nfeat : 1, sizeof *acc);
    uint32_t *touched = malloc((x->nfeat ? x->nfeat : 1) * sizeof *touched);
    size_t cap = off[nex] ? off[nex] : 1;   /* a centroid set is never larger than its input */
    x->crow = calloc(nc + 1, sizeof *x->crow);
    x->cf = malloc(cap * sizeof *x->cf);
    x->cv = malloc(cap * sizeof *x->cv);
    int rc = -1;
    if (!start || !order || !acc || !touched || !x->crow || !x->cf || !x->cv)
        goto out;
    /* examples grouped by class (counting sort) */
    for (size_t i = 0; i < nex; i++)
        start[cls[i] + 1]++;
    for (size_t c = 0; c < nc; c++)
        start[c + 1] += start[c];
    for (size_t i = 0; i < nex; i++)
        order[start[cls[i]]++] = (uint32_t)i;
    for (size_t c = nc; c > 0; c--)
        start[c] = start[c - 1];
    start[0] = 0;
    size_t w = 0;
    for (size_t c = 0; c < nc; c++) {
        size_t nt = 0;
        for (uint32_t k = start[c]; k < start[c + 1]; k++) {
            size_t i = order[k];
            for (size_t j = off[i]; j < off[i + 1]; j++) {
                if (acc[fid[j]] == 0)
                    touched[nt++] = fid[j];
                acc[fid[j]] += val[j];
            }
        }
        qsort(touched, nt, sizeof *touched, u32_cmp);
        double ssq = 0;
        for (size_t k = 0; k < nt; k++)
            ssq += acc[touched[k]] * acc[touched[k]];
        double inv = ssq > 0 ? 1.0 / sqrt(ssq) : 0;
        x->crow[c] = (uint32_t)w;
        for (size_t k = 0; k < nt; k++) {
            float v = (float)(acc[touched[k]] * inv);
            acc[touched[k]] = 0;
            if (v > 0) {
                x->cf[w] = touched[k];
                x->cv[w++] = v;
            }
        }
    }
    x->crow[nc] = (uint32_t)w;
    x->memory += (nc + 1) * sizeof *x->crow + w * (sizeof *x->cf + sizeof *x->cv);
    rc = 0;
out:
    free(start);
    free(order);
    free(acc);
    free(touched);
    return rc;
}

/* Postings from the centroids, heaviest first, each list cut to at most
 * max entries (all entries tied at the cut dropped). -1 on ENOMEM. */
static int build_postings(cg_mindex *x, size_t max)
{
    size_t nf = x->nfeat, nnz = x->crow[x->nclass];
    uint32_t *row = calloc(nf + 1, sizeof *row), *fill = NULL;
    post *all = malloc((nnz ? nnz : 1) * sizeof *all);
    x->pcut = calloc(nf ? nf : 1, sizeof *x->pcut);
    x->prow = calloc(nf + 1, sizeof *x->prow);
    int rc = -1;
    if (!row || !all || !x->pcut || !x->prow)
        goto out;
    for (size_t k = 0; k < nnz; k++)
        row[x->cf[k] + 1]++;
    for (size_t f = 0; f < nf; f++)
        row[f + 1] += row[f];
    fill = malloc((nf ? nf : 1) * sizeof *fill);
    if (!fill)
        goto out;
    memcpy(fill, row, nf * sizeof *fill);
    for (size_t c = 0; c < x->nclass; c++)
        for (uint32_t k = x->crow[c]; k < x->crow[c + 1]; k++)
            all[fill[x->cf[k]]++] = (post){(uint16_t)c, x->cv[k]};
    size_t kept = 0;
    for (size_t f = 0; f < nf; f++) {
        size_t n = row[f + 1] - row[f];
        post *p = all + row[f];
        qsort(p, n, sizeof *p, post_cmp);
        if (n > max) {
            float cut = p[max].w;
            x->pcut[f] = cut;
            n = max;
            while (n > 0 && p[n - 1].w <= cut)
                n--;
        }
        kept += n;
    }
    x->pcls = malloc((kept ? kept : 1) * sizeof *x->pcls);
    x->pw = malloc((kept ? kept : 1) * sizeof *x->pw);
    if (!x->pcls || !x->pw)
        goto out;
    size_t w = 0;
    for (size_t f = 0; f < nf; f++) {
        x->prow[f] = (uint32_t)w;
        size_t n = row[f + 1] - row[f];
        const post *p = all + row[f];
        for (size_t k = 0; k < n && (x->pcut[f] == 0 || p[k].w > x->pcut[f]); k++) {
            x->pcls[w] = p[k].cls;
            x->pw[w++] = p[k].w;
        }
    }
    x->prow[nf] = (uint32_t)w;
    x->memory += (nf + 1) * sizeof *x->prow + nf * sizeof *x->pcut +
                 w * (sizeof *x->pcls + sizeof *x->pw);
    rc = 0;
out:
    free(row);
    free(fill);
    free(all);
    return rc;
}

cg_mindex *cg_mindex_build(size_t nclass, size_t nfeat, size_t nex, const uint32_t *cls,
                           const size_t *off, const uint32_t *fid, const float *val,
                           size_t postings)
{
    if (nclass > 65536 || off[nex] > UINT32_MAX)
        return NULL;
    cg_mindex *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->nclass = nclass;
    x->nfeat = nfeat;
    x->memory = sizeof *x;
    if (build_centroids(x, nex, cls, off, fid, val) != 0 ||
        build_postings(x, postings ? postings : 1) != 0) {
        cg_mindex_free(x);
        return NULL;
    }
    return x;
}

/* ---- query ------------------------------------------------------------- */

typedef struct qscratch {
    float *acc;          /* per class: partial score, valid where stamp == epoch */
    uint32_t *stamp;
    uint32_t *touched;   /* classes with a partial score this query */
    size_t cap;
    uint32_t epoch;
    uint32_t *cut; size_t cutcap;   /* query features whose lists were cut */
    uint32_t *cand; float *csc; size_t candcap;
} qscratch;

static pthread_key_t qs_key;
static pthread_once_t qs_once = PTHREAD_ONCE_INIT;

static void qs_free(void *p)
{
    qscratch *s = p;
    if (!s)
        return;
    free(s->acc);
    free(s->stamp);
    free(s->touched);
    free(s->cut);
    free(s->cand);
    free(s->csc);
    free(s);
}

static void qs_key_init(void)
{
    (void)pthread_key_create(&qs_key, qs_free);
}

/* This thread's scratch, sized for nclass classes, n query features and k
 * candidates; NULL on ENOMEM. */
static qscratch *qs_get(size_t nclass, size_t n, size_t k)
{
    pthread_once(&qs_once, qs_key_init);
    qscratch *s = pthread_getspecific(qs_key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s || pthread_setspecific(qs_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->cap < nclass) {
        float *a = malloc(nclass * sizeof *a);
        uint32_t *st = calloc(nclass, sizeof *st), *t = malloc(nclass * sizeof *t);
        if (!a || !st || !t) {
            free(a);
            free(st);
            free(t);
            return NULL;
        }
        free(s->acc);
        free(s->stamp);
        free(s->touched);
        s->acc = a;
        s->stamp = st;
        s->touched = t;
        s->cap = nclass;
        s->epoch = 0;
    }
    if (s->cutcap < n) {
        uint32_t *c = malloc(n * sizeof *c);
        if (!c)
            return NULL;
        free(s->cut);
        s->cut = c;
        s->cutcap = n;
    }
    if (s->candcap < k) {
        uint32_t *c = malloc(k * sizeof *c);
        float *v = malloc(k * sizeof *v);
        if (!c || !v) {
            free(c);
            free(v);
            return NULL;
        }
        free(s->cand);
        free(s->csc);
        s->cand = c;
        s->csc = v;
        s->candcap = k;
    }
    if (++s->epoch == 0) {
        memset(s->stamp, 0, s->cap * sizeof *s->stamp);
        s->epoch = 1;
    }
    return s;
}

/* First position in cf[lo..hi) whose feature is >= f (galloping from lo:
 * the query's features are looked up in ascending order). */
static uint32_t gallop(const uint32_t *cf, uint32_t lo, uint32_t hi, uint32_t f)
{
    uint32_t step = 1, prev = lo;
    while (lo < hi && cf[lo] < f) {
        prev = lo + 1;
        lo = hi - lo > step ? lo + step : hi;
        step *= 2;
    }
    if (lo < hi && cf[lo] == f)
        return lo;
    while (prev < lo) {   /* cf[prev - 1] < f <= cf[lo] (or lo == hi) */
        uint32_t mid = prev + (lo - prev) / 2;
        if (cf[mid] < f)
            prev = mid + 1;
        else
            lo = mid;
    }
    return lo;
}

/* Insert (c, v) into the list best[0..*n) of at most k, best first. */
static inline void keep_best(uint32_t *cls, float *sc, size_t *n, size_t k, uint32_t c, float v)
{
    if (*n == k && (k == 0 || v <= sc[k - 1]))
        return;
    size_t p = *n < k ? (*n)++ : k - 1;
    while (p > 0 && sc[p - 1] < v) {
        cls[p] = cls[p - 1];
        sc[p] = sc[p - 1];
        p--;
    }
    cls[p] = c;
    sc[p] = v;
}

int cg_mindex_query(const cg_mindex *x, const uint32_t *fid, const float *val, size_t n, size_t k,
                    uint32_t *cls, float *score, size_t max)
{
    if (!x || x->nclass == 0 || n == 0 || max == 0)
        return 0;
    if (k < max)
        k = max;
    qscratch *s = qs_get(x->nclass, n, k);
    if (!s)
        return -1;
    /* retrieval: partial sums over the kept postings */
    size_t nt = 0, ncut = 0;
    uint32_t ep = s->epoch;
    const uint32_t *restrict prow = x->prow;
    const uint16_t *restrict pcls = x->pcls;
    const float *restrict pw = x->pw;
    float *restrict acc = s->acc;
    uint32_t *restrict stamp = s->stamp, *restrict touched = s->touched;
    for (size_t u = 0; u < n; u++) {
        uint32_t f = fid[u];
        if (f >= x->nfeat)
            continue;
        float v = val[u];
        for (uint32_t j = prow[f], e = prow[f + 1]; j < e; j++) {
            uint32_t c = pcls[j];
            if (stamp[c] != ep) {
                stamp[c] = ep;
                acc[c] = 0;
                touched[nt++] = c;
            }
            acc[c] += v * pw[j];
        }
        if (x->pcut[f] > 0)
            s->cut[ncut++] = (uint32_t)u;
    }
    /* candidates: the k best partial sums */
    size_t nc = 0;
    float floor_v = -INFINITY;
    for (size_t i = 0; i < nt; i++) {
        float v = acc[touched[i]];
        if (v <= floor_v)
            continue;
        keep_best(s->cand, s->csc, &nc, k, touched[i], v);
        if (nc == k)
            floor_v = s->csc[k - 1];
    }
    for (size_t i = 1; i < ncut; i++) {   /* by feature, for gallop() */
        uint32_t u = s->cut[i];
        size_t j = i;
        for (; j > 0 && fid[s->cut[j - 1]] > fid[u]; j--)
            s->cut[j] = s->cut[j - 1];
        s->cut[j] = u;
    }
    /* rerank: add what the cut lists left out */
    size_t nout = 0;
    for (size_t i = 0; i < nc; i++) {
        uint32_t c = s->cand[i];
        float sc = s->csc[i];
        uint32_t pos = x->crow[c], end = x->crow[c + 1];
        for (size_t j = 0; j < ncut && pos < end; j++) {
            uint32_t f = fid[s->cut[j]];
            pos = gallop(x->cf, pos, end, f);
            if (pos < end && x->cf[pos] == f && x->cv[pos] <= x->pcut[f])
                sc += val[s->cut[j]] * x->cv[pos];
        }
        keep_best(cls, score, &nout, max, c, sc);
    }
    return (int)nout;
}

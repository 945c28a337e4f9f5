/*
 * matchbench.c: the matcher's own benchmark harness (not part of the build;
 * bench/intents/run.sh compiles it against the engine library).
 *
 * Builds a cg_intents in memory straight from dataset CSV files (no loader,
 * no intent files), trains the matcher with cg_matcher_train_opts, and
 * reports accuracy, out-of-scope rejection, training time, memory and
 * classifications per second on one thread. The end-to-end figures in
 * docs/benchmarks.md come from `civicgate intents eval`; this harness is for
 * the speed figures and for tuning the model's knobs.
 *
 * Usage:
 *   matchbench [knobs] --train FILE[:lang[:prefix[:max_per_intent[:max_intents]]]] ...
 *              [--test FILE[:lang[:prefix]]] [--holdout N] [--valid K]
 *              [--threshold X] [--sweep] [--speed SECONDS]
 * CSV: header "text,category" or "label,text" (column order from the header).
 * --holdout N   drop every (nintents/N)-th intent from training; their test
 *               rows are out of scope (must fall back)
 * --valid K     no --test: every K-th training row per intent is held out as
 *               the test set (for choosing thresholds without the test set)
 * --typos P     one edit in a share P of the test questions' words (4+ letters)
 * --speed S     time cg_intents_match over the test questions for S seconds
 * --passes N    instead: exactly N passes over them (for instruction counts)
 * --sweep       in/out-of-scope figures at thresholds 0.10, 0.15, ... 0.90
 * --scale N     a synthetic catalogue of N intents (see make_catalogue()):
 *               the training files' intents crossed with place names; the
 *               test questions name a place too; ends with one "scale:" line
 * --scale-examples E   examples per synthetic intent (default 10)
 * --dump DIR    write the (synthetic) training and test rows to DIR/train.csv
 *               and DIR/test.csv (text,category) for make_tables.py --csv
 * knobs (cg_matcher_opts): --char MIN-MAX --char-word-min N --cw X --C X
 *        --eps X --min-df N --solver N --conf N --calib-a X --calib-b X
 *        --nostem --nobigram --large N (large_min_intents) --postings N
 *        --cand N --large-a X --large-null X
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "civicgate/intents.h"
#include "matcher.h"

#define MAX_FILES 8

typedef struct row { char *text; char *label; char lang[CG_LANG_MAX]; } row;
typedef struct rows { row *v; size_t n, cap; } rows;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Deterministic typos: in each ASCII word of 4+ letters, with probability
 * p, one edit (drop, double, swap with the next, or replace a letter). */
static uint64_t rng = 88172645463325252ULL;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static char *typo(const char *in, double p)
{
    size_t n = strlen(in);
    char *out = malloc(n * 2 + 2);
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && ((in[j] | 0x20) >= 'a' && (in[j] | 0x20) <= 'z'))
            j++;
        size_t len = j - i;
        if (len >= 4 && (double)(next_rand() % 10000) / 10000.0 < p) {
            size_t at = 1 + next_rand() % (len - 2);   /* keep the first letter */
            int kind = (int)(next_rand() % 4);
            for (size_t k = i; k < j; k++) {
                size_t pos = k - i;
                if (pos == at && kind == 0)
                    continue;                                   /* drop */
                if (pos == at && kind == 1)
                    out[w++] = in[k];                           /* double */
                if (pos == at && kind == 2 && k + 1 < j) {
                    out[w++] = in[k + 1];                       /* swap */
                    out[w++] = in[k];
                    k++;
                    continue;
                }
                if (pos == at && kind == 3) {
                    out[w++] = (char)('a' + next_rand() % 26);  /* replace */
                    continue;
                }
                out[w++] = in[k];
            }
            i = j;
            continue;
        }
        if (j == i)
            j++;
        memcpy(out + w, in + i, j - i);
        w += j - i;
        i = j;
    }
    out[w] = 0;
    return out;
}

static double cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n)
        exit(2);
    b[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* RFC 4180 field reader; returns 1 at end of record, 0 more fields, -1 EOF. */
static int csv_field(const char **pp, const char *end, char **out)
{
    const char *p = *pp;
    if (p >= end)
        return -1;
    size_t cap = 64, n = 0;
    char *b = malloc(cap);
    int quoted = 0;
    if (*p == '"') {
        quoted = 1;
        p++;
    }
    for (;;) {
        if (p >= end)
            break;
        char c = *p;
        if (quoted) {
            if (c == '"') {
                if (p + 1 < end && p[1] == '"') {
                    p += 2;
                    c = '"';
                } else {
                    quoted = 0;
                    p++;
                    continue;
                }
            } else
                p++;
        } else {
            if (c == ',' || c == '\n' || c == '\r')
                break;
            p++;
        }
        if (n + 2 > cap)
            b = realloc(b, cap *= 2);
        b[n++] = c;
    }
    b[n] = 0;
    *out = b;
    int eor = 1;
    if (p < end && *p == ',') {
        p++;
        eor = 0;
    } else {
        while (p < end && (*p == '\r' || *p == '\n'))
            p++;
    }
    *pp = p;
    return eor;
}

static void read_csv(const char *path, const char *lang, const char *prefix, rows *r)
{
    size_t len;
    char *data = slurp(path, &len);
    const char *p = data, *end = data + len;
    char *h1 = NULL, *h2 = NULL;
    csv_field(&p, end, &h1);
    csv_field(&p, end, &h2);
    int text_first = strcmp(h1, "text") == 0;
    free(h1);
    free(h2);
    for (;;) {
        char *a = NULL, *b = NULL;
        if (csv_field(&p, end, &a) < 0)
            break;
        if (csv_field(&p, end, &b) < 0) {
            free(a);
            break;
        }
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 1024;
            r->v = realloc(r->v, r->cap * sizeof *r->v);
        }
        row *w = &r->v[r->n++];
        w->text = text_first ? a : b;
        char *lab = text_first ? b : a;
        /* intent ids: prefix + label, lower-cased, spaces → '-' */
        char *id = NULL;
        if (asprintf(&id, "%s%s", prefix, lab) < 0)
            exit(2);
        free(lab);
        w->label = id;
        snprintf(w->lang, sizeof w->lang, "%s", lang);
    }
    free(data);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* sorted unique labels */
static char **labels_of(const rows *r, size_t *n)
{
    char **v = malloc((r->n + 1) * sizeof *v);
    for (size_t i = 0; i < r->n; i++)
        v[i] = r->v[i].label;
    qsort(v, r->n, sizeof *v, cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++)
        if (k == 0 || strcmp(v[k - 1], v[i]) != 0)
            v[k++] = v[i];
    *n = k;
    return v;
}

static long find_label(char **v, size_t n, const char *s)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(v[mid], s);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* ---- synthetic catalogue (--scale) -------------------------------------- */

/* Place names, built from syllables so that there are enough of them and
 * they share character n-grams the way real names do ("Ashford",
 * "Ashwick", "Kelford"): 24 x 16 = 384 distinct names. */
static const char *const place_pre[24] = {
    "Ash", "Bel", "Carn", "Dun", "Elm", "Fair", "Glen", "Hal", "Ink", "Jar", "Kel", "Lang",
    "Mar", "Nor", "Oak", "Pen", "Quar", "Ros", "Stan", "Thorn", "Ul", "Ver", "Wes", "Yar",
};
static const char *const place_suf[16] = {
    "ford", "bury", "wick", "ton", "field", "mouth", "ley", "by",
    "stead", "wood", "haven", "brook", "dale", "gate", "moor", "port",
};

static void place_name(size_t e, char *out, size_t n)
{
    snprintf(out, n, "%s%s", place_pre[e % 24], place_suf[(e / 24 + e) % 16]);
}

/* How a question names the place: four phrasings, used in training and
 * test alike (the words they add are in every intent, so they decide
 * nothing; the place name does). */
static char *with_place(const char *text, const char *place, size_t how)
{
    char *r = NULL;
    int rc;
    switch (how % 4) {
    case 0: rc = asprintf(&r, "%s in %s", text, place); break;
    case 1: rc = asprintf(&r, "%s: %s", place, text); break;
    case 2: rc = asprintf(&r, "%s (%s office)", text, place); break;
    default: rc = asprintf(&r, "for %s, %s", place, text); break;
    }
    if (rc < 0)
        exit(2);
    return r;
}

/* A catalogue of n intents from the base intents of tr: intent j is base
 * intent j % nbase at place j / nbase ("<base>@<Place>"), so a base intent
 * exists at ceil(n / nbase) places and the intents differ by the place they
 * name as well as by what is asked. Each gets per examples: a window of its
 * base intent's training rows starting at a place-dependent offset, each
 * naming the place in one of four phrasings. Each test row of a base intent
 * in the catalogue is asked about one of that intent's places (chosen by a
 * fixed hash of the row number). Replaces *tr and *te. */
static size_t rot = 0;   /* --rot: window offset per place (0: same examples at every place) */
static void make_catalogue(rows *tr, rows *te, size_t n, size_t per)
{
    size_t nb;
    char **base = labels_of(tr, &nb);
    size_t *cnt = calloc(nb, sizeof *cnt), *start = calloc(nb + 1, sizeof *start);
    row **by = malloc(tr->n * sizeof *by);
    for (size_t i = 0; i < tr->n; i++)
        cnt[find_label(base, nb, tr->v[i].label)]++;
    for (size_t b = 0; b < nb; b++)
        start[b + 1] = start[b] + cnt[b];
    memset(cnt, 0, nb * sizeof *cnt);
    for (size_t i = 0; i < tr->n; i++) {
        long b = find_label(base, nb, tr->v[i].label);
        by[start[b] + cnt[b]++] = &tr->v[i];
    }
    rows ntr = {0}, nte = {0};
    ntr.cap = n * per + 1;
    ntr.v = malloc(ntr.cap * sizeof *ntr.v);
    char place[64];
    for (size_t j = 0; j < n; j++) {
        size_t b = j % nb, e = j / nb;
        if (!cnt[b])
            continue;
        place_name(e, place, sizeof place);
        char *label = NULL;
        if (asprintf(&label, "%s@%s", base[b], place) < 0)
            exit(2);
        size_t k = per < cnt[b] ? per : cnt[b];
        for (size_t x = 0; x < k; x++) {
            const row *r = by[start[b] + (e * rot + x) % cnt[b]];
            row *w = &ntr.v[ntr.n++];
            w->text = with_place(r->text, place, e + x);
            w->label = label;
            memcpy(w->lang, r->lang, CG_LANG_MAX);
        }
    }
    nte.v = malloc((te->n + 1) * sizeof *nte.v);
    for (size_t i = 0; i < te->n; i++) {
        long b = find_label(base, nb, te->v[i].label);
        if (b < 0 || (size_t)b >= n)
            continue;   /* a base intent the catalogue does not reach */
        size_t places = (n - (size_t)b + nb - 1) / nb;   /* j = b, b + nb, ... < n */
        uint64_t h = (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ULL;
        size_t e = (size_t)((h >> 33) % places);
        place_name(e, place, sizeof place);
        row *w = &nte.v[nte.n++];
        w->text = with_place(te->v[i].text, place, i);
        if (asprintf(&w->label, "%s@%s", base[b], place) < 0)
            exit(2);
        memcpy(w->lang, te->v[i].lang, CG_LANG_MAX);
    }
    free(base);
    free(cnt);
    free(start);
    free(by);
    /* the base rows' strings stay allocated: the benchmark exits soon */
    free(tr->v);
    free(te->v);
    *tr = ntr;
    *te = nte;
}

/* dir/name as CSV "text,category", every field quoted. */
static void write_csv(const char *dir, const char *name, const rows *r)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs("text,category\n", f);
    for (size_t i = 0; i < r->n; i++) {
        const char *fields[2] = {r->v[i].text, r->v[i].label};
        for (int k = 0; k < 2; k++) {
            fputc('"', f);
            for (const char *p = fields[k]; *p; p++) {
                if (*p == '"')
                    fputc('"', f);
                fputc(*p, f);
            }
            fputs(k ? "\"\n" : "\",", f);
        }
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    cg_matcher_opts o;
    cg_matcher_opts_default(&o);
    const char *trains[MAX_FILES], *tests[MAX_FILES];
    size_t ntrain = 0, ntest = 0;
    int holdout = 0, valid = 0, sweep = 0;
    size_t scale = 0, scale_per = 10;
    const char *dump = NULL;
    double threshold = 0.5, margin = 0.08, speed = 0, typos = 0;
    size_t passes = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--train") && ntrain < MAX_FILES) trains[ntrain++] = v, i++;
        else if (!strcmp(a, "--test") && ntest < MAX_FILES) tests[ntest++] = v, i++;
        else if (!strcmp(a, "--holdout")) holdout = atoi(v), i++;
        else if (!strcmp(a, "--valid")) valid = atoi(v), i++;
        else if (!strcmp(a, "--threshold")) threshold = atof(v), i++;
        else if (!strcmp(a, "--margin")) margin = atof(v), i++;
        else if (!strcmp(a, "--sweep")) sweep = 1;
        else if (!strcmp(a, "--typos")) typos = atof(v), i++;
        else if (!strcmp(a, "--speed")) speed = atof(v), i++;
        else if (!strcmp(a, "--char")) { sscanf(v, "%d-%d", &o.char_min, &o.char_max); i++; }
        else if (!strcmp(a, "--cw")) o.char_weight = atof(v), i++;
        else if (!strcmp(a, "--char-word-min")) o.char_word_min = atoi(v), i++;
        else if (!strcmp(a, "--C")) o.C = atof(v), i++;
        else if (!strcmp(a, "--eps")) o.eps = atof(v), i++;
        else if (!strcmp(a, "--min-df")) o.min_df = atoi(v), i++;
        else if (!strcmp(a, "--solver")) o.solver = atoi(v), i++;
        else if (!strcmp(a, "--calib-a")) o.calib_a = atof(v), i++;
        else if (!strcmp(a, "--conf")) o.conf_mode = atoi(v), i++;
        else if (!strcmp(a, "--calib-b")) o.calib_b = atof(v), i++;
        else if (!strcmp(a, "--dump")) dump = v, i++;
        else if (!strcmp(a, "--passes")) passes = (size_t)atol(v), i++;
        else if (!strcmp(a, "--scale")) scale = (size_t)atol(v), i++;
        else if (!strcmp(a, "--scale-examples")) scale_per = (size_t)atol(v), i++;
        else if (!strcmp(a, "--rot")) rot = (size_t)atol(v), i++;
        else if (!strcmp(a, "--large")) o.large_min_intents = atoi(v), i++;
        else if (!strcmp(a, "--postings")) o.large_postings = atoi(v), i++;
        else if (!strcmp(a, "--cand")) o.large_candidates = atoi(v), i++;
        else if (!strcmp(a, "--large-a")) o.large_calib_a = atof(v), i++;
        else if (!strcmp(a, "--large-null")) o.large_null = atof(v), i++;
        else if (!strcmp(a, "--nostem")) o.stem = 0;
        else if (!strcmp(a, "--nobigram")) o.word_bigrams = 0;
        else {
            fprintf(stderr, "unknown argument %s\n", a);
            return 2;
        }
    }
    if (!ntrain) {
        fprintf(stderr, "usage: see the comment at the top of matchbench.c\n");
        return 2;
    }

    /* training rows, with per-file caps */
    rows tr = {0}, te = {0};
    char langs[MAX_FILES][CG_LANG_MAX];
    size_t nlangs = 0;
    for (size_t f = 0; f < ntrain; f++) {
        char spec[1024], *parts[5] = {0};
        snprintf(spec, sizeof spec, "%s", trains[f]);
        size_t np = 0;
        for (char *tok = strtok(spec, ":"); tok && np < 5; tok = strtok(NULL, ":"))
            parts[np++] = tok;
        const char *lang = np > 1 ? parts[1] : "en";
        const char *prefix = np > 2 && strcmp(parts[2], "-") ? parts[2] : "";
        size_t cap = np > 3 ? (size_t)atol(parts[3]) : 0;
        size_t maxi = np > 4 ? (size_t)atol(parts[4]) : 0;
        rows r = {0};
        read_csv(parts[0], lang, prefix, &r);
        size_t nl;
        char **labs = labels_of(&r, &nl);
        size_t *cnt = calloc(nl, sizeof *cnt);
        for (size_t i = 0; i < r.n; i++) {
            long li = find_label(labs, nl, r.v[i].label);
            if ((maxi && (size_t)li >= maxi) || (cap && cnt[li] >= cap))
                continue;
            cnt[li]++;
            if (tr.n == tr.cap) {
                tr.cap = tr.cap ? tr.cap * 2 : 1024;
                tr.v = realloc(tr.v, tr.cap * sizeof *tr.v);
            }
            tr.v[tr.n++] = r.v[i];
        }
        free(cnt);
        free(labs);
        free(r.v);
        size_t k = 0;
        while (k < nlangs && strcmp(langs[k], lang))
            k++;
        if (k == nlangs)
            snprintf(langs[nlangs++], CG_LANG_MAX, "%s", lang);
    }
    for (size_t f = 0; f < ntest; f++) {
        char spec[1024], *parts[3] = {0};
        snprintf(spec, sizeof spec, "%s", tests[f]);
        size_t np = 0;
        for (char *tok = strtok(spec, ":"); tok && np < 3; tok = strtok(NULL, ":"))
            parts[np++] = tok;
        read_csv(parts[0], np > 1 ? parts[1] : "en", np > 2 && strcmp(parts[2], "-") ? parts[2] : "",
                 &te);
    }
    if (ntest == 0 && valid > 1) {
        /* every valid-th row of each intent becomes a test row */
        size_t nl;
        char **labs = labels_of(&tr, &nl);
        size_t *cnt = calloc(nl, sizeof *cnt);
        rows keep = {0};
        keep.v = malloc(tr.n * sizeof *keep.v);
        te.v = malloc(tr.n * sizeof *te.v);
        for (size_t i = 0; i < tr.n; i++) {
            long li = find_label(labs, nl, tr.v[i].label);
            if (cnt[li]++ % (size_t)valid == (size_t)valid - 1)
                te.v[te.n++] = tr.v[i];
            else
                keep.v[keep.n++] = tr.v[i];
        }
        free(tr.v);
        tr = keep;
        free(cnt);
        free(labs);
    }

    if (scale)
        make_catalogue(&tr, &te, scale, scale_per);
    if (dump) {
        write_csv(dump, "train.csv", &tr);
        write_csv(dump, "test.csv", &te);
    }

    if (typos > 0)
        for (size_t i = 0; i < te.n; i++)
            te.v[i].text = typo(te.v[i].text, typos);

    /* intents: every label of the training rows, minus the held-out ones */
    size_t nl;
    char **labs = labels_of(&tr, &nl);
    char *is_out = calloc(nl, 1);
    if (holdout > 0)
        for (size_t k = 0; k < (size_t)holdout; k++)
            is_out[(k * nl) / (size_t)holdout + (nl / (size_t)holdout) / 2] = 1;
    cg_intents t;
    memset(&t, 0, sizeof t);
    t.intents = calloc(nl, sizeof *t.intents);
    size_t *in_of = malloc(nl * sizeof *in_of);
    for (size_t i = 0; i < nl; i++) {
        if (is_out[i])
            continue;
        cg_intent *in = &t.intents[t.nintents];
        in_of[i] = t.nintents++;
        in->id = labs[i];
        in->examples = calloc(nlangs, sizeof *in->examples);
        in->nexamples = nlangs;
        for (size_t l = 0; l < nlangs; l++) {
            memcpy(in->examples[l].lang, langs[l], CG_LANG_MAX);
            in->examples[l].v = malloc(tr.n * sizeof(char *));
        }
    }
    for (size_t i = 0; i < tr.n; i++) {
        long li = find_label(labs, nl, tr.v[i].label);
        if (is_out[li])
            continue;
        cg_intent *in = &t.intents[in_of[li]];
        for (size_t l = 0; l < nlangs; l++)
            if (!strcmp(langs[l], tr.v[i].lang))
                in->examples[l].v[in->examples[l].n++] = tr.v[i].text;
    }
    char *langv[MAX_FILES];
    for (size_t l = 0; l < nlangs; l++)
        langv[l] = langs[l];
    t.settings.languages = langv;
    t.settings.nlanguages = nlangs;
    snprintf(t.settings.default_language, CG_LANG_MAX, "%s", langs[0]);
    t.settings.threshold = threshold;
    t.settings.ambiguity_margin = margin;

    size_t nex = 0;
    for (size_t i = 0; i < t.nintents; i++)
        for (size_t l = 0; l < nlangs; l++)
            nex += t.intents[i].examples[l].n;
    double t0 = now(), c0 = cpu();
    t.matcher = cg_matcher_train_opts(&t, &o, NULL);
    double t1 = now(), c1 = cpu();
    if (!t.matcher) {
        fprintf(stderr, "training failed\n");
        return 1;
    }
    printf("table: %zu intents, %zu examples, %zu language(s); train %.3f s (cpu %.3f s); "
           "memory %.1f MiB\n", t.nintents, nex, nlangs, t1 - t0, c1 - c0,
           cg_matcher_memory(t.matcher) / 1048576.0);

    double top1 = 0, at_th = 0, per_s = 0;
    if (te.n) {
        /* decide each test row once; keep the top confidence */
        size_t n_in = 0, n_oos = 0, correct = 0, lang_ok = 0;
        double *conf = malloc(te.n * sizeof *conf);
        char *ok = malloc(te.n), *oos = malloc(te.n);
        for (size_t i = 0; i < te.n; i++) {
            long li = find_label(labs, nl, te.v[i].label);
            oos[i] = li < 0 || is_out[li];
            cg_match mt;
            if (cg_intents_match(&t, te.v[i].text, strlen(te.v[i].text), NULL, &mt) != 0) {
                conf[i] = 0;
                ok[i] = 0;
                continue;
            }
            conf[i] = mt.nalt ? mt.alt[0].score : 0;
            ok[i] = !oos[i] && mt.nalt && !strcmp(mt.alt[0].intent->id, te.v[i].label);
            lang_ok += strcmp(mt.lang, te.v[i].lang) == 0;
            if (oos[i])
                n_oos++;
            else {
                n_in++;
                correct += (size_t)ok[i];
            }
        }
        printf("test: %zu in scope, %zu out of scope; language detected right %.2f%%\n", n_in, n_oos,
               100.0 * lang_ok / te.n);
        printf("accuracy (top-1, no threshold): %.2f%%\n", n_in ? 100.0 * correct / n_in : 0);
        top1 = n_in ? 100.0 * correct / n_in : 0;
        if (n_oos) {
            /* the best out-of-scope recall within a budget of in-scope accuracy */
            static const double budget[] = {0.5, 1.0, 1.5, 2.0};
            for (size_t b = 0; b < 4; b++) {
                double best_th = 0, best_rec = 0;
                for (double th = 0.0; th <= 1.0; th += 0.0025) {
                    size_t c = 0, rej = 0;
                    for (size_t i = 0; i < te.n; i++) {
                        int fb = conf[i] < th;
                        if (oos[i])
                            rej += (size_t)fb;
                        else
                            c += (size_t)(ok[i] && !fb);
                    }
                    double lost = 100.0 * (double)(correct - c) / (double)n_in;
                    double rec = 100.0 * (double)rej / (double)n_oos;
                    if (lost <= budget[b] && rec > best_rec) {
                        best_rec = rec;
                        best_th = th;
                    }
                }
                printf("budget %.1f points: best recall %.2f%% at threshold %.4f\n", budget[b],
                       best_rec, best_th);
            }
        }
        double ths[64];
        size_t nth = 0;
        if (sweep)
            for (double th = 0.1; th < 0.91 && nth < 64; th += 0.05)
                ths[nth++] = th;
        else
            ths[nth++] = threshold;
        for (size_t k = 0; k < nth; k++) {
            size_t c = 0, rej = 0, in_rej = 0;
            for (size_t i = 0; i < te.n; i++) {
                int fb = conf[i] < ths[k];
                if (oos[i])
                    rej += (size_t)fb;
                else {
                    c += (size_t)(ok[i] && !fb);
                    in_rej += (size_t)fb;
                }
            }
            if (ths[k] == threshold)
                at_th = n_in ? 100.0 * c / n_in : 0;
            printf("threshold %.2f: in-scope accuracy %.2f%% (lost %.2f), in-scope fallback %.2f%%, "
                   "out-of-scope fallback (recall) %.2f%%\n",
                   ths[k], n_in ? 100.0 * c / n_in : 0,
                   n_in ? 100.0 * (correct - c) / n_in : 0, n_in ? 100.0 * in_rej / n_in : 0,
                   n_oos ? 100.0 * rej / n_oos : 0);
        }
        free(conf);
        free(ok);
        free(oos);
    }

    if ((speed > 0 || passes > 0) && te.n) {
        size_t *lens = malloc(te.n * sizeof *lens);
        for (size_t i = 0; i < te.n; i++)
            lens[i] = strlen(te.v[i].text);
        size_t done = 0;
        double s0 = now(), s1, u0 = cpu();
        volatile double sink = 0;
        do {
            for (size_t i = 0; i < te.n; i++) {
                cg_match mt;
                cg_intents_match(&t, te.v[i].text, lens[i], NULL, &mt);
                sink += mt.score;
            }
            done += te.n;
            s1 = now();
        } while (passes ? done < passes * te.n : s1 - s0 < speed);
        double u1 = cpu();
        printf("speed: %.0f classifications/s on one thread, %.0f per cpu-second (%zu in %.2f s, "
               "language detection on)\n", done / (s1 - s0), done / (u1 - u0), done, s1 - s0);
        per_s = done / (u1 - u0);
        free(lens);
    }
    if (scale) {
        /* peak RSS: the process, dominated by training's temporary memory */
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("scale: %zu intents, %zu examples, model %s, train %.2f s, memory %.1f MiB "
               "(peak RSS %.0f MiB), top-1 %.2f%%, at threshold %.2f %.2f%%, %.1f us/message (%.0f/s)\n",
               t.nintents, nex,
               o.large_min_intents > 0 && t.nintents >= (size_t)o.large_min_intents ? "index" : "liblinear",
               t1 - t0, cg_matcher_memory(t.matcher) / 1048576.0, ru.ru_maxrss / 1024.0, top1, threshold,
               at_th, per_s > 0 ? 1e6 / per_s : 0, per_s);
    }
    cg_matcher_free(t.matcher);
    return 0;
}

/*
 * matcher.h: internal contract between the loader and the matcher
 * (engine/matcher.c). The loader builds a validated cg_intents, then calls
 * cg_matcher_train() to index it; cg_intents_match() and
 * cg_intents_detect_lang() (declared in civicgate/intents.h) are implemented
 * in matcher.c on top of it.
 */
#ifndef CG_ENGINE_MATCHER_H
#define CG_ENGINE_MATCHER_H

#include "civicgate/intents.h"

/* Train on every intent's examples (all languages) and the table's synonyms
 * and keywords. Reads t, never changes it. Returns a new matcher the caller
 * stores in t->matcher (freed with cg_matcher_free), or NULL with a
 * diagnostic in d. */
cg_matcher *cg_matcher_train(const cg_intents *t, cg_diags *d);
void cg_matcher_free(cg_matcher *m);
/* Bytes of memory the matcher holds (reported by the benchmark). */
size_t cg_matcher_memory(const cg_matcher *m);

/* ---- added by engine/matcher.c (tuning seam for bench/intents) ---------- */

/* Knobs of the model. cg_matcher_train() uses cg_matcher_opts_default();
 * the benchmark trains with other values to measure them. */
typedef struct cg_matcher_opts {
    int char_min, char_max;   /* character n-grams within "<word>", code points */
    int char_word_min;        /* only for words of at least this many code points */
    int word_bigrams;         /* 1: word bigrams as well as unigrams */
    int stem;                 /* 1: Snowball stems for word features */
    double char_weight;       /* share of the char block in the unit vector, (0, 1) */
    int solver;               /* liblinear solver_type (L2R_L2LOSS_SVC_DUAL, MCSVM_CS...) */
    double C;                 /* liblinear cost */
    double eps;               /* liblinear stopping tolerance; <= 0: by table size */
    int min_df;               /* features in fewer training examples are dropped */
    int conf_mode;            /* 0: logistic of the decision value s,
                                 1: softmax over all intents' s (temperature 1/calib_a),
                                 2: logistic of s minus the best other intent's s,
                                 3: softmax where the runner-up does not count
                                    against the top (see matcher.c) */
    double calib_a, calib_b;  /* mode 0/2: 1 / (1 + exp(-calib_a * (x - calib_b))) */
    double should_bonus;      /* added to the decision value per "should" keyword found */
    /* large tables (engine/matcher_index.c): from this many intents with
     * examples up, nearest-centroid retrieval replaces liblinear; 0: never */
    int large_min_intents;
    int large_postings;       /* postings kept per feature (bounds one query's work) */
    int large_candidates;     /* classes rescored exactly after retrieval */
    double large_calib_a;     /* softmax temperature 1/a over the candidates' cosines */
    double large_null;        /* cosine of a "none of them" pseudo-intent in that softmax */
} cg_matcher_opts;

void cg_matcher_opts_default(cg_matcher_opts *o);
/* cg_matcher_train() with explicit options; same contract. */
cg_matcher *cg_matcher_train_opts(const cg_intents *t, const cg_matcher_opts *o, cg_diags *d);

#endif

/*
 * matcher_index.h: internal contract between engine/matcher.c and its model
 * for large tables (engine/matcher_index.c). matcher.c turns texts into
 * feature vectors and owns everything around the scores (exact-text map,
 * keywords, confidences, language); the index only answers "which classes
 * are nearest to this vector, and how near".
 */
#ifndef CG_ENGINE_MATCHER_INDEX_H
#define CG_ENGINE_MATCHER_INDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct cg_mindex cg_mindex;

/* Build from nex training vectors: example i belongs to class cls[i] <
 * nclass and has features fid[off[i]..off[i+1]) (each < nfeat, any order,
 * no repeats) with values val[...] (the example's weighted, normalised
 * vector). postings: entries kept per feature (the heaviest); it bounds the
 * work of one query. Borrowed arrays are read during the call only. Returns
 * a new index (cg_mindex_free) or NULL on ENOMEM. */
cg_mindex *cg_mindex_build(size_t nclass, size_t nfeat, size_t nex, const uint32_t *cls,
                           const size_t *off, const uint32_t *fid, const float *val,
                           size_t postings);
void cg_mindex_free(cg_mindex *x);
size_t cg_mindex_memory(const cg_mindex *x);

/* The query's known features fid[0..n) with values val[0..n) (no repeats).
 * Writes up to max classes into cls[] with their cosine to the class
 * centroid in score[], best first, and returns how many (0: no class shares
 * a feature with the query). Only classes among the k best after retrieval
 * are scored exactly. Thread-safe (per-thread scratch); -1 on ENOMEM. */
int cg_mindex_query(const cg_mindex *x, const uint32_t *fid, const float *val, size_t n, size_t k,
                    uint32_t *cls, float *score, size_t max);

#endif

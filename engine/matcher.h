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

#endif

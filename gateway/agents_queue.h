/*
 * agents_queue.h: the pure logic of the hand-off queue (agents_queue.c), no
 * I/O but the system tz database: queue order, office hours, the expected
 * wait, when to tell a waiting citizen their new position, the citizen-facing
 * texts and the case ids. Unit-tested in tests/unit/test_agents_queue.c.
 */
#ifndef CG_AGENTS_QUEUE_H
#define CG_AGENTS_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "civicgate/intents.h"
#include "config.h"

#define CG_CASE_ID_MAX 48     /* "c_<ms>_<8 hex>" fits with room */
#define CG_CASE_PRIORITY_MAX 100

/* Sorted-set score of a queued case: strictly by priority (higher first,
 * clamped to -CG_CASE_PRIORITY_MAX..CG_CASE_PRIORITY_MAX), then by the time
 * it was queued (ms since the epoch; earlier first). Lower scores come first
 * and every score is an integer a double holds exactly. */
double cg_agents_queue_score(int priority, int64_t created_at_ms);

/* Office hours at now (seconds since the epoch): 1 when open (or no office
 * hours configured). When closed, *opens_at (may be NULL) is set to when the
 * office opens next (seconds), or 0 when it does not within 60 days. Uses
 * the zone named in o->timezone (TZ is switched for the call and restored:
 * loop thread only). */
int cg_office_open(const cg_office_hours *o, int64_t now, int64_t *opens_at);

/* The local time t in o's time zone as "YYYY-MM-DD HH:MM" into buf. */
void cg_office_format(const cg_office_hours *o, int64_t t, char *buf, size_t cap);

/* Expected wait in seconds for the citizen at 1-based position with agents
 * online, each case taking avg_handle_s on average: position / agents of
 * them have to finish before this one is taken. -1 when nobody is online
 * (unknown). */
int64_t cg_agents_wait_estimate(int position, int agents_online, int avg_handle_s);
/* Minutes to announce for a wait of s seconds: rounded up to 5 (≥ 5). */
int cg_agents_wait_minutes(int64_t s);

/* 1 when a citizen last told they were at position told (0: never told)
 * should hear about position now: the first time, on reaching position 1,
 * or when the position improved by at least a third of the last one told
 * (and at least 1). */
int cg_agents_should_notify(int told, int now);

/* New case id from the time and 4 random bytes: "c_<ms>_<8 hex>". */
void cg_agents_case_id(char out[CG_CASE_ID_MAX], int64_t now_ms, const unsigned char rnd[4]);
/* 1 when s looks like a case id we made (safe in keys and URLs). */
int cg_agents_case_id_valid(const char *s);

/* The citizen-facing text of key (CG_PHRASE_OPTIONAL_KEYS) in lang, from the
 * table's phrases or else the built-in English; {{position}}, {{wait}} and
 * {{opens}} replaced by the given values (NULL: left out). malloc'd; NULL
 * on allocation failure. */
char *cg_agents_text(const cg_settings *s, const char *key, const char *lang, const char *position,
                     const char *wait, const char *opens);

#endif

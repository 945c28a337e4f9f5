/*
 * citizens.h: everything held about one citizen (one conversation,
 * "<channel>:<user>"), found, exported and erased in one place
 * (citizens.c), for the admin API (GET .../citizens/{channel}/{id}/export,
 * DELETE .../citizens/{channel}/{id}) and the citizen's own "delete my data"
 * (pipeline.c, CG_ACT_DELETE_DATA).
 *
 * What is held (docs/redis.md, "Citizens' data"):
 *   - every key carrying the conversation's hash tag {channel:user}, found
 *     with SCAN MATCH, whatever module wrote it: session, transcript,
 *     sequence and delivery state, gap sets, dedupe keys, and any per-citizen
 *     key added later through cg_store_key();
 *   - entries naming the citizen in shared structures, listed in citizens.c
 *     (cit_streams[], cit_zsets[]): cg:queue:agents, cg:flows, cg:inbox,
 *     cg:outbox, cg:deadletter (erased and exported) and cg:audit (exported,
 *     never erased: the audit log is kept for accountability);
 *   - records: hashes named <prefix><id> whose "channel" and "user" fields
 *     name the citizen (cit_records[]: the agents' cases cg:case:<id>, with
 *     their ids in cg:queue:agents, cg:cases:assigned, cg:cases:resolved and
 *     cg:agent:held:<agent>).
 * A module that stores per-citizen data elsewhere adds one row there.
 */
#ifndef CG_CITIZENS_H
#define CG_CITIZENS_H

#include <cjson/cJSON.h>
#include "gateway.h"

/* 0 when channel is a known channel and user a plausible id (1-63 bytes of
 * A-Z a-z 0-9 . _ : @ + = -); -1 otherwise (answer 400 / do nothing). */
int cg_citizens_valid(const char *channel, const char *user);

typedef enum {
    CG_CITIZENS_ALL = 0,            /* the admin's erasure: everything */
    CG_CITIZENS_KEEP_DELIVERY = 1   /* the citizen's own: keeps cg:seq:{c:u} and the
                                     * inbox/outbox entries, so that the confirmation
                                     * just queued is delivered and later messages
                                     * are answered (cg:seq expires with the session TTL) */
} cg_citizens_mode;

typedef struct cg_citizens_counts {
    size_t keys;        /* keys removed */
    size_t entries;     /* entries removed from shared structures */
    int complete;       /* 0 when a limit stopped the search (erase again) */
} cg_citizens_counts;

/* result: CG_OK, CG_E_BAD_REQUEST (invalid channel/user: nothing done),
 * CG_E_UNAVAILABLE (Redis failed part-way: erase again), CG_E_NOMEM. */
typedef void (*cg_citizens_erase_cb)(void *ud, cg_err result, const cg_citizens_counts *counts);

/* Erase the citizen's data; strings copied. Writes one audit entry (action
 * "erase", target "<channel>:<user>", detail the counts; never content) on
 * success, as who/role (e.g. the admin's name and "admin", or "citizen").
 * cb may be NULL; it runs once, before return when nothing was sent to
 * Redis (invalid citizen, Redis down, out of memory). */
void cg_citizens_erase(cg_gateway *gw, const char *channel, const char *user, cg_citizens_mode mode,
                       const char *who, const char *role, cg_citizens_erase_cb cb, void *ud);

/* doc: {"channel", "user", "exported_at", "found" (false: nothing held),
 * "complete", "keys": {key: {"type", "ttl_ms", "value"}}, "queues":
 * {"agent_queue": {"member", "score"}}, "streams": {"flows"|"inbox"|...:
 * [{"id", "fields"}]}, "records": {"cases": [{"key", "fields"}]}}; owned by
 * the callback (delete it), NULL unless CG_OK.
 * Same result codes as erasure; cb may run before return likewise. */
typedef void (*cg_citizens_export_cb)(void *ud, cg_err result, cJSON *doc);
void cg_citizens_export(cg_gateway *gw, const char *channel, const char *user, cg_citizens_export_cb cb,
                        void *ud);

#endif

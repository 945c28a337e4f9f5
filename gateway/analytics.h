/*
 * analytics.h: what citizens asked and the daily figures (issue 6), written
 * by the pipeline's commit and the agents module, read by the admin API
 * (gateway/analytics.c: GET /api/v1/admin/unmatched and /stats).
 *
 * Keys (docs/redis.md, "Analytics"), days in UTC, every key expiring
 * retention.analytics_s after its last write, no citizen identifier in any
 * key or value:
 *   cg:an:day:<YYYY-MM-DD>:<channel>   hash of daily counters (below)
 *   cg:an:conv:<YYYY-MM-DD>:<channel>  HyperLogLog of the day's conversations
 *   cg:an:unm:<YYYY-MM-DD>:<lang>      hash "<kind>|<channel>|<text>" →
 *                                      "<count> <cid>,<cid>,..." (≤ 16 cids)
 * where <text> is the redacted, normalised question (cg_analytics_text) and
 * <cid> a 20-bit hash of the conversation (cg_analytics_cid): about 10^4
 * possible phone numbers share each value, so it tells citizens apart inside
 * a group without naming anyone.
 *
 * Daily counters: messages, turns (answered by the bot), fallback,
 * ambiguous, handoff, to_agent (messages while a person had the
 * conversation), i:<intent id> (answers per intent), unmatched_dropped (the
 * day's unmatched hash was full); csat_n, csat_sum, csat:<1-5> (a rating
 * committed with its message, cg_analytics_turn.csat, or given to
 * cg_analytics_record_case()); from cg_analytics_record_case(): wait_n,
 * wait_ms_sum, w:<le seconds>|w:inf (the wait histogram).
 *
 * Write path. The day's counters and conversations (cg:an:day, cg:an:conv)
 * are summed in process and written in one script call CG_AN_BATCH_MS after
 * the first message summed, or as soon as the batch is full
 * (cg_analytics_batch, below): the pipeline adds a message once its commit
 * script answered "ok", so a re-delivered message ("dup") or a failed commit
 * is never counted. Only the unmatched question stays in the commit
 * (operation "an", CG_ANALYTICS_COMMIT_LUA), in the same round trip as the
 * rest of the turn. A crash loses the counts summed but not yet written (at
 * most CG_AN_BATCH_MS' worth), and so does a Redis failure (logged): the
 * figures are at-most-once, unlike the messages.
 *
 * API in call order: the pipeline fills a cg_analytics_turn per committed
 * message; cg_analytics_op_make() turns its unmatched question, if any, into
 * the commit script's "an" operation, cg_analytics_op_free(); after the
 * commit, cg_analytics_batch_add() (the batch from cg_analytics_batch_new(),
 * flushed by itself, cg_analytics_batch_flush() when stopping,
 * cg_analytics_batch_free()); the agents module calls
 * cg_analytics_record_case(); http.c routes the admin API to
 * cg_analytics_api_routes (api.h).
 *
 * Extending: a new daily counter is a field name in turn_fields()
 * (analytics.c; or record_case), then its place in stats' JSON and CSV
 * (analytics.c says where) and a line in docs/redis.md.
 */
#ifndef CG_ANALYTICS_H
#define CG_ANALYTICS_H

#include <stddef.h>
#include <stdint.h>

#include "gateway.h"

#define CG_AN_TEXT_MAX      240     /* bytes of a stored question (cut at a word) */
#define CG_AN_UNM_FIELDS    5000    /* distinct questions kept per day and language */
#define CG_AN_CIDS_MAX      16      /* citizens told apart per stored question */
#define CG_AN_OP_ARGS       8

/* The commit script's operation "an", only for a message whose question is
 * stored (a fallback, ambiguity question or hand-off of typed text): Lua to
 * put at the top of the script; the op chain calls analytics_op(s, e) with
 * the range of ARGV that holds the operation's arguments a:
 *   1 expiry (Unix seconds: the end of the day plus retention.analytics_s,
 *     the same for every write to the day's keys)  2 daily hash
 *   3 unmatched hash  4 its field  5 cid  6 max fields
 * The daily counters are not here: cg_analytics_batch writes them. The
 * daily hash is written here only when the unmatched hash is full
 * (unmatched_dropped), and then gets its EXPIREAT too, so that it never
 * lives without one even if the batch that would set it is lost. */
#define CG_ANALYTICS_COMMIT_LUA \
    "local function analytics_op(s, e)\n" \
    "  local a = {unpack(ARGV, s, e)}\n" \
    "  local v = redis.call('HGET', a[3], a[4])\n" \
    "  if not v and redis.call('HLEN', a[3]) >= tonumber(a[6]) then\n" \
    "    redis.call('HINCRBY', a[2], 'unmatched_dropped', 1)\n" \
    "    redis.call('EXPIREAT', a[2], a[1])\n" \
    "    return\n" \
    "  end\n" \
    "  local n, ids = 0, ''\n" \
    "  if v then\n" \
    "    local sp = string.find(v, ' ', 1, true)\n" \
    "    n = tonumber(string.sub(v, 1, sp - 1)); ids = string.sub(v, sp + 1)\n" \
    "  end\n" \
    "  if #ids < 6 * 16 - 1 and not string.find(',' .. ids .. ',', ',' .. a[5] .. ',', 1, true) then\n" \
    "    if ids == '' then ids = a[5] else ids = ids .. ',' .. a[5] end\n" \
    "  end\n" \
    "  redis.call('HSET', a[3], a[4], (n + 1) .. ' ' .. ids)\n" \
    "  redis.call('EXPIREAT', a[3], a[1])\n" \
    "end\n"

/* One committed message, as the pipeline saw it. Strings borrowed. */
typedef struct cg_analytics_turn {
    const char *channel, *user;
    const char *text;        /* what the citizen typed (text messages only), or NULL */
    const char *lang;        /* the reply's language, or NULL (no turn) */
    const char *intent;      /* intent answered, or NULL */
    int turn;                /* the bot ran a dialog turn */
    int agent;               /* a person had the conversation: no turn */
    int fallback, ambiguous, handoff;
    int csat;                /* 1..5: the message rated a resolved case; 0: none */
    int64_t now_ms;
} cg_analytics_turn;

typedef struct cg_analytics_op {
    const char *argv[CG_AN_OP_ARGS];   /* point into the fields below */
    int argc;
    char ttl[24], day_key[64], cid[8], unm_key[64], max_fields[16];
    char *unm_field;                   /* owned, or NULL */
} cg_analytics_op;

/* Arguments of the "an" operation for t: its unmatched question. 0, or -1
 * (no question to store: add no operation; or no memory). op is then
 * released with cg_analytics_op_free() either way. */
int cg_analytics_op_make(const cg_config *cfg, const cg_analytics_turn *t, cg_analytics_op *op);
void cg_analytics_op_free(cg_analytics_op *op);

/* The question as stored: NFKC, redacted (redact.h), normalised per lang
 * (text.h) with the placeholders kept, redacted again (normalising can make
 * digits), cut to CG_AN_TEXT_MAX at a word. malloc'd; NULL when nothing is
 * left or on invalid UTF-8 / no memory. */
char *cg_analytics_text(const char *raw, size_t len, const char *lang);

/* 20-bit hash of a conversation, as 5 hex digits + NUL. */
void cg_analytics_cid(const char *channel, const char *user, char out[8]);

/* "YYYY-MM-DD" (UTC) of a time in ms since the epoch. */
void cg_analytics_day(int64_t ms, char out[11]);
/* When a day's analytics keys expire (Unix seconds): the end of the UTC day
 * of ms plus retention.analytics_s. */
long long cg_analytics_expire_at(const cg_config *cfg, int64_t ms);

/* A case the agents handled: wait_ms (queued → claimed; < 0: unknown) and
 * csat (1..5; 0: none given) go into the day's counters for channel.
 * Fire and forget; safe when Redis is down (logged). Call once per figure:
 * (wait, 0) at the claim and (-1, score) when the citizen rates. */
void cg_analytics_record_case(cg_gateway *gw, const char *channel, long long wait_ms, int csat);

/* ---- the daily counters' batch ------------------------------------------ */

/* Limits of one batch: (day, channel) pairs, counters per pair, distinct
 * conversations (cids) per pair. A message that does not fit sends the
 * batch at once (an early flush) and starts the next one: the memory is
 * fixed (about 32 KiB), whatever the load. */
#define CG_AN_BATCH_MS      100     /* a batch is written this long after its first message */
#define CG_AN_BATCH_KEYS    8
#define CG_AN_BATCH_FIELDS  48
#define CG_AN_BATCH_CIDS    64

typedef struct cg_analytics_batch cg_analytics_batch;

/* A batch that writes through store on loop (both borrowed: the store must
 * stay open until the batch's last flush); cfg borrowed (the retention).
 * NULL on allocation failure. Owned by its creator (the pipeline, one per
 * gateway process), released with cg_analytics_batch_free(). */
cg_analytics_batch *cg_analytics_batch_new(uv_loop_t *loop, cg_store *store, const cg_config *cfg);

/* Add one committed message's counters: t's channel, user, now_ms, turn,
 * agent, fallback, ambiguous, handoff, intent and csat (text and lang are
 * not used; strings copied). Call only once its commit is known to have
 * happened, and once per message. The sums go out in one script call right
 * after this loop iteration's poll phase (a uv_check), or at once when t
 * does not fit. 0, or -1 (no channel, or one of CG_CHANNEL_MAX bytes or
 * more, or no user: not counted). */
int cg_analytics_batch_add(cg_analytics_batch *b, const cg_analytics_turn *t);

/* Send what is summed, now (nothing when empty); returns how many messages
 * it held. Best effort: when Redis is down or fails the script, those
 * counts are lost, logged (analytics_batch_lost, with the number of
 * messages); never retried. */
size_t cg_analytics_batch_flush(cg_analytics_batch *b);

/* Messages summed and not yet sent. */
size_t cg_analytics_batch_pending(const cg_analytics_batch *b);

/* Release: what is still summed is dropped (logged: flush first while the
 * store is open); the handle is closed and the memory freed by the loop.
 * NULL: nothing. */
void cg_analytics_batch_free(cg_analytics_batch *b);

/* ---- grouping (pure; exported for tests) --------------------------------- */

/* Near-identical questions of one language: texts[0..n) (normalised, sorted
 * by importance, most asked first) are grouped greedily: each joins the most
 * similar earlier group whose first text is at least threshold similar
 * (weighted Jaccard of the Snowball-stemmed token sets, each token weighted
 * by its inverse document frequency ln(1 + max(n, 50) / df) among the n
 * texts, so that among many questions "how do I" counts little and
 * "passport" much, while among a few it is plain Jaccard), or starts a
 * group. group_of[i] gets the index
 * of its group's first text. Returns 0, or -1 on allocation failure. */
int cg_analytics_group(const char *const *texts, size_t n, const char *lang, double threshold,
                       size_t *group_of);

#define CG_AN_GROUP_THRESHOLD 0.5

#endif

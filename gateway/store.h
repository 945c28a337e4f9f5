/*
 * store.h: the Redis layer shared by store.c, pipeline.c and outbox.c
 * (internal to the gateway; gateway.h is the public contract).
 *
 * Key schema (docs/redis.md has the whole story). Every per-conversation key
 * carries the hash tag {channel:user}:
 *   cg:inbox               stream, group "pipeline"    citizen messages
 *   cg:outbox              stream, group "outbox"      replies to deliver
 *   cg:deadletter          stream                      replies given up on
 *   cg:seq:{c:u}           hash: in, done, out, sent, cur, try, due, part
 *   cg:sess:{c:u}          hash: dialog, blocked, last_in, agent, name, reengaged_at,
 *                          ttl_at (when the commit last refreshed the TTLs)
 *   cg:held:{c:u}          list: replies held while WhatsApp's window is closed
 *   cg:dlv:{c:u}           hash: delivery state of our messages (delivery.c)
 *   cg:conv:{c:u}          stream (capped): the transcript
 *   cg:dedupe:{c:u}:<id>   string, SET NX EX: webhook deduplication
 *   cg:queue:agents        sorted set of escalated conversations
 *   cg:flows               stream (capped): answers of finished flows
 *   cg:webchat, cg:agents  pub/sub channels
 *
 * API in call order: cg_store_cmd() / cg_store_eval() send one command or
 * script; the callback gets the reply (borrowed for the duration of the
 * callback) or NULL when the connection is gone. Extending: a new script is a
 * static cg_store_script in the module that uses it; a new key goes in
 * docs/redis.md and, if per conversation, through cg_store_key().
 */
#ifndef CG_STORE_H
#define CG_STORE_H

#include <stdint.h>
#include <hiredis/hiredis.h>
#include "gateway.h"

#define CG_K_INBOX      "cg:inbox"
#define CG_K_OUTBOX     "cg:outbox"
#define CG_K_DEADLETTER "cg:deadletter"
#define CG_K_AGENTS_Q   "cg:queue:agents"
#define CG_K_FLOWS      "cg:flows"
#define CG_CH_WEBCHAT   "cg:webchat"
#define CG_CH_AGENTS    "cg:agents"
#define CG_G_PIPELINE   "pipeline"
#define CG_G_OUTBOX     "outbox"

#define CG_KEY_MAX 256

/* Entries read per XREADGROUP / XAUTOCLAIM: bounds every stream reply. */
#define CG_STORE_READ_COUNT 32
/* Recovery timing. Defaults in store.c; the constants of the design, kept in
 * one place so that tests can shorten them (never changed at run time). */
typedef struct cg_store_timing {
    unsigned claim_idle_ms;    /* a pending entry idle this long belongs to a dead consumer: 30 s */
    unsigned keep_ms;          /* live consumers re-touch held entries this often: 5 s (< claim_idle) */
    unsigned claim_every_ms;   /* XAUTOCLAIM period: 5 s */
    unsigned pipeline_gap_ms;  /* a missing predecessor is given up on after: 2 min */
    unsigned outbox_gap_ms;    /* same for replies: 10 min (> the longest retry backoff) */
    unsigned finish_wait_ms;   /* a small batch of delivered replies waits this long
                                * for more before its finish (outbox.c): 10 ms */
} cg_store_timing;
extern cg_store_timing cg_store_timings;

/* "cg:<kind>:{channel:user}" into buf; -1 when it does not fit. */
int cg_store_key(char *buf, size_t cap, const char *kind, const char *channel, const char *user);

/* Wall clock in milliseconds since the epoch. */
int64_t cg_store_now_ms(void);

/* The commit's TTL refresh (op "ttl" in pipeline.c): cg:sess and cg:seq
 * get retention.sessions_s, cg:conv retention.transcripts_s, not with every
 * message but when the session's ttl_at (ms, when the commit last set all
 * three) is at least the slack old. The slack: a sixteenth of the shorter
 * TTL, at most an hour (60 s → 3.75 s; 30 days → 1 h), so a key expires at
 * most that much sooner than its TTL after the conversation's last message.
 * cg_store_ttl_due: 1 when a commit at now refreshes: no stamp (at <= 0),
 * one from the future (another instance's clock ahead), or at + slack
 * reached. */
int64_t cg_store_ttl_slack_ms(long long session_ttl_s, long long transcript_ttl_s);
int cg_store_ttl_due(int64_t at, int64_t now, int64_t slack_ms);

/* v in decimal into buf (room for CG_STORE_NUM_MAX bytes), NUL-terminated;
 * returns the length. The hot paths' numbers (seqs, times, TTLs, counts):
 * snprintf's format machinery cost more than the rest of building a
 * script call. */
#define CG_STORE_NUM_MAX 24
int cg_store_fmt_ll(char *buf, long long v);

/* A script call's arguments, built in one growing buffer (offsets, so that
 * it may move) rather than one allocation each; cg_args_argv() gives the
 * pointers just before the call. A failed allocation sets oom, after which
 * adding does nothing. Zero-initialise; cg_args_free() when done. */
typedef struct cg_args {
    char *buf;
    size_t used, cap;
    size_t *off, *len;
    const char **v;
    int n, ncap;
    int oom;
} cg_args;

void cg_args_addn(cg_args *a, const char *s, size_t n);
void cg_args_add(cg_args *a, const char *s);          /* NULL adds "" */
void cg_args_addi(cg_args *a, long long v);
/* A count to fill in later: adds "000" and returns its index for
 * cg_args_patch (0..999; above, oom). */
int cg_args_placeholder(cg_args *a);
void cg_args_patch(cg_args *a, int at, long long v);
/* Makes the arguments from index `from` to the last one argument: their
 * bytes, each ended by a NUL but the last (the buffer holds them so). */
void cg_args_join(cg_args *a, int from);
const char **cg_args_argv(cg_args *a);
void cg_args_free(cg_args *a);

/* r: the reply, borrowed for the duration of the call; NULL when the
 * connection failed or closed before it arrived. Error replies are passed as
 * REDIS_REPLY_ERROR (already counted in cg_metrics_redis_error). */
typedef void (*cg_store_reply_fn)(cg_store *s, redisReply *r, void *ud);

/* Send one command (argv copied). 0: fn will be called exactly once.
 * -1: not connected or out of memory; fn is not called. */
int cg_store_cmd(cg_store *s, cg_store_reply_fn fn, void *ud, int argc, const char **argv,
                 const size_t *lens);

/* A Lua script: src static text; sha filled on first use. */
typedef struct cg_store_script {
    const char *name;
    const char *src;
    char sha[41];
} cg_store_script;

/* EVALSHA sha nkeys argv..., falling back to EVAL once on NOSCRIPT. argv
 * holds keys then arguments (copied). Same return contract as cg_store_cmd. */
int cg_store_eval(cg_store *s, cg_store_script *sc, int nkeys, int argc, const char **argv,
                  const size_t *lens, cg_store_reply_fn fn, void *ud);

/* Consumers: create the group (from the stream's start, MKSTREAM) if it is
 * missing; fire and forget. Called again on every NOGROUP error. */
void cg_store_ensure_group(cg_store *s, const char *stream, const char *group);

/* Re-touch pending entries still owned by consumer (resets their idle time so
 * that no other instance claims them); ids no longer ours are reported to lost
 * (may be NULL) one by one, then lost(NULL) once when done. */
typedef void (*cg_store_lost_fn)(const char *id, void *ud);
void cg_store_keep(cg_store *s, const char *stream, const char *group, const char *consumer,
                   const char *const *ids, size_t n, cg_store_lost_fn lost, void *ud);

/* Queue depth of a stream and its group as gauges <prefix>_length,
 * <prefix>_pending and <prefix>_lag; with trim, also drops the entries every
 * consumer has acknowledged (XTRIM MINID ~ oldest pending or last delivered).
 * Fire and forget. */
void cg_store_stream_gauges(cg_store *s, const char *stream, const char *group,
                            const char *prefix, int trim);

/* Queue a reply that did not come from the pipeline (a human agent's, from
 * the agents module): in ONE script call it takes the conversation's next out
 * seq (so it is delivered in order with the bot's replies), is appended to
 * cg:outbox with from_agent = r->from_agent, and to the transcript (dir out).
 * r is copied before return. cb gets CG_OK, or CG_E_UNAVAILABLE. */
void cg_store_send_reply(cg_store *s, const cg_reply *r, const char *lang, cg_store_done_cb cb,
                         void *ud);
/* The same with nextra strings (name, value, ...) added to the transcript
 * entry, e.g. {"agent", "alice"} for an agent's reply (copied). */
void cg_store_send_reply_ex(cg_store *s, const cg_reply *r, const char *lang, const char *const *extra,
                            size_t nextra, cg_store_done_cb cb, void *ud);

/* Pub/sub: fn gets every message published on channel (payload borrowed for
 * the call, at most 64 KiB), on one SUBSCRIBE connection shared by every
 * channel, reconnected with backoff (messages published while it is down
 * are lost: subscribers re-read state after a reconnect if they need it).
 * fn NULL unsubscribes. At most 4 channels. 0, or -1 (no slot, bad name). */
typedef void (*cg_store_sub_fn)(const char *payload, size_t len, void *ud);
int cg_store_subscribe(cg_store *s, const char *channel, cg_store_sub_fn fn, void *ud);

/* Graceful stop: make entries this consumer holds but will not finish look
 * long idle, so that the next XAUTOCLAIM of any instance (within
 * claim_every_ms) takes them instead of waiting claim_idle_ms. Fire and
 * forget; ids are copied. */
void cg_store_release(cg_store *s, const char *stream, const char *group, const char *consumer,
                      const char *const *ids, size_t n);

/* In-process wake-ups: the ingest wakes the pipeline, the pipeline wakes the
 * outbox, so a single instance does not wait for its poll timer. */
void cg_store_set_wake(cg_store *s, void (*fn)(void *ud), void *ud);

/* The ingest hands new inbox entries to this instance's pipeline in its own
 * round trip: the ingest script, after its XADDs, reads up to `reserve()`
 * new entries for the pipeline group as this instance's consumer
 * (XREADGROUP ... >, the same as the pipeline's own read: they are pending
 * with this consumer, claimed by another instance if it dies), and take()
 * gets them ([[stream, entries]], or NULL when none or the ingest failed)
 * with the count reserved, which it gives back, after the webhook's answer. A message then reaches the
 * dialog one Redis round trip sooner. reserve() returning 0 (full,
 * stopping) reads nothing. Set NULL functions to stop (an ingest answered
 * later leaves its entries pending, as a crash would). */
typedef struct cg_store_taker {
    unsigned (*reserve)(void *ud);
    /* loads: for each entry of streams[0] in order, what CG_STORE_LOAD_LUA
     * returned for its conversation in the same atomic step (an empty array
     * for an entry it could not name), or NULL */
    void (*take)(void *ud, const redisReply *streams, const redisReply *loads, unsigned reserved);
    void *ud;
    /* The direct commit (pipeline.c): for a webhook of one message, direct()
     * may run the message's turn before it is stored and return the script
     * that stores and commits it in one step (CG_STORE_INGEST_LUA with a
     * direct function), with its own keys and arguments appended to keys and
     * args (after the ingest's: KEYS[7..], and ARGV after the message's
     * fields); NULL to ingest as usual. The ingest then reads nothing for
     * the taker. *outbox_read > 0 asks for that many new cg:outbox entries
     * for this instance's outbox (XREADGROUP GROUP outbox <instance> ... >,
     * sent right behind the script on its connection, so that it sees the
     * reply the script queued; a plain command's reply does not go through
     * Lua, as a read inside the script would). direct_done(ud, ctx, made,
     * read) is called once for every script direct() returned, after the
     * webhook's answer: made 1 when the commit was made (0: stored in the
     * inbox instead, a duplicate, over the flood limit, or no answer), read
     * the outbox read's reply ([[stream, entries]]) or NULL, also when the
     * taker has been unset meanwhile (its owner counts the calls in flight
     * and outlives them). Both may be NULL. */
    cg_store_script *(*direct)(void *ud, const cg_msg *m, int64_t now, cg_args *keys, cg_args *args,
                               unsigned *outbox_read, void **ctx);
    void (*direct_done)(void *ud, void *ctx, int made, const redisReply *read);
} cg_store_taker;

/* The pipeline's load of a conversation before its dialog turn, as a Lua
 * function, shared by the pipeline's load script and the ingest's (which
 * runs it for the entries it takes, so that those skip the load's round
 * trip: the "preload", pipeline.c). cg_load(cg:seq key, cg:sess key,
 * cg:gap key, seq[, done: cg:seq's "done" when the caller has just read it,
 * which spares the HGET]) → {done, dialog, blocked, agent, late ("1": seq was
 * skipped by a gap), buttons (JSON of the last reply's buttons, to name a
 * pressed one), case (the open hand-off case: "" unless queued or
 * assigned), csat, lang, unanswered, ttl_at (the commit's TTL stamp, ""
 * when none), name}: CG_LOAD_FIELDS strings. The commit compares dialog,
 * buttons, lang and name with what the turn would write and leaves out
 * those that did not change. */
#define CG_LOAD_FIELDS 12
/* A number's macro as a string literal, for Lua sources: CG_STR(CG_USER_MAX). */
#define CG_STR_(x) #x
#define CG_STR(x) CG_STR_(x)
#define CG_STORE_LOAD_LUA \
    "local function cg_load(kseq, ksess, kgap, seq, done)\n" \
    "  done = done or redis.call('HGET', kseq, 'done') or '0'\n" \
    "  local s = redis.call('HMGET', ksess, 'dialog', 'blocked', 'agent', 'buttons', 'case', 'csat', 'lang',\n" \
    "                       'unanswered', 'ttl_at', 'name')\n" \
    "  local cs = s[5] or ''\n" \
    "  if cs ~= '' then\n" \
    "    local st = redis.call('HGET', 'cg:case:' .. cs, 'status')\n" \
    "    if st ~= 'queued' and st ~= 'assigned' then cs = '' end\n" \
    "  end\n" \
    "  local late = '0'\n" \
    "  if tonumber(seq) <= tonumber(done) then\n" \
    "    late = tostring(redis.call('SISMEMBER', kgap, seq))\n" \
    "  end\n" \
    "  return {done, s[1] or '', s[2] or '0', s[3] or '', late, s[4] or '', cs, s[6] or '', s[7] or '',\n" \
    "          s[8] or '', s[9] or '', s[10] or ''}\n" \
    "end\n"
/* One message of an ingest, as a Lua function shared by the ingest script
 * (store.c, which documents the KEYS and ARGV it reads) and the pipeline's
 * direct commit (pipeline.c). cg_ingest_one(k, p, direct): KEYS[k..k+3] the
 * message's dedupe, cg:seq, rate and transcript keys, ARGV[p..] its
 * arguments (dedupe flag, counted, notice, its language, field count n, n
 * pairs; or -1 and the pairs in one argument, each name and value ended by
 * a NUL but the last: the direct commit's, whose fields are read only when
 * the commit is not made or the message is over the flood limit, so that
 * the common case spares Redis parsing 2n arguments and handing them to
 * Lua; cg_fields splits them then. Values come from C strings: no NUL).
 * Dedupe, flood control, then, for a message to process: direct()
 * when given, which commits the message's turn and returns what the commit
 * answered, or false to store it as usual (HINCRBY in, XADD cg:inbox).
 * Returns added (0/1), limited (0/1), direct's answer or false, and the p
 * of the next message.
 * An error after the dedupe SET (a key of the wrong type, a bug; Redis
 * keeps a script's writes made before an error) takes the dedupe key back
 * before it fails the script: the webhook then gets its 503 and the
 * platform's retry is stored, where it would have been skipped as a
 * duplicate of a message that never was (what got written before the error
 * may then be written twice: at least once, never lost). */
#define CG_STORE_INGEST_LUA \
    "local function cg_fields(p, np)\n" \
    "  if ARGV[p - 1] ~= '-1' then return {unpack(ARGV, p, np - 1)} end\n" \
    "  local s, t, i = ARGV[p], {}, 1\n" \
    "  if s == '' then return t end\n" \
    "  while true do\n" \
    "    local j = string.find(s, '\\0', i, true)\n" \
    "    t[#t + 1] = string.sub(s, i, (j or 0) - 1)\n" \
    "    if not j then return t end\n" \
    "    i = j + 1\n" \
    "  end\n" \
    "end\n" \
    "local cg_ingest_rest\n" \
    "local function cg_ingest_one(k, p, direct)\n" \
    "  local dd, nf = ARGV[p], tonumber(ARGV[p + 4])\n" \
    "  local np = p + 5 + (nf < 0 and 1 or 2 * nf)\n" \
    "  if dd == '1' and not redis.call('SET', KEYS[k], '1', 'NX', 'EX', ARGV[1]) then return 0, 0, false, np end\n" \
    "  local ok, a, l, r = pcall(cg_ingest_rest, k, p, np, direct)\n" \
    "  if ok then return a, l, r, np end\n" \
    "  if dd == '1' then redis.call('DEL', KEYS[k]) end\n" \
    "  error(a, 0)\n" \
    "end\n" \
    "cg_ingest_rest = function(k, p, np, direct)\n" \
    "  local limit, now = tonumber(ARGV[3]), ARGV[6]\n" \
    "  local counted, notice, lang = ARGV[p + 1], ARGV[p + 2], ARGV[p + 3]\n" \
    "  p = p + 5\n" \
    "  local res = false\n" \
    "  if limit > 0 and counted == '1' then\n" \
    "    local c = redis.call('INCR', KEYS[k + 2])\n" \
    "    if c == 1 then redis.call('EXPIRE', KEYS[k + 2], 60) end\n" \
    "    if c > limit then\n" \
    "      local f, ch, us, mf = {'dir', 'in', 'ts', now, 'limited', '1'}, '', '', cg_fields(p, np)\n" \
    "      for j = 1, #mf - 1, 2 do\n" \
    "        local n = mf[j]\n" \
    "        if n == 'kind' or n == 'text' or n == 'payload' or n == 'media' then\n" \
    "          f[#f + 1] = n; f[#f + 1] = mf[j + 1]\n" \
    "        elseif n == 'channel' then ch = mf[j + 1]\n" \
    "        elseif n == 'user' then us = mf[j + 1] end\n" \
    "      end\n" \
    "      redis.call('XADD', KEYS[k + 3], 'MAXLEN', '~', ARGV[4], '*', unpack(f))\n" \
    "      if c == limit + 1 and notice ~= '' then\n" \
    "        local out = redis.call('HINCRBY', KEYS[k + 1], 'out', 1)\n" \
    "        redis.call('EXPIRE', KEYS[k + 1], ARGV[2])\n" \
    "        redis.call('XADD', KEYS[2], '*', 'channel', ch, 'user', us, 'text', notice, 'buttons', '[]',\n" \
    "                   'lang', lang, 'seq', tostring(out), 'created_at', now, 'received_at', now)\n" \
    "        redis.call('XADD', KEYS[k + 3], 'MAXLEN', '~', ARGV[4], '*', 'dir', 'out', 'text', notice,\n" \
    "                   'lang', lang, 'ts', now)\n" \
    "      end\n" \
    "      redis.call('EXPIRE', KEYS[k + 3], ARGV[5])\n" \
    "      return 0, 1, false\n" \
    "    end\n" \
    "  end\n" \
    "  if direct then res = direct() end\n" \
    "  if not res then\n" \
    /* a new key gets its TTL here; after that the commit refreshes it (at \
     * most once per slack: op "ttl" in pipeline.c) */ \
    "    local seq = redis.call('HINCRBY', KEYS[k + 1], 'in', 1)\n" \
    "    if seq == 1 then redis.call('EXPIRE', KEYS[k + 1], ARGV[2]) end\n" \
    "    if ARGV[p - 1] == '-1' then redis.call('XADD', KEYS[1], '*', 'seq', tostring(seq), unpack(cg_fields(p, np)))\n" \
    "    else redis.call('XADD', KEYS[1], '*', 'seq', tostring(seq), unpack(ARGV, p, np - 1)) end\n" \
    "  end\n" \
    "  return 1, 0, res\n" \
    "end\n"
void cg_store_set_taker(cg_store *s, const cg_store_taker *t);
/* Entries in an XREADGROUP reply ([[stream, entries], ...]; NULL or nil: 0). */
size_t cg_store_read_count(const redisReply *streams);
void cg_pipeline_wake(cg_pipeline *p);
void cg_outbox_wake(cg_outbox *o);
/* The read of a commit's reply for the outbox (pipeline.c): how many new
 * entries it may read now (reserved until given back), and what it read
 * ([[stream, entries]] or NULL) with the reservation. */
unsigned cg_outbox_reserve(cg_outbox *o);
void cg_outbox_take(cg_outbox *o, const redisReply *streams, unsigned reserved);
/* That read: XREADGROUP GROUP outbox <instance> COUNT n STREAMS cg:outbox >
 * on the main connection, sent right behind the commit script that went
 * there before it, so that Redis runs it after the script and it reads the
 * reply the script queued (a read inside the script would pass the entries
 * through Lua both ways: RESP → Lua tables → RESP). fn gets [[stream,
 * entries]], nil, or an error (NOGROUP). 0, or -1 when not sent. */
int cg_store_outbox_read(cg_store *s, unsigned n, cg_store_reply_fn fn, void *ud);

/* Stream entry helpers: field value by name in an XREAD entry's field array
 * (REDIS_REPLY_ARRAY of name, value, ...); NULL when absent. */
const redisReply *cg_store_field(const redisReply *fields, const char *name);
/* Copy of a field as a NUL-terminated string into buf (truncated to cap-1);
 * "" when absent. Returns buf. */
const char *cg_store_field_str(const redisReply *fields, const char *name, char *buf, size_t cap);
/* malloc'd copy of a field, or NULL when absent. */
char *cg_store_field_dup(const redisReply *fields, const char *name);
int64_t cg_store_field_i64(const redisReply *fields, const char *name);

#endif

/*
 * pipeline.c: cg:inbox → dialog turn → session + transcript + cg:outbox.
 *
 * Every instance is a consumer (named gw->instance) of the group "pipeline"
 * on the one stream cg:inbox; Redis hands each entry to one consumer.
 *
 * Order per conversation across instances. The ingest script gives every
 * new message the conversation's next sequence number (HINCRBY
 * cg:seq:{c:u} in) in the same step as its XADD, so stream order and seq order
 * agree. cg:seq:{c:u} "done" is the last seq whose effects are committed.
 * Entry n may be committed only when done == n-1; the commit script checks it
 * atomically (compare and set), so:
 *   seq <= done     a duplicate (re-delivered after a crash past the commit,
 *                   or processed by two instances): just XACK;
 *   seq >  done+1   the predecessor is still with another consumer: the entry
 *                   stays pending with us and is retried in DEFER_MIN..MAX ms;
 *   seq == done+1   run the turn and commit.
 * A consumer that dies holding entries stops re-touching them (cg_store_keep
 * every keep_ms, 5 s); after claim_idle_ms (30 s) a live instance
 * claims them with XAUTOCLAIM. If a predecessor never shows up (lost by a
 * Redis failover) an entry deferred for pipeline_gap_ms (2 min) is committed anyway
 * ("force") and a warning is logged, so a conversation cannot stall forever;
 * the seqs it skipped go into the set cg:gap:{c:u}, and a skipped entry that
 * does turn up later is processed then ("late", out of order) instead of
 * being taken for a duplicate: order may bend in that corner, nothing is lost.
 *
 * Most messages never reach cg:inbox: the direct commit (below, before
 * process()) runs the turn of a webhook's message before it is stored and
 * commits it in the ingest's own script when the conversation is as this
 * instance last left it; the rest of this comment is the path of the others
 * (and of every message when the guess fails).
 *
 * Per entry: load (1 round trip for all the entries one pump() starts: the
 * "load" script reads, for each, done, dialog, blocked, agent, ...; none
 * for a preloaded entry, below) → cg_dialog_turn (pure, in process) →
 * commit (1 round trip: the "commit" script writes the session, the
 * transcript, the outbox entry, the escalation, a finished flow's answers
 * (cg:flows), and XACKs).
 * The commit also does the outbox's sequence check for the reply it queues:
 * when the reply is next to deliver (cg:seq sent == its out seq - 1), the
 * outbox entry gets head = 1 and the outbox sends it without its "begin"
 * round trip (outbox.c says when that holds). A reply is only ever made for
 * a citizen's message, which a platform delivers only when the bot may
 * answer, so "blocked" is not read: the commit clears it (the load saw it),
 * and one set by an older reply's 403 meanwhile is stale.
 * A crash before the commit leaves the entry pending: it is processed again
 * (at-least-once); after the commit it is a duplicate and only acknowledged.
 * The daily analytics counters are not part of the commit: commit_reply
 * adds a message's to the analytics batch (p->an, analytics.h) when the
 * commit answered "ok", and the batch is written 100 ms after its first
 * message (CG_AN_BATCH_MS), so they are at-most-once (a crash loses at most
 * that long's counts);
 * stopping flushes it before calling done, i.e. before serve.c closes the
 * store.
 *
 * Up to ACTIVE_MAX (64) entries are in load/turn/commit at once, at most one
 * per conversation: pump() starts a queued entry only if it is the lowest
 * seq held for its conversation and no entry of that conversation is active
 * or deferred (a per-pass map of conversation hashes, like the outbox's).
 * So a conversation's entries still go one after the other, in seq order,
 * while other conversations' round trips overlap (hiredis pipelines them on
 * the one connection). The seq compare-and-set in the commit script stays
 * the guard for order across instances. The next XREADGROUP (COUNT 64) goes
 * out when the active and startable entries no longer fill the slots.
 * Besides its own reads, the pipeline takes new entries from the webhooks'
 * ingest (cg_store_taker, store.h): while it has room, each ingest script
 * reads up to TAKE_MAX new entries for this instance right after its
 * XADDs, so a message reaches the dialog one round trip sooner; room is
 * reserved per ingest in flight, so what is held stays within HELD_MAX.
 * Hostile or deleted entries are acknowledged at once and take no slot.
 * Stopping waits for every active entry (up to the shutdown grace); past it
 * the active ones are dropped when their reply comes (they stay pending in
 * Redis) and every held id is released for another instance to claim.
 *
 * Finished flows: a turn that ends a flow (CG_ACT_FLOW_DONE, or
 * CG_ACT_ESCALATE with vars_json from a hand-off flow) adds, in the same
 * commit, an entry to the stream cg:flows (MAXLEN ~ 100000, and entries
 * older than retention.transcripts_s trimmed): intent, reference, channel,
 * user, lang, vars (the answers as JSON), ts (ms).
 *
 * "Delete my data" confirmed (CG_ACT_DELETE_DATA): the commit deletes the
 * session and the transcript; once it is committed, cg_citizens_erase()
 * (citizens.h) removes the rest of the citizen's data, keeping cg:seq:{c:u}
 * so that the confirmation queued by the same commit is delivered in order.
 *
 * Message kinds: TEXT/BUTTON/START/LANGUAGE/LOCATION/MEDIA/UNSUPPORTED run a
 * turn (UNSUPPORTED as media "unsupported"); EDITED is recorded in the
 * transcript and not answered (answering edits double-answers typo fixes);
 * BLOCKED/UNBLOCKED set/clear the session's blocked flag; STATUS advances
 * the delivery state of our message (gateway/delivery.c, fire and forget
 * before the commit). A message the citizen sends clears "blocked":
 * platforms deliver a citizen's message only when the bot can answer.
 * Human agents (agents.c, docs/agents.md). A turn that escalates opens a
 * case (cg:case:<id>, queued in cg:queue:agents, its id in the session's
 * "case") in the same commit, and the agents module is told to announce the
 * citizen's position. While the session has an open case (queued or held by
 * an agent) the bot is silent: messages go to the transcript, the case's
 * unread count and an "entry" event on cg:agents; the call-back offer's
 * buttons ("cb" leave a message, "w" keep waiting) are answered here. After
 * a resolve the session's "csat" names the case: a next message "csat:N"
 * (button) or a lone digit 1-5 is stored as the case's satisfaction score
 * and thanked; anything else drops the question and goes to the bot.
 *
 * WhatsApp: a citizen's message releases the replies the outbox held while
 * the 24-hour window was closed (gateway/window.c; op "release", first in
 * the commit so they go out before the answer to this message), and, with
 * channels.whatsapp.mark_read, queues its read receipt (op "read": an
 * outbox entry with kind "read" and no seq, sent out of order and never
 * retried for long).
 *
 * API: cg_pipeline_start → (cg_pipeline_wake) → cg_pipeline_stop.
 * Extending: a new message kind needs a case in build_turn() and docs/redis.md.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <sodium.h>

#include "analytics.h"
#include "store.h"
#include "citizens.h"
#include "agents.h"
#include "agents_queue.h"
#include "delivery.h"
#include "log.h"
#include "metrics.h"
#include "window.h"

#define HELD_MAX        256      /* entries held in memory (queue + deferred) */
#define ACTIVE_MAX      64       /* entries in load/turn/commit at once */
#define READ_MAX        64       /* XREADGROUP COUNT: one batch fills the slots */
#define READ_COUNT      CG_STR(READ_MAX)
#define POLL_IDLE_MS    50       /* XREADGROUP poll when the last read was empty */
#define TICK_MS         10
#define DEFER_MIN_MS    50
#define DEFER_MAX_MS    1000
#define STATS_EVERY_MS  5000
#define FLOWS_MAX       "100000" /* cg:flows MAXLEN ~ */
#define FIELD_MAX       (CG_MSG_TEXT_MAX + 1)
#define DIRECT_LOAD_MAX 1024     /* bytes of a load the direct commit keeps (the demo's: 130-580) */

typedef struct pl_entry {
    struct pl_entry *next;
    cg_pipeline *p;              /* owner: the load/commit callbacks get the entry */
    char id[48];
    uint64_t conv;               /* hash of channel and user */
    long long seq;
    cg_msg msg;
    int64_t received_at;
    uint64_t deferred_since;     /* uv_now of the first deferral, 0 = never */
    uint64_t due;                /* uv_now when a deferred entry is retried */
    unsigned defers;
    int force;
    int erase;                   /* the citizen confirmed "delete my data": erase once committed */
    int read_behind;             /* the outbox read went behind the commit (outbox_behind) */
    int queued_case;             /* the commit opens a hand-off case */
    unsigned out_reserved;       /* outbox room reserved for the read behind the commit */
    char *pre;                   /* the ingest's load (preload_keep), owned; NULL when none */
    uint64_t pre_at;             /* uv_now when it was read */
    int an_count;                /* once committed ("ok"), an goes into the analytics batch */
    unsigned counts;             /* metrics counted once committed ("ok"): COUNT_* */
    int plain;                   /* the commit is a turn's reply and nothing else (no case, csat,
                                  * flow, erasure): its conversation's load after it is known */
    char *after;                 /* that load (a block, as the preload's), owned, or NULL */
    cg_analytics_turn an;        /* its figures: channel, user point into msg, intent into an_intent */
    char an_intent[CG_INTENT_ID_MAX + 1];
} pl_entry;

typedef struct pl_list { pl_entry *head, *tail; size_t n; } pl_list;

struct cg_pipeline {
    cg_gateway *gw;
    cg_store *store;
    cg_analytics_batch *an;      /* ours: the daily counters of what we committed (analytics.h) */
    uv_timer_t tick;
    pl_list queue;               /* ready to process, stream order */
    pl_list deferred;            /* waiting for a predecessor, insertion order */
    pl_entry *active[ACTIVE_MAX];/* in load/turn/commit, one per conversation */
    unsigned nactive;
    int hard;                    /* stop grace over: active entries are dropped */
    int reading;
    int woken;                   /* a wake came while a read was in flight */
    unsigned reserved;           /* entries ingests in flight may bring (cg_store_taker) */
    unsigned long preloaded;     /* entries started from the ingest's load (preload_use) */
    unsigned long direct;        /* messages committed by the direct commit */
    uint64_t direct_clock;       /* the cache's use stamps */
    struct direct_slot *cache;   /* the direct commit's loads, DIRECT_SLOTS (below) */
    uint64_t next_read;
    uint64_t next_claim, next_stats, next_keep;
    char claim_cursor[48];
    unsigned epoch;            /* cg_store_epoch when we last read our own pending */
    int keeping;
    int pumping;                 /* in pump(): no re-entry */
    unsigned inflight;           /* commands whose callback references us */
    int stopping, done_called, closed;
    uint64_t stop_deadline;
    void (*done)(void *ud);
    void *done_ud;
};

static const char *const kind_names[] = {
    "text", "button", "start", "language", "location", "media", "edited",
    "blocked", "unblocked", "status", "unsupported",
};

/* ---- lists ------------------------------------------------------------- */

static void list_push(pl_list *l, pl_entry *e)
{
    e->next = NULL;
    if (l->tail) l->tail->next = e;
    else l->head = e;
    l->tail = e;
    l->n++;
}

static pl_entry *list_pop(pl_list *l)
{
    pl_entry *e = l->head;
    if (!e) return NULL;
    l->head = e->next;
    if (!l->head) l->tail = NULL;
    l->n--;
    e->next = NULL;
    return e;
}

static int list_has(const pl_list *l, const char *id)
{
    for (const pl_entry *e = l->head; e; e = e->next)
        if (strcmp(e->id, id) == 0) return 1;
    return 0;
}

static void list_remove_id(pl_list *l, const char *id, void (*fr)(pl_entry *))
{
    pl_entry **pp = &l->head, *prev = NULL;
    while (*pp) {
        pl_entry *e = *pp;
        if (strcmp(e->id, id) == 0) {
            *pp = e->next;
            if (l->tail == e) l->tail = prev;
            l->n--;
            fr(e);
            return;
        }
        prev = e;
        pp = &e->next;
    }
}

static void entry_free(pl_entry *e)
{
    if (!e) return;
    cg_msg_free(&e->msg);
    free(e->pre);
    free(e->after);
    free(e);
}

static void list_clear(pl_list *l)
{
    pl_entry *e;
    while ((e = list_pop(l))) entry_free(e);
}

static int held(const cg_pipeline *p, const char *id)
{
    for (unsigned i = 0; i < p->nactive; i++)
        if (strcmp(p->active[i]->id, id) == 0) return 1;
    return list_has(&p->queue, id) || list_has(&p->deferred, id);
}

static void active_remove(cg_pipeline *p, pl_entry *e)
{
    for (unsigned i = 0; i < p->nactive; i++)
        if (p->active[i] == e) {
            p->active[i] = p->active[--p->nactive];
            return;
        }
}

/* FNV-1a of channel, NUL, user: the conversation. */
static uint64_t conv_hash(const char *channel, const char *user)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *c = channel; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    h = (h ^ 0) * 1099511628211ULL;
    for (const char *c = user; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    return h ? h : 1;
}

static void maybe_finish(cg_pipeline *p);
static void pump(cg_pipeline *p);

/* Last call of every callback: go on, or finish stopping (may free p). */
static void settle(cg_pipeline *p)
{
    if (!p->stopping) pump(p);
    maybe_finish(p);
}

/* ---- entries ----------------------------------------------------------- */

static cg_msg_kind kind_parse(const char *s)
{
    for (size_t i = 0; i < sizeof kind_names / sizeof *kind_names; i++)
        if (strcmp(s, kind_names[i]) == 0) return (cg_msg_kind)i;
    return CG_MSG_UNSUPPORTED;
}

/* XREAD entry [id, [field, value, ...]] → pl_entry; NULL when deleted. */
static pl_entry *entry_parse(const redisReply *e)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= 48)
        return NULL;
    const redisReply *f = e->element[1];
    pl_entry *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    memcpy(x->id, e->element[0]->str, e->element[0]->len + 1);
    if (f->type != REDIS_REPLY_ARRAY) {   /* deleted from the stream: ack it */
        x->seq = -1;
        return x;
    }
    char b[64];
    cg_msg *m = &x->msg;
    x->seq = cg_store_field_i64(f, "seq");
    m->kind = kind_parse(cg_store_field_str(f, "kind", b, sizeof b));
    cg_store_field_str(f, "channel", m->channel, sizeof m->channel);
    cg_store_field_str(f, "user", m->user, sizeof m->user);
    cg_store_field_str(f, "msg_id", m->msg_id, sizeof m->msg_id);
    cg_store_field_str(f, "lang_hint", m->lang_hint, sizeof m->lang_hint);
    cg_store_field_str(f, "media", m->media, sizeof m->media);
    m->text = cg_store_field_dup(f, "text");
    if (m->text && strlen(m->text) > CG_MSG_TEXT_MAX) m->text[CG_MSG_TEXT_MAX] = '\0';
    m->payload = cg_store_field_dup(f, "payload");
    m->callback_id = cg_store_field_dup(f, "callback_id");
    m->name = cg_store_field_dup(f, "name");
    m->lat = strtod(cg_store_field_str(f, "lat", b, sizeof b), NULL);
    m->lon = strtod(cg_store_field_str(f, "lon", b, sizeof b), NULL);
    m->ts = cg_store_field_i64(f, "ts");
    x->received_at = cg_store_field_i64(f, "received_at");
    x->conv = conv_hash(m->channel, m->user);
    return x;
}

/* Reference for flows that give one: "R-" + the entry's id in base 36. */
static void make_reference(const char *id, char *out, size_t cap)
{
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    unsigned long long ms = strtoull(id, NULL, 10);
    const char *dash = strchr(id, '-');
    unsigned long long sq = dash ? strtoull(dash + 1, NULL, 10) : 0;
    char tmp[32];
    int n = 0;
    do {
        tmp[n++] = digits[ms % 36];
        ms /= 36;
    } while (ms && n < 30);
    size_t o = 0;
    if (cap < 4) return;
    out[o++] = 'R';
    out[o++] = '-';
    while (n > 0 && o + 1 < cap) out[o++] = tmp[--n];
    out[o] = '\0';
    if (sq) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "-%llu", sq);
    }
}


static void ack_reply(cg_store *s, redisReply *r, void *ud)
{
    cg_pipeline *p = ud;
    (void)s; (void)r;
    p->inflight--;
    maybe_finish(p);
}

static void ack(cg_pipeline *p, const char *id)
{
    const char *av[] = { "XACK", CG_K_INBOX, CG_G_PIPELINE, id };
    if (cg_store_cmd(p->store, ack_reply, p, 4, av, NULL) == 0) p->inflight++;
}

static void defer(cg_pipeline *p, pl_entry *e)
{
    uint64_t now = uv_now(p->gw->loop);
    cg_log(CG_LOG_DEBUG, "pipeline_wait", "entry", e->id, "instance", p->gw->instance, NULL);
    if (!e->deferred_since) e->deferred_since = now;
    unsigned d = DEFER_MIN_MS << (e->defers < 5 ? e->defers : 5);
    if (d > DEFER_MAX_MS) d = DEFER_MAX_MS;
    e->defers++;
    e->due = now + d;
    if (now - e->deferred_since >= cg_store_timings.pipeline_gap_ms) e->force = 1;
    list_push(&p->deferred, e);
}

/* The active entry is done with (committed, duplicate, or dropped). */
static void finish_entry(cg_pipeline *p, pl_entry *e)
{
    active_remove(p, e);
    entry_free(e);
}

/* A Redis error while processing, or "wait": the entry stays pending in
 * Redis and is tried again here after a pause. */
static void entry_failed(cg_pipeline *p, pl_entry *e)
{
    active_remove(p, e);
    defer(p, e);
}

/* ---- commit ------------------------------------------------------------ */

/*
 * KEYS: 1 cg:seq:{c:u}  2 cg:sess:{c:u}  3 cg:conv:{c:u}  4 cg:outbox
 *       5 cg:inbox  6 cg:queue:agents  7 cg:gap:{c:u}  8 cg:flows
 *       9 cg:held:{c:u}
 * ARGV: 1 group  2 entry id  3 seq  4 session TTL  5 transcript max
 *       6 transcript TTL  7 "force" or ""  then operations, each
 *       name, argument count, arguments:
 *   del                      delete session and transcript (keeps cg:seq)
 *   hset  f v ...            session fields (+ ttl_at, see "TTLs")
 *   conv  f v ...            a transcript entry (MAXLEN ~)
 *   reply conv text buttons lang intent now channel user callback_id received_at
 *                            a reply: its outbox entry (channel, user, text,
 *                            buttons, callback_id unless "", lang,
 *                            created_at = now, received_at), which gets the
 *                            next out seq, and head = 1 when it is next to
 *                            deliver (sent = seq-1): the outbox's begin check,
 *                            done here (see outbox.c; "blocked": above);
 *                            when conv is "1" also its transcript
 *                            entry (dir out, text, buttons, lang, intent
 *                            unless "", ts = now). One set of arguments for
 *                            both: the text once, the field names here
 *   zadd  score member       escalation (ZADD NX)
 *   pub   channel message    PUBLISH
 *   flow  f v ...            a finished flow's answers (XADD cg:flows MAXLEN ~)
 *   case  id score f v ...   a hand-off case: HSET (+ EXPIRE transcript TTL),
 *                            when score is not "" (a new case) ZADD
 *                            cg:queue:agents and SADD cg:cases:{c:u}, and
 *                            the "case" event; an update ("" score) of a case
 *                            that is gone does nothing
 *   centry id unread ts json a citizen message for an open case: unread + 1
 *                            when unread is "1", last_message_at, "entry" event
 *   hdel  f ...              session fields removed
 *   release last_in          the held replies (KEYS[9], JSON arrays of outbox
 *                            fields) go to the outbox with the next out seqs;
 *                            session last_in set, reengaged_at cleared
 *   read  f v ...            an outbox entry without seq (a read receipt)
 *   an    ...                the unmatched question, when there is one
 *                            (analytics.h; the daily counters are not in
 *                            the commit: a commit answered "ok" adds them to
 *                            the analytics batch, written once per loop
 *                            iteration)
 *   ttl   at                 first, when present: refresh the TTLs, stamp at
 *                            (see "TTLs")
 * Returns "ok", "dup" (already committed: acknowledged) or "wait". The
 * reply it queued is read for this instance's outbox by a plain XREADGROUP
 * sent right behind the script (outbox_behind; not inside it, where the
 * entry would pass through Lua both ways). A forced
 * commit records the seqs it skips in KEYS[7]; one of those committed later
 * leaves "done" alone.
 *
 * TTLs. cg:sess and cg:seq get the session TTL, cg:conv the transcript TTL,
 * once per slack (cg_store_ttl_slack_ms), not with every message (three
 * EXPIREs and their AOF records per message). The session's ttl_at is when
 * (ms, the gateway's clock) a commit last gave all three their TTL; the load
 * reads it, and commit() adds "ttl now" when it is missing or the slack old
 * (cg_store_ttl_due): the stamp goes into ttl_at with the session's HSETs
 * and the three EXPIREs come at the end. Without "ttl" a commit sets no TTL
 * unless it CREATES one of the three keys, which would otherwise have none:
 * they can be gone while the session held a fresh stamp at the load (an
 * erasure between load and commit, or one whose UNLINKs, 32 keys a call,
 * took the transcript in an earlier call than the session; cg:seq also
 * before a forced commit). Each creation is seen where it happens, with no
 * extra command:
 *   transcript  XADD NOMKSTREAM added nothing (then XADD): all three
 *               refreshed
 *   session     its HSET added every field it wrote (a session a turn has
 *               written holds dialog, last_in, lang, buttons; a first "case"
 *               or "blocked" may refresh for nothing): all three refreshed
 *   cg:seq      the first HMGET found no "in" (the ingest creates the key
 *               with it, and an EXPIRE; the final HSET would create it):
 *               its EXPIRE
 * So that no key is left without a TTL does not depend on the stamp; the
 * stamp only bounds how much sooner than "its TTL after the last message" a
 * key can expire: by the slack. Every other writer of these keys sets its
 * own TTL (ingest, agents' replies and notes, the outbox's session writes)
 * except two HSETs that create a key only when it is missing: agents_api.c
 * (sess "agent", "csat") and outbox.c (cg:seq "cur", "sent"); neither writes
 * ttl_at or "in", so the next commit refreshes. An instance whose clock lags
 * the one that wrote the stamp by x can let the keys expire up to x sooner
 * still (a stamp from the future refreshes).
 */
#define COMMIT_LUA \
        CG_STORE_LOAD_LUA \
        CG_ANALYTICS_COMMIT_LUA \
        "local function cg_commit(K, grp, id, seqs, sttl, cmax, cttl, force, i, x)\n" \
        "local c = redis.call('HMGET', K[1], 'done', 'out', 'sent', 'in')\n" \
        "local done, out = tonumber(c[1] or '0'), tonumber(c[2] or '0')\n" \
        "local sent = tonumber(c[3] or '0')\n" \
        "local seq, late, hs = tonumber(seqs), false, {}\n" \
        /* the direct commit: only onto the state its turn was run on */ \
        "if x then\n" \
        "  if (c[4] or '0') ~= (c[1] or '0') or done ~= seq - 1 then return false end\n" \
        "  if table.concat(cg_load(K[1], K[2], K[7], seqs, c[1] or '0'), '\\0') ~= ARGV[x] then return false end\n" \
        "  hs[1] = 'in'; hs[2] = seqs\n" \
        "end\n" \
        /* TTLs (above): at, the stamp of "ttl"; refresh, the EXPIREs at the end */ \
        "local at, refresh = false, false\n" \
        /* a transcript entry (MAXLEN ~; a new transcript refreshes the TTLs) */ \
        "local function conv_add(...)\n" \
        "  if refresh or not redis.call('XADD', K[3], 'NOMKSTREAM', 'MAXLEN', '~', cmax, '*', ...) then\n" \
        "    redis.call('XADD', K[3], 'MAXLEN', '~', cmax, '*', ...)\n" \
        "    refresh = true\n" \
        "  end\n" \
        "end\n" \
        /* an outbox entry with the next out seq, head = 1 when next to deliver */ \
        "local function out_add(...)\n" \
        "  out = out + 1\n" \
        "  hs[#hs + 1] = 'out'; hs[#hs + 1] = tostring(out)\n" \
        "  if out == sent + 1 and not late then\n" \
        "    redis.call('XADD', K[4], '*', 'seq', tostring(out), 'head', '1', ...)\n" \
        "  else\n" \
        "    redis.call('XADD', K[4], '*', 'seq', tostring(out), ...)\n" \
        "  end\n" \
        "end\n" \
        "if seq <= done then\n" \
        "  if redis.call('SREM', K[7], seqs) == 1 then late = true\n" \
        "  else redis.call('XACK', K[5], grp, id); return 'dup' end\n" \
        "elseif seq ~= done + 1 then\n" \
        "  if force ~= 'force' then return 'wait' end\n" \
        "  for g = done + 1, math.min(seq - 1, done + 1000) do redis.call('SADD', K[7], g) end\n" \
        "  redis.call('EXPIRE', K[7], sttl)\n" \
        "end\n" \
        "local na = #ARGV\n" \
        "while i <= na do\n" \
        "  local op, s = ARGV[i], i + 2\n" \
        "  local e = i + 1 + tonumber(ARGV[i + 1])\n" \
        "  i = e + 1\n" \
        "  if op == 'del' then redis.call('DEL', K[2], K[3])\n" \
        "  elseif op == 'hset' then\n" \
        "    if at then redis.call('HSET', K[2], 'ttl_at', at, unpack(ARGV, s, e))\n" \
        "    elseif redis.call('HSET', K[2], unpack(ARGV, s, e)) * 2 > e - s then refresh = true end\n" \
        "  elseif op == 'conv' then conv_add(unpack(ARGV, s, e))\n" \
        "  elseif op == 'reply' then\n" \
        "    local text, btn, lang, intent, now = ARGV[s + 1], ARGV[s + 2], ARGV[s + 3], ARGV[s + 4], ARGV[s + 5]\n" \
        "    local cb, recv = ARGV[s + 8], ARGV[s + 9]\n" \
        "    if ARGV[s] ~= '1' then\n" \
        "    elseif intent ~= '' then\n" \
        "      conv_add('dir', 'out', 'text', text, 'buttons', btn, 'lang', lang, 'intent', intent, 'ts', now)\n" \
        "    else\n" \
        "      conv_add('dir', 'out', 'text', text, 'buttons', btn, 'lang', lang, 'ts', now)\n" \
        "    end\n" \
        "    if cb ~= '' then\n" \
        "      out_add('channel', ARGV[s + 6], 'user', ARGV[s + 7], 'text', text, 'buttons', btn, 'callback_id', cb,\n" \
        "              'lang', lang, 'created_at', now, 'received_at', recv)\n" \
        "    else\n" \
        "      out_add('channel', ARGV[s + 6], 'user', ARGV[s + 7], 'text', text, 'buttons', btn,\n" \
        "              'lang', lang, 'created_at', now, 'received_at', recv)\n" \
        "    end\n" \
        "  elseif op == 'zadd' then redis.call('ZADD', K[6], 'NX', ARGV[s], ARGV[s + 1])\n" \
        "  elseif op == 'pub' then redis.call('PUBLISH', ARGV[s], ARGV[s + 1])\n" \
        "  elseif op == 'flow' then\n" \
        "    local t = redis.call('TIME')\n"   /* retention: as long as transcripts */ \
        "    redis.call('XTRIM', K[8], 'MINID', (tonumber(t[1]) - tonumber(cttl)) * 1000)\n" \
        "    redis.call('XADD', K[8], 'MAXLEN', '~', '" FLOWS_MAX "', '*', unpack(ARGV, s, e))\n" \
        "  elseif op == 'case' then\n" \
        "    local a = {unpack(ARGV, s, e)}\n" \
        "    local ck = 'cg:case:' .. a[1]\n" \
        "    if a[2] ~= '' or redis.call('EXISTS', ck) == 1 then\n" \
        "      if #a > 2 then redis.call('HSET', ck, unpack(a, 3)) end\n" \
        "      redis.call('EXPIRE', ck, cttl)\n" \
        "      if a[2] ~= '' then\n" \
        "        local ix = string.gsub(K[2], '^cg:sess:', 'cg:cases:')\n" \
        "        redis.call('SADD', ix, a[1]); redis.call('EXPIRE', ix, cttl)\n" \
        "        redis.call('ZADD', K[6], a[2], a[1])\n" \
        "        redis.call('PUBLISH', 'cg:agents', '{\"type\":\"queue\"}')\n" \
        "      end\n" \
        "      local h, o = redis.call('HGETALL', ck), {}\n" \
        "      for j = 1, #h, 2 do o[h[j]] = h[j + 1] end\n" \
        "      redis.call('PUBLISH', 'cg:agents', cjson.encode({type = 'case', case = o, prev = ''}))\n" \
        "    end\n" \
        "  elseif op == 'centry' then\n" \
        "    local a = {unpack(ARGV, s, e)}\n" \
        "    local ck = 'cg:case:' .. a[1]\n" \
        "    if redis.call('EXISTS', ck) == 1 then\n" \
        "      if a[2] == '1' then redis.call('HINCRBY', ck, 'unread', 1) end\n" \
        "      redis.call('HSET', ck, 'last_message_at', a[3])\n" \
        "      local ag = redis.call('HGET', ck, 'agent') or ''\n" \
        "      redis.call('PUBLISH', 'cg:agents', cjson.encode({type = 'entry', case = a[1], holder = ag,\n" \
        "        entry = cjson.decode(a[4])}))\n" \
        "    end\n" \
        "  elseif op == 'hdel' then redis.call('HDEL', K[2], unpack(ARGV, s, e))\n" \
        "  elseif op == 'release' then\n" \
        "    for _, j in ipairs(redis.call('LRANGE', K[9], 0, -1)) do\n" \
        "      local f = cjson.decode(j)\n" \
        "      out = out + 1\n" \
        "      hs[#hs + 1] = 'out'; hs[#hs + 1] = tostring(out)\n" \
        "      f[#f + 1] = 'seq'; f[#f + 1] = tostring(out)\n" \
        "      redis.call('XADD', K[4], '*', unpack(f))\n" \
        "    end\n" \
        "    redis.call('DEL', K[9])\n" \
        "    redis.call('HDEL', K[2], 'reengaged_at')\n" \
        "    if at then redis.call('HSET', K[2], 'last_in', ARGV[s], 'ttl_at', at)\n" \
        "    elseif redis.call('HSET', K[2], 'last_in', ARGV[s]) == 1 then refresh = true end\n" \
        "  elseif op == 'read' then redis.call('XADD', K[4], '*', unpack(ARGV, s, e))\n" \
        "  elseif op == 'an' then analytics_op(s, e)\n" \
        "  elseif op == 'ttl' then at = ARGV[s]; refresh = true\n" \
        "  end\n" \
        "end\n" \
        "if refresh then redis.call('EXPIRE', K[2], sttl); redis.call('EXPIRE', K[3], cttl) end\n" \
        "if not late then hs[#hs + 1] = 'done'; hs[#hs + 1] = seqs end\n" \
        "if #hs > 0 then redis.call('HSET', K[1], unpack(hs)) end\n" \
        "if refresh or not c[4] then redis.call('EXPIRE', K[1], sttl) end\n" \
        "if not x then redis.call('XACK', K[5], grp, id) end\n" \
        "return 'ok'\n" \
        "end\n"

static cg_store_script commit_script = {
    .name = "commit",
    .src = COMMIT_LUA "return cg_commit(KEYS, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], 8, false)\n",
};

/* Starts an operation; returns the index of its count to patch with op_end
 * (at most 999 arguments an operation). */
static int op_begin(cg_args *a, const char *name)
{
    cg_args_add(a, name);
    return cg_args_placeholder(a);
}

static void op_end(cg_args *a, int at) { cg_args_patch(a, at, a->n - at - 1); }

/* [{"title":..,"url"|"payload":..},...] written directly (cg_jw: the same
 * bytes cJSON printed, without building a tree first). NULL on no memory. */
static char *buttons_json(const cg_turn_out *o)
{
    cg_jw w = {0};
    cg_jw_lit(&w, "[");
    for (size_t i = 0; i < o->nbuttons; i++) {
        const char *t = o->buttons[i].title ? o->buttons[i].title : "";
        const char *v = o->buttons[i].url ? o->buttons[i].url : o->buttons[i].payload ? o->buttons[i].payload : "";
        cg_jw_lit(&w, i ? ",{\"title\":" : "{\"title\":");
        cg_jw_str(&w, t, strlen(t));
        cg_jw_lit(&w, o->buttons[i].url ? ",\"url\":" : ",\"payload\":");
        cg_jw_str(&w, v, strlen(v));
        cg_jw_lit(&w, "}");
    }
    cg_jw_lit(&w, "]");
    return cg_jw_take(&w, NULL);
}

typedef struct loaded {
    long long done;
    const char *dialog;  /* borrowed JSON (the load's reply or the preload) or NULL */
    int blocked;
    int agent;
    const char *buttons; /* borrowed JSON or NULL */
    const char *case_id; /* open hand-off case (queued or assigned), borrowed, or NULL */
    const char *csat;    /* resolved case awaiting its satisfaction answer, or NULL */
    const char *lang;    /* the session's last reply language, or NULL */
    const char *unanswered; /* last text the bot did not understand, or NULL */
    long long ttl_at;    /* when the commit last refreshed the TTLs (ms), 0: never */
    const char *name;    /* the citizen's display name as stored, or NULL */
    const char *const *f;        /* the CG_LOAD_FIELDS strings it was read from */
} loaded;

/* 1..5 when the message answers the satisfaction question ("csat:N" button
 * or a lone digit), else 0. */
static int csat_answer(const cg_msg *m)
{
    if (m->payload && !strncmp(m->payload, "csat:", 5) && m->payload[5] >= '1' && m->payload[5] <= '5' &&
        !m->payload[6])
        return m->payload[5] - '0';
    if (m->kind == CG_MSG_TEXT && m->text) {
        const char *t = m->text;
        while (*t == ' ') t++;
        if (*t >= '1' && *t <= '5') {
            int v = *t - '0';
            t++;
            while (*t == ' ' || *t == '.') t++;
            if (!*t) return v;
        }
    }
    return 0;
}

/* A reply: op "reply", the outbox entry and (when conv) its transcript
 * entry from one set of arguments (the text, buttons and language once, the
 * field names in the script). */
static void reply_op(cg_args *a, int conv, const cg_msg *m, const char *text, const char *buttons,
                     const char *lang, const char *intent, const char *now_s, const char *recv_s)
{
    int op = op_begin(a, "reply");
    cg_args_add(a, conv ? "1" : "");
    cg_args_add(a, text);
    cg_args_add(a, buttons);
    cg_args_add(a, lang);
    cg_args_add(a, intent ? intent : "");
    cg_args_add(a, now_s);
    cg_args_add(a, m->channel);
    cg_args_add(a, m->user);
    cg_args_add(a, m->callback_id ? m->callback_id : "");
    cg_args_add(a, recv_s);
    op_end(a, op);
}

/* A fixed reply of the hand-off (agents_queue.c texts) into the outbox and
 * the transcript. */
static void handoff_reply(cg_args *a, const cg_msg *m, const char *text, const char *lang, const char *now_s,
                          const char *recv_s)
{
    reply_op(a, 1, m, text, "[]", lang, NULL, now_s, recv_s);
}

/* Title of the button with this payload in the last reply's buttons JSON,
 * malloc'd, or NULL. Button presses carry only the payload; the transcript
 * (and the web-chat history) show what the citizen pressed. */
static char *button_title(const char *buttons, const char *payload)
{
    if (!buttons || !payload) return NULL;
    cJSON *arr = cJSON_Parse(buttons);
    const cJSON *b;
    char *t = NULL;
    cJSON_ArrayForEach(b, arr) {
        const cJSON *pl = cJSON_GetObjectItemCaseSensitive(b, "payload");
        const cJSON *ti = cJSON_GetObjectItemCaseSensitive(b, "title");
        if (cJSON_IsString(pl) && cJSON_IsString(ti) && strcmp(pl->valuestring, payload) == 0) {
            t = strdup(ti->valuestring);
            break;
        }
    }
    cJSON_Delete(arr);
    return t;
}

/* Fills turn input from the message; 0 when the kind runs a turn. */
static int build_turn(const pl_entry *e, cg_turn_in *in, const char *ref)
{
    const cg_msg *m = &e->msg;
    memset(in, 0, sizeof *in);
    in->lang_hint = m->lang_hint[0] ? m->lang_hint : NULL;
    in->reference = ref;
    in->text = m->text;
    in->len = m->text ? strlen(m->text) : 0;
    switch (m->kind) {
    case CG_MSG_TEXT: in->kind = CG_IN_TEXT; return m->text ? 0 : -1;
    case CG_MSG_BUTTON: in->kind = CG_IN_BUTTON; in->payload = m->payload; return 0;
    case CG_MSG_START: in->kind = CG_IN_START; return 0;
    case CG_MSG_LANGUAGE: in->kind = CG_IN_LANGUAGE; return 0;
    case CG_MSG_LOCATION: in->kind = CG_IN_LOCATION; in->lat = m->lat; in->lon = m->lon; return 0;
    case CG_MSG_MEDIA: in->kind = CG_IN_MEDIA; in->media = m->media[0] ? m->media : "document"; return 0;
    case CG_MSG_UNSUPPORTED: in->kind = CG_IN_MEDIA; in->media = "unsupported"; return 0;
    default: return -1;
    }
}

static void commit_reply(cg_store *s, redisReply *r, void *ud);
static void outbox_took(cg_pipeline *p, unsigned reserved, const redisReply *taken);
static void outbox_behind(cg_pipeline *p, unsigned reserved);
static void direct_learn(cg_pipeline *p, pl_entry *e, int ok);
static void loaded_from(loaded *ld, const char *const *f, const size_t *len);

static void give_back(cg_pipeline *p, pl_entry *e, const redisReply *taken);

/* Metrics a commit counts once it is made ("ok"): not for a duplicate, a
 * retry, or a direct commit that did not happen. */
enum { COUNT_PROCESSED = 1, COUNT_FALLBACK = 2, COUNT_MATCHED = 4, COUNT_ESCALATED = 8 };

static void count(const pl_entry *e)
{
    if (e->counts & COUNT_PROCESSED) cg_metrics_inc(CG_M_PROCESSED, e->msg.channel);
    if (e->counts & COUNT_FALLBACK) cg_metrics_inc(CG_M_FALLBACK, e->msg.channel);
    if (e->counts & COUNT_MATCHED) cg_metrics_inc(CG_M_MATCHED, e->msg.channel);
    if (e->counts & COUNT_ESCALATED) cg_metrics_inc(CG_M_ESCALATED, e->msg.channel);
}

/* The CG_LOAD_FIELDS strings f (lengths len) in one block: each
 * NUL-terminated, in order. malloc'd, or NULL. */
static char *block_make(const char *const *f, const size_t *len)
{
    size_t total = 0;
    for (size_t i = 0; i < CG_LOAD_FIELDS; i++) total += len[i] + 1;
    char *b = malloc(total), *o = b;
    if (!b) return NULL;
    for (size_t i = 0; i < CG_LOAD_FIELDS; i++) {
        memcpy(o, f[i], len[i]);
        o[len[i]] = '\0';
        o += len[i] + 1;
    }
    return b;
}

/* A block's strings into f/len. */
static void block_fields(const char *b, const char **f, size_t *len)
{
    for (size_t i = 0; i < CG_LOAD_FIELDS; i++) {
        f[i] = b;
        len[i] = strlen(b);
        b += len[i] + 1;
    }
}

/* The load after a plain commit of e (e->after): what cg_load will read once
 * it is made. A plain turn writes done, dialog, buttons, lang, clears
 * blocked, may write unanswered, ttl_at and name; the rest stays. */
static void next_load(pl_entry *e, const loaded *ld, const char *dialog, const char *buttons, const char *lang,
                      const char *unanswered, const char *ttl_at)
{
    const char *f[CG_LOAD_FIELDS];
    size_t len[CG_LOAD_FIELDS];
    char seq[CG_STORE_NUM_MAX];
    cg_store_fmt_ll(seq, e->seq);
    for (size_t i = 0; i < CG_LOAD_FIELDS; i++) f[i] = ld->f[i];
    f[0] = seq;
    f[1] = dialog;
    f[2] = "0";
    f[4] = "0";
    f[5] = buttons;
    f[8] = lang;
    if (unanswered) f[9] = unanswered;
    if (ttl_at) f[10] = ttl_at;
    if (e->msg.name) f[11] = e->msg.name;
    size_t total = 0;
    for (size_t i = 0; i < CG_LOAD_FIELDS; i++) total += (len[i] = strlen(f[i])) + 1;
    free(e->after);
    /* a long unanswered text or a flow's answers: not kept (DIRECT_LOAD_MAX) */
    e->after = total <= DIRECT_LOAD_MAX ? block_make(f, len) : NULL;
}

/* Where commit_build puts the seq and the first operation in its arguments:
 * after the 9 keys, the group, the entry id, the seq, the session TTL, the
 * transcript's max and TTL, and "force" (cg_commit's parameters). */
#define COMMIT_SEQ 11
#define COMMIT_OPS 16

/* e's commit from its load: the commit script's keys and arguments into
 * *args (owned by the caller, also on failure); 0, or -1 when out of
 * memory. Sets e's counts, an, erase, queued_case, plain and after, and
 * reserves outbox room for its reply (e->out_reserved: the caller reads it
 * behind the script, outbox_behind, or gives it back). */
static int commit_build(cg_pipeline *p, pl_entry *e, const loaded *ld, cg_args *args)
{
    cg_gateway *gw = p->gw;
    const cg_config *cfg = gw->cfg;
    const cg_msg *m = &e->msg;
    cg_args a = { .n = 0 };
    cg_turn_out out;
    int have_out = 0;
    int csat_given = 0;          /* 1..5: this message rated a resolved case (analytics) */
    char ref[32], now_s[32], b[64];
    int64_t now = cg_store_now_ms();
    cg_store_fmt_ll(now_s, (long long)now);
    memset(&out, 0, sizeof out);
    e->counts = 0;
    e->plain = 0;
    int ttl = 0;

    static const char *const kinds[] = { "seq", "sess", "conv", NULL, NULL, NULL, "gap" };
    for (int i = 0; i < 7; i++) {
        char key[CG_KEY_MAX];
        if (i == 3) cg_args_add(&a, CG_K_OUTBOX);
        else if (i == 4) cg_args_add(&a, CG_K_INBOX);
        else if (i == 5) cg_args_add(&a, CG_K_AGENTS_Q);
        else {
            if (cg_store_key(key, sizeof key, kinds[i], m->channel, m->user)) a.oom = 1;
            cg_args_add(&a, key);
        }
    }
    cg_args_add(&a, CG_K_FLOWS);
    {
        char key[CG_KEY_MAX];
        if (cg_store_key(key, sizeof key, "held", m->channel, m->user)) a.oom = 1;
        cg_args_add(&a, key);
    }
    cg_args_add(&a, CG_G_PIPELINE);
    cg_args_add(&a, e->id);
    cg_args_addi(&a, e->seq);
    int sess_ttl = cfg->session_ttl_s > 0 ? cfg->session_ttl_s : 2592000;
    int conv_ttl = cfg->transcript_ttl_s > 0 ? cfg->transcript_ttl_s : 7776000;
    cg_args_addi(&a, sess_ttl);
    cg_args_addi(&a, cfg->transcript_max > 0 ? cfg->transcript_max : 500);
    cg_args_addi(&a, conv_ttl);
    cg_args_add(&a, e->force ? "force" : "");

    int op;
    if (m->kind != CG_MSG_STATUS &&
        cg_store_ttl_due(ld->ttl_at, now, cg_store_ttl_slack_ms(sess_ttl, conv_ttl))) {
        /* the TTLs are due (commit_script, "TTLs"): first, before any write;
         * a delivery status writes neither session nor transcript */
        op = op_begin(&a, "ttl");
        cg_args_add(&a, now_s);
        op_end(&a, op);
        ttl = 1;
    }
    cg_store_fmt_ll(b, (long long)(e->received_at ? e->received_at : now));
    /* the citizen's side of the transcript */
    int citizen = m->kind != CG_MSG_STATUS && m->kind != CG_MSG_BLOCKED &&
                  m->kind != CG_MSG_UNBLOCKED;
    if (citizen && m->kind != CG_MSG_EDITED && cg_window_holds(m->channel)) {
        /* the window is open again: replies held while it was closed go first */
        op = op_begin(&a, "release");
        cg_args_add(&a, b);
        op_end(&a, op);
    }
    const cg_channel_cfg *chc = cg_config_channel(cfg, m->channel);
    const cg_connector *conn = cg_connector_find(m->channel);
    if (citizen && chc && chc->mark_read && conn && conn->render_read && m->msg_id[0]) {
        op = op_begin(&a, "read");
        cg_args_add(&a, "channel"); cg_args_add(&a, m->channel);
        cg_args_add(&a, "user"); cg_args_add(&a, m->user);
        cg_args_add(&a, "kind"); cg_args_add(&a, "read");
        cg_args_add(&a, "msg_id"); cg_args_add(&a, m->msg_id);
        cg_args_add(&a, "created_at"); cg_args_add(&a, now_s);
        op_end(&a, op);
    }
    if (citizen) {
        op = op_begin(&a, "conv");
        cg_args_add(&a, "dir"); cg_args_add(&a, "in");
        cg_args_add(&a, "kind"); cg_args_add(&a, kind_names[m->kind]);
        char *title = m->kind == CG_MSG_BUTTON && !m->text ? button_title(ld->buttons, m->payload) : NULL;
        if (m->text || title) { cg_args_add(&a, "text"); cg_args_add(&a, m->text ? m->text : title); }
        free(title);
        if (m->payload) { cg_args_add(&a, "payload"); cg_args_add(&a, m->payload); }
        if (m->media[0]) { cg_args_add(&a, "media"); cg_args_add(&a, m->media); }
        if (m->kind == CG_MSG_LOCATION) {
            char ll[64];
            snprintf(ll, sizeof ll, "%.7f,%.7f", m->lat, m->lon);
            cg_args_add(&a, "location"); cg_args_add(&a, ll);
        }
        cg_args_add(&a, "ts"); cg_args_add(&a, b);
        if (e->id[0]) { cg_args_add(&a, "entry"); cg_args_add(&a, e->id); }  /* none: a direct commit */
        op_end(&a, op);
    }

    switch (m->kind) {
    case CG_MSG_BLOCKED:
    case CG_MSG_UNBLOCKED:
        op = op_begin(&a, "hset");
        cg_args_add(&a, "blocked"); cg_args_add(&a, m->kind == CG_MSG_BLOCKED ? "1" : "0");
        op_end(&a, op);
        op = op_begin(&a, "conv");
        cg_args_add(&a, "dir"); cg_args_add(&a, "note");
        cg_args_add(&a, "text"); cg_args_add(&a, m->kind == CG_MSG_BLOCKED ? "blocked" : "unblocked");
        cg_args_add(&a, "ts"); cg_args_add(&a, b);
        op_end(&a, op);
        break;
    case CG_MSG_STATUS:
        cg_delivery_status(p->store, cfg, m);
        break;
    case CG_MSG_EDITED:
        break;
    default:
        if (ld->case_id) {
            /* a person has (or will have) this conversation: the bot is silent */
            const char *lang = ld->lang ? ld->lang : "";
            cg_intents *t = cg_intents_ref(gw->intents);
            const cg_settings *set = t ? &t->settings : NULL;
            if (m->payload && (!strcmp(m->payload, "cb") || !strcmp(m->payload, "w"))) {
                int cb = !strcmp(m->payload, "cb");
                if (cb) {
                    op = op_begin(&a, "case");
                    cg_args_add(&a, ld->case_id); cg_args_add(&a, "");
                    cg_args_add(&a, "callback"); cg_args_add(&a, "1");
                    op_end(&a, op);
                    op = op_begin(&a, "conv");
                    cg_args_add(&a, "dir"); cg_args_add(&a, "note");
                    cg_args_add(&a, "kind"); cg_args_add(&a, "callback");
                    cg_args_add(&a, "text"); cg_args_add(&a, "the citizen chose to leave a message for a call-back");
                    cg_args_add(&a, "ts"); cg_args_add(&a, now_s);
                    op_end(&a, op);
                }
                char *txt = cg_agents_text(set, cb ? "queue_callback_ok" : "queue_waiting_ok", lang, NULL, NULL, NULL);
                if (txt) handoff_reply(&a, m, txt, lang, now_s, b);
                else a.oom = 1;
                free(txt);
            }
            cg_intents_unref(t);
            cJSON *en = cJSON_CreateObject();
            char *title = m->kind == CG_MSG_BUTTON && !m->text ? button_title(ld->buttons, m->payload) : NULL;
            cJSON_AddStringToObject(en, "dir", "in");
            cJSON_AddStringToObject(en, "text", m->text ? m->text : title ? title : m->payload ? m->payload
                                                                                 : m->media[0] ? m->media : "");
            cJSON_AddNumberToObject(en, "ts", (double)(e->received_at ? e->received_at : now));
            free(title);
            char *ej = cJSON_PrintUnformatted(en);
            cJSON_Delete(en);
            op = op_begin(&a, "centry");
            cg_args_add(&a, ld->case_id); cg_args_add(&a, "1"); cg_args_add(&a, b); cg_args_add(&a, ej ? ej : "{}");
            op_end(&a, op);
            free(ej);
            op = op_begin(&a, "hset");
            cg_args_add(&a, "last_in"); cg_args_add(&a, b);
            if (ld->blocked) { cg_args_add(&a, "blocked"); cg_args_add(&a, "0"); }
            if (m->name) { cg_args_add(&a, "name"); cg_args_add(&a, m->name); }
            op_end(&a, op);
            break;
        }
        if (ld->csat) {
            int v = csat_answer(m);
            csat_given = v;
            op = op_begin(&a, "hdel");
            cg_args_add(&a, "csat");
            op_end(&a, op);
            if (v) {
                char vs[4];
                snprintf(vs, sizeof vs, "%d", v);
                op = op_begin(&a, "case");
                cg_args_add(&a, ld->csat); cg_args_add(&a, "");
                cg_args_add(&a, "csat"); cg_args_add(&a, vs);
                cg_args_add(&a, "csat_at"); cg_args_add(&a, now_s);
                op_end(&a, op);
                op = op_begin(&a, "conv");
                cg_args_add(&a, "dir"); cg_args_add(&a, "note");
                cg_args_add(&a, "kind"); cg_args_add(&a, "csat");
                cg_args_add(&a, "text"); cg_args_add(&a, vs);
                cg_args_add(&a, "ts"); cg_args_add(&a, now_s);
                op_end(&a, op);
                cg_intents *t = cg_intents_ref(gw->intents);
                const char *lang = ld->lang ? ld->lang : "";
                char *txt = cg_agents_text(t ? &t->settings : NULL, "csat_thanks", lang, NULL, NULL, NULL);
                cg_intents_unref(t);
                if (txt) handoff_reply(&a, m, txt, lang, now_s, b);
                else a.oom = 1;
                free(txt);
                break;
            }
        }
        cg_turn_in in;
        make_reference(e->id, ref, sizeof ref);
        if (build_turn(e, &in, ref) != 0) break;
        cg_dialog_state st;
        cg_dialog_state_init(&st);
        if (ld->dialog) cg_dialog_state_from_json(ld->dialog, strlen(ld->dialog), &st);
        char flow[sizeof st.flow];     /* the running flow, before the turn ends it */
        memcpy(flow, st.flow, sizeof flow);
        int offered = !strcmp(st.pending, "human_offer");   /* yes now = after fallbacks */
        cg_intents *t = cg_intents_ref(gw->intents);
        int rc = cg_dialog_turn(t, &st, &in, &out);
        cg_intents_unref(t);
        if (rc != 0 || !out.text) {
            cg_dialog_state_free(&st);
            cg_turn_out_free(&out);
            memset(&out, 0, sizeof out);
            a.oom = 1;
            break;
        }
        have_out = 1;
        e->counts |= COUNT_PROCESSED;
        if (out.fallback) e->counts |= COUNT_FALLBACK;
        else if (out.intent) e->counts |= COUNT_MATCHED;
        char *btn = buttons_json(&out);
        if (out.action == CG_ACT_DELETE_DATA) {
            op = op_begin(&a, "del");
            op_end(&a, op);
            e->erase = 1;            /* the rest of their data once this is committed */
        } else {
            char *dj = cg_dialog_state_to_json(&st);
            /* the session's fields the turn changed (the load read them):
             * most turns change last_in only, and every field written is
             * an argument and a share of the AOF record. A session gone
             * since the load (erased, expired) is made again with what
             * changed; the next turn starts it afresh (commit_script,
             * TTLs: all three keys get their TTL). */
            const char *dv = dj ? dj : "{}", *bv = btn ? btn : "[]";
            op = op_begin(&a, "hset");
            cg_args_add(&a, "last_in"); cg_args_add(&a, b);
            if (!ld->dialog || strcmp(ld->dialog, dv)) { cg_args_add(&a, "dialog"); cg_args_add(&a, dv); }
            if (!ld->lang || strcmp(ld->lang, out.lang)) { cg_args_add(&a, "lang"); cg_args_add(&a, out.lang); }
            if (!ld->buttons || strcmp(ld->buttons, bv)) { cg_args_add(&a, "buttons"); cg_args_add(&a, bv); }
            if (ld->blocked) { cg_args_add(&a, "blocked"); cg_args_add(&a, "0"); }
            if (m->name && (!ld->name || strcmp(ld->name, m->name))) {
                cg_args_add(&a, "name"); cg_args_add(&a, m->name);
            }
            if (out.fallback && m->text) { cg_args_add(&a, "unanswered"); cg_args_add(&a, m->text); }
            op_end(&a, op);
            /* plain unless the flow or escalation below makes it more */
            e->plain = !e->force && !ld->csat && out.action != CG_ACT_ESCALATE &&
                       !(out.vars_json && out.action == CG_ACT_FLOW_DONE);
            if (e->plain)
                next_load(e, ld, dv, bv, out.lang, out.fallback && m->text ? m->text : NULL, ttl ? now_s : NULL);
            free(dj);
        }
        reply_op(&a, out.action != CG_ACT_DELETE_DATA, m, out.text, btn ? btn : "[]", out.lang,
                 out.intent ? out.intent->id : NULL, now_s, b);
        free(btn);
        if (out.vars_json && (out.action == CG_ACT_FLOW_DONE || out.action == CG_ACT_ESCALATE)) {
            /* a finished flow's answers, for the department that owns it */
            op = op_begin(&a, "flow");
            cg_args_add(&a, "intent"); cg_args_add(&a, out.intent ? out.intent->id : flow);
            cg_args_add(&a, "reference"); cg_args_add(&a, ref);
            cg_args_add(&a, "channel"); cg_args_add(&a, m->channel);
            cg_args_add(&a, "user"); cg_args_add(&a, m->user);
            cg_args_add(&a, "lang"); cg_args_add(&a, out.lang);
            cg_args_add(&a, "vars"); cg_args_add(&a, out.vars_json);
            cg_args_add(&a, "ts"); cg_args_add(&a, now_s);
            op_end(&a, op);
        }
        if (out.action == CG_ACT_ESCALATE) {
            /* a new hand-off case, queued by priority then time */
            char id[CG_CASE_ID_MAX], score[48], prio[16];
            unsigned char rnd[4];
            randombytes_buf(rnd, sizeof rnd);
            cg_agents_case_id(id, now, rnd);
            snprintf(score, sizeof score, "%.0f", cg_agents_queue_score(out.priority, now));
            snprintf(prio, sizeof prio, "%d", out.priority);
            /* (flags rather than strcmp on reason: gcc -O2 flags those compares) */
            int by_flow = out.vars_json != NULL, by_fallbacks = !by_flow && offered;
            const char *reason = by_flow ? "flow"
                                 : by_fallbacks ? "fallbacks"
                                 : out.intent && out.intent->special != CG_SPECIAL_HUMAN ? "intent"
                                                                                          : "asked";
            const char *question = m->text ? m->text : "";
            if (by_fallbacks && ld->unanswered) question = ld->unanswered;
            else if (by_flow) question = out.intent ? out.intent->id : flow;
            op = op_begin(&a, "case");
            cg_args_add(&a, id); cg_args_add(&a, score);
            cg_args_add(&a, "id"); cg_args_add(&a, id);
            cg_args_add(&a, "channel"); cg_args_add(&a, m->channel);
            cg_args_add(&a, "user"); cg_args_add(&a, m->user);
            cg_args_add(&a, "name"); cg_args_add(&a, m->name ? m->name : "");
            cg_args_add(&a, "lang"); cg_args_add(&a, out.lang);
            cg_args_add(&a, "status"); cg_args_add(&a, "queued");
            cg_args_add(&a, "priority"); cg_args_add(&a, prio);
            cg_args_add(&a, "score"); cg_args_add(&a, score);
            cg_args_add(&a, "created_at"); cg_args_add(&a, now_s);
            cg_args_add(&a, "last_message_at"); cg_args_add(&a, b);
            cg_args_add(&a, "question"); cg_args_add(&a, question);
            cg_args_add(&a, "reason"); cg_args_add(&a, reason);
            cg_args_add(&a, "unread"); cg_args_add(&a, "0");
            op_end(&a, op);
            op = op_begin(&a, "hset");
            cg_args_add(&a, "case"); cg_args_add(&a, id);
            op_end(&a, op);
            op = op_begin(&a, "hdel");
            cg_args_add(&a, "csat"); cg_args_add(&a, "unanswered");
            op_end(&a, op);
            op = op_begin(&a, "conv");
            cg_args_add(&a, "dir"); cg_args_add(&a, "note");
            cg_args_add(&a, "kind"); cg_args_add(&a, "escalated");
            cg_args_add(&a, "text"); cg_args_add(&a, "escalated");
            cg_args_add(&a, "case"); cg_args_add(&a, id);
            cg_args_add(&a, "ts"); cg_args_add(&a, now_s);
            op_end(&a, op);
            e->queued_case = 1;
            e->counts |= COUNT_ESCALATED;
        }
        cg_dialog_state_free(&st);
        break;
    }
    if (!have_out && m->kind != CG_MSG_STATUS) e->counts |= COUNT_PROCESSED;
    e->an_count = 0;
    if (citizen && m->kind != CG_MSG_EDITED) {
        /* what the bot could not answer, redacted, goes with the commit; the
         * daily figures into the analytics batch once it is committed
         * (commit_reply: not for a duplicate) */
        cg_analytics_turn at = {
            .channel = m->channel, .user = m->user, .now_ms = now, .agent = ld->agent,
            .text = m->kind == CG_MSG_TEXT ? m->text : NULL, .turn = have_out,
            .lang = have_out ? out.lang : NULL,
            .intent = have_out && out.intent ? out.intent->id : NULL,
            .fallback = have_out && out.fallback, .ambiguous = have_out && out.ambiguous,
            .handoff = have_out && out.action == CG_ACT_ESCALATE, .csat = csat_given,
        };
        cg_analytics_op aop;
        if (cg_analytics_op_make(cfg, &at, &aop) == 0) {
            op = op_begin(&a, "an");
            for (int i = 0; i < aop.argc; i++) cg_args_add(&a, aop.argv[i]);
            op_end(&a, op);
        }
        cg_analytics_op_free(&aop);
        e->an = at;
        e->an.text = e->an.lang = NULL;      /* borrowed from out and msg: not kept */
        e->an.intent = NULL;
        if (at.intent) {
            snprintf(e->an_intent, sizeof e->an_intent, "%s", at.intent);
            e->an.intent = e->an_intent;
        }
        e->an_count = 1;
    }
    cg_turn_out_free(&out);
    /* the reply just queued goes to this instance's outbox with a read
     * right behind the script (outbox_behind) */
    e->out_reserved = 0;
    if (have_out && p->gw->outbox) e->out_reserved = cg_outbox_reserve(p->gw->outbox);
    if (!e->plain) {
        free(e->after);
        e->after = NULL;
    }
    *args = a;
    return a.oom ? -1 : 0;
}

static void commit(cg_pipeline *p, pl_entry *e, const loaded *ld)
{
    cg_args a;
    if (commit_build(p, e, ld, &a) != 0 ||
        cg_store_eval(p->store, &commit_script, 9, a.n, cg_args_argv(&a), a.len, commit_reply, e) != 0) {
        cg_args_free(&a);
        give_back(p, e, NULL);
        entry_failed(p, e);
        return;
    }
    p->inflight++;
    cg_args_free(&a);
    e->read_behind = e->out_reserved > 0;
    outbox_behind(p, e->out_reserved);      /* the reservation goes with the read */
    e->out_reserved = 0;
}

/* The outbox's reservation for e's commit back, with what it read. */
static void give_back(cg_pipeline *p, pl_entry *e, const redisReply *taken)
{
    outbox_took(p, e->out_reserved, taken);
    e->out_reserved = 0;
}

/* What a read behind a commit got for the outbox (taken: the XREADGROUP
 * reply, or NULL) with the room reserved for it; the outbox reads for
 * itself when the read may have left entries: it read none, or as many as
 * it had room for. */
static void outbox_took(cg_pipeline *p, unsigned reserved, const redisReply *taken)
{
    if (!p->gw->outbox || !reserved) return;
    if (taken && taken->type != REDIS_REPLY_ARRAY) taken = NULL;     /* nil, NOGROUP */
    cg_outbox_take(p->gw->outbox, taken, reserved);
    if (cg_store_read_count(taken) == 0 || cg_store_read_count(taken) >= reserved) cg_outbox_wake(p->gw->outbox);
}

typedef struct behind { cg_pipeline *p; unsigned reserved; } behind;

static void behind_reply(cg_store *s, redisReply *r, void *ud)
{
    behind *b = ud;
    cg_pipeline *p = b->p;
    (void)s;
    p->inflight--;
    outbox_took(p, b->reserved, r);
    free(b);
    maybe_finish(p);
}

/* The read of a commit's reply for this instance's outbox, right behind
 * the commit on its connection (cg_store_outbox_read). */
static void outbox_behind(cg_pipeline *p, unsigned reserved)
{
    if (!reserved) return;
    behind *b = malloc(sizeof *b);
    if (b) *b = (behind){ p, reserved };
    if (!b || cg_store_outbox_read(p->store, reserved, behind_reply, b) != 0) {
        free(b);
        outbox_took(p, reserved, NULL);
        return;
    }
    p->inflight++;
}

static void commit_reply(cg_store *s, redisReply *r, void *ud)
{
    pl_entry *e = ud;
    cg_pipeline *p = e->p;
    (void)s;
    p->inflight--;
    if (r && r->type == REDIS_REPLY_STATUS) r->type = REDIS_REPLY_STRING;
    /* committed now, not a duplicate: count it (analytics.h) */
    int ok = r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "ok") == 0;
    if (ok && e->an_count) cg_analytics_batch_add(p->an, &e->an);
    if (ok) count(e);
    direct_learn(p, e, ok);
    if (p->hard) {           /* stopped hard meanwhile: Redis keeps it pending */
        /* the stop's flush is done: this one's counts go out now, if the
         * store still takes commands */
        cg_analytics_batch_flush(p->an);
        finish_entry(p, e);
        maybe_finish(p);
        return;
    }
    if (!r || r->type != REDIS_REPLY_STRING || strcmp(r->str, "wait") == 0) {
        entry_failed(p, e);
    } else {
        if (e->force) cg_log(CG_LOG_WARN, "pipeline_gap_skipped", "entry", e->id, NULL);
        if (e->erase && ok) {
            cg_log(CG_LOG_INFO, "data_deleted", "channel", e->msg.channel, "user", cg_log_user(e->msg.user), NULL);
            cg_citizens_erase(p->gw, e->msg.channel, e->msg.user, CG_CITIZENS_KEEP_DELIVERY, "citizen", "citizen",
                              NULL, NULL);
        }
        int queued = e->queued_case && strcmp(r->str, "dup") != 0;
        /* no read behind this commit: the outbox reads for itself */
        if (p->gw->outbox && !e->read_behind) cg_outbox_wake(p->gw->outbox);
        finish_entry(p, e);
        if (queued) cg_agents_case_queued(p->gw->agents);
    }
    settle(p);
}

/* ---- load -------------------------------------------------------------- */

/* The loads of the entries one pump() starts, in one call (the closed
 * loop starts many at once; one EVALSHA each cost Redis and us a command
 * an entry).
 * KEYS: per entry cg:seq:{c:u}, cg:sess:{c:u}, cg:gap:{c:u}
 * ARGV: per entry its seq.  Returns per entry the CG_LOAD_FIELDS strings
 * (CG_STORE_LOAD_LUA, store.h, says which). */
static cg_store_script load_script = {
    .name = "load",
    .src = CG_STORE_LOAD_LUA
           "local out = {}\n"
           "for i = 1, #ARGV do out[i] = cg_load(KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i], ARGV[i]) end\n"
           "return out\n",
};

typedef struct load_batch {
    cg_pipeline *p;
    size_t n;
    pl_entry *e[ACTIVE_MAX];
} load_batch;

/* A load's answer for e (from the load script, or the ingest's preload):
 * f[i], len[i] the CG_LOAD_FIELDS strings, or f NULL when the load failed.
 * Commits, acknowledges a duplicate, or defers; e is active. No settle:
 * the caller does it. */
static void load_apply(cg_pipeline *p, pl_entry *e, const char *const *f, const size_t *len)
{
    if (!f) {
        entry_failed(p, e);
        return;
    }
    loaded ld = { 0 };
    ld.done = strtoll(f[0], NULL, 10);
    int late = strcmp(f[4], "1") == 0;
    if (e->seq <= ld.done && !late) {         /* committed before: only ack */
        ack(p, e->id);
        finish_entry(p, e);
        return;
    }
    if (e->seq > ld.done + 1 && !e->force) {
        entry_failed(p, e);
        return;
    }
    loaded_from(&ld, f, len);
    commit(p, e, &ld);
}

/* The load's strings (f, len: CG_LOAD_FIELDS) as a loaded, borrowing them. */
static void loaded_from(loaded *ldp, const char *const *f, const size_t *len)
{
    loaded ld = { 0 };
    ld.done = strtoll(f[0], NULL, 10);
    if (len[1] > 0) ld.dialog = f[1];
    ld.blocked = strcmp(f[2], "1") == 0;
    ld.agent = len[3] > 0;
    if (len[5] > 0) ld.buttons = f[5];
    if (len[6] > 0) ld.case_id = f[6];
    if (len[7] > 0) ld.csat = f[7];
    if (len[8] > 0) ld.lang = f[8];
    if (len[9] > 0) ld.unanswered = f[9];
    if (len[10] > 0) ld.ttl_at = strtoll(f[10], NULL, 10);
    if (len[11] > 0) ld.name = f[11];
    ld.f = f;
    *ldp = ld;
}

/* The CG_LOAD_FIELDS strings of a load's reply into f/len; 0, or -1 when
 * it is not one. */
static int load_fields(const redisReply *r, const char **f, size_t *len)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != CG_LOAD_FIELDS) return -1;
    for (size_t i = 0; i < CG_LOAD_FIELDS; i++) {
        const redisReply *x = r->element[i];
        if (x->type != REDIS_REPLY_STRING) return -1;
        f[i] = x->str;
        len[i] = x->len;
    }
    return 0;
}

static void load_reply(cg_store *s, redisReply *r, void *ud)
{
    load_batch *b = ud;
    cg_pipeline *p = b->p;
    (void)s;
    p->inflight--;
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == b->n;
    for (size_t i = 0; i < b->n; i++) {
        pl_entry *e = b->e[i];
        if (p->hard) {
            finish_entry(p, e);
            continue;
        }
        const char *f[CG_LOAD_FIELDS];
        size_t len[CG_LOAD_FIELDS];
        load_apply(p, e, ok && load_fields(r->element[i], f, len) == 0 ? f : NULL, len);
    }
    free(b);
    if (p->hard) maybe_finish(p);
    else settle(p);
}

/* Sends the batch's loads (one call); on failure its entries are deferred. */
static void load_send(cg_pipeline *p, load_batch *b)
{
    if (!b || b->n == 0) {
        free(b);
        return;
    }
    static const char *const kinds[] = { "seq", "sess", "gap" };
    cg_args a = { .n = 0 };             /* 3 keys an entry, then the seqs */
    char key[CG_KEY_MAX];
    for (size_t i = 0; i < b->n; i++)
        for (int k = 0; k < 3; k++) {
            if (cg_store_key(key, sizeof key, kinds[k], b->e[i]->msg.channel, b->e[i]->msg.user)) a.oom = 1;
            cg_args_add(&a, key);
        }
    for (size_t i = 0; i < b->n; i++) cg_args_addi(&a, b->e[i]->seq);
    if (a.oom || cg_store_eval(p->store, &load_script, (int)(3 * b->n), a.n, cg_args_argv(&a), a.len,
                               load_reply, b) != 0) {
        cg_args_free(&a);
        for (size_t i = 0; i < b->n; i++) entry_failed(p, b->e[i]);
        free(b);
        return;
    }
    cg_args_free(&a);
    p->inflight++;
}

/*
 * The preload: an entry the ingest took for us comes with its
 * conversation's load, read in the same atomic step as the entry
 * (CG_STORE_LOAD_LUA in the ingest script), so it can skip the load's round
 * trip. It is as good as a load of that moment; the commit's compare-and-set
 * on cg:seq decides as for any load, and a session field changed meanwhile
 * by an agent or the outbox is the same race as between a load and its
 * commit. It is used only when the entry starts right away (PRELOAD_MAX_MS
 * after the read) and the load was made for it (done = its seq - 1: not a
 * later entry of a burst, read with its predecessors); otherwise the entry
 * loads as usual. Kept as one block: the CG_LOAD_FIELDS
 * strings, NUL-terminated, in order.
 */
#define PRELOAD_MAX_MS 20

static char *preload_keep(const redisReply *r)
{
    const char *f[CG_LOAD_FIELDS];
    size_t len[CG_LOAD_FIELDS];
    return load_fields(r, f, len) == 0 ? block_make(f, len) : NULL;
}

/* Uses e's preload when it is fresh: 1 (applied), else 0; frees it. */
static int preload_use(cg_pipeline *p, pl_entry *e)
{
    char *b = e->pre;
    e->pre = NULL;
    if (!b) return 0;
    /* fresh, and made for this entry: its predecessor was committed then
     * (a later entry of a burst, read with it, loads again once its turn
     * comes) */
    int fresh = uv_now(p->gw->loop) - e->pre_at <= PRELOAD_MAX_MS && strtoll(b, NULL, 10) == e->seq - 1;
    if (fresh) {
        const char *f[CG_LOAD_FIELDS];
        size_t len[CG_LOAD_FIELDS];
        block_fields(b, f, len);
        p->preloaded++;
        cg_metrics_inc(CG_M_PRELOADED, e->msg.channel);
        load_apply(p, e, f, len);       /* commit copies what it keeps */
    }
    free(b);
    return fresh;
}

/*
 * The direct commit: a message stored and committed in one step.
 *
 * Most messages come to a conversation with nothing pending, whose state
 * this instance saw last (its previous turn committed here). For those the
 * turn can run before the message is stored: the webhook's one script (the
 * ingest's dedupe and flood control, CG_STORE_INGEST_LUA) then commits the
 * turn instead of appending to cg:inbox, if and only if, atomically, the
 * conversation has nothing pending (cg:seq in == done) and its load is
 * exactly the one the turn ran on (every CG_LOAD_FIELDS string compared, joined;
 * the commit script's check, "x"). The commit is then what the pipeline
 * would have made from that load: the same operations (commit_build), with
 * the message's seq = done + 1 set as both in and done, no inbox entry, no
 * XACK, no "entry" in the transcript. Otherwise nothing of the commit is
 * written and the message goes to cg:inbox as before (same script, same
 * round trip): a wrong guess costs the turn, never order or a message. The
 * webhook's 200 still comes only once Redis has the message (and now its
 * answer). Saved per message: the inbox's XADD, its delivery (XCLAIM
 * record) and XACK, HINCRBY in, the load, a script call, a round trip.
 *
 * Only plain turns go direct: a turn whose commit is a reply and session
 * fields (no hand-off case open or made, no satisfaction answer, no
 * finished flow, no erasure; e->plain); any other is discarded and the
 * message stored as usual. The loads come from a cache (DIRECT_SLOTS, in
 * sets of DIRECT_WAYS by conversation hash, the least recently used one
 * replaced; a load over DIRECT_LOAD_MAX bytes is not kept, so the cache
 * stays under 8.2 MB whatever citizens send) of what each plain commit made
 * (e->after, next_load: the load after it), filled by direct and pipeline
 * commits alike and dropped on any other commit or a failed guess; a
 * conversation not in it is guessed new (the empty load). The cache is
 * only a guess: agents' and the outbox's writes, expiry, erasure and other
 * instances make it stale, and the script's compare catches each of those.
 */
#define DIRECT_SLOTS 8192
#define DIRECT_WAYS  4

typedef struct direct_slot {
    uint64_t conv;
    uint64_t used;               /* p->direct_clock when last found or filled */
    char *load;                  /* block (block_make), owned, or NULL */
} direct_slot;

/* A new conversation's load, as cg_load reads it. */
static const char *const load_empty[CG_LOAD_FIELDS] = { "0", "", "0", "", "0", "", "", "", "", "", "", "" };

static cg_store_script direct_script = {
    .name = "direct",
    /* KEYS: the ingest's 1 cg:inbox 2 cg:outbox 3 dedupe 4 cg:seq 5 rate
     * 6 cg:conv, then 7 cg:sess 8 cg:queue:agents 9 cg:gap 10 cg:flows
     * 11 cg:held. ARGV: the ingest's for one message without the three
     * that ask for a read for the pipeline (so ARGV[7..] is the message's,
     * its field count at 11: -1, its fields joined in ARGV[12]), then the
     * expected load (its
     * CG_LOAD_FIELDS strings joined by NUL, as the script's table.concat
     * joins what cg_load read: equal if and only if every field is, since
     * neither side's fields hold a NUL: the cache's are C strings, and
     * a NUL in what Redis holds would make the join longer in NULs), then
     * the seq, then the commit's operations; the commit's other arguments
     * are the ingest's (TTLs, transcript max) or unused (group and entry
     * id: nothing to acknowledge; never forced). Each argument spared
     * spares Redis ~800 instructions (parsing, the ARGV table). */
    .src = COMMIT_LUA CG_STORE_INGEST_LUA
           "local K = {KEYS[4], KEYS[7], KEYS[6], KEYS[2], KEYS[1], KEYS[8], KEYS[9], KEYS[10], KEYS[11]}\n"
           "local x = 13\n"   /* cg_store_ingest always joins the direct message's fields */
           "local a, l, r = cg_ingest_one(3, 7, function()\n"
           "  return cg_commit(K, '', '', ARGV[x + 1], ARGV[2], ARGV[4], ARGV[5], '', x + 2, x)\n"
           "end)\n"
           "return {a, l, false, false, r}\n",
};

/* conv's slot; when it has none and make, the set's free or least
 * recently used one (its load dropped); else NULL. */
static direct_slot *direct_slot_of(cg_pipeline *p, uint64_t conv, int make)
{
    if (!p->cache) return NULL;
    direct_slot *set = &p->cache[(conv % (DIRECT_SLOTS / DIRECT_WAYS)) * DIRECT_WAYS], *old = NULL;
    for (int i = 0; i < DIRECT_WAYS; i++) {
        if (set[i].load && set[i].conv == conv) {
            set[i].used = ++p->direct_clock;
            return &set[i];
        }
        if (!old || (old->load && (!set[i].load || set[i].used < old->used))) old = &set[i];
    }
    if (!make) return NULL;
    free(old->load);
    old->load = NULL;
    old->conv = conv;
    old->used = ++p->direct_clock;
    return old;
}

/* After e's commit answered (ok: made): a plain one's load is kept for the
 * next message, anything else forgets the conversation. A load older than
 * the one kept (a commit answered late on the other connection) is not. */
static void direct_learn(cg_pipeline *p, pl_entry *e, int ok)
{
    direct_slot *d = direct_slot_of(p, e->conv, ok && e->plain && e->after);
    if (!d) return;
    if (ok && e->plain && e->after) {
        if (d->load && strtoll(d->load, NULL, 10) > e->seq) return;
        free(d->load);
        d->load = e->after;
        e->after = NULL;
    } else {
        free(d->load);
        d->load = NULL;
    }
}

/* cg_store_taker.direct: m's turn and commit from the cached load, or NULL.
 * The reply's outbox read goes behind the script, as a commit's does
 * (*outbox_read, sent by the store on the ingest's connection). */
static cg_store_script *direct_build(void *ud, const cg_msg *m, int64_t now, cg_args *keys, cg_args *args,
                                     unsigned *outbox_read, void **ctx)
{
    cg_pipeline *p = ud;
    switch (m->kind) {
    case CG_MSG_TEXT: case CG_MSG_BUTTON: case CG_MSG_START: case CG_MSG_LANGUAGE:
    case CG_MSG_LOCATION: case CG_MSG_MEDIA: case CG_MSG_UNSUPPORTED:
        break;
    default:
        return NULL;
    }
    if (p->stopping || !p->gw->intents || !p->cache) return NULL;
    pl_entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->p = p;
    e->conv = conv_hash(m->channel, m->user);
    const char *f[CG_LOAD_FIELDS];
    size_t len[CG_LOAD_FIELDS];
    const direct_slot *d = direct_slot_of(p, e->conv, 0);
    if (d) {
        block_fields(d->load, f, len);     /* C strings: no NUL, as the joined compare needs */
    } else {
        for (size_t i = 0; i < CG_LOAD_FIELDS; i++) {
            f[i] = load_empty[i];
            len[i] = strlen(f[i]);
        }
    }
    loaded ld;
    loaded_from(&ld, f, len);
    e->seq = ld.done + 1;
    e->received_at = now;
    e->msg = *m;                 /* borrowed for the build: its strings are not kept */
    cg_args a;
    int rc = commit_build(p, e, &ld, &a);
    e->msg.text = e->msg.payload = e->msg.callback_id = e->msg.name = NULL;
    if (rc != 0 || !e->plain) {
        cg_args_free(&a);
        give_back(p, e, NULL);
        entry_free(e);
        return NULL;
    }
    /* the commit's keys the ingest does not have: sess, agents, gap, flows,
     * held (commit_script's 2, 6, 7, 8, 9) */
    static const int extra[] = { 1, 5, 6, 7, 8 };
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++)
        cg_args_addn(keys, a.buf + a.off[extra[i]], a.len[extra[i]]);
    /* the expected load joined, the seq, the operations (direct_script) */
    int at = args->n;
    for (size_t i = 0; i < CG_LOAD_FIELDS; i++) cg_args_addn(args, f[i], len[i]);
    cg_args_join(args, at);
    cg_args_addn(args, a.buf + a.off[COMMIT_SEQ], a.len[COMMIT_SEQ]);
    for (int i = COMMIT_OPS; i < a.n; i++) cg_args_addn(args, a.buf + a.off[i], a.len[i]);
    cg_args_free(&a);
    *outbox_read = e->out_reserved;
    *ctx = e;
    p->inflight++;
    return &direct_script;
}

/* cg_store_taker.direct_done: ok, the commit was made; taken, what the
 * outbox read behind it got. */
static void direct_done(void *ud, void *ctx, int ok, const redisReply *taken)
{
    cg_pipeline *p = ud;
    pl_entry *e = ctx;
    p->inflight--;
    unsigned reserved = e->out_reserved;
    give_back(p, e, taken);
    direct_learn(p, e, ok);
    if (ok) {
        count(e);
        cg_metrics_inc(CG_M_DIRECT, e->msg.channel);
        p->direct++;
        if (e->an_count) {
            cg_analytics_batch_add(p->an, &e->an);
            if (p->done_called) cg_analytics_batch_flush(p->an);   /* the stop's flush is done */
        }
        /* no read behind it: the outbox reads for itself */
        if (p->gw->outbox && !reserved) cg_outbox_wake(p->gw->outbox);
    }
    entry_free(e);
    maybe_finish(p);
}

/* Starts the load of e (it becomes active; the load goes into *batch, made
 * here when NULL); hostile or deleted entries are only acknowledged. */
static void process(cg_pipeline *p, pl_entry *e, load_batch **batch)
{
    e->p = p;
    if (e->seq < 0) {                 /* deleted from the stream */
        ack(p, e->id);
        entry_free(e);
        return;
    }
    char k[CG_KEY_MAX];
    if (cg_store_key(k, sizeof k, "seq", e->msg.channel, e->msg.user) ||
        cg_store_key(k, sizeof k, "sess", e->msg.channel, e->msg.user) ||
        cg_store_key(k, sizeof k, "gap", e->msg.channel, e->msg.user) || e->seq <= 0) {
        /* not written by our ingest: dead weight; acknowledge and log */
        cg_log(CG_LOG_WARN, "pipeline_bad_entry", "entry", e->id, NULL);
        ack(p, e->id);
        entry_free(e);
        return;
    }
    p->active[p->nactive++] = e;
    if (preload_use(p, e)) return;
    if (!*batch && !(*batch = calloc(1, sizeof **batch))) {
        entry_failed(p, e);
        return;
    }
    (*batch)->p = p;
    (*batch)->e[(*batch)->n++] = e;
}

/* ---- reading and claiming ---------------------------------------------- */

/* loads: the ingest's preloads for arr's entries, in order, or NULL. */
static void add_entries(cg_pipeline *p, const redisReply *arr, const redisReply *loads)
{
    if (!arr || arr->type != REDIS_REPLY_ARRAY) return;
    if (loads && (loads->type != REDIS_REPLY_ARRAY || loads->elements != arr->elements)) loads = NULL;
    uint64_t now = uv_now(p->gw->loop);
    for (size_t i = 0; i < arr->elements; i++) {
        const redisReply *e = arr->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        if (held(p, e->element[0]->str)) continue;
        pl_entry *x = entry_parse(e);
        if (!x) continue;
        if (loads && x->seq > 0 && (x->pre = preload_keep(loads->element[i]))) x->pre_at = now;
        list_push(&p->queue, x);
    }
}

/* An XREADGROUP reply, [[stream, entries], ...] (ours, or the ingest's with
 * its preloads for the first stream's entries). */
static void add_streams(cg_pipeline *p, const redisReply *streams, const redisReply *loads)
{
    for (size_t i = 0; streams && streams->type == REDIS_REPLY_ARRAY && i < streams->elements; i++) {
        const redisReply *st = streams->element[i];
        if (st->type == REDIS_REPLY_ARRAY && st->elements == 2) add_entries(p, st->element[1], i == 0 ? loads : NULL);
    }
}

static void read_reply(cg_store *s, redisReply *r, void *ud)
{
    cg_pipeline *p = ud;
    p->inflight--;
    p->reading = 0;
    size_t before = p->queue.n;
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) == 0) {
        cg_store_ensure_group(s, CG_K_INBOX, CG_G_PIPELINE);
    } else {
        add_streams(p, r, NULL);
    }
    uint64_t now = uv_now(p->gw->loop);
    if (p->queue.n > before) {
        char cnt[24];
        snprintf(cnt, sizeof cnt, "%zu", p->queue.n - before);
        cg_log(CG_LOG_DEBUG, "pipeline_read", "count", cnt, "instance", p->gw->instance, NULL);
    }
    p->next_read = p->queue.n > before || p->woken ? now : now + POLL_IDLE_MS;
    p->woken = 0;
    settle(p);
}

static void read_more(cg_pipeline *p)
{
    const char *av[] = { "XREADGROUP", "GROUP", CG_G_PIPELINE, p->gw->instance, "COUNT",
                         READ_COUNT, "STREAMS", CG_K_INBOX, ">" };
    if (cg_store_cmd(p->store, read_reply, p, 9, av, NULL) == 0) {
        p->reading = 1;
        p->inflight++;
    } else {
        p->next_read = uv_now(p->gw->loop) + POLL_IDLE_MS;
    }
}

/* The entries this consumer holds in Redis ("0"): at the start, and when a
 * connection came back (cg_store_epoch). */
static void read_own(cg_pipeline *p)
{
    const char *av[] = { "XREADGROUP", "GROUP", CG_G_PIPELINE, p->gw->instance, "COUNT", "256",
                         "STREAMS", CG_K_INBOX, "0" };
    if (cg_store_cmd(p->store, read_reply, p, 9, av, NULL) == 0) {
        p->reading = 1;
        p->inflight++;
    }
}

static void claim_reply(cg_store *s, redisReply *r, void *ud)
{
    cg_pipeline *p = ud;
    (void)s;
    p->inflight--;
    /* [next cursor, [entries], [deleted ids]] */
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[0]->len < sizeof p->claim_cursor) {
        memcpy(p->claim_cursor, r->element[0]->str, r->element[0]->len + 1);
        size_t before = p->queue.n;
        add_entries(p, r->element[1], NULL);
        if (p->queue.n > before) {
            char n[24];
            snprintf(n, sizeof n, "%zu", p->queue.n - before);
            cg_log(CG_LOG_INFO, "pipeline_claimed", "count", n, NULL);
        }
    }
    settle(p);
}

static void claim(cg_pipeline *p)
{
    char idle[16], cnt[16];
    snprintf(idle, sizeof idle, "%u", cg_store_timings.claim_idle_ms);
    snprintf(cnt, sizeof cnt, "%d", CG_STORE_READ_COUNT);
    const char *av[] = { "XAUTOCLAIM", CG_K_INBOX, CG_G_PIPELINE, p->gw->instance, idle,
                         p->claim_cursor, "COUNT", cnt };
    if (cg_store_cmd(p->store, claim_reply, p, 8, av, NULL) == 0) p->inflight++;
}

static void lost_cb(const char *id, void *ud)
{
    cg_pipeline *p = ud;
    if (!id) {
        p->keeping = 0;
        p->inflight--;
        maybe_finish(p);
        return;
    }
    list_remove_id(&p->queue, id, entry_free);
    list_remove_id(&p->deferred, id, entry_free);
}

/* Ids of every held entry (queue, deferred, active), malloc'd; *n their count. */
static const char **held_ids(const cg_pipeline *p, size_t *n)
{
    *n = 0;
    const char **ids = malloc(sizeof *ids * (p->queue.n + p->deferred.n + p->nactive + 1));
    if (!ids) return NULL;
    for (pl_entry *e = p->queue.head; e; e = e->next) ids[(*n)++] = e->id;
    for (pl_entry *e = p->deferred.head; e; e = e->next) ids[(*n)++] = e->id;
    for (unsigned i = 0; i < p->nactive; i++) ids[(*n)++] = p->active[i]->id;
    return ids;
}

static void keep(cg_pipeline *p)
{
    size_t n;
    const char **ids = held_ids(p, &n);
    if (ids && n) {
        p->keeping = 1;
        p->inflight++;
        cg_store_keep(p->store, CG_K_INBOX, CG_G_PIPELINE, p->gw->instance, ids, n, lost_cb, p);
    }
    free(ids);
}

/* ---- the loop ---------------------------------------------------------- */

/* Open-addressing map, conversation hash → lowest queued seq, for one pass
 * of pump(). Twice the entries it can hold (HELD_MAX + a read + ACTIVE_MAX). */
#define CONV_SLOTS (4 * HELD_MAX)
typedef struct conv_map {
    uint32_t pass;                     /* a slot is in use when gen == pass */
    uint32_t gen[CONV_SLOTS];
    uint64_t k[CONV_SLOTS];
    long long min[CONV_SLOTS];
    unsigned char busy[CONV_SLOTS];    /* active, deferred, or started this pass */
} conv_map;

/* The slot of key, added (min = seq) if new. */
static size_t conv_slot(conv_map *m, uint64_t key, long long seq)
{
    size_t i = key % CONV_SLOTS;
    for (size_t n = 0; n < CONV_SLOTS; i = (i + 1) % CONV_SLOTS, n++) {
        if (m->gen[i] != m->pass) {    /* free this pass: no clearing needed */
            m->gen[i] = m->pass;
            m->k[i] = key;
            m->min[i] = seq;
            m->busy[i] = 0;
            return i;
        }
        if (m->k[i] == key) {
            if (seq < m->min[i]) m->min[i] = seq;
            return i;
        }
    }
    return 0;   /* full: cannot happen at these sizes; at worst an entry waits */
}

static void pump(cg_pipeline *p)
{
    if (p->closed || p->pumping) return;
    uint64_t now = uv_now(p->gw->loop);
    /* deferred entries whose time came go back to the front of the queue */
    if (p->deferred.head && !p->stopping) {
        pl_list due = { 0 }, rest = { 0 };
        pl_entry *e;
        while ((e = list_pop(&p->deferred))) list_push(e->due <= now ? &due : &rest, e);
        p->deferred = rest;
        if (due.head) {
            due.tail->next = p->queue.head;
            if (!p->queue.head) p->queue.tail = due.tail;
            p->queue.head = due.head;
            p->queue.n += due.n;
        }
    }
    if (p->stopping || !cg_store_ready(p->store) || !p->gw->intents) return;
    p->pumping = 1;                 /* no re-entry from what process() calls */
    /* Only the lowest-seq held entry of a conversation may start, and only
     * while none of that conversation is active or deferred: that keeps its
     * order here, and the commit script's compare-and-set on seq stays the
     * guard. Other conversations go on meanwhile, up to ACTIVE_MAX at once. */
    unsigned startable = 0;
    load_batch *batch = NULL;         /* the loads of what this pass starts */
    if (p->queue.head) {
        static conv_map m;          /* loop thread only */
        if (++m.pass == 0) {        /* wrapped: clear once every 2^32 passes */
            memset(m.gen, 0, sizeof m.gen);
            m.pass = 1;
        }
        for (unsigned i = 0; i < p->nactive; i++) m.busy[conv_slot(&m, p->active[i]->conv, 0)] = 1;
        for (pl_entry *e = p->deferred.head; e; e = e->next) m.busy[conv_slot(&m, e->conv, 0)] = 1;
        for (pl_entry *e = p->queue.head; e; e = e->next)
            if (e->seq > 0) conv_slot(&m, e->conv, e->seq);
        pl_entry **pp = &p->queue.head, *prev = NULL;
        while (*pp) {
            pl_entry *e = *pp;
            if (e->seq > 0) {       /* bad entries are acknowledged at once */
                size_t k = conv_slot(&m, e->conv, e->seq);
                if (m.busy[k] || e->seq != m.min[k]) {
                    prev = e;
                    pp = &e->next;
                    continue;
                }
                m.busy[k] = 1;
                if (p->nactive >= ACTIVE_MAX) {
                    startable++;
                    prev = e;
                    pp = &e->next;
                    continue;
                }
            }
            *pp = e->next;          /* unlink, then start */
            if (p->queue.tail == e) p->queue.tail = prev;
            p->queue.n--;
            e->next = NULL;
            process(p, e, &batch);
        }
    }
    load_send(p, batch);
    p->pumping = 0;
    /* Read the next batch only when the slots are about to run dry: an
     * instance that hoards entries it cannot start yet starves the others. */
    if (!p->reading && now >= p->next_read && p->nactive + startable < ACTIVE_MAX &&
        p->queue.n + p->deferred.n < HELD_MAX)
        read_more(p);
}

static void tick_cb(uv_timer_t *t)
{
    cg_pipeline *p = t->data;
    uint64_t now = uv_now(p->gw->loop);
    if (p->stopping) {
        if (now >= p->stop_deadline) {
            /* grace over: leave what is in flight; Redis keeps it pending */
            p->stop_deadline = UINT64_MAX;
            p->hard = 1;            /* their replies only free them now */
        }
        maybe_finish(p);
        return;
    }
    if (cg_store_ready(p->store)) {
        if (p->epoch != cg_store_epoch(p->store) && !p->reading) {
            /* a connection came back: what this consumer holds in Redis
             * (a read's answer lost with the connection; held() skips the
             * entries held here), as at the start */
            p->epoch = cg_store_epoch(p->store);
            read_own(p);
        }
        if (now >= p->next_claim) {
            p->next_claim = now + cg_store_timings.claim_every_ms;
            claim(p);
        }
        if (now >= p->next_stats) {
            p->next_stats = now + STATS_EVERY_MS;
            cg_store_stream_gauges(p->store, CG_K_INBOX, CG_G_PIPELINE, "civicgate_inbox", 1);
        }
        if (now >= p->next_keep && !p->keeping) {
            p->next_keep = now + cg_store_timings.keep_ms;
            keep(p);
        }
    }
    pump(p);
}

void cg_pipeline_wake(cg_pipeline *p)
{
    if (!p || p->stopping) return;
    p->next_read = 0;
    if (p->reading) p->woken = 1;   /* that read may have missed the news */
    pump(p);
}

static void wake_cb(void *ud) { cg_pipeline_wake(ud); }

/* cg_store_taker: an ingest may read up to TAKE_MAX new entries for us, as
 * long as they fit beside what is held, reserved by other ingests in
 * flight, and a read of our own; and only while the slots are not full (an
 * instance that hoards entries it cannot start yet starves the others). */
#define TAKE_MAX 8
static unsigned take_reserve(void *ud)
{
    cg_pipeline *p = ud;
    if (p->stopping || !p->gw->intents) return 0;
    size_t held = p->queue.n + p->deferred.n + p->reserved + (p->reading ? READ_MAX : 0);
    if (held >= HELD_MAX || p->nactive + p->queue.n + p->reserved >= ACTIVE_MAX) return 0;
    size_t n = HELD_MAX - held;
    if (n > ACTIVE_MAX - p->nactive - p->queue.n - p->reserved) n = ACTIVE_MAX - p->nactive - p->queue.n - p->reserved;
    if (n > TAKE_MAX) n = TAKE_MAX;
    p->reserved += (unsigned)n;
    return (unsigned)n;
}

unsigned long cg_pipeline_preloaded(const cg_pipeline *p) { return p ? p->preloaded : 0; }
unsigned long cg_pipeline_direct(const cg_pipeline *p) { return p ? p->direct : 0; }
size_t cg_pipeline_analytics_pending(const cg_pipeline *p) { return p ? cg_analytics_batch_pending(p->an) : 0; }

static void take_entries(void *ud, const redisReply *streams, const redisReply *loads, unsigned reserved)
{
    cg_pipeline *p = ud;
    p->reserved = p->reserved > reserved ? p->reserved - reserved : 0;
    if (!streams || streams->type != REDIS_REPLY_ARRAY) return;
    add_streams(p, streams, loads);
    pump(p);
}

cg_pipeline *cg_pipeline_start(cg_gateway *gw)
{
    cg_pipeline *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->an = cg_analytics_batch_new(gw->loop, gw->store, gw->cfg);
    if (!p->an) {
        free(p);
        return NULL;
    }
    p->gw = gw;
    p->store = gw->store;
    strcpy(p->claim_cursor, "0-0");
    uv_timer_init(gw->loop, &p->tick);
    p->tick.data = p;
    uv_timer_start(&p->tick, tick_cb, TICK_MS, TICK_MS);
    cg_store_ensure_group(p->store, CG_K_INBOX, CG_G_PIPELINE);
    cg_store_set_wake(p->store, wake_cb, p);
    p->cache = calloc(DIRECT_SLOTS, sizeof *p->cache);   /* NULL: no direct commits */
    cg_store_taker tk = { .reserve = take_reserve, .take = take_entries, .ud = p,
                          .direct = direct_build, .direct_done = direct_done };
    cg_store_set_taker(p->store, &tk);
    /* entries this consumer name held before a restart come back first */
    p->epoch = cg_store_epoch(p->store);
    read_own(p);
    return p;
}

static void pipeline_free(cg_pipeline *p)
{
    for (size_t i = 0; p->cache && i < DIRECT_SLOTS; i++) free(p->cache[i].load);
    free(p->cache);
    cg_analytics_batch_free(p->an);
    free(p);
}

static void closed_cb(uv_handle_t *h)
{
    cg_pipeline *p = h->data;
    p->closed = 2;
    if (p->inflight == 0) pipeline_free(p);
}

static void maybe_finish(cg_pipeline *p)
{
    if (!p->stopping) return;
    if (p->closed == 2) {
        if (p->inflight == 0) pipeline_free(p);
        return;
    }
    int busy = p->nactive > 0 || p->inflight > 0;
    if (busy && p->stop_deadline != UINT64_MAX) return;
    if (!p->done_called) {
        p->done_called = 1;
        size_t n;
        const char **ids = held_ids(p, &n);
        if (ids && n && p->store)
            cg_store_release(p->store, CG_K_INBOX, CG_G_PIPELINE, p->gw->instance, ids, n);
        free(ids);
        list_clear(&p->queue);
        list_clear(&p->deferred);
        /* the counts of every commit answered so far, while the store is
         * still open (serve.c closes it after our done; it waits for this
         * reply). Past the grace (hard), commits answered later are
         * flushed one by one in commit_reply. */
        if (p->store) cg_analytics_batch_flush(p->an);
        if (p->store) {
            cg_store_set_wake(p->store, NULL, NULL);
            cg_store_set_taker(p->store, NULL);
        }
        void (*done)(void *) = p->done;
        void *ud = p->done_ud;
        p->closed = 1;
        uv_close((uv_handle_t *)&p->tick, closed_cb);
        if (done) done(ud);
    }
}

void cg_pipeline_stop(cg_pipeline *p, void (*done)(void *ud), void *ud)
{
    if (!p) {
        if (done) done(ud);
        return;
    }
    if (p->stopping) return;
    p->stopping = 1;
    p->done = done;
    p->done_ud = ud;
    int grace = p->gw->cfg && p->gw->cfg->shutdown_grace_ms > 0 ? p->gw->cfg->shutdown_grace_ms
                                                                 : 5000;
    p->stop_deadline = uv_now(p->gw->loop) + (uint64_t)grace;
    maybe_finish(p);
}

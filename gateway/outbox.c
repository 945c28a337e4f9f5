/*
 * outbox.c: cg:outbox → connector.render → libcurl → connector.classify.
 *
 * Every instance is a consumer (gw->instance) of the group "outbox" on the
 * stream cg:outbox. Delivery is in order per conversation, as the pipeline is:
 * the commit script gives each reply the conversation's next out seq
 * (cg:seq:{c:u} "out"); "sent" is the last seq finished (delivered,
 * dead-lettered or dropped because the contact is gone). Reply n is sent only
 * when sent == n-1 (the "begin" script checks; a reply whose predecessor is
 * with another consumer waits) and "finish" advances sent with a compare and
 * set, so a reply finished twice (two instances after a claim) is finished
 * once. The HTTP send itself is at-least-once: a crash between a send and
 * its finish sends it again. A reply whose predecessor has not shown up for
 * outbox_gap_ms, 10 min (lost by a Redis failover) goes anyway ("force"); the seqs
 * it skipped go into cg:ogap:{c:u}, and a skipped reply that turns up later is
 * still delivered ("late"), so order may bend in that corner but nothing is
 * lost.
 *
 * Per entry:
 *   begin  (1 round trip)  sequence check; the retry state of the head reply
 *                          (cur, try, due, part) lives in cg:seq:{c:u}, so it
 *                          survives a crash: a claimed reply does not retry
 *                          sooner than due nor resend delivered parts.
 *          (0 round trips) skipped for a reply marked head = 1 by the
 *                          pipeline's commit (sent was seq-1, checked in the
 *                          same atomic step that created it; the reply
 *                          answers a message the citizen just sent, so the
 *                          contact is not gone: pipeline.c) when it comes
 *                          from XREADGROUP ">",
 *                          i.e. no consumer has had it before: then no one
 *                          can have advanced sent past it nor written its
 *                          retry state, so begin would answer "go, try 0,
 *                          part 0". The window (below) is judged from the
 *                          entry's received_at, which that commit wrote as
 *                          last_in; a reply it would not simply send goes
 *                          through begin. Claimed and re-read entries, and a
 *                          retry of a head reply, go through begin as before.
 *   render the connector's requests (or, for webchat, the frame).
 *   send   parts [part, n) in order through libcurl multi on the uv loop
 *          (uv_poll per socket, kept with the connection while it sits in
 *          curl's cache (ob_sock); one uv_timer for curl's timeouts; easy
 *          handles are reset and reused, connections kept alive in the
 *          multi handle's cache);
 *          responses capped at RESP_MAX bytes; timeout cfg->outbox_timeout_ms.
 *          After each part but the last, "part" records progress.
 *   classify → finish (1 round trip):
 *     OK            sent = n, XACK; metrics sent + e2e latency (the OKs of
 *                   one loop iteration, or of finish_wait_ms at a moderate
 *                   rate, finish in one script call: finish_ok)
 *     RETRY         try+1, due = now + backoff (1 s · 2^(try-1), full jitter
 *                   in [½, 1], ≤ 5 min); the entry stays pending with us
 *     THROTTLED     try+1, due = now + max(retry_after, 1 s)
 *     (either, at outbox.max_attempts) → dead letter "max attempts: <reason>"
 *     CONTACT_GONE  session blocked = 1, sent = n, XACK
 *     BAD_CONFIG / FAILED / no connector / render error
 *                   XADD cg:deadletter (the reply, the reason), sent = n, XACK;
 *                   dead letters older than retention.sessions_s are trimmed
 *                   (XTRIM MINID) by the same script
 *   webchat: no HTTP: PUBLISH cg:webchat {"user","frame"} and finish OK in
 *   the same script.
 * Windows (gateway/window.c): before sending a WhatsApp or Messenger reply,
 * the begin script's session times (last_in, reengaged_at; for a head reply
 * sent without begin, its received_at, see above) decide: send;
 * Messenger's HUMAN_AGENT tag (reply.window_closed); WhatsApp's re-engagement
 * template, sent in place of the reply, then "hold"; hold without a template
 * (one already went out, or none is configured); or refuse (dead letter).
 * "hold" (finish script) appends the reply to cg:held:{c:u} (at most
 * CG_WINDOW_HELD_MAX, the oldest beyond that dead-lettered), or, if the
 * citizen wrote since begin, queues it again at once; the pipeline releases
 * held replies when the citizen writes. A send answered CG_SEND_WINDOW_CLOSED
 * (WhatsApp 131047: the platform's clock disagrees) takes the template path
 * the same way.
 * After each accepted request: its platform id goes to the delivery state
 * (gateway/delivery.c) and the channel is healthy again (gateway/health.c);
 * CG_SEND_BAD_CONFIG marks the channel unhealthy (/readyz), logs an error and
 * counts civicgate_channel_auth_failures_total; CG_SEND_FAILED logs the
 * request's shape (keys and string lengths: no text, id or token). A 429's
 * Retry-After header is honoured when the connector found no retry_after.
 * Read receipts: entries with kind "read" (queued by the pipeline, no seq)
 * are sent as soon as they are read, outside the per-conversation order and
 * the rate buckets, tried at most READ_MAX_ATTEMPTS times in process, then
 * acknowledged whatever happened (a failure is logged and counted).
 * Rate limits (in process): a token bucket per channel and per chat (burst
 * 3), from channels.<name>.max_per_second and max_per_chat_per_second
 * (defaults: the platforms' documented limits, Telegram 30/s and 1/s). With several instances each has its own buckets;
 * docs/redis.md says what that means.
 * A crashed consumer's entries are claimed with XAUTOCLAIM after
 * claim_idle_ms (30 s); held entries are re-touched every keep_ms (5 s).
 *
 * Besides its own reads, the outbox takes what the pipeline read for it
 * right behind each commit (cg_outbox_reserve / cg_outbox_take, the read
 * on the commit's connection: cg_store_outbox_read): the reply just queued
 * reaches curl one Redis round trip sooner.
 *
 * API: cg_outbox_start → (cg_outbox_wake, cg_outbox_reserve/take) →
 * cg_outbox_stop.
 * Extending: a new channel needs its connector (connectors/registry.c), its
 * name in rate_channels[] and nothing else here.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "store.h"
#include "delivery.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "window.h"
#include "civicgate/webchat.h"

#define ACTIVE_MAX      64         /* replies in begin/send/finish at once */
#define HELD_MAX        512        /* replies held in memory */
#define POLL_IDLE_MS    50
#define TICK_MS         10
#define FIN_BATCH       8          /* finishes that go at once; fewer wait (fin_timer) */
#define WAIT_MIN_MS     50         /* predecessor with another consumer */
#define WAIT_MAX_MS     1000
#define STATS_EVERY_MS  5000
#define RESP_MAX        (64 * 1024)
#define BACKOFF_BASE_MS 1000
#define BACKOFF_MAX_MS  300000
#define CHAT_SLOTS      1024
#define READ_MAX_ATTEMPTS 3        /* read receipts: tries in process, then given up */
#define SHAPE_MAX       600        /* bytes of a logged request shape */

typedef enum { OB_QUEUED = 0, OB_BEGIN, OB_SENDING, OB_FINISH } ob_state;

typedef struct ob_entry {
    struct ob_entry *next;
    struct cg_outbox *o;
    char id[48];
    long long seq;
    uint64_t conv;             /* fnv(channel, user) */
    char channel[CG_CHANNEL_MAX];
    char user[CG_USER_MAX];
    char lang[CG_LANG_MAX];
    char *text, *buttons, *callback_id;
    int from_agent;
    int64_t created_at, received_at;
    int is_read;               /* a read receipt (kind "read", no seq) */
    char msg_id[CG_MSGID_MAX]; /* read receipt: the citizen's message */
    int64_t last_in, reengaged_at;  /* session times from begin (ms, 0 = none) */
    int window_closed;         /* Messenger HUMAN_AGENT tag */
    int reengage;              /* WhatsApp: sending the template; the reply is then held */
    long code;                 /* the platform's error code of the last attempt, 0 = none */
    ob_state state;
    uint64_t not_before;       /* uv_now */
    uint64_t waiting_since;
    unsigned waits;
    int force;
    int fresh;                 /* begun by the commit (field head): skip begin once */
    int attempt, part;
    /* sending */
    cg_http_out reqs[CG_MAX_OUT_REQUESTS];
    size_t nreq;
    const cg_connector *conn;
    CURL *easy;
    struct curl_slist *hdrs;
    char *resp;
    size_t resp_len, resp_cap;
    int dead;                  /* dropped (lost to another consumer / stopped) */
} ob_entry;

typedef struct bucket { double tokens; uint64_t last; uint64_t key; } bucket;

typedef struct rate { double per_s, burst, chat_per_s, chat_burst; } rate;

/* Channels with a bucket each, in this order (webchat has no platform limit). */
static const char *const rate_channels[] = { "telegram", "whatsapp", "messenger", NULL };
#define RATE_CHANNELS 3

struct cg_outbox {
    cg_gateway *gw;
    cg_store *store;
    CURLM *multi;
    uv_timer_t tick, curl_timer;
    ob_entry *head, *tail;     /* stream order */
    size_t n, active;
    int reading;
    int read_first;            /* the read in flight is XREADGROUP ">" */
    int woken;                 /* a wake came while a read was in flight */
    unsigned reserved;         /* entries commits in flight may bring (cg_outbox_reserve) */
    uint64_t next_read, next_claim, next_stats, next_keep;
    char claim_cursor[48];
    unsigned epoch;            /* cg_store_epoch when we last read our own pending */
    int keeping;
    unsigned inflight;         /* Redis commands referencing us */
    int handles;               /* open uv handles (timers + sockets) */
    struct ob_sock *socks;     /* connection sockets (ob_sock, kept) */
    struct btn_slot *btns;     /* parsed buttons by their JSON (btn_lookup), made on first use */
    CURL *spare[ACTIVE_MAX];   /* finished easy handles, reset, for reuse */
    size_t nspare;
    /* delivered replies whose finish waits for the end of the loop
     * iteration or for fin_timer (finish_ok, fin_flush): one script call
     * for all of them */
    uv_check_t fin_check;
    uv_timer_t fin_timer;
    ob_entry *fin[ACTIVE_MAX];
    size_t nfin;
    int fin_now;               /* a web-chat reply is in the batch: no waiting */
    cg_args fin_args;
    bucket chan[RATE_CHANNELS];
    bucket chat[CHAT_SLOTS];
    int stopping, done_called, closed;
    uint64_t stop_deadline;
    void (*done)(void *ud);
    void *done_ud;
};

/* A socket libcurl asked us to watch. events: what the poll watches now
 * (uv_poll_start stops and restarts the watch, two epoll_ctl calls: skipped
 * when curl asks for the same again).
 *
 * Connection sockets (kept = 1) live as long as the socket: made when curl
 * opens it (open_sock_cb), closed when curl closes it (close_sock_cb), so
 * that a descriptor number the kernel hands out again is never watched by a
 * stale handle. curl says CURL_POLL_REMOVE when a transfer ends and the
 * connection goes back to its cache, and asks for the socket again with the
 * next transfer on it: closing and making the poll for each was an ioctl and
 * five or six epoll_ctl per request (libuv takes the descriptor out of epoll
 * and puts it back on every start), about one request in two at 1,000-2,000
 * messages/s (the others end inside curl's first call). So a kept socket
 * outlives REMOVE: idle, it goes on watching for reading; a readable idle
 * connection was closed by the server (or sent junk): its watch stops
 * there, and curl finds it dead when it next checks the connection. Other
 * sockets curl may watch (its resolver's) are closed at REMOVE as before. */
typedef struct ob_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    cg_outbox *o;
    int events;
    int kept, idle;
    struct ob_sock *next;        /* o->socks: the kept ones */
} ob_sock;

typedef struct btn_slot btn_slot;
static void settle(cg_outbox *o);
static void pump(cg_outbox *o);
static uint64_t fnv(const char *a, const char *b);
static void send_part(ob_entry *e);

/* ---- entries ----------------------------------------------------------- */

static void entry_clear_reqs(ob_entry *e)
{
    for (size_t i = 0; i < e->nreq; i++) cg_http_out_free(&e->reqs[i]);
    e->nreq = 0;
}

static void entry_free(ob_entry *e)
{
    if (!e) return;
    entry_clear_reqs(e);
    free(e->text);
    free(e->buttons);
    free(e->callback_id);
    free(e->resp);
    free(e);
}

static void unlink_entry(cg_outbox *o, ob_entry *e)
{
    ob_entry **pp = &o->head, *prev = NULL;
    while (*pp && *pp != e) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp) return;
    *pp = e->next;
    if (o->tail == e) o->tail = prev;
    o->n--;
    e->next = NULL;
}

static ob_entry *find(cg_outbox *o, const char *id)
{
    for (ob_entry *e = o->head; e; e = e->next)
        if (strcmp(e->id, id) == 0) return e;
    return NULL;
}

static void drop(cg_outbox *o, ob_entry *e)
{
    if (e->state != OB_QUEUED && o->active) o->active--;
    unlink_entry(o, e);
    entry_free(e);
}

static ob_entry *entry_parse(cg_outbox *o, const redisReply *x)
{
    if (x->type != REDIS_REPLY_ARRAY || x->elements != 2 ||
        x->element[0]->type != REDIS_REPLY_STRING || x->element[0]->len >= 48)
        return NULL;
    const redisReply *f = x->element[1];
    ob_entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->o = o;
    memcpy(e->id, x->element[0]->str, x->element[0]->len + 1);
    if (f->type != REDIS_REPLY_ARRAY) {
        e->seq = -1;
        return e;
    }
    char b[16];
    e->seq = cg_store_field_i64(f, "seq");
    cg_store_field_str(f, "channel", e->channel, sizeof e->channel);
    cg_store_field_str(f, "user", e->user, sizeof e->user);
    cg_store_field_str(f, "lang", e->lang, sizeof e->lang);
    e->text = cg_store_field_dup(f, "text");
    e->buttons = cg_store_field_dup(f, "buttons");
    e->callback_id = cg_store_field_dup(f, "callback_id");
    e->from_agent = strcmp(cg_store_field_str(f, "from_agent", b, sizeof b), "1") == 0;
    e->created_at = cg_store_field_i64(f, "created_at");
    e->received_at = cg_store_field_i64(f, "received_at");
    e->conv = fnv(e->channel, e->user);
    e->fresh = strcmp(cg_store_field_str(f, "head", b, sizeof b), "1") == 0;
    e->is_read = strcmp(cg_store_field_str(f, "kind", b, sizeof b), "read") == 0;
    cg_store_field_str(f, "msg_id", e->msg_id, sizeof e->msg_id);
    return e;
}

/* ---- parsed buttons ------------------------------------------------------ */

/* An entry's buttons are JSON ([{"title","payload"}|{"title","url"}], as the
 * commit wrote them), and the replies of one intent carry the same ones. So
 * they are parsed once and kept by their JSON. cJSON_Parse and cJSON_Delete
 * for every send were ~12k of the gateway's ~310k instructions a message.
 * Direct-mapped on the JSON's hash, BTN_SLOTS slots of at most BTN_JSON_MAX
 * bytes of key each (a longer one, an agent's, is parsed for its send
 * alone). The slots own their strings; a reply gets copies. */
#define BTN_SLOTS 64
#define BTN_JSON_MAX 2048

struct btn_slot {
    char *json;                                 /* the key; NULL: empty */
    size_t n;
    cg_reply_btn b[CG_REPLY_MAX_BUTTONS];
};

static void btn_slot_clear(btn_slot *sl)
{
    free(sl->json);
    for (size_t i = 0; i < sl->n; i++) {
        free(sl->b[i].title);
        free(sl->b[i].payload);
        free(sl->b[i].url);
    }
    memset(sl, 0, sizeof *sl);
}

/* sl (empty) from the JSON: the elements with a string title, at most
 * CG_REPLY_MAX_BUTTONS; none when it is not an array. 0, or -1 (allocation). */
static int btn_parse(const char *json, btn_slot *sl)
{
    cJSON *arr = cJSON_Parse(json);
    const cJSON *b;
    int rc = 0;
    cJSON_ArrayForEach(b, arr) {
        if (sl->n >= CG_REPLY_MAX_BUTTONS) break;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "title");
        const cJSON *pl = cJSON_GetObjectItemCaseSensitive(b, "payload");
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(b, "url");
        if (!cJSON_IsString(t)) continue;
        cg_reply_btn *rb = &sl->b[sl->n++];
        rb->title = strdup(t->valuestring);
        rb->payload = cJSON_IsString(pl) ? strdup(pl->valuestring) : NULL;
        rb->url = cJSON_IsString(u) ? strdup(u->valuestring) : NULL;
        if (!rb->title || (cJSON_IsString(pl) && !rb->payload) || (cJSON_IsString(u) && !rb->url)) rc = -1;
    }
    cJSON_Delete(arr);
    return rc;
}

/* The parsed buttons of json: a slot of o's cache, or tmp (which the caller
 * clears) when the JSON is too long to keep or the cache cannot be made.
 * NULL on an allocation failure. */
static const btn_slot *btn_lookup(cg_outbox *o, const char *json, btn_slot *tmp)
{
    size_t len = strlen(json);
    if (len <= BTN_JSON_MAX && !o->btns) o->btns = calloc(BTN_SLOTS, sizeof *o->btns);
    if (len > BTN_JSON_MAX || !o->btns) return btn_parse(json, tmp) == 0 ? tmp : NULL;
    btn_slot *sl = &o->btns[(fnv(json, "") >> 1) % BTN_SLOTS];   /* fnv() sets the low bit */
    if (sl->json && strcmp(sl->json, json) == 0) return sl;
    btn_slot_clear(sl);
    if (btn_parse(json, sl) != 0 || !(sl->json = strdup(json))) {
        btn_slot_clear(sl);
        return NULL;
    }
    return sl;
}

static void btn_cache_free(cg_outbox *o)
{
    for (size_t i = 0; o->btns && i < BTN_SLOTS; i++) btn_slot_clear(&o->btns[i]);
    free(o->btns);
    o->btns = NULL;
}

/* cg_reply from the entry; 0 or -1 (allocation). The caller frees it. */
static int entry_reply(const ob_entry *e, cg_reply *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->channel, sizeof r->channel, "%s", e->channel);
    snprintf(r->user, sizeof r->user, "%s", e->user);
    r->text = strdup(e->text ? e->text : "");
    r->callback_id = e->callback_id ? strdup(e->callback_id) : NULL;
    r->from_agent = e->from_agent;
    r->window_closed = e->window_closed || e->reengage;
    if (!r->text || (e->callback_id && !r->callback_id)) return -1;
    if (!e->buttons) return 0;
    btn_slot tmp = { 0 };
    const btn_slot *sl = btn_lookup(e->o, e->buttons, &tmp);
    int rc = sl ? 0 : -1;
    for (size_t i = 0; sl && i < sl->n; i++) {
        const cg_reply_btn *b = &sl->b[i];
        cg_reply_btn *rb = &r->buttons[r->nbuttons++];
        rb->title = strdup(b->title);
        rb->payload = b->payload ? strdup(b->payload) : NULL;
        rb->url = b->url ? strdup(b->url) : NULL;
        if (!rb->title || (b->payload && !rb->payload) || (b->url && !rb->url)) rc = -1;
    }
    btn_slot_clear(&tmp);
    return rc;
}

/* ---- rate limits ------------------------------------------------------- */

/* The channel's limits from the configuration (channels.<name>.max_per_second
 * and max_per_chat_per_second; 0 = no limit). 0 when not limited at all. */
static int rate_for(const cg_outbox *o, const char *channel, size_t *idx, rate *r)
{
    for (size_t i = 0; rate_channels[i]; i++) {
        if (strcmp(rate_channels[i], channel) != 0) continue;
        const cg_channel_cfg *cc = cg_config_channel(o->gw->cfg, channel);
        if (!cc || (cc->max_per_second <= 0 && cc->max_per_chat_per_second <= 0)) return 0;
        *idx = i;
        r->per_s = cc->max_per_second;
        r->burst = cc->max_per_second;
        r->chat_per_s = cc->max_per_chat_per_second;
        r->chat_burst = 3.0 * cc->max_per_chat_per_second;
        return 1;
    }
    return 0;
}

static void refill(bucket *b, double per_s, double burst, uint64_t now)
{
    if (!b->last) {
        b->tokens = burst;
    } else if (now > b->last) {
        b->tokens += (double)(now - b->last) * per_s / 1000.0;
        if (b->tokens > burst) b->tokens = burst;
    }
    b->last = now;
}

static uint64_t fnv(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = a; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ ':') * 1099511628211ULL;
    for (const char *p = b; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h | 1;
}

/* 0 when a token of the channel and of the chat was taken, else ms to wait. */
static uint64_t rate_take(cg_outbox *o, const ob_entry *e, uint64_t now)
{
    size_t ci;
    rate rr;
    const rate *r = &rr;
    if (!rate_for(o, e->channel, &ci, &rr)) return 0;
    bucket *cb = &o->chan[ci];
    uint64_t key = e->conv;
    bucket *ub = &o->chat[key % CHAT_SLOTS];
    if (ub->key != key) {          /* a slot shared by two chats starts full */
        memset(ub, 0, sizeof *ub);
        ub->key = key;
    }
    /* An unlimited side (rate 0) always has a token. */
    if (r->per_s > 0) refill(cb, r->per_s, r->burst, now); else cb->tokens = 1;
    if (r->chat_per_s > 0) refill(ub, r->chat_per_s, r->chat_burst, now); else ub->tokens = 1;
    if (cb->tokens >= 1 && ub->tokens >= 1) {
        if (r->per_s > 0) cb->tokens -= 1;
        if (r->chat_per_s > 0) ub->tokens -= 1;
        return 0;
    }
    double w1 = cb->tokens >= 1 ? 0 : (1 - cb->tokens) * 1000.0 / r->per_s;
    double w2 = ub->tokens >= 1 ? 0 : (1 - ub->tokens) * 1000.0 / r->chat_per_s;
    double w = w1 > w2 ? w1 : w2;
    return (uint64_t)w + 1;
}

/* ---- finish ------------------------------------------------------------ */

/*
 * KEYS: 1 cg:seq:{c:u}  2 cg:sess:{c:u}  3 cg:outbox  4 cg:deadletter
 *       5 cg:ogap:{c:u}  6 cg:held:{c:u}
 * ARGV: 1 group  2 entry id  3 seq  4 outcome  5 session TTL, then
 *   retry: 6 try  7 due (ms)  8 part        part: 6 part
 *   ok:    6 pub channel or ""  7 message   gone: -
 *   dead:  6.. dead-letter fields
 *   hold:  6 last_in seen by begin  7 max held  8 "1" when a template went
 *          out  9 now (ms)  10 the reply's outbox fields as a JSON array
 * Returns "ok" or "dup" (finished before: acknowledged).
 */
/* The two finish scripts' shared steps (finish_script: one reply, any
 * outcome; finish_ok_script: the delivered replies of a loop iteration):
 *   fin_check(cg:seq, cg:ogap, seq) → st ({sent, cur, out}), sent, late (a
 *     seq a forced send skipped), dup (finished before)
 *   fin_advance(cg:seq, cg:ogap, seq, st, sent, late, TTL): sent = seq (the
 *     seqs jumped over into cg:ogap), retry state cleared; a late one only
 *     leaves cg:ogap. No "out" in cg:seq (every writer of a reply counts it
 *     there, with a TTL on the key): the conversation was erased, and cg:seq
 *     is not written again (an HSET would remake the key, the citizen's id
 *     in its name, without a TTL). */
#define FIN_LUA \
    "local function fin_check(kseq, kgap, sq)\n" \
    "  local st = redis.call('HMGET', kseq, 'sent', 'cur', 'out')\n" \
    "  local sent = tonumber(st[1] or '0')\n" \
    "  if tonumber(sq) > sent then return st, sent, false, false end\n" \
    "  if redis.call('SISMEMBER', kgap, sq) == 1 then return st, sent, true, false end\n" \
    "  return st, sent, false, true\n" \
    "end\n" \
    "local function fin_advance(kseq, kgap, sq, st, sent, late, ttl)\n" \
    "  local seq = tonumber(sq)\n" \
    "  if late then redis.call('SREM', kgap, sq); return end\n" \
    "  if not st[3] then return end\n" \
    "  if seq > sent + 1 then\n" \
    "    for g = sent + 1, math.min(seq - 1, sent + 1000) do redis.call('SADD', kgap, g) end\n" \
    "    redis.call('EXPIRE', kgap, ttl)\n" \
    "  end\n" \
    "  redis.call('HSET', kseq, 'sent', sq)\n" \
    /* retry state is written with "cur" (retry, part): none, nothing to clear */ \
    "  if st[2] then redis.call('HDEL', kseq, 'cur', 'try', 'due', 'part') end\n" \
    "end\n"

static cg_store_script finish_script = {
    .name = "outbox_finish",
    .src =
        FIN_LUA
        "local st, sent, late, dup = fin_check(KEYS[1], KEYS[5], ARGV[3])\n"
        "if dup then redis.call('XACK', KEYS[3], ARGV[1], ARGV[2]); return 'dup' end\n"
        "local oc, live = ARGV[4], st[3] and true or false\n"
        "if oc == 'retry' then\n"
        "  if not late and live then\n"
        "    redis.call('HSET', KEYS[1], 'cur', ARGV[3], 'try', ARGV[6], 'due', ARGV[7], 'part', ARGV[8])\n"
        "  end\n"
        "  return 'ok'\n"
        "end\n"
        "if oc == 'part' then\n"
        "  if not late and live then redis.call('HSET', KEYS[1], 'cur', ARGV[3], 'part', ARGV[6]) end\n"
        "  return 'ok'\n"
        "end\n"
        "if oc == 'dead' then\n"
        "  redis.call('XADD', KEYS[4], '*', unpack(ARGV, 6, #ARGV))\n"
        /* retention: dead letters hold replies' text; kept as long as sessions */
        "  local t = redis.call('TIME')\n"
        "  redis.call('XTRIM', KEYS[4], 'MINID', (tonumber(t[1]) - tonumber(ARGV[5])) * 1000)\n"
        "elseif oc == 'hold' then\n"
        "  local li = tonumber(redis.call('HGET', KEYS[2], 'last_in') or '0')\n"
        "  if li > tonumber(ARGV[6]) then\n"
        "    local o = redis.call('HINCRBY', KEYS[1], 'out', 1)\n"
        "    local f = cjson.decode(ARGV[10])\n"
        "    f[#f + 1] = 'seq'; f[#f + 1] = tostring(o)\n"
        "    redis.call('XADD', KEYS[3], '*', unpack(f))\n"
        "  else\n"
        "    redis.call('RPUSH', KEYS[6], ARGV[10]); redis.call('EXPIRE', KEYS[6], ARGV[5])\n"
        "    while redis.call('LLEN', KEYS[6]) > tonumber(ARGV[7]) do\n"
        "      local f = cjson.decode(redis.call('LPOP', KEYS[6]))\n"
        "      f[#f + 1] = 'kind'; f[#f + 1] = 'failed'; f[#f + 1] = 'failed_at'; f[#f + 1] = ARGV[9]\n"
        "      f[#f + 1] = 'reason'; f[#f + 1] = 'held replies over ' .. ARGV[7] .. ': the oldest is dropped'\n"
        "      redis.call('XADD', KEYS[4], '*', unpack(f))\n"
        "    end\n"
        "    if ARGV[8] == '1' then\n"
        "      redis.call('HSET', KEYS[2], 'reengaged_at', ARGV[9]); redis.call('EXPIRE', KEYS[2], ARGV[5])\n"
        "    end\n"
        "  end\n"
        "elseif oc == 'gone' then\n"
        "  redis.call('HSET', KEYS[2], 'blocked', '1'); redis.call('EXPIRE', KEYS[2], ARGV[5])\n"
        "elseif oc == 'ok' and ARGV[6] ~= '' then\n"
        "  redis.call('PUBLISH', ARGV[6], ARGV[7])\n"
        "end\n"
        "fin_advance(KEYS[1], KEYS[5], ARGV[3], st, sent, late, ARGV[5])\n"
        "redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])\n"
        "return 'ok'\n",
};

typedef struct fin_req {
    ob_entry *e;
    int terminal;     /* ok / dead / gone: the entry is done after this */
    uint64_t delay;   /* retry: ms until the next attempt */
} fin_req;

static void finish_reply(cg_store *s, redisReply *r, void *ud)
{
    fin_req *f = ud;
    ob_entry *e = f->e;
    cg_outbox *o = e->o;
    (void)s;
    o->inflight--;
    int ok = r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
    if (e->dead) {
        drop(o, e);
    } else if (f->terminal) {
        /* on a Redis error the entry stays pending in Redis: claimed again
         * later (and sent again: at-least-once) */
        drop(o, e);
    } else {
        /* retry (when !ok the state was not written: this process still
         * waits the delay; a claimer would retry at once) */
        (void)ok;
        e->state = OB_QUEUED;
        o->active--;
        e->not_before = uv_now(o->gw->loop) + f->delay;
        entry_clear_reqs(e);
    }
    free(f);
    settle(o);
}

/* Sends the finish script; extra holds outcome-specific arguments. */
static void finish(ob_entry *e, const char *outcome, const char *const *extra, size_t nextra,
                   int terminal, uint64_t delay)
{
    cg_outbox *o = e->o;
    const cg_config *cfg = o->gw->cfg;
    char k1[CG_KEY_MAX], k2[CG_KEY_MAX], k5[CG_KEY_MAX], k6[CG_KEY_MAX], seq[24], ttl[24];
    const char *av[48];
    size_t n = 0;
    fin_req *f = calloc(1, sizeof *f);
    if (!f) goto fail;
    f->e = e;
    f->terminal = terminal;
    f->delay = delay;
    if (cg_store_key(k1, sizeof k1, "seq", e->channel, e->user) ||
        cg_store_key(k2, sizeof k2, "sess", e->channel, e->user) ||
        cg_store_key(k5, sizeof k5, "ogap", e->channel, e->user) ||
        cg_store_key(k6, sizeof k6, "held", e->channel, e->user))
        goto fail;
    cg_store_fmt_ll(seq, e->seq);
    cg_store_fmt_ll(ttl, cfg->session_ttl_s > 0 ? cfg->session_ttl_s : 2592000);
    av[n++] = k1; av[n++] = k2; av[n++] = CG_K_OUTBOX; av[n++] = CG_K_DEADLETTER; av[n++] = k5; av[n++] = k6;
    av[n++] = CG_G_OUTBOX; av[n++] = e->id; av[n++] = seq; av[n++] = outcome; av[n++] = ttl;
    for (size_t i = 0; i < nextra && n < sizeof av / sizeof *av; i++) av[n++] = extra[i];
    e->state = OB_FINISH;
    if (cg_store_eval(o->store, &finish_script, 6, (int)n, av, NULL, finish_reply, f) != 0)
        goto fail;
    o->inflight++;
    return;
fail:
    free(f);
    /* Redis unreachable: leave it pending; retry from here after a pause */
    e->state = OB_QUEUED;
    o->active--;
    e->not_before = uv_now(o->gw->loop) + 1000;
    entry_clear_reqs(e);
}

static void finish_dead(ob_entry *e, const char *kind, const char *reason)
{
    char seq[24], created[24], received[24], failed[24], att[16], code[24];
    snprintf(seq, sizeof seq, "%lld", e->seq);
    snprintf(created, sizeof created, "%lld", (long long)e->created_at);
    snprintf(received, sizeof received, "%lld", (long long)e->received_at);
    snprintf(failed, sizeof failed, "%lld", (long long)cg_store_now_ms());
    snprintf(att, sizeof att, "%d", e->attempt);
    snprintf(code, sizeof code, "%ld", e->code);
    const char *x[] = {
        "channel", e->channel, "user", e->user, "text", e->text ? e->text : "",
        "buttons", e->buttons ? e->buttons : "[]", "callback_id", e->callback_id ? e->callback_id : "",
        "lang", e->lang, "created_at", created, "received_at", received, "seq", seq,
        "entry", e->id, "kind", kind, "reason", reason, "attempts", att, "failed_at", failed,
        "code", code,
    };
    cg_metrics_inc(CG_M_FAILED, e->channel);
    cg_metrics_deadletter(e->channel, kind);
    cg_log(CG_LOG_WARN, "outbox_dead_letter", "channel", e->channel, "user", cg_log_user(e->user),
           "kind", kind, "reason", reason, NULL);
    finish(e, "dead", x, sizeof x / sizeof *x, 1, 0);
}

/*
 * Delivered replies finish in batches: each is added to o->fin_args and
 * o->fin, and one script call finishes all of them, its XACK one command.
 * The batch goes at the end of a loop iteration (a uv_check: it runs right
 * after the poll phase, so every transfer completed in this iteration is
 * in) when it holds FIN_BATCH replies, when the outbox is half full
 * (ACTIVE_MAX) or when one of them is a web-chat reply (the script's
 * PUBLISH delivers it); else it waits for more, at most finish_wait_ms
 * (10 ms, cg_store_timings) after its first reply (fin_timer), so at a
 * moderate rate (one reply a millisecond or so) the finishes of up to
 * FIN_BATCH deliveries share a call. One call a reply woke Redis, and then
 * the gateway, once more for every message, and on a VM waking a sleeping
 * process is much of a message's CPU time at that rate (at 1,000/s: Redis
 * −17%, the gateway −10% a message; docs/benchmarks.md, ninth round).
 * What the wait costs: a delivered reply is acknowledged up to
 * finish_wait_ms later, so a crash in that window sends it again (the send
 * was at-least-once already), and a citizen's next reply within it is not
 * "head" (its commit saw sent one short) and goes through begin, one round
 * trip. Per reply that is the "ok" branch
 * of finish_script (the same compare-and-set of sent, the same late/gap
 * handling) with six arguments instead of thirteen and no EVALSHA of its
 * own. An entry waiting in the batch is OB_FINISH and counted in inflight,
 * as one whose finish is in flight; if the call cannot be sent it goes back
 * to the queue as finish()'s failure path does (sent again: at-least-once).
 *
 * KEYS: 1 cg:outbox  ARGV: 1 group  2 session TTL, then per reply:
 *   cg:seq:{c:u}  cg:ogap:{c:u}  entry id  seq  publish channel or ""  message
 * Returns one "ok" or "dup" per reply.
 */
static cg_store_script finish_ok_script = {
    .name = "outbox_finish_ok",
    .src =
        FIN_LUA
        "local out, ids = {}, {}\n"
        "for i = 3, #ARGV, 6 do\n"
        "  local st, sent, late, dup = fin_check(ARGV[i], ARGV[i + 1], ARGV[i + 3])\n"
        "  if not dup then\n"
        "    if ARGV[i + 4] ~= '' then redis.call('PUBLISH', ARGV[i + 4], ARGV[i + 5]) end\n"
        "    fin_advance(ARGV[i], ARGV[i + 1], ARGV[i + 3], st, sent, late, ARGV[2])\n"
        "  end\n"
        "  ids[#ids + 1] = ARGV[i + 2]\n"
        "  out[#out + 1] = dup and 'dup' or 'ok'\n"
        "end\n"
        "if #ids > 0 then redis.call('XACK', KEYS[1], ARGV[1], unpack(ids)) end\n"
        "return out\n",
};

typedef struct fin_batch {
    cg_outbox *o;
    size_t n;
    ob_entry *e[];
} fin_batch;

static void fin_batch_reply(cg_store *s, redisReply *r, void *ud)
{
    fin_batch *b = ud;
    cg_outbox *o = b->o;
    (void)s;
    (void)r;    /* terminal either way: on a Redis error the entries stay pending
                 * in Redis, claimed and sent again later (as finish_reply) */
    for (size_t i = 0; i < b->n; i++) {
        o->inflight--;
        drop(o, b->e[i]);
    }
    free(b);
    settle(o);
}

static void fin_flush(cg_outbox *o)
{
    if (!o->nfin) return;
    uv_check_stop(&o->fin_check);
    uv_timer_stop(&o->fin_timer);
    size_t n = o->nfin;
    o->nfin = 0;
    o->fin_now = 0;
    fin_batch *b = malloc(sizeof *b + n * sizeof *b->e);
    if (b) {
        b->o = o;
        b->n = n;
        memcpy(b->e, o->fin, n * sizeof *b->e);
    }
    int rc = -1;
    if (b && !o->fin_args.oom) {
        rc = cg_store_eval(o->store, &finish_ok_script, 1, o->fin_args.n, cg_args_argv(&o->fin_args),
                           o->fin_args.len, fin_batch_reply, b);
    }
    cg_args_free(&o->fin_args);
    if (rc == 0) return;
    /* not sent (Redis unreachable): as finish()'s failure path */
    for (size_t i = 0; i < n; i++) {
        ob_entry *e = o->fin[i];
        o->inflight--;
        if (e->dead) {
            drop(o, e);
            continue;
        }
        e->state = OB_QUEUED;
        o->active--;
        e->not_before = uv_now(o->gw->loop) + 1000;
        entry_clear_reqs(e);
    }
    free(b);            /* (no settle here: finish_stop calls this; the tick pumps) */
}

static void fin_check_cb(uv_check_t *h)
{
    cg_outbox *o = h->data;
    if (o->fin_now || o->nfin >= FIN_BATCH || o->active >= ACTIVE_MAX / 2 ||
        !cg_store_timings.finish_wait_ms)
        fin_flush(o);
}

static void fin_timer_cb(uv_timer_t *t) { fin_flush(t->data); }

static void finish_ok(ob_entry *e, const char *pub_channel, const char *pub_msg)
{
    cg_outbox *o = e->o;
    cg_metrics_inc(CG_M_SENT, e->channel);
    if (e->received_at > 0) {
        int64_t d = cg_store_now_ms() - e->received_at;
        cg_metrics_observe(CG_H_E2E, e->channel, d > 0 ? (double)d / 1000.0 : 0.0);
    }
    char k1[CG_KEY_MAX], k5[CG_KEY_MAX];
    if (o->closed || cg_store_key(k1, sizeof k1, "seq", e->channel, e->user) ||
        cg_store_key(k5, sizeof k5, "ogap", e->channel, e->user)) {
        const char *x[] = { pub_channel ? pub_channel : "", pub_msg ? pub_msg : "" };
        finish(e, "ok", x, 2, 1, 0);
        return;
    }
    if (o->nfin == sizeof o->fin / sizeof *o->fin) fin_flush(o);
    cg_args *a = &o->fin_args;
    if (o->nfin == 0) {
        const cg_config *cfg = o->gw->cfg;
        cg_args_add(a, CG_K_OUTBOX);
        cg_args_add(a, CG_G_OUTBOX);
        cg_args_addi(a, cfg->session_ttl_s > 0 ? cfg->session_ttl_s : 2592000);
        uv_check_start(&o->fin_check, fin_check_cb);
        uv_timer_start(&o->fin_timer, fin_timer_cb, cg_store_timings.finish_wait_ms, 0);
    }
    if (pub_channel) o->fin_now = 1;
    cg_args_add(a, k1);
    cg_args_add(a, k5);
    cg_args_add(a, e->id);
    cg_args_addi(a, e->seq);
    cg_args_add(a, pub_channel ? pub_channel : "");
    cg_args_add(a, pub_msg ? pub_msg : "");
    e->state = OB_FINISH;
    o->fin[o->nfin++] = e;
    o->inflight++;
}

static void finish_gone(ob_entry *e)
{
    cg_log(CG_LOG_INFO, "outbox_contact_gone", "channel", e->channel, "user",
           cg_log_user(e->user), NULL);
    finish(e, "gone", NULL, 0, 1, 0);
}

/* The reply waits in cg:held:{c:u} until the citizen writes (window
 * closed); tpl: a re-engagement template was just sent for it. */
static void finish_hold(ob_entry *e, int tpl, const char *why)
{
    char li[24], max[16], now[24], created[24];
    snprintf(li, sizeof li, "%lld", (long long)e->last_in);
    snprintf(max, sizeof max, "%d", CG_WINDOW_HELD_MAX);
    snprintf(now, sizeof now, "%lld", (long long)cg_store_now_ms());
    snprintf(created, sizeof created, "%lld", (long long)e->created_at);
    /* received_at 0: a released reply does not count in the latency histogram */
    const char *f[] = { "channel", e->channel, "user", e->user, "text", e->text ? e->text : "",
                        "buttons", e->buttons ? e->buttons : "[]", "lang", e->lang,
                        "from_agent", e->from_agent ? "1" : "0", "created_at", created,
                        "received_at", "0", "held_at", now,
                        e->callback_id ? "callback_id" : NULL, e->callback_id };
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < sizeof f / sizeof *f && f[i]; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(f[i]));
    char *json = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    if (!json) {
        finish_dead(e, "failed", "out of memory holding the reply");
        return;
    }
    cg_metrics_inc(CG_M_HELD, e->channel);
    cg_log(CG_LOG_INFO, "outbox_reply_held", "channel", e->channel, "user", cg_log_user(e->user), "reason", why,
           "template", tpl ? "sent" : "no", NULL);
    const char *x[] = { li, max, tpl ? "1" : "0", now, json };
    finish(e, "hold", x, 5, 1, 0);
    free(json);
}

static void finish_retry(ob_entry *e, const cg_send_result *res)
{
    cg_outbox *o = e->o;
    const cg_config *cfg = o->gw->cfg;
    int max = cfg->outbox_max_attempts > 0 ? cfg->outbox_max_attempts : 8;
    e->attempt++;
    if (e->attempt >= max) {
        char reason[200];
        snprintf(reason, sizeof reason, "max attempts: %s", res->reason[0] ? res->reason : "retry");
        finish_dead(e, "max_attempts", reason);
        return;
    }
    uint64_t delay;
    if (res->kind == CG_SEND_THROTTLED) {
        cg_metrics_inc(CG_M_THROTTLED, e->channel);
        delay = res->retry_after_ms > 1000 ? (uint64_t)res->retry_after_ms : 1000;
    } else {
        cg_metrics_inc(CG_M_RETRIED, e->channel);
        double d = BACKOFF_BASE_MS * pow(2.0, e->attempt - 1);
        if (d > BACKOFF_MAX_MS) d = BACKOFF_MAX_MS;
        d *= 0.5 + 0.5 * ((double)rand() / RAND_MAX);
        delay = (uint64_t)d;
    }
    char t[16], due[24], part[16];
    snprintf(t, sizeof t, "%d", e->attempt);
    snprintf(due, sizeof due, "%lld", (long long)(cg_store_now_ms() + (int64_t)delay));
    snprintf(part, sizeof part, "%d", e->part);
    const char *x[] = { t, due, part };
    finish(e, "retry", x, 3, 0, delay);
}

static void progress_reply(cg_store *s, redisReply *r, void *ud)
{
    cg_outbox *o = ud;
    (void)s; (void)r;
    o->inflight--;
    settle(o);
}

/* Record that parts [0, part) are delivered; fire and forget. */
static void record_part(ob_entry *e)
{
    cg_outbox *o = e->o;
    char k1[CG_KEY_MAX], k2[CG_KEY_MAX], k5[CG_KEY_MAX], k6[CG_KEY_MAX], seq[24], ttl[8] = "0", part[16];
    if (cg_store_key(k1, sizeof k1, "seq", e->channel, e->user) ||
        cg_store_key(k2, sizeof k2, "sess", e->channel, e->user) ||
        cg_store_key(k5, sizeof k5, "ogap", e->channel, e->user) ||
        cg_store_key(k6, sizeof k6, "held", e->channel, e->user))
        return;
    snprintf(seq, sizeof seq, "%lld", e->seq);
    snprintf(part, sizeof part, "%d", e->part);
    const char *av[] = { k1, k2, CG_K_OUTBOX, CG_K_DEADLETTER, k5, k6, CG_G_OUTBOX, e->id, seq, "part",
                         ttl, part };
    if (cg_store_eval(o->store, &finish_script, 6, 12, av, NULL, progress_reply, o) == 0)
        o->inflight++;
}

/* ---- HTTP (libcurl multi on the uv loop) -------------------------------- */

static void poll_cb(uv_poll_t *h, int status, int events);

static void sock_closed(uv_handle_t *h)
{
    ob_sock *cs = (ob_sock *)(void *)h;
    cg_outbox *o = cs->o;
    free(cs);
    o->handles--;
    settle(o);
}

static void check_done(cg_outbox *o);

static ob_sock *kept_sock(cg_outbox *o, curl_socket_t fd)
{
    for (ob_sock *cs = o->socks; cs; cs = cs->next)
        if (cs->fd == fd) return cs;
    return NULL;
}

/* (libuv stops a poll itself on a socket error: then it is started again) */
static void watch(ob_sock *cs, int ev)
{
    if (ev == cs->events && (ev == 0 || uv_is_active((uv_handle_t *)&cs->poll))) return;
    cs->events = ev;
    if (ev) uv_poll_start(&cs->poll, ev, poll_cb);
    else uv_poll_stop(&cs->poll);
}

static ob_sock *sock_new(cg_outbox *o, curl_socket_t fd, int kept)
{
    ob_sock *cs = calloc(1, sizeof *cs);
    if (!cs) return NULL;
    cs->fd = fd;
    cs->o = o;
    cs->kept = kept;
    if (uv_poll_init_socket(o->gw->loop, &cs->poll, fd) != 0) {
        free(cs);
        return NULL;
    }
    cs->poll.data = cs;
    o->handles++;
    return cs;
}

static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    cg_outbox *o = userp;
    ob_sock *cs = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (cs) {
            curl_multi_assign(o->multi, fd, NULL);
            if (cs->kept) {
                cs->idle = 1;
                if (cs->events & UV_WRITABLE) watch(cs, UV_READABLE);
            } else {
                uv_poll_stop(&cs->poll);
                uv_close((uv_handle_t *)&cs->poll, sock_closed);
            }
        }
        return 0;
    }
    if (!cs) {
        cs = kept_sock(o, fd);
        if (!cs) cs = sock_new(o, fd, 0);
        if (!cs) return -1;
        cs->idle = 0;
        curl_multi_assign(o->multi, fd, cs);
    }
    int ev = 0;
    if (what & CURL_POLL_IN) ev |= UV_READABLE;
    if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
    watch(cs, ev);
    return 0;
}

/* CURLOPT_OPENSOCKETFUNCTION: a connection's socket, and its ob_sock. */
static curl_socket_t open_sock_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    cg_outbox *o = clientp;
    (void)purpose;
    curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd == CURL_SOCKET_BAD) return fd;
    ob_sock *cs = sock_new(o, fd, 1);
    if (!cs) {
        close(fd);
        return CURL_SOCKET_BAD;
    }
    cs->next = o->socks;
    o->socks = cs;
    return fd;
}

/* CURLOPT_CLOSESOCKETFUNCTION: the ob_sock goes before its descriptor. */
static int close_sock_cb(void *clientp, curl_socket_t fd)
{
    cg_outbox *o = clientp;
    for (ob_sock **pp = &o->socks; *pp; pp = &(*pp)->next) {
        ob_sock *cs = *pp;
        if (cs->fd != fd) continue;
        *pp = cs->next;
        uv_close((uv_handle_t *)&cs->poll, sock_closed);   /* stops the watch */
        break;
    }
    return close(fd);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    ob_sock *cs = h->data;
    cg_outbox *o = cs->o;
    int flags = 0, running;
    if (cs->idle) {          /* closed by the server while in curl's cache */
        watch(cs, 0);
        return;
    }
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(o->multi, cs->fd, flags, &running);
    check_done(o);
}

static void curl_timeout_cb(uv_timer_t *t)
{
    cg_outbox *o = t->data;
    int running;
    curl_multi_socket_action(o->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(o);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    cg_outbox *o = userp;
    (void)m;
    if (timeout_ms < 0) uv_timer_stop(&o->curl_timer);
    else uv_timer_start(&o->curl_timer, curl_timeout_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

/* The response body grows as it comes (a platform's answer is usually a
 * few hundred bytes; 64 KiB up front for each was a malloc_consolidate
 * per reply) up to RESP_MAX; beyond that it is read and not kept. */
static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    ob_entry *e = ud;
    size_t n = size * nmemb;
    size_t room = RESP_MAX - e->resp_len;
    size_t take = n < room ? n : room;       /* beyond the cap: read, not kept */
    if (take) {
        if (e->resp_len + take > e->resp_cap) {
            size_t cap = e->resp_cap ? e->resp_cap : 1024;
            while (cap < e->resp_len + take) cap *= 2;
            if (cap > RESP_MAX) cap = RESP_MAX;
            char *b = realloc(e->resp, cap + 1);
            if (!b) return n;
            e->resp = b;
            e->resp_cap = cap;
        }
        memcpy(e->resp + e->resp_len, ptr, take);
        e->resp_len += take;
        e->resp[e->resp_len] = '\0';
    }
    return n;
}

/* Easy handles are kept for the next request (curl_easy_reset clears every
 * option; connections stay in the multi handle's cache either way): a new
 * handle per request was a large calloc and its teardown each time. */
static CURL *easy_get(cg_outbox *o)
{
    return o->nspare ? o->spare[--o->nspare] : curl_easy_init();
}

static void easy_put(cg_outbox *o, CURL *c)
{
    if (o->nspare < ACTIVE_MAX) {
        curl_easy_reset(c);
        o->spare[o->nspare++] = c;
    } else {
        curl_easy_cleanup(c);
    }
}

/* ---- what a send's outcome says beyond the reply ------------------------- */

static void shape_put(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len + n + 1 > cap) n = cap > *len + 1 ? cap - *len - 1 : 0;
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
}

/* Keys as they are (the connector wrote them), strings as "s<bytes>",
 * numbers "n", booleans "b": no text, id or token of the request. */
static void shape_json(const cJSON *j, char *buf, size_t cap, size_t *len, int depth)
{
    char t[32];
    if (depth > 8) {
        shape_put(buf, cap, len, "...");
    } else if (cJSON_IsObject(j) || cJSON_IsArray(j)) {
        int obj = cJSON_IsObject(j), i = 0;
        shape_put(buf, cap, len, obj ? "{" : "[");
        for (const cJSON *c = j->child; c; c = c->next, i++) {
            if (i) shape_put(buf, cap, len, ",");
            if (!obj && i >= 3) {
                snprintf(t, sizeof t, "...%d", cJSON_GetArraySize(j));
                shape_put(buf, cap, len, t);
                break;
            }
            if (obj) {
                shape_put(buf, cap, len, "\"");
                shape_put(buf, cap, len, c->string ? c->string : "");
                shape_put(buf, cap, len, "\":");
            }
            shape_json(c, buf, cap, len, depth + 1);
        }
        shape_put(buf, cap, len, obj ? "}" : "]");
    } else if (cJSON_IsString(j)) {
        snprintf(t, sizeof t, "\"s%zu\"", strlen(j->valuestring));
        shape_put(buf, cap, len, t);
    } else {
        shape_put(buf, cap, len, cJSON_IsNumber(j) ? "n" : cJSON_IsBool(j) ? "b" : "null");
    }
}

/* A permanent refusal is usually our bug (Graph code 100: invalid
 * parameter): log what we sent, without its content. */
static void log_request_shape(const ob_entry *e, const cg_send_result *res)
{
    if ((size_t)e->part >= e->nreq) return;
    const cg_http_out *r = &e->reqs[e->part];
    char path[160] = "(hidden: holds a secret)", shape[SHAPE_MAX] = "", code[24];
    if (!r->secret_in_url && r->url) {
        const char *p = strstr(r->url, "://");
        p = p ? strchr(p + 3, '/') : NULL;
        snprintf(path, sizeof path, "%s", p ? p : "/");
    }
    cJSON *b = r->body ? cJSON_ParseWithLength(r->body, r->body_len) : NULL;
    size_t len = 0;
    if (b) shape_json(b, shape, sizeof shape, &len, 0);
    else snprintf(shape, sizeof shape, "(%zu bytes, not JSON)", r->body_len);
    cJSON_Delete(b);
    snprintf(code, sizeof code, "%ld", res->code);
    cg_log(CG_LOG_WARN, "outbox_request_refused", "channel", e->channel, "code", code, "method",
           r->method[0] ? r->method : "POST", "path", path, "shape", shape, "reason", res->reason, NULL);
}

static void channel_auth_failed(const ob_entry *e, const cg_send_result *res)
{
    char code[24];
    snprintf(code, sizeof code, "%ld", res->code);
    cg_metrics_inc(CG_M_AUTH_FAILED, e->channel);
    cg_health_channel_failed(e->channel, res->reason[0] ? res->reason : "credentials refused", cg_store_now_ms());
    cg_log(CG_LOG_ERROR, "channel_auth_failed", "channel", e->channel, "code", code, "reason", res->reason, NULL);
}

static void start_send(ob_entry *e);

/* The platform says the window is closed although our clock did not
 * (WhatsApp 131047): the template path, as if begin had decided it. */
static void window_refused(ob_entry *e, const cg_send_result *res)
{
    const cg_channel_cfg *cc = cg_config_channel(e->o->gw->cfg, e->channel);
    int64_t now = cg_store_now_ms();
    cg_log(CG_LOG_INFO, "outbox_window_closed", "channel", e->channel, "user", cg_log_user(e->user), "reason",
           res->reason, NULL);
    if (e->reengage) {                /* the template itself was refused */
        finish_dead(e, "failed", res->reason[0] ? res->reason : "re-engagement template refused");
        return;
    }
    if (e->reengaged_at > 0 && e->reengaged_at >= e->last_in && now - e->reengaged_at < CG_WINDOW_MS) {
        finish_hold(e, 0, "window closed (platform), re-engagement template already sent: held");
        return;
    }
    if (!cc || !cc->template_name) {
        finish_hold(e, 0, "window closed (platform) and no reengagement_template configured: held");
        return;
    }
    entry_clear_reqs(e);
    e->reengage = 1;
    e->part = 0;
    start_send(e);
}

static void ack_reply(cg_store *s, redisReply *r, void *ud);

/* A read receipt is done (sent, refused or given up on): acknowledge it. */
static void read_ack(ob_entry *e)
{
    cg_outbox *o = e->o;
    const char *av[] = { "XACK", CG_K_OUTBOX, CG_G_OUTBOX, e->id };
    if (cg_store_cmd(o->store, ack_reply, o, 4, av, NULL) == 0) o->inflight++;
    drop(o, e);
}

static void read_done(ob_entry *e, const cg_send_result *res)
{
    cg_outbox *o = e->o;
    entry_clear_reqs(e);
    if (res->kind == CG_SEND_OK) {
        cg_metrics_inc(CG_M_READ_SENT, e->channel);
        cg_health_channel_ok(e->channel);
    } else if ((res->kind == CG_SEND_RETRY || res->kind == CG_SEND_THROTTLED) &&
               e->attempt + 1 < READ_MAX_ATTEMPTS) {
        e->attempt++;
        e->state = OB_QUEUED;
        o->active--;
        uint64_t d = res->retry_after_ms > 0 ? (uint64_t)res->retry_after_ms : 1000u * (uint64_t)e->attempt;
        e->not_before = uv_now(o->gw->loop) + d;
        return;
    } else {
        if (res->kind == CG_SEND_BAD_CONFIG) channel_auth_failed(e, res);
        cg_metrics_inc(CG_M_READ_FAILED, e->channel);
        cg_log(CG_LOG_WARN, "read_receipt_failed", "channel", e->channel, "user", cg_log_user(e->user), "reason",
               res->reason[0] ? res->reason : "failed", NULL);
    }
    read_ack(e);
}

/* Render and send a read receipt; acknowledged at once when there is
 * nothing to send (channel disabled since, or no read receipts). */
static void start_read(ob_entry *e)
{
    cg_outbox *o = e->o;
    const cg_connector *conn = cg_connector_find(e->channel);
    const cg_channel_cfg *cc = cg_config_channel(o->gw->cfg, e->channel);
    e->state = OB_SENDING;
    o->active++;
    e->nreq = 0;
    e->part = 0;
    if (!conn || !conn->render_read || !conn->classify || !cc || !cc->enabled || !cc->mark_read ||
        conn->render_read(cc, e->user, e->msg_id, &e->reqs[0]) != CG_OK) {
        read_ack(e);
        return;
    }
    e->conn = conn;
    e->nreq = 1;
    send_part(e);
}

static void transfer_done(ob_entry *e, CURLcode rc)
{
    cg_outbox *o = e->o;
    long status = 0;
    curl_off_t retry_after = 0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(e->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(e->easy, CURLINFO_RETRY_AFTER, &retry_after);
    }
    curl_multi_remove_handle(o->multi, e->easy);
    easy_put(o, e->easy);
    e->easy = NULL;
    curl_slist_free_all(e->hdrs);
    e->hdrs = NULL;
    if (e->dead) {
        drop(o, e);
        return;
    }
    cg_send_result res;
    memset(&res, 0, sizeof res);
    e->conn->classify(status, e->resp ? e->resp : "", e->resp_len, &res);
    if (rc != CURLE_OK && !res.reason[0])
        snprintf(res.reason, sizeof res.reason, "%s", curl_easy_strerror(rc));
    if (res.kind == CG_SEND_THROTTLED && res.retry_after_ms <= 0 && retry_after > 0)
        res.retry_after_ms = retry_after > 3600 ? 3600000L : (long)retry_after * 1000L;
    free(e->resp);
    e->resp = NULL;
    e->resp_len = e->resp_cap = 0;
    if (e->is_read) {
        read_done(e, &res);
        return;
    }
    e->code = res.code;
    switch (res.kind) {
    case CG_SEND_OK:
        cg_health_channel_ok(e->channel);
        if (res.platform_id[0] && cg_delivery_tracked(e->channel))
            cg_delivery_sent(o->store, o->gw->cfg, e->channel, e->user, res.platform_id, e->seq);
        e->part++;
        if ((size_t)e->part < e->nreq) {
            record_part(e);
            send_part(e);
        } else if (e->reengage) {
            cg_metrics_inc(CG_M_REENGAGED, e->channel);
            finish_hold(e, 1, "outside the 24-hour window: re-engagement template sent");
        } else {
            finish_ok(e, NULL, NULL);
        }
        break;
    case CG_SEND_WINDOW_CLOSED:
        window_refused(e, &res);
        break;
    case CG_SEND_RETRY:
    case CG_SEND_THROTTLED:
        finish_retry(e, &res);
        break;
    case CG_SEND_CONTACT_GONE:
        cg_metrics_inc(CG_M_CONTACT_GONE, e->channel);
        finish_gone(e);
        break;
    case CG_SEND_BAD_CONFIG:
        channel_auth_failed(e, &res);
        finish_dead(e, "bad_config", res.reason[0] ? res.reason : "bad config");
        break;
    default:
        log_request_shape(e, &res);
        finish_dead(e, "failed", res.reason[0] ? res.reason : "failed");
        break;
    }
}

static void check_done(cg_outbox *o)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(o->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        ob_entry *e = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&e);
        CURLcode rc = m->data.result;
        if (e) transfer_done(e, rc);
    }
    settle(o);
}

static void send_part(ob_entry *e)
{
    cg_outbox *o = e->o;
    const cg_config *cfg = o->gw->cfg;
    const cg_http_out *r = &e->reqs[e->part];
    CURL *c = easy_get(o);
    if (!c) {
        cg_send_result res = { .kind = CG_SEND_RETRY };
        snprintf(res.reason, sizeof res.reason, "curl_easy_init failed");
        if (e->is_read) read_done(e, &res);
        else finish_retry(e, &res);
        return;
    }
    e->easy = c;
    for (size_t i = 0; i < r->nheaders; i++) e->hdrs = curl_slist_append(e->hdrs, r->headers[i]);
    e->hdrs = curl_slist_append(e->hdrs, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, r->url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method[0] ? r->method : "POST");
    if (r->body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)r->body_len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, e->hdrs);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(cfg->outbox_timeout_ms > 0 ? cfg->outbox_timeout_ms : 10000));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "civicgate");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, e);
    curl_easy_setopt(c, CURLOPT_PRIVATE, (char *)e);
    /* a connection keeps the socket callbacks of the transfer that opened it */
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_sock_cb);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, o);
    curl_easy_setopt(c, CURLOPT_CLOSESOCKETFUNCTION, close_sock_cb);
    curl_easy_setopt(c, CURLOPT_CLOSESOCKETDATA, o);
    e->state = OB_SENDING;
    if (curl_multi_add_handle(o->multi, c) != CURLM_OK) {
        easy_put(o, c);
        e->easy = NULL;
        curl_slist_free_all(e->hdrs);
        e->hdrs = NULL;
        cg_send_result res = { .kind = CG_SEND_RETRY };
        snprintf(res.reason, sizeof res.reason, "curl_multi_add_handle failed");
        if (e->is_read) read_done(e, &res);
        else finish_retry(e, &res);
    }
}

/* ---- begin ------------------------------------------------------------- */

/*
 * KEYS: 1 cg:seq:{c:u}  2 cg:sess:{c:u}  3 cg:outbox  4 cg:ogap:{c:u}
 * ARGV: 1 group  2 entry id  3 seq  4 "force" or ""
 * → {"dup"} (acknowledged) | {"wait"} | {"go", try, due, part, blocked, late,
 *    last_in, reengaged_at (session, ms, "0" when unset)}
 */
static cg_store_script begin_script = {
    .name = "outbox_begin",
    .src =
        "local sent = tonumber(redis.call('HGET', KEYS[1], 'sent') or '0')\n"
        "local seq = tonumber(ARGV[3])\n"
        "local ss = redis.call('HMGET', KEYS[2], 'blocked', 'last_in', 'reengaged_at')\n"
        "local blocked, li, re = ss[1] or '0', ss[2] or '0', ss[3] or '0'\n"
        "if seq <= sent then\n"
        "  if redis.call('SISMEMBER', KEYS[4], ARGV[3]) == 1 then\n"
        "    return {'go', '0', '0', '0', blocked, '1', li, re}\n"
        "  end\n"
        "  redis.call('XACK', KEYS[3], ARGV[1], ARGV[2]); return {'dup'}\n"
        "end\n"
        "if seq ~= sent + 1 and ARGV[4] ~= 'force' then return {'wait'} end\n"
        "local st = redis.call('HMGET', KEYS[1], 'cur', 'try', 'due', 'part', 'out')\n"
        "if st[1] ~= ARGV[3] then\n"
        /* no "out": erased; not remade without a TTL (see finish) */
        "  if st[5] then redis.call('HSET', KEYS[1], 'cur', ARGV[3], 'try', 0, 'due', 0, 'part', 0) end\n"
        "  return {'go', '0', '0', '0', blocked, '0', li, re}\n"
        "end\n"
        "return {'go', st[2] or '0', st[3] or '0', st[4] or '0', blocked, '0', li, re}\n",
};

static void start_send(ob_entry *e)
{
    cg_outbox *o = e->o;
    cg_reply r;
    if (entry_reply(e, &r) != 0) {
        cg_reply_free(&r);
        finish_dead(e, "failed", "out of memory rendering the reply");
        return;
    }
    if (strcmp(e->channel, "webchat") == 0) {
        /* {"user":…,"frame":<the rendered frame, a JSON text, as it is>} */
        char *frame = cg_webchat_render_reply(&r, e->lang);
        char *payload = NULL;
        if (frame) {
            cg_jw w = { 0 };
            cg_jw_lit(&w, "{\"user\":");
            cg_jw_str(&w, e->user, strlen(e->user));
            cg_jw_lit(&w, ",\"frame\":");
            cg_jw_lit(&w, frame);
            cg_jw_lit(&w, "}");
            payload = cg_jw_take(&w, NULL);
        }
        free(frame);
        cg_reply_free(&r);
        if (payload) finish_ok(e, CG_CH_WEBCHAT, payload);
        else finish_dead(e, "failed", "web-chat frame could not be rendered");
        free(payload);
        return;
    }
    const cg_connector *conn = cg_connector_find(e->channel);
    const cg_channel_cfg *cc = cg_config_channel(o->gw->cfg, e->channel);
    if (!conn || !conn->render || !conn->classify || !cc || !cc->enabled) {
        cg_reply_free(&r);
        finish_dead(e, "bad_config", "channel not configured or not enabled");
        return;
    }
    e->conn = conn;
    size_t n = 0;
    cg_err rc = conn->render(cc, &r, e->reqs, CG_MAX_OUT_REQUESTS, &n);
    cg_reply_free(&r);
    if (rc != CG_OK || n == 0) {
        e->nreq = n;
        entry_clear_reqs(e);
        finish_dead(e, rc == CG_OK ? "failed" : "bad_config", "connector could not render the reply");
        return;
    }
    e->nreq = n;
    if ((size_t)e->part >= n) {        /* every part went out before a crash */
        finish_ok(e, NULL, NULL);
        return;
    }
    send_part(e);
}

/* A reply marked head by the commit answers the message received at
 * received_at, which the same commit wrote as the session's last_in (a later
 * message only moves it later): 1 when the window lets it go as it is, so
 * that begin's session times are not needed. Otherwise (a window closed by
 * then: template, hold or refuse, which depend on reengaged_at) it goes
 * through begin. */
static int fresh_in_window(ob_entry *e)
{
    const cg_channel_cfg *cc = cg_config_channel(e->o->gw->cfg, e->channel);
    cg_window_in in = { .channel = e->channel, .now_ms = cg_store_now_ms(), .last_in_ms = e->received_at,
                        .reengaged_ms = 0, .from_agent = e->from_agent,
                        .has_template = cc && cc->template_name };
    const char *why = "";
    if (cg_window_decide(&in, &why) != CG_WINDOW_SEND) return 0;
    e->last_in = e->received_at;
    e->reengaged_at = 0;
    e->window_closed = e->reengage = 0;
    return 1;
}

/* The reply window decides how (and whether) the reply goes (window.h). */
static void start_checked(ob_entry *e)
{
    const cg_channel_cfg *cc = cg_config_channel(e->o->gw->cfg, e->channel);
    cg_window_in in = { .channel = e->channel, .now_ms = cg_store_now_ms(), .last_in_ms = e->last_in,
                        .reengaged_ms = e->reengaged_at, .from_agent = e->from_agent,
                        .has_template = cc && cc->template_name };
    const char *why = "";
    e->window_closed = e->reengage = 0;
    switch (cg_window_decide(&in, &why)) {
    case CG_WINDOW_TAG:
        e->window_closed = 1;
        break;
    case CG_WINDOW_REENGAGE:
        e->reengage = 1;
        e->part = 0;
        break;
    case CG_WINDOW_HOLD:
        finish_hold(e, 0, why);
        return;
    case CG_WINDOW_REFUSE:
        finish_dead(e, "failed", why);
        return;
    default:
        break;
    }
    start_send(e);
}

static void begin_reply(cg_store *s, redisReply *r, void *ud)
{
    ob_entry *e = ud;
    cg_outbox *o = e->o;
    (void)s;
    o->inflight--;
    if (e->dead) {
        drop(o, e);
        settle(o);
        return;
    }
    uint64_t now = uv_now(o->gw->loop);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        e->state = OB_QUEUED;
        o->active--;
        e->not_before = now + 1000;
    } else if (strcmp(r->element[0]->str, "dup") == 0) {
        drop(o, e);
    } else if (strcmp(r->element[0]->str, "wait") == 0) {
        e->state = OB_QUEUED;
        o->active--;
        if (!e->waiting_since) e->waiting_since = now;
        unsigned d = WAIT_MIN_MS << (e->waits < 5 ? e->waits : 5);
        e->waits++;
        e->not_before = now + (d > WAIT_MAX_MS ? WAIT_MAX_MS : d);
        if (now - e->waiting_since >= cg_store_timings.outbox_gap_ms) e->force = 1;
    } else if (r->elements >= 6) {
        int late = strcmp(r->element[5]->str, "1") == 0;
        if (r->elements >= 8) {
            e->last_in = atoll(r->element[6]->str);
            e->reengaged_at = atoll(r->element[7]->str);
        }
        long long due = 0;
        if (!late) {        /* a late reply keeps its retry state in memory */
            e->attempt = atoi(r->element[1]->str);
            due = atoll(r->element[2]->str);
            e->part = atoi(r->element[3]->str);
        }
        int blocked = strcmp(r->element[4]->str, "1") == 0;
        long long wait = due - (long long)cg_store_now_ms();
        if (blocked) {
            finish_gone(e);
        } else if (wait > 0) {
            e->state = OB_QUEUED;
            o->active--;
            e->not_before = now + (uint64_t)wait;
        } else {
            start_checked(e);
        }
    }
    settle(o);
}

static void begin(ob_entry *e)
{
    cg_outbox *o = e->o;
    char k1[CG_KEY_MAX], k2[CG_KEY_MAX], k4[CG_KEY_MAX], seq[24];
    if (cg_store_key(k1, sizeof k1, "seq", e->channel, e->user) ||
        cg_store_key(k2, sizeof k2, "sess", e->channel, e->user) ||
        cg_store_key(k4, sizeof k4, "ogap", e->channel, e->user))
        return;
    snprintf(seq, sizeof seq, "%lld", e->seq);
    const char *av[] = { k1, k2, CG_K_OUTBOX, k4, CG_G_OUTBOX, e->id, seq, e->force ? "force" : "" };
    e->state = OB_BEGIN;
    o->active++;
    if (cg_store_eval(o->store, &begin_script, 4, 8, av, NULL, begin_reply, e) != 0) {
        e->state = OB_QUEUED;
        o->active--;
        e->not_before = uv_now(o->gw->loop) + 1000;
        return;
    }
    o->inflight++;
}

/* ---- reading, claiming, keeping ------------------------------------------ */

static void ack_reply(cg_store *s, redisReply *r, void *ud)
{
    cg_outbox *o = ud;
    (void)s; (void)r;
    o->inflight--;
    settle(o);
}

/* pump() lets only the first held reply of a conversation go, so within a
 * conversation the list must stay in seq order: an entry claimed back after
 * a lost finish (Redis restarted meanwhile) is older than the entries read
 * since, and appending it would stall its conversation behind its own
 * successors (found by tests/e2e/faults.test.js). Receipts keep stream order. */
static void insert_ordered(cg_outbox *o, ob_entry *e)
{
    ob_entry **pp = o->tail ? &o->tail->next : &o->head;
    if (!e->is_read) {
        for (ob_entry **q = &o->head; *q; q = &(*q)->next) {
            const ob_entry *x = *q;
            if (!x->is_read && x->seq > e->seq && x->conv == e->conv && !strcmp(x->user, e->user) &&
                !strcmp(x->channel, e->channel)) {
                pp = q;
                break;
            }
        }
    }
    e->next = *pp;
    *pp = e;
    if (!e->next) o->tail = e;
    o->n++;
}

/* first: the entries come from XREADGROUP ">" (never delivered before);
 * only those may skip begin (see the top of the file). */
static void add_entries(cg_outbox *o, const redisReply *arr, int first)
{
    if (!arr || arr->type != REDIS_REPLY_ARRAY) return;
    if (o->done_called) {
        /* a read or claim that was in flight when the stop dropped every
         * entry: keeping these would leak them (LeakSanitizer saw it);
         * release them instead so that another instance takes them at once */
        const char *ids[CG_STORE_READ_COUNT * 4];
        size_t n = 0;
        for (size_t i = 0; i < arr->elements && n < sizeof ids / sizeof *ids; i++) {
            const redisReply *x = arr->element[i];
            if (x->type == REDIS_REPLY_ARRAY && x->elements >= 1 && x->element[0]->type == REDIS_REPLY_STRING)
                ids[n++] = x->element[0]->str;
        }
        if (n) cg_store_release(o->store, CG_K_OUTBOX, CG_G_OUTBOX, o->gw->instance, ids, n);
        return;
    }
    for (size_t i = 0; i < arr->elements; i++) {
        const redisReply *x = arr->element[i];
        if (x->type != REDIS_REPLY_ARRAY || x->elements < 1 ||
            x->element[0]->type != REDIS_REPLY_STRING || find(o, x->element[0]->str))
            continue;
        ob_entry *e = entry_parse(o, x);
        if (!e) continue;
        if (!first) e->fresh = 0;
        if (e->is_read ? !e->msg_id[0] : e->seq <= 0) e->channel[0] = '\0';
        if (!e->channel[0] || !e->user[0]) {
            /* deleted from the stream, or not written by our pipeline */
            const char *av[] = { "XACK", CG_K_OUTBOX, CG_G_OUTBOX, e->id };
            if (cg_store_cmd(o->store, ack_reply, o, 4, av, NULL) == 0) o->inflight++;
            entry_free(e);
            continue;
        }
        insert_ordered(o, e);
    }
}

/* An XREADGROUP reply, [[stream, entries], ...] (ours or the commit's). */
static void add_streams(cg_outbox *o, const redisReply *streams, int first)
{
    for (size_t i = 0; streams && streams->type == REDIS_REPLY_ARRAY && i < streams->elements; i++) {
        const redisReply *st = streams->element[i];
        if (st->type == REDIS_REPLY_ARRAY && st->elements == 2) add_entries(o, st->element[1], first);
    }
}

static void read_reply(cg_store *s, redisReply *r, void *ud)
{
    cg_outbox *o = ud;
    o->inflight--;
    o->reading = 0;
    size_t before = o->n;
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) == 0) {
        cg_store_ensure_group(s, CG_K_OUTBOX, CG_G_OUTBOX);
    } else {
        add_streams(o, r, o->read_first);
    }
    uint64_t now = uv_now(o->gw->loop);
    o->next_read = o->n > before || o->woken ? now : now + POLL_IDLE_MS;
    o->woken = 0;
    settle(o);
}

static void read_more(cg_outbox *o, const char *from, const char *count)
{
    const char *av[] = { "XREADGROUP", "GROUP", CG_G_OUTBOX, o->gw->instance, "COUNT", count,
                         "STREAMS", CG_K_OUTBOX, from };
    if (cg_store_cmd(o->store, read_reply, o, 9, av, NULL) == 0) {
        o->reading = 1;
        o->read_first = strcmp(from, ">") == 0;
        o->inflight++;
    } else {
        o->next_read = uv_now(o->gw->loop) + POLL_IDLE_MS;
    }
}

static void claim_reply(cg_store *s, redisReply *r, void *ud)
{
    cg_outbox *o = ud;
    (void)s;
    o->inflight--;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[0]->len < sizeof o->claim_cursor) {
        memcpy(o->claim_cursor, r->element[0]->str, r->element[0]->len + 1);
        size_t before = o->n;
        add_entries(o, r->element[1], 0);
        if (o->n > before) {
            char n[24];
            snprintf(n, sizeof n, "%zu", o->n - before);
            cg_log(CG_LOG_INFO, "outbox_claimed", "count", n, NULL);
        }
    }
    settle(o);
}

static void claim(cg_outbox *o)
{
    char idle[16], cnt[16];
    snprintf(idle, sizeof idle, "%u", cg_store_timings.claim_idle_ms);
    snprintf(cnt, sizeof cnt, "%d", CG_STORE_READ_COUNT);
    const char *av[] = { "XAUTOCLAIM", CG_K_OUTBOX, CG_G_OUTBOX, o->gw->instance, idle,
                         o->claim_cursor, "COUNT", cnt };
    if (cg_store_cmd(o->store, claim_reply, o, 8, av, NULL) == 0) o->inflight++;
}

static void lost_cb(const char *id, void *ud)
{
    cg_outbox *o = ud;
    if (!id) {
        o->keeping = 0;
        o->inflight--;
        settle(o);
        return;
    }
    ob_entry *e = find(o, id);
    if (!e) return;
    if (e->state == OB_QUEUED) drop(o, e);
    else e->dead = 1;         /* dropped when its current step returns */
}

static void keep(cg_outbox *o)
{
    const char *ids[HELD_MAX];
    size_t n = 0;
    for (ob_entry *e = o->head; e && n < HELD_MAX; e = e->next) ids[n++] = e->id;
    if (!n) return;
    o->keeping = 1;
    o->inflight++;
    cg_store_keep(o->store, CG_K_OUTBOX, CG_G_OUTBOX, o->gw->instance, ids, n, lost_cb, o);
}

/* ---- the loop ---------------------------------------------------------- */

/* Open-addressing set of conversation hashes seen in one pass of pump().
 * A slot is in use when its gen is the pass's: a new pass clears nothing
 * (clearing 8 KiB per pass was 5% of the gateway's instructions). */
#define SEEN_SLOTS (2 * HELD_MAX)
typedef struct seen_set { uint32_t pass; uint32_t gen[SEEN_SLOTS]; uint64_t k[SEEN_SLOTS]; } seen_set;

static void seen_new_pass(seen_set *s)
{
    if (++s->pass == 0) {          /* wrapped: clear once every 2^32 passes */
        memset(s->gen, 0, sizeof s->gen);
        s->pass = 1;
    }
}

/* 1 when key was already in the set (and adds it otherwise). */
static int seen_add(seen_set *s, uint64_t key)
{
    for (size_t i = key % SEEN_SLOTS, n = 0; n < SEEN_SLOTS; i = (i + 1) % SEEN_SLOTS, n++) {
        if (s->gen[i] != s->pass) {
            s->gen[i] = s->pass;
            s->k[i] = key;
            return 0;
        }
        if (s->k[i] == key) return 1;
    }
    return 1;
}

static void pump(cg_outbox *o)
{
    if (o->closed || o->stopping || !cg_store_ready(o->store)) return;
    uint64_t now = uv_now(o->gw->loop);
    static seen_set seen;      /* loop thread only */
    seen_new_pass(&seen);
    for (ob_entry *e = o->head, *next; e && o->active < ACTIVE_MAX; e = next) {
        next = e->next;
        if (e->is_read) {          /* outside the conversation's order and the buckets */
            if (e->state == OB_QUEUED && e->not_before <= now) start_read(e);
            continue;
        }
        /* only the first held reply of a conversation may go */
        if (seen_add(&seen, e->conv)) continue;
        if (e->state != OB_QUEUED || e->not_before > now) continue;
        uint64_t w = rate_take(o, e, now);
        if (w) {
            e->not_before = now + w;
            continue;
        }
        if (e->fresh) {        /* the commit did begin's work: send now */
            e->fresh = 0;
            if (fresh_in_window(e)) {
                e->state = OB_BEGIN;
                o->active++;
                start_send(e);
                continue;
            }
        }
        begin(e);
    }
    /* hold no more than can be in flight soon: what one instance hoards,
     * the others cannot deliver */
    if (!o->reading && now >= o->next_read && o->n < HELD_MAX && o->n < 2 * ACTIVE_MAX) {
        char cnt[16];
        snprintf(cnt, sizeof cnt, "%d", CG_STORE_READ_COUNT);
        read_more(o, ">", cnt);
    }
}

static void finish_stop(cg_outbox *o);

static void settle(cg_outbox *o)
{
    if (!o->stopping) {
        pump(o);
        return;
    }
    finish_stop(o);
}

static void tick_cb(uv_timer_t *t)
{
    cg_outbox *o = t->data;
    uint64_t now = uv_now(o->gw->loop);
    if (o->stopping) {
        finish_stop(o);
        return;
    }
    if (cg_store_ready(o->store)) {
        if (o->epoch != cg_store_epoch(o->store) && !o->reading) {
            /* a connection came back: what this consumer holds in Redis
             * (a read's answer lost with the connection; the entries held
             * here are skipped), as at the start */
            o->epoch = cg_store_epoch(o->store);
            read_more(o, "0", "512");
        }
        if (now >= o->next_claim) {
            o->next_claim = now + cg_store_timings.claim_every_ms;
            claim(o);
        }
        if (now >= o->next_stats) {
            o->next_stats = now + STATS_EVERY_MS;
            cg_store_stream_gauges(o->store, CG_K_OUTBOX, CG_G_OUTBOX, "civicgate_outbox", 1);
            cg_store_stream_gauges(o->store, CG_K_DEADLETTER, "-", "civicgate_deadletter", 0);
        }
        if (now >= o->next_keep && !o->keeping) {
            o->next_keep = now + cg_store_timings.keep_ms;
            keep(o);
        }
    }
    pump(o);
}

/* The pipeline reads the reply a commit queued (and any other new entry,
 * up to TAKE_MAX) for this instance's outbox right behind the commit, when
 * the outbox has room beside what it holds, what other commits in flight
 * reserved and a read of its own; cg_outbox_take gets them (first
 * delivery: a "head" reply may skip begin) and the reservation back. */
#define TAKE_MAX 8
unsigned cg_outbox_reserve(cg_outbox *o)
{
    if (!o || o->stopping) return 0;
    size_t cap = 2 * ACTIVE_MAX < HELD_MAX ? 2 * ACTIVE_MAX : HELD_MAX;
    size_t held = o->n + o->reserved + (o->reading ? CG_STORE_READ_COUNT : 0);
    if (held >= cap) return 0;
    size_t n = cap - held > TAKE_MAX ? TAKE_MAX : cap - held;
    o->reserved += (unsigned)n;
    return (unsigned)n;
}

void cg_outbox_take(cg_outbox *o, const redisReply *streams, unsigned reserved)
{
    if (!o) return;
    o->reserved = o->reserved > reserved ? o->reserved - reserved : 0;
    if (!streams || streams->type != REDIS_REPLY_ARRAY) return;
    add_streams(o, streams, 1);
    if (!o->done_called) settle(o);
}

void cg_outbox_wake(cg_outbox *o)
{
    if (!o || o->stopping) return;
    o->next_read = 0;
    if (o->reading) o->woken = 1;   /* that read may have missed the news */
    pump(o);
}

cg_outbox *cg_outbox_start(cg_gateway *gw)
{
    static int curl_ready;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
        curl_ready = 1;
    }
    cg_outbox *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->gw = gw;
    o->store = gw->store;
    o->multi = curl_multi_init();
    if (!o->multi) {
        free(o);
        return NULL;
    }
    curl_multi_setopt(o->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(o->multi, CURLMOPT_SOCKETDATA, o);
    curl_multi_setopt(o->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(o->multi, CURLMOPT_TIMERDATA, o);
    /* keep-alive: as many idle connections as transfers can run at once
     * (curl's default cache shrinks with the handles added, and new
     * connections were opened for 7% of the requests) */
    curl_multi_setopt(o->multi, CURLMOPT_MAXCONNECTS, (long)ACTIVE_MAX);
    strcpy(o->claim_cursor, "0-0");
    uv_timer_init(gw->loop, &o->tick);
    uv_timer_init(gw->loop, &o->curl_timer);
    uv_check_init(gw->loop, &o->fin_check);
    uv_timer_init(gw->loop, &o->fin_timer);
    o->tick.data = o->curl_timer.data = o->fin_check.data = o->fin_timer.data = o;
    o->handles = 4;
    uv_timer_start(&o->tick, tick_cb, TICK_MS, TICK_MS);
    cg_store_ensure_group(o->store, CG_K_OUTBOX, CG_G_OUTBOX);
    o->epoch = cg_store_epoch(o->store);
    read_more(o, "0", "512");      /* what this consumer name held before */
    return o;
}

/* ---- stop -------------------------------------------------------------- */

static void timer_closed(uv_handle_t *h)
{
    cg_outbox *o = h->data;
    o->handles--;
    settle(o);
}

static void finish_stop(cg_outbox *o)
{
    uint64_t now = uv_now(o->gw->loop);
    if (!o->done_called) {
        if (o->active > 0 && now < o->stop_deadline) return;
        fin_flush(o);      /* delivered replies waiting for their finish */
        /* grace over or idle: abort transfers; Redis keeps the entries
         * pending, released so that another instance takes them at once */
        const char *ids[HELD_MAX];
        size_t nids = 0;
        for (ob_entry *x = o->head; x && nids < HELD_MAX; x = x->next) ids[nids++] = x->id;
        if (nids) cg_store_release(o->store, CG_K_OUTBOX, CG_G_OUTBOX, o->gw->instance, ids, nids);
        ob_entry *e;
        while ((e = o->head)) {
            if (e->easy) {
                curl_multi_remove_handle(o->multi, e->easy);
                curl_easy_cleanup(e->easy);
                e->easy = NULL;
            }
            curl_slist_free_all(e->hdrs);
            e->hdrs = NULL;
            if (e->state == OB_BEGIN || e->state == OB_FINISH) {
                /* a Redis reply will come back for it: let that free it */
                unlink_entry(o, e);
                e->dead = 1;
                e->next = NULL;
                continue;
            }
            unlink_entry(o, e);
            entry_free(e);
        }
        o->active = 0;
        o->done_called = 1;
        while (o->nspare) curl_easy_cleanup(o->spare[--o->nspare]);
        curl_multi_cleanup(o->multi);       /* closes sockets: sock_cb REMOVE, close_sock_cb */
        o->multi = NULL;
        while (o->socks) {                  /* none left, unless curl closed one without us */
            ob_sock *cs = o->socks;
            o->socks = cs->next;
            uv_close((uv_handle_t *)&cs->poll, sock_closed);
        }
        uv_timer_stop(&o->tick);
        uv_timer_stop(&o->curl_timer);
        o->closed = 1;
        uv_close((uv_handle_t *)&o->tick, timer_closed);
        uv_close((uv_handle_t *)&o->curl_timer, timer_closed);
        uv_close((uv_handle_t *)&o->fin_check, timer_closed);
        uv_close((uv_handle_t *)&o->fin_timer, timer_closed);
        if (o->done) o->done(o->done_ud);
        return;
    }
    if (o->handles == 0 && o->inflight == 0 && o->closed == 1) {
        o->closed = 2;
        /* the pipeline and the agents may still finish commits that would
         * wake or feed the outbox: they find none from now on */
        if (o->gw->outbox == o) o->gw->outbox = NULL;
        btn_cache_free(o);
        free(o);
    }
}

void cg_outbox_stop(cg_outbox *o, void (*done)(void *ud), void *ud)
{
    if (!o) {
        if (done) done(ud);
        return;
    }
    if (o->stopping) return;
    o->stopping = 1;
    o->done = done;
    o->done_ud = ud;
    int grace = o->gw->cfg && o->gw->cfg->shutdown_grace_ms > 0 ? o->gw->cfg->shutdown_grace_ms
                                                                 : 5000;
    o->stop_deadline = uv_now(o->gw->loop) + (uint64_t)grace;
    finish_stop(o);
}

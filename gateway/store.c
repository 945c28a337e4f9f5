/*
 * store.c: every Redis command of the gateway goes through here (hiredis
 * async, attached to the gateway's uv loop with adapters/libuv.h).
 *
 * What it does (hiredis's libuv adapter is replaced by uvev_* below: see there)
 *   - parses redis.url (redis://[[user]:password@]host[:port][/db] or
 *     unix:///path/to.sock[?db=N]), connects, sends AUTH / SELECT / PING
 *     first on every connection; ready once PING answers;
 *   - reconnects after any loss with capped exponential backoff
 *     (100 ms doubling to 5 s); commands issued while disconnected fail at
 *     once (cg_store_cmd returns -1) so that callers answer 503;
 *   - a watchdog frees a connection that has had commands outstanding for
 *     CMD_TIMEOUT_MS with no reply (a hung or black-holed Redis), which
 *     fails those commands (callbacks get NULL) and reconnects;
 *   - runs Lua scripts by EVALSHA (the RESP built here, in one buffer) with
 *     one EVAL fallback on NOSCRIPT (the same buffer, body for sha);
 *   - builds each command connection's replies in an arena (reply_arena.h):
 *     a reply lives until its callback returns, never longer;
 *   - cg_store_ingest: dedupe + append to cg:inbox in ONE script call (for
 *     a webhook of one message the pipeline may make it its direct commit,
 *     which stores and commits the message's turn in that call: the
 *     taker's direct(), store.h);
 *   - a second connection SUBSCRIBEs to the pub/sub channels registered with
 *     cg_store_subscribe (cg:webchat through cg_store_on_webchat: replies for
 *     web-chat sockets on any instance; cg:agents for the agents' module);
 *   - cg_store_history: a conversation's transcript as JSON for the widget.
 *
 * API in call order: cg_store_new → cg_store_ready / cg_store_ingest /
 * cg_store_on_webchat / cg_store_history (gateway.h) and cg_store_cmd /
 * cg_store_eval / cg_store_keep (store.h, for pipeline.c and outbox.c) →
 * cg_store_close.
 *
 * Extending: a new message field is written in ingest_fields() here and read
 * in pipeline.c (entry_to_msg); document it in docs/redis.md.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <hiredis/async.h>
#include <openssl/sha.h>

#include "store.h"
#include "log.h"
#include "metrics.h"
#include "reply_arena.h"
#include "civicgate/webchat.h"

#define BACKOFF_MIN_MS   100u
#define BACKOFF_MAX_MS   5000u
#define CMD_TIMEOUT_MS   5000u
#define WATCHDOG_MS      1000u
#define HISTORY_MAX      200
#define PUSH_MAX_BYTES   (64 * 1024)
#define SUBS_MAX         4

/* One command connection. Two are open: the webhooks' ingest gets its own,
 * so that acknowledging a webhook never waits behind the pipeline's and the
 * outbox's scripts (hiredis answers a connection's commands in order, and a
 * burst of 64 commits takes Redis milliseconds). Redis serves the two
 * connections in turn, so an ingest waits at most for one read's worth of
 * the other's commands. While the ingest connection is down the ingest goes
 * on the main one; the gateway is ready when the main one is. */
typedef struct store_conn {
    struct cg_store *s;
    const char *name;            /* "main" or "ingest", for the logs */
    redisAsyncContext *ac;       /* NULL while down */
    int ready;
    unsigned backoff_ms;
    uv_timer_t retry_timer;
    unsigned outstanding;        /* commands sent, reply not yet seen */
    uint64_t last_progress;      /* uv_now of the last reply or of going busy */
    cg_reply_arena arena;        /* its replies' memory (reply_arena.h); outlives ac */
} store_conn;

struct cg_store {
    cg_gateway *gw;
    uv_loop_t *loop;
    /* parsed redis.url */
    char host[256];
    int port;
    char unix_path[108];
    char user[128];
    char password[256];
    int db;
    int url_ok;

    /* Command connections: "main" for everything, "ingest" for the
     * webhooks' ingest script only (see store_conn). */
    store_conn main, ingest;
    uv_timer_t watchdog;

    redisAsyncContext *sub;      /* SUBSCRIBE connection, while a channel is registered */
    unsigned sub_backoff_ms;
    uv_timer_t sub_timer;
    cg_webchat_push_cb wc_cb;
    void *wc_ud;
    struct { char channel[64]; cg_store_sub_fn fn; void *ud; } subs[SUBS_MAX];

    void (*wake)(void *ud);
    void *wake_ud;
    cg_store_taker taker;        /* the pipeline, for the ingest's read */

    /* scripts used so far: loaded again (SCRIPT LOAD) on every connection so
     * that their next EVALSHA is one round trip even after a Redis restart */
    cg_store_script *scripts[16];
    size_t nscripts;

    int closing;
    void (*close_done)(void *ud);
    void *close_ud;
    uv_timer_t close_timer;
    uint64_t close_deadline;
    int handles_open;
    unsigned epoch;            /* connections come up (cg_store_epoch) */
};

cg_store_timing cg_store_timings = {
    .claim_idle_ms = 30000,
    .keep_ms = 5000,
    .claim_every_ms = 5000,
    .pipeline_gap_ms = 120000,
    .outbox_gap_ms = 600000,
    .finish_wait_ms = 10,
};

/* ---- small helpers --------------------------------------------------- */

int64_t cg_store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cg_store_ttl_slack_ms(long long session_ttl_s, long long transcript_ttl_s)
{
    long long t = session_ttl_s < transcript_ttl_s ? session_ttl_s : transcript_ttl_s;
    if (t < 1) t = 1;
    long long slack = t * 1000 / 16;
    return slack < 3600000 ? slack : 3600000;
}

int cg_store_ttl_due(int64_t at, int64_t now, int64_t slack_ms)
{
    return at <= 0 || now < at || now - at >= slack_ms;
}

int cg_store_fmt_ll(char *buf, long long v)
{
    char t[CG_STORE_NUM_MAX];
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    int n = 0, o = 0;
    do {
        t[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) buf[o++] = '-';
    while (n) buf[o++] = t[--n];
    buf[o] = '\0';
    return o;
}

/* By hand rather than snprintf: about 13 keys are built per message, and
 * snprintf's format machinery cost ten times the copying. */
int cg_store_key(char *buf, size_t cap, const char *kind, const char *channel, const char *user)
{
    size_t lk = strlen(kind), lc = strlen(channel), lu = strlen(user);
    size_t n = 3 + lk + 2 + lc + 1 + lu + 1;          /* cg: kind :{ channel : user } */
    if (n >= cap) return -1;
    char *p = buf;
    memcpy(p, "cg:", 3); p += 3;
    memcpy(p, kind, lk); p += lk;
    memcpy(p, ":{", 2); p += 2;
    memcpy(p, channel, lc); p += lc;
    *p++ = ':';
    memcpy(p, user, lu); p += lu;
    *p++ = '}';
    *p = '\0';
    return 0;
}

const redisReply *cg_store_field(const redisReply *f, const char *name)
{
    if (!f || f->type != REDIS_REPLY_ARRAY) return NULL;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0) {
            const redisReply *v = f->element[i + 1];
            return v->type == REDIS_REPLY_STRING ? v : NULL;
        }
    }
    return NULL;
}

const char *cg_store_field_str(const redisReply *f, const char *name, char *buf, size_t cap)
{
    const redisReply *v = cg_store_field(f, name);
    size_t n = v ? v->len : 0;
    if (n >= cap) n = cap - 1;
    if (n) memcpy(buf, v->str, n);
    buf[n] = '\0';
    return buf;
}

char *cg_store_field_dup(const redisReply *f, const char *name)
{
    const redisReply *v = cg_store_field(f, name);
    if (!v) return NULL;
    char *p = malloc(v->len + 1);
    if (!p) return NULL;
    memcpy(p, v->str, v->len);
    p[v->len] = '\0';
    return p;
}

int64_t cg_store_field_i64(const redisReply *f, const char *name)
{
    char b[32];
    cg_store_field_str(f, name, b, sizeof b);
    return strtoll(b, NULL, 10);
}

static void count_error(const char *what, const char *detail)
{
    cg_metrics_redis_error();
    cg_log(CG_LOG_WARN, "redis_error", "what", what, "detail", detail ? detail : "", NULL);
}

/* ---- URL ------------------------------------------------------------- */

static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < n + 0 && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = { s[i + 1], s[i + 2], 0 };
            c = (char)strtol(hex, NULL, 16);
            i += 2;
        }
        if (o + 1 >= cap) return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* Fill host/port/unix_path/user/password/db from url; -1 when malformed. */
static int parse_url(cg_store *s, const char *url)
{
    s->port = 6379;
    s->db = 0;
    if (!url || !*url) url = "redis://127.0.0.1:6379/0";
    if (strncmp(url, "unix://", 7) == 0 || strncmp(url, "unix:", 5) == 0) {
        const char *p = url + (url[5] == '/' && url[6] == '/' ? 7 : 5);
        const char *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || n >= sizeof s->unix_path) return -1;
        memcpy(s->unix_path, p, n);
        s->unix_path[n] = '\0';
        if (q && strncmp(q, "?db=", 4) == 0) s->db = atoi(q + 4);
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) return -1;
    const char *p = url + 8;
    const char *slash = strchr(p, '/');
    const char *end = slash ? slash : p + strlen(p);
    const char *at = NULL;
    for (const char *c = p; c < end; c++)
        if (*c == '@') at = c;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (pct_decode(p, (size_t)(colon - p), s->user, sizeof s->user) ||
                pct_decode(colon + 1, (size_t)(at - colon - 1), s->password, sizeof s->password))
                return -1;
        } else if (pct_decode(p, (size_t)(at - p), s->password, sizeof s->password)) {
            return -1;
        }
        p = at + 1;
    }
    const char *hend = end;
    if (*p == '[') {                       /* [ipv6]:port */
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb) return -1;
        if ((size_t)(rb - p - 1) >= sizeof s->host) return -1;
        memcpy(s->host, p + 1, (size_t)(rb - p - 1));
        s->host[rb - p - 1] = '\0';
        if (rb + 1 < end && rb[1] == ':') s->port = atoi(rb + 2);
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        if (colon) {
            hend = colon;
            s->port = atoi(colon + 1);
        }
        size_t hn = (size_t)(hend - p);
        if (hn == 0) memcpy(s->host, "127.0.0.1", 10);
        else {
            if (hn >= sizeof s->host) return -1;
            memcpy(s->host, p, hn);
            s->host[hn] = '\0';
        }
    }
    if (s->port <= 0 || s->port > 65535) return -1;
    if (slash && slash[1]) {
        char *e;
        long db = strtol(slash + 1, &e, 10);
        if (db < 0 || db > 1000000 || (*e && *e != '?')) return -1;
        s->db = (int)db;
    }
    return 0;
}

/* ---- script arguments ------------------------------------------------ */

/* The buffers of the last cg_args freed on this thread, for the next one:
 * every message builds two (ingest, commit), and their first growth was four
 * mallocs of 1-8 KiB, each making glibc consolidate its fast bins. */
static _Thread_local cg_args args_spare;
#define ARGS_SPARE_MAX_CAP  (64 * 1024)
#define ARGS_SPARE_MAX_N    1024

void cg_args_addn(cg_args *a, const char *s, size_t n)
{
    if (a->oom) return;
    if (!a->ncap && !a->cap && args_spare.ncap) {
        a->buf = args_spare.buf; a->cap = args_spare.cap;
        a->off = args_spare.off; a->len = args_spare.len; a->v = args_spare.v;
        a->ncap = args_spare.ncap;
        memset(&args_spare, 0, sizeof args_spare);
    }
    if (a->n == a->ncap) {
        int ncap = a->ncap ? a->ncap * 2 : 128;
        size_t *off = realloc(a->off, sizeof *off * (size_t)ncap);
        if (off) a->off = off;
        size_t *len = off ? realloc(a->len, sizeof *len * (size_t)ncap) : NULL;
        if (len) a->len = len;
        const char **v = len ? realloc(a->v, sizeof *v * (size_t)ncap) : NULL;
        if (!v) {
            a->oom = 1;
            return;
        }
        a->v = v;
        a->ncap = ncap;
    }
    if (a->used + n + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 8192;
        while (cap < a->used + n + 1) cap *= 2;
        char *b = realloc(a->buf, cap);
        if (!b) {
            a->oom = 1;
            return;
        }
        a->buf = b;
        a->cap = cap;
    }
    if (n) memcpy(a->buf + a->used, s, n);
    a->buf[a->used + n] = '\0';
    a->off[a->n] = a->used;
    a->len[a->n++] = n;
    a->used += n + 1;
}

void cg_args_add(cg_args *a, const char *s) { cg_args_addn(a, s ? s : "", s ? strlen(s) : 0); }

void cg_args_addi(cg_args *a, long long v)
{
    char b[CG_STORE_NUM_MAX];
    cg_args_addn(a, b, (size_t)cg_store_fmt_ll(b, v));
}

int cg_args_placeholder(cg_args *a)
{
    cg_args_addn(a, "000", 3);
    return a->n - 1;
}

void cg_args_patch(cg_args *a, int at, long long v)
{
    if (a->oom || at < 0 || at >= a->n) return;
    char b[CG_STORE_NUM_MAX];
    int k = cg_store_fmt_ll(b, v);
    if (k < 1 || (size_t)k > a->len[at]) {
        a->oom = 1;
        return;
    }
    memcpy(a->buf + a->off[at], b, (size_t)k + 1);
    a->len[at] = (size_t)k;
}

void cg_args_join(cg_args *a, int from)
{
    if (a->oom || from < 0 || from >= a->n) return;
    a->len[from] = a->used - 1 - a->off[from];
    a->n = from + 1;
}

const char **cg_args_argv(cg_args *a)
{
    for (int i = 0; i < a->n; i++) a->v[i] = a->buf + a->off[i];
    return a->v;
}

void cg_args_free(cg_args *a)
{
    if (!args_spare.ncap && a->ncap && a->cap && a->off && a->len && a->v &&
        a->cap <= ARGS_SPARE_MAX_CAP && a->ncap <= ARGS_SPARE_MAX_N) {
        args_spare = (cg_args){ .buf = a->buf, .cap = a->cap, .off = a->off, .len = a->len, .v = a->v,
                                .ncap = a->ncap };
        memset(a, 0, sizeof *a);
        return;
    }
    free(a->buf);
    free(a->off);
    free(a->len);
    free(a->v);
    memset(a, 0, sizeof *a);
}

/* ---- commands -------------------------------------------------------- */

typedef struct store_req {
    cg_store *s;
    store_conn *c;             /* the connection it was sent on */
    cg_store_reply_fn fn;
    void *ud;
    cg_store_script *script;   /* EVALSHA: kept to retry as EVAL */
    char *cmd;                 /* EVALSHA: the RESP command as sent */
    size_t cmdlen;
    size_t rest;               /* offset of what follows the sha in cmd */
    uint64_t sent_ns;          /* uv_hrtime() when sent: civicgate_redis_roundtrip_seconds */
} store_req;

static void req_free(store_req *q)
{
    free(q->cmd);
    free(q);
}

static int send_req(store_conn *c, store_req *q, int argc, const char **argv, const size_t *lens);
static int send_formatted(store_conn *c, store_req *q, const char *cmd, size_t len);

/* EVALSHA came back NOSCRIPT: the same command as EVAL with the script's
 * body in place of the sha (everything after the sha is unchanged). */
static int resend_as_eval(store_req *q)
{
    size_t srclen = strlen(q->script->src);
    const char *hdr_end = strchr(q->cmd, '\n');     /* "*<n>\r\n" */
    if (!hdr_end) return -1;
    size_t hdr = (size_t)(hdr_end - q->cmd) + 1;
    char num[32];
    int nn = snprintf(num, sizeof num, "$%zu\r\n", srclen);
    size_t len = hdr + 10 + (size_t)nn + srclen + 2 + (q->cmdlen - q->rest);
    char *c = malloc(len);
    store_req *q2 = calloc(1, sizeof *q2);
    if (!c || !q2) {
        free(c);
        free(q2);
        return -1;
    }
    size_t o = 0;
    memcpy(c + o, q->cmd, hdr); o += hdr;
    memcpy(c + o, "$4\r\nEVAL\r\n", 10); o += 10;
    memcpy(c + o, num, (size_t)nn); o += (size_t)nn;
    memcpy(c + o, q->script->src, srclen); o += srclen;
    memcpy(c + o, "\r\n", 2); o += 2;
    memcpy(c + o, q->cmd + q->rest, q->cmdlen - q->rest); o += q->cmdlen - q->rest;
    q2->s = q->s;
    q2->fn = q->fn;
    q2->ud = q->ud;
    int rc = send_formatted(q->c, q2, c, o);
    free(c);
    if (rc) free(q2);
    return rc;
}

static void on_reply(redisAsyncContext *ac, void *r_, void *priv)
{
    store_req *q = priv;
    cg_store *s = q->s;
    store_conn *c = q->c;
    redisReply *r = r_;
    (void)ac;
    if (c->outstanding) c->outstanding--;
    c->last_progress = uv_now(s->loop);
    if (r && q->sent_ns) cg_metrics_redis_roundtrip((double)(uv_hrtime() - q->sent_ns) / 1e9);
    if (!r) {
        c->ready = 0;
    } else if (r->type == REDIS_REPLY_ERROR) {
        if (q->script && q->cmd && strncmp(r->str, "NOSCRIPT", 8) == 0) {
            if (resend_as_eval(q) == 0) {
                req_free(q);
                return;
            }
            q->fn(s, NULL, q->ud);
            req_free(q);
            return;
        }
        count_error(q->script ? q->script->name : "command", r->str);
    } else {
        c->ready = 1;
    }
    if (!r) cg_metrics_redis_error();   /* logged once, by on_disconnect / on_connect */
    q->fn(s, r, q->ud);
    req_free(q);
}

static int send_formatted(store_conn *c, store_req *q, const char *cmd, size_t len)
{
    if (!c->ac || c->s->closing) return -1;
    q->c = c;
    q->sent_ns = uv_hrtime();
    if (redisAsyncFormattedCommand(c->ac, on_reply, q, cmd, len) != REDIS_OK) return -1;
    if (c->outstanding++ == 0) c->last_progress = uv_now(c->s->loop);
    return 0;
}

static int send_req(store_conn *c, store_req *q, int argc, const char **argv, const size_t *lens)
{
    if (!c->ac || c->s->closing) return -1;
    q->c = c;
    q->sent_ns = uv_hrtime();
    if (redisAsyncCommandArgv(c->ac, on_reply, q, argc, argv, lens) != REDIS_OK) return -1;
    if (c->outstanding++ == 0) c->last_progress = uv_now(c->s->loop);
    return 0;
}

static int conn_cmd(store_conn *c, cg_store_reply_fn fn, void *ud, int argc, const char **argv,
                    const size_t *lens)
{
    store_req *q = calloc(1, sizeof *q);
    if (!q) return -1;
    q->s = c->s;
    q->fn = fn;
    q->ud = ud;
    size_t *ln = NULL;
    if (!lens) {
        ln = malloc(sizeof *ln * (size_t)argc);
        if (!ln) {
            free(q);
            return -1;
        }
        for (int i = 0; i < argc; i++) ln[i] = strlen(argv[i]);
        lens = ln;
    }
    int rc = send_req(c, q, argc, argv, lens);
    free(ln);
    if (rc) req_free(q);
    return rc;
}

int cg_store_cmd(cg_store *s, cg_store_reply_fn fn, void *ud, int argc, const char **argv,
                 const size_t *lens)
{
    return conn_cmd(&s->main, fn, ud, argc, argv, lens);
}

/* XREADGROUP GROUP outbox <instance> COUNT n STREAMS cg:outbox > on c. */
static int outbox_read_on(store_conn *c, unsigned n, cg_store_reply_fn fn, void *ud)
{
    char cnt[CG_STORE_NUM_MAX];
    cg_store_fmt_ll(cnt, n);
    const char *av[] = { "XREADGROUP", "GROUP", CG_G_OUTBOX, c->s->gw->instance, "COUNT", cnt,
                         "STREAMS", CG_K_OUTBOX, ">" };
    return conn_cmd(c, fn, ud, 9, av, NULL);
}

int cg_store_outbox_read(cg_store *s, unsigned n, cg_store_reply_fn fn, void *ud)
{
    return outbox_read_on(&s->main, n, fn, ud);
}

static void script_sha(cg_store_script *sc)
{
    if (sc->sha[0]) return;
    unsigned char d[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)sc->src, strlen(sc->src), d);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++) snprintf(sc->sha + 2 * i, 3, "%02x", d[i]);
}

static void script_loaded(cg_store *s, redisReply *r, void *ud);

/* A script's first use on a live connection is preceded by its SCRIPT LOAD
 * (same connection, so Redis has it before the EVALSHA): many first calls at
 * once (64 pipeline entries in flight) would otherwise all come back
 * NOSCRIPT and be sent again with the whole body. */
static void remember_script(cg_store *s, cg_store_script *sc)
{
    for (size_t i = 0; i < s->nscripts; i++)
        if (s->scripts[i] == sc) return;
    if (s->nscripts < sizeof s->scripts / sizeof *s->scripts) s->scripts[s->nscripts++] = sc;
    const char *av[] = { "SCRIPT", "LOAD", sc->src };
    if (s->main.ac && s->main.ready) conn_cmd(&s->main, script_loaded, NULL, 3, av, NULL);
    if (s->ingest.ac && s->ingest.ready) conn_cmd(&s->ingest, script_loaded, NULL, 3, av, NULL);
}

/* Decimal digits of v into p; returns the count. */
static size_t fmt_u(char *p, size_t v)
{
    char t[24];
    size_t n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) p[i] = t[n - 1 - i];
    return n;
}

/* The RESP command is built here in one buffer (hiredis's formatter costs
 * more than the rest of the send) and kept, so that a NOSCRIPT reply can be
 * answered by the same command as EVAL (resend_as_eval). */
static int eval_on(store_conn *cn, cg_store_script *sc, int nkeys, int argc, const char **argv,
                   const size_t *lens, cg_store_reply_fn fn, void *ud)
{
    cg_store *s = cn->s;
    script_sha(sc);
    remember_script(s, sc);
    if (!cn->ac || s->closing || argc < 0) return -1;
    char nk[CG_STORE_NUM_MAX];
    int nkl = cg_store_fmt_ll(nk, nkeys);
    size_t len = 128 + (size_t)nkl;    /* headers with room to spare */
    for (int i = 0; i < argc; i++) len += 32 + (lens ? lens[i] : strlen(argv[i]));
    char *c = malloc(len);
    store_req *q = calloc(1, sizeof *q);
    if (!c || !q) {
        free(c);
        free(q);
        return -1;
    }
    size_t o = 0;
    c[o++] = '*';
    o += fmt_u(c + o, (size_t)argc + 3);
    memcpy(c + o, "\r\n$7\r\nEVALSHA\r\n$40\r\n", 20); o += 20;
    memcpy(c + o, sc->sha, 40); o += 40;
    memcpy(c + o, "\r\n", 2); o += 2;
    q->rest = o;
    c[o++] = '$';
    o += fmt_u(c + o, (size_t)nkl);
    memcpy(c + o, "\r\n", 2); o += 2;
    memcpy(c + o, nk, (size_t)nkl); o += (size_t)nkl;
    memcpy(c + o, "\r\n", 2); o += 2;
    for (int i = 0; i < argc; i++) {
        size_t l = lens ? lens[i] : strlen(argv[i]);
        c[o++] = '$';
        o += fmt_u(c + o, l);
        memcpy(c + o, "\r\n", 2); o += 2;
        memcpy(c + o, argv[i], l); o += l;
        memcpy(c + o, "\r\n", 2); o += 2;
    }
    q->s = s;
    q->fn = fn;
    q->ud = ud;
    q->script = sc;
    q->cmd = c;
    q->cmdlen = o;
    if (send_formatted(cn, q, c, o) != 0) {
        req_free(q);
        return -1;
    }
    return 0;
}

int cg_store_eval(cg_store *s, cg_store_script *sc, int nkeys, int argc, const char **argv,
                  const size_t *lens, cg_store_reply_fn fn, void *ud)
{
    return eval_on(&s->main, sc, nkeys, argc, argv, lens, fn, ud);
}

static void group_reply(cg_store *s, redisReply *r, void *ud)
{
    (void)s; (void)ud;
    /* BUSYGROUP is the normal case; on_reply already counted it as an error
     * reply, which is harmless but we say so in docs/redis.md. */
    (void)r;
}

void cg_store_ensure_group(cg_store *s, const char *stream, const char *group)
{
    const char *av[] = { "XGROUP", "CREATE", stream, group, "0", "MKSTREAM" };
    cg_store_cmd(s, group_reply, NULL, 6, av, NULL);
}

/* ---- keep: re-touch entries we still own --------------------------------- */

/* KEYS[1] stream; ARGV group, consumer, idle ms to set, ids... For each id
 * still pending with consumer: XCLAIM it to the same consumer with that idle
 * time (0: "still mine"; claim_idle_ms: "take it", see cg_store_release).
 * Returns the ids that are no longer the consumer's. */
static cg_store_script keep_script = {
    .name = "keep",
    .src =
        "local lost = {}\n"
        "for i = 4, #ARGV do\n"
        "  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)\n"
        "  if p[1] and p[1][2] == ARGV[2] then\n"
        "    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'JUSTID')\n"
        "  else lost[#lost + 1] = ARGV[i] end\n"
        "end\n"
        "return lost\n",
};

typedef struct keep_req { cg_store_lost_fn lost; void *ud; } keep_req;

static void keep_reply(cg_store *s, redisReply *r, void *ud)
{
    keep_req *k = ud;
    (void)s;
    if (r && r->type == REDIS_REPLY_ARRAY && k->lost)
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i]->type == REDIS_REPLY_STRING) k->lost(r->element[i]->str, k->ud);
    if (k->lost) k->lost(NULL, k->ud);
    free(k);
}

static void keep_idle(cg_store *s, const char *stream, const char *group, const char *consumer,
                      const char *const *ids, size_t n, unsigned idle, cg_store_lost_fn lost,
                      void *ud)
{
    char idle_s[16];
    if (n == 0) {
        if (lost) lost(NULL, ud);
        return;
    }
    const char **av = malloc(sizeof *av * (n + 4));
    keep_req *k = calloc(1, sizeof *k);
    if (!av || !k) goto fail;
    snprintf(idle_s, sizeof idle_s, "%u", idle);
    av[0] = stream;
    av[1] = group;
    av[2] = consumer;
    av[3] = idle_s;
    for (size_t i = 0; i < n; i++) av[4 + i] = ids[i];
    k->lost = lost;
    k->ud = ud;
    if (cg_store_eval(s, &keep_script, 1, (int)n + 4, av, NULL, keep_reply, k) == 0) {
        free(av);
        return;
    }
fail:
    free(av);
    free(k);
    if (lost) lost(NULL, ud);
}

void cg_store_keep(cg_store *s, const char *stream, const char *group, const char *consumer,
                   const char *const *ids, size_t n, cg_store_lost_fn lost, void *ud)
{
    keep_idle(s, stream, group, consumer, ids, n, 0, lost, ud);
}

void cg_store_release(cg_store *s, const char *stream, const char *group, const char *consumer,
                      const char *const *ids, size_t n)
{
    keep_idle(s, stream, group, consumer, ids, n, cg_store_timings.claim_idle_ms, NULL, NULL);
}

size_t cg_store_read_count(const redisReply *streams)
{
    size_t n = 0;
    for (size_t i = 0; streams && streams->type == REDIS_REPLY_ARRAY && i < streams->elements; i++) {
        const redisReply *st = streams->element[i];
        if (st->type == REDIS_REPLY_ARRAY && st->elements == 2 && st->element[1]->type == REDIS_REPLY_ARRAY)
            n += st->element[1]->elements;
    }
    return n;
}

void cg_store_set_taker(cg_store *s, const cg_store_taker *t)
{
    if (t) s->taker = *t;
    else memset(&s->taker, 0, sizeof s->taker);
}

void cg_store_set_wake(cg_store *s, void (*fn)(void *ud), void *ud)
{
    s->wake = fn;
    s->wake_ud = ud;
}

/* ---- libuv glue ------------------------------------------------------ */

/*
 * Our own hiredis event hooks on libuv instead of hiredis 0.14.1's
 * adapters/libuv.h: that adapter ignores a poll error status, and libuv
 * reports a refused connect as exactly that (status UV_EBADF, poll stopped),
 * so a connect to a dead Redis never failed and its commands hung. Here an
 * error status is handed to hiredis as a read/write event, which makes it
 * find the socket error and fail the connection.
 *
 * Writes: hiredis asks for a write event after every command and drops it
 * once its buffer is written. Toggling UV_WRITABLE on the poll costs two
 * epoll_ctl calls each time (libuv's uv_poll_start drops the fd first), and
 * a loop iteration. Once connected, a request to write instead starts a
 * uv_prepare that flushes the buffer right before the loop next blocks, so
 * every command issued in one iteration goes out in one write(); only if
 * the socket is full (hiredis asks again while flushing) does it fall back
 * to the poll's write event.
 */
typedef struct uvev {
    redisAsyncContext *ac;
    uv_poll_t poll;
    uv_prepare_t flush;
    int events;
    int flushing;
    int open;                   /* handles not yet closed */
} uvev;

static void uvev_update(uvev *p, int add, int ev);

static void uvev_poll(uv_poll_t *h, int status, int events)
{
    uvev *p = h->data;
    if (!p->ac) return;
    if (status < 0) {
        if (p->ac->c.flags & REDIS_CONNECTED) redisAsyncHandleRead(p->ac);
        else redisAsyncHandleWrite(p->ac);
        return;
    }
    if (events & UV_READABLE) redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->ac);
}

static void uvev_flush(uv_prepare_t *h)
{
    uvev *p = h->data;
    uv_prepare_stop(&p->flush);
    if (!p->ac) return;
    p->flushing = 1;
    redisAsyncHandleWrite(p->ac);   /* may free ac: then p->ac is NULL */
    p->flushing = 0;
}

static void uvev_update(uvev *p, int add, int ev)
{
    int was = p->events;
    if (add) p->events |= ev;
    else p->events &= ~ev;
    if (p->events == was && uv_is_active((uv_handle_t *)&p->poll)) return;
    if (p->events) uv_poll_start(&p->poll, p->events, uvev_poll);
    else uv_poll_stop(&p->poll);
}

static void uvev_add_read(void *d) { uvev_update(d, 1, UV_READABLE); }
static void uvev_del_read(void *d) { uvev_update(d, 0, UV_READABLE); }

static void uvev_add_write(void *d)
{
    uvev *p = d;
    if (p->ac && (p->ac->c.flags & REDIS_CONNECTED) && !p->flushing) {
        uv_prepare_start(&p->flush, uvev_flush);
        return;
    }
    uvev_update(p, 1, UV_WRITABLE);    /* connecting, or the socket is full */
}

static void uvev_del_write(void *d)
{
    uvev *p = d;
    uv_prepare_stop(&p->flush);
    uvev_update(p, 0, UV_WRITABLE);
}

static void uvev_closed(uv_handle_t *h)
{
    uvev *p = h->data;
    if (--p->open == 0) free(p);
}

static void uvev_cleanup(void *d)
{
    uvev *p = d;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->poll, uvev_closed);
    uv_close((uv_handle_t *)&p->flush, uvev_closed);
}

static int uvev_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data) return -1;
    uvev *p = calloc(1, sizeof *p);
    if (!p) return -1;
    if (uv_poll_init_socket(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return -1;
    }
    uv_prepare_init(loop, &p->flush);
    p->open = 2;
    p->ac = ac;
    p->poll.data = p;
    p->flush.data = p;
    ac->ev.addRead = uvev_add_read;
    ac->ev.delRead = uvev_del_read;
    ac->ev.addWrite = uvev_add_write;
    ac->ev.delWrite = uvev_del_write;
    ac->ev.cleanup = uvev_cleanup;
    ac->ev.data = p;
    return 0;
}

/* ---- connection ------------------------------------------------------ */

static void connect_conn(store_conn *c);
static void connect_sub(cg_store *s);
static void retry_cb(uv_timer_t *t) { connect_conn(t->data); }
static void sub_retry_cb(uv_timer_t *t) { connect_sub(t->data); }

static void schedule_reconnect(store_conn *c)
{
    if (c->s->closing) return;
    unsigned d = c->backoff_ms ? c->backoff_ms : BACKOFF_MIN_MS;
    c->backoff_ms = d * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d * 2;
    uv_timer_stop(&c->retry_timer);
    uv_timer_start(&c->retry_timer, retry_cb, d, 0);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    store_conn *c = ac->data;
    if (status != REDIS_OK) {
        if (c->ac == ac) c->ac = NULL;
        c->ready = 0;
        c->outstanding = 0;
        count_error("connect", ac->errstr);
        schedule_reconnect(c);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    store_conn *c = ac->data;
    if (c->ac == ac) c->ac = NULL;
    c->ready = 0;
    c->outstanding = 0;
    if (status != REDIS_OK) count_error("disconnect", ac->errstr);
    if (!c->s->closing) {
        cg_log(CG_LOG_WARN, "redis_down", "connection", c->name, NULL);
        schedule_reconnect(c);
    }
}

/* AUTH, SELECT (ud: the connection) */
static void hello_reply(cg_store *s, redisReply *r, void *ud)
{
    store_conn *c = ud;
    (void)s;
    if (!r || r->type != REDIS_REPLY_ERROR) return;
    cg_log(CG_LOG_ERROR, "redis_handshake_failed", "connection", c->name, NULL);
    if (c->ac) redisAsyncDisconnect(c->ac);
}

/* PING, the last of the handshake (ud: the connection) */
static void ping_reply(cg_store *s, redisReply *r, void *ud)
{
    store_conn *c = ud;
    if (!r) return;
    if (r->type == REDIS_REPLY_ERROR) {
        hello_reply(s, r, ud);
        return;
    }
    c->backoff_ms = 0;
    c->ready = 1;
    s->epoch++;
    cg_log(CG_LOG_INFO, "redis_up", "connection", c->name, NULL);
    if (c == &s->main && s->wake) s->wake(s->wake_ud);
}

static redisAsyncContext *open_ctx(cg_store *s, void *data)
{
    redisAsyncContext *ac = s->unix_path[0] ? redisAsyncConnectUnix(s->unix_path)
                                            : redisAsyncConnect(s->host, s->port);
    if (!ac) return NULL;
    if (ac->err) {
        count_error("connect", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = data;
    if (uvev_attach(ac, s->loop) != 0) {
        redisAsyncFree(ac);
        return NULL;
    }
    if (!s->unix_path[0]) redisEnableKeepAlive(&ac->c);
    return ac;
}

/* SCRIPT LOAD, CLIENT SETNAME: an error is counted and otherwise ignored
 * (EVALSHA falls back to EVAL; a nameless connection works the same) */
static void script_loaded(cg_store *s, redisReply *r, void *ud)
{
    (void)s; (void)r; (void)ud;
}

/* Connects and queues the handshake (AUTH, SELECT, the scripts used so
 * far, PING): sent before anything else on the connection, so they run
 * first. */
static void connect_conn(store_conn *c)
{
    cg_store *s = c->s;
    if (s->closing || c->ac) return;
    redisAsyncContext *ac = open_ctx(s, c);
    if (!ac) {
        schedule_reconnect(c);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    cg_reply_arena_attach(&ac->c, &c->arena);
    c->ac = ac;
    c->outstanding = 0;
    if (s->password[0]) {
        const char *a3[] = { "AUTH", s->user, s->password };
        const char *a2[] = { "AUTH", s->password };
        if (s->user[0]) conn_cmd(c, hello_reply, c, 3, a3, NULL);
        else conn_cmd(c, hello_reply, c, 2, a2, NULL);
    }
    if (s->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", s->db);
        const char *av[] = { "SELECT", db };
        conn_cmd(c, hello_reply, c, 2, av, NULL);
    }
    /* named for CLIENT LIST (civicgate:<instance>:main|ingest); an ACL that
     * refuses CLIENT is no reason to fail the connection */
    char name[128];
    snprintf(name, sizeof name, "civicgate:%s:%s", s->gw->instance[0] ? s->gw->instance : "-", c->name);
    const char *setname[] = { "CLIENT", "SETNAME", name };
    conn_cmd(c, script_loaded, NULL, 3, setname, NULL);
    for (size_t i = 0; i < s->nscripts; i++) {
        const char *av[] = { "SCRIPT", "LOAD", s->scripts[i]->src };
        conn_cmd(c, script_loaded, NULL, 3, av, NULL);
    }
    const char *ping[] = { "PING" };
    conn_cmd(c, ping_reply, c, 1, ping, NULL);
}

static void watchdog_conn(store_conn *c)
{
    if (c->ac && c->outstanding && uv_now(c->s->loop) - c->last_progress > CMD_TIMEOUT_MS) {
        cg_log(CG_LOG_WARN, "redis_timeout", "connection", c->name, NULL);
        count_error("timeout", "no reply");
        redisAsyncContext *ac = c->ac;
        redisAsyncFree(ac);   /* pending callbacks get NULL; on_disconnect reconnects */
        if (c->ac == ac) {
            c->ac = NULL;
            schedule_reconnect(c);
        }
    }
}

static void watchdog_cb(uv_timer_t *t)
{
    cg_store *s = t->data;
    watchdog_conn(&s->main);
    watchdog_conn(&s->ingest);
}

/* ---- web-chat pub/sub ------------------------------------------------ */

static int any_sub(const cg_store *s)
{
    for (int i = 0; i < SUBS_MAX; i++)
        if (s->subs[i].fn) return 1;
    return 0;
}

static void schedule_sub(cg_store *s)
{
    if (s->closing || !any_sub(s)) return;
    unsigned d = s->sub_backoff_ms ? s->sub_backoff_ms : BACKOFF_MIN_MS;
    s->sub_backoff_ms = d * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d * 2;
    uv_timer_stop(&s->sub_timer);
    uv_timer_start(&s->sub_timer, sub_retry_cb, d, 0);
}

static void sub_on_connect(const redisAsyncContext *ac, int status)
{
    cg_store *s = ac->data;
    if (status != REDIS_OK) {
        if (s->sub == ac) s->sub = NULL;
        schedule_sub(s);
    }
}

static void sub_on_disconnect(const redisAsyncContext *ac, int status)
{
    cg_store *s = ac->data;
    (void)status;
    if (s->sub == ac) s->sub = NULL;
    schedule_sub(s);
}

/* Web-chat pub/sub payload: {"user":"...","frame":{...}}. */
static void webchat_payload(const char *payload, size_t len, void *ud)
{
    cg_store *s = ud;
    if (!s->wc_cb) return;
    cJSON *j = cJSON_ParseWithLength(payload, len);
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(j, "user");
    const cJSON *frame = cJSON_GetObjectItemCaseSensitive(j, "frame");
    if (cJSON_IsString(user) && frame) {
        char *f = cJSON_PrintUnformatted(frame);
        if (f) s->wc_cb(user->valuestring, f, strlen(f), s->wc_ud);
        free(f);
    }
    cJSON_Delete(j);
}

static void sub_message(redisAsyncContext *ac, void *r_, void *priv)
{
    cg_store *s = ac->data;
    redisReply *r = r_;
    (void)priv;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
    if (r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") != 0) {
        if (r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "subscribe") == 0)
            s->sub_backoff_ms = 0;
        return;
    }
    const redisReply *ch = r->element[1], *p = r->element[2];
    if (ch->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_STRING || p->len > PUSH_MAX_BYTES) return;
    for (int i = 0; i < SUBS_MAX; i++)
        if (s->subs[i].fn && !strcmp(s->subs[i].channel, ch->str)) s->subs[i].fn(p->str, p->len, s->subs[i].ud);
}

static void connect_sub(cg_store *s)
{
    if (s->closing || s->sub || !any_sub(s)) return;
    redisAsyncContext *ac = open_ctx(s, s);
    if (!ac) {
        schedule_sub(s);
        return;
    }
    redisAsyncSetConnectCallback(ac, sub_on_connect);
    redisAsyncSetDisconnectCallback(ac, sub_on_disconnect);
    s->sub = ac;
    /* AUTH before SUBSCRIBE; the db number does not matter to pub/sub. Sent
     * with plain hiredis calls: cg_store_cmd is for the command connection. */
    if (s->password[0]) {
        if (s->user[0]) redisAsyncCommand(ac, NULL, NULL, "AUTH %s %s", s->user, s->password);
        else redisAsyncCommand(ac, NULL, NULL, "AUTH %s", s->password);
    }
    for (int i = 0; i < SUBS_MAX; i++)
        if (s->subs[i].fn) redisAsyncCommand(ac, sub_message, NULL, "SUBSCRIBE %s", s->subs[i].channel);
}

int cg_store_subscribe(cg_store *s, const char *channel, cg_store_sub_fn fn, void *ud)
{
    if (!s || !channel || strlen(channel) >= sizeof s->subs[0].channel) return -1;
    int slot = -1;
    for (int i = 0; i < SUBS_MAX; i++)
        if (s->subs[i].fn && !strcmp(s->subs[i].channel, channel)) slot = i;
    if (slot < 0 && !fn) return 0;
    for (int i = 0; i < SUBS_MAX && slot < 0; i++)
        if (!s->subs[i].fn) slot = i;
    if (slot < 0) return -1;
    int was = s->subs[slot].fn != NULL;
    snprintf(s->subs[slot].channel, sizeof s->subs[slot].channel, "%s", channel);
    s->subs[slot].fn = fn;
    s->subs[slot].ud = ud;
    if (!fn) {
        if (s->sub) redisAsyncCommand(s->sub, NULL, NULL, "UNSUBSCRIBE %s", channel);
        return 0;
    }
    if (s->sub && !was) redisAsyncCommand(s->sub, sub_message, NULL, "SUBSCRIBE %s", channel);
    else if (!s->sub) connect_sub(s);
    return 0;
}

void cg_store_on_webchat(cg_store *s, cg_webchat_push_cb cb, void *ud)
{
    s->wc_cb = cb;
    s->wc_ud = ud;
    cg_store_subscribe(s, CG_CH_WEBCHAT, cb ? webchat_payload : NULL, s);
}

/* ---- lifecycle ------------------------------------------------------- */

static cg_store_script ingest_script;   /* below, with cg_store_ingest */

cg_store *cg_store_new(cg_gateway *gw)
{
    cg_store *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->gw = gw;
    s->loop = gw->loop;
    if (parse_url(s, gw->cfg ? gw->cfg->redis_url : NULL) != 0) {
        cg_log(CG_LOG_ERROR, "redis_url_invalid", NULL);
        s->url_ok = 0;
    } else {
        s->url_ok = 1;
    }
    store_conn *conns[] = { &s->main, &s->ingest };
    s->main.name = "main";
    s->ingest.name = "ingest";
    for (int i = 0; i < 2; i++) {
        conns[i]->s = s;
        uv_timer_init(s->loop, &conns[i]->retry_timer);
        conns[i]->retry_timer.data = conns[i];
    }
    uv_timer_init(s->loop, &s->watchdog);
    uv_timer_init(s->loop, &s->sub_timer);
    uv_timer_init(s->loop, &s->close_timer);
    s->watchdog.data = s->sub_timer.data = s->close_timer.data = s;
    s->handles_open = 5;
    remember_script(s, &ingest_script);
    uv_timer_start(&s->watchdog, watchdog_cb, WATCHDOG_MS, WATCHDOG_MS);
    if (s->url_ok) {
        connect_conn(&s->main);
        connect_conn(&s->ingest);
    }
    return s;
}

int cg_store_ready(const cg_store *s)
{
    return s && s->main.ac && s->main.ready;
}

unsigned cg_store_epoch(const cg_store *s) { return s ? s->epoch : 0; }

static void handle_closed(uv_handle_t *h)
{
    cg_store *s = h->data;
    if (--s->handles_open == 0) {
        void (*done)(void *) = s->close_done;
        void *ud = s->close_ud;
        cg_reply_arena_free(&s->main.arena);      /* their contexts are freed */
        cg_reply_arena_free(&s->ingest.arena);
        free(s);
        if (done) done(ud);
    }
}

static void close_step(uv_timer_t *t)
{
    cg_store *s = t->data;
    if (((s->main.ac && s->main.outstanding) || (s->ingest.ac && s->ingest.outstanding)) &&
        uv_now(s->loop) < s->close_deadline) {
        uv_timer_start(&s->close_timer, close_step, 10, 0);
        return;
    }
    store_conn *conns[] = { &s->main, &s->ingest };
    for (int i = 0; i < 2; i++) {
        redisAsyncContext *ac = conns[i]->ac;
        conns[i]->ac = NULL;
        if (ac) redisAsyncFree(ac);
    }
    if (s->sub) {
        redisAsyncContext *ac = s->sub;
        s->sub = NULL;
        redisAsyncFree(ac);
    }
    s->main.retry_timer.data = s->ingest.retry_timer.data = s;   /* for handle_closed */
    uv_close((uv_handle_t *)&s->main.retry_timer, handle_closed);
    uv_close((uv_handle_t *)&s->ingest.retry_timer, handle_closed);
    uv_close((uv_handle_t *)&s->watchdog, handle_closed);
    uv_close((uv_handle_t *)&s->sub_timer, handle_closed);
    uv_close((uv_handle_t *)&s->close_timer, handle_closed);
}

void cg_store_close(cg_store *s, void (*done)(void *ud), void *ud)
{
    if (!s) {
        if (done) done(ud);
        return;
    }
    if (s->closing) return;
    s->closing = 1;
    s->close_done = done;
    s->close_ud = ud;
    int grace = s->gw && s->gw->cfg && s->gw->cfg->shutdown_grace_ms > 0
                    ? s->gw->cfg->shutdown_grace_ms : 5000;
    s->close_deadline = uv_now(s->loop) + (uint64_t)grace;
    uv_timer_stop(&s->main.retry_timer);
    uv_timer_stop(&s->ingest.retry_timer);
    uv_timer_stop(&s->sub_timer);
    uv_timer_stop(&s->watchdog);
    uv_timer_start(&s->close_timer, close_step, 0, 0);
}

/* ---- ingest ---------------------------------------------------------- */

/*
 * KEYS[1] = cg:inbox, KEYS[2] = cg:outbox; then per message i (from 0):
 * KEYS[3+4i] = dedupe key, KEYS[4+4i] = cg:seq:{c:u}, KEYS[5+4i] =
 * cg:rate:{c:u}, KEYS[6+4i] = cg:conv:{c:u}. ARGV[1] = dedupe TTL s,
 * ARGV[2] = seq TTL s, ARGV[3] = messages per citizen per minute (0: no
 * limit), ARGV[4] = transcript MAXLEN, ARGV[5] = transcript TTL s, ARGV[6] =
 * now (ms), ARGV[7] = the pipeline's group, ARGV[8] = this instance (its
 * consumer), ARGV[9] = how many new entries to read for it (0: none, see
 * cg_store_taker); then per message: dedupe flag ("1" when it has a platform id),
 * counted ("1" for what a citizen sends, counted against the limit), the
 * notice text and its language, field count n, n name/value pairs. The
 * direct commit's script (pipeline.c) takes the same for its one message
 * but without ARGV[7..9] (it reads nothing for the pipeline) and with its
 * fields as -1 and the pairs joined (cg_fields).
 * A new message gets the conversation's next sequence number (seq) and is
 * appended; a known one is skipped. Flood control: beyond the limit in a
 * minute (a fixed window from the first message), a message is kept in the
 * transcript (limited = 1) instead of the inbox, and the first one over the
 * limit queues the notice as a reply (next out seq, so it keeps its place
 * among the bot's replies). Returns {appended, limited, read} where read is
 * XREADGROUP's reply (when something was appended and ARGV[9] > 0) or nil.
 */
static cg_store_script ingest_script = {
    .name = "ingest",
    .src =
        CG_STORE_LOAD_LUA
        CG_STORE_INGEST_LUA
        "local p, added, limited = 10, 0, 0\n"
        "for i = 0, (#KEYS - 2) / 4 - 1 do\n"
        "  local a, l, d\n"
        "  a, l, d, p = cg_ingest_one(3 + 4 * i, p, nil)\n"
        "  added, limited = added + a, limited + l\n"
        "end\n"
        /* new entries for this instance's pipeline (cg_store_taker); a
         * missing group (NOGROUP) only skips the read */
        "local taken, loads = false, false\n"
        "if added > 0 and tonumber(ARGV[9]) > 0 then\n"
        "  taken = redis.pcall('XREADGROUP', 'GROUP', ARGV[7], ARGV[8], 'COUNT', ARGV[9], 'STREAMS', KEYS[1], '>')\n"
        "  if type(taken) ~= 'table' or taken.err then taken = false end\n"
        "end\n"
        /* the pipeline's load for each entry taken (cg_load), keys as
         * cg_store_key makes them */
        "if taken and taken[1] then\n"
        "  loads = {}\n"
        "  for _, en in ipairs(taken[1][2]) do\n"
        "    local f, ch, us, sq = en[2], nil, nil, nil\n"
        "    if type(f) == 'table' then\n"
        "      for j = 1, #f - 1, 2 do\n"
        "        local n = f[j]\n"
        "        if n == 'channel' then ch = f[j + 1] elseif n == 'user' then us = f[j + 1]\n"
        "        elseif n == 'seq' then sq = f[j + 1] end\n"
        "      end\n"
        "    end\n"
        /* names that fit the pipeline's buffers only: it must load the
         * same keys it will commit to */
        "    if ch and us and sq and tonumber(sq) and #ch < " CG_STR(CG_CHANNEL_MAX) " and #us < "
        CG_STR(CG_USER_MAX) " then\n"
        "      local t = '{' .. ch .. ':' .. us .. '}'\n"
        "      loads[#loads + 1] = cg_load('cg:seq:' .. t, 'cg:sess:' .. t, 'cg:gap:' .. t, sq)\n"
        "    else\n"
        "      loads[#loads + 1] = {}\n"
        "    end\n"
        "  end\n"
        "end\n"
        "return {added, limited, taken, loads}\n",
};

static const char *const kind_names[] = {
    "text", "button", "start", "language", "location", "media", "edited",
    "blocked", "unblocked", "status", "unsupported",
};

/* Appends name/value pairs for m to a; returns how many pairs. */
static int ingest_fields(cg_args *a, const cg_msg *m, int64_t now)
{
    int n = 0;
    char b[64];
#define F(k, v) do { cg_args_add(a, k); cg_args_add(a, v); n++; } while (0)
    F("channel", m->channel);
    F("user", m->user);
    F("kind", (unsigned)m->kind < sizeof kind_names / sizeof *kind_names ? kind_names[m->kind]
                                                                          : "unsupported");
    if (m->msg_id[0]) F("msg_id", m->msg_id);
    if (m->text) F("text", m->text);
    if (m->payload) F("payload", m->payload);
    if (m->callback_id) F("callback_id", m->callback_id);
    if (m->lang_hint[0]) F("lang_hint", m->lang_hint);
    if (m->media[0]) F("media", m->media);
    if (m->kind == CG_MSG_LOCATION) {
        snprintf(b, sizeof b, "%.7f", m->lat);
        F("lat", b);
        snprintf(b, sizeof b, "%.7f", m->lon);
        F("lon", b);
    }
    if (m->name) F("name", m->name);
    cg_store_fmt_ll(b, (long long)m->ts);
    F("ts", b);
    cg_store_fmt_ll(b, (long long)now);
    F("received_at", b);
#undef F
    return n;
}

typedef struct ingest_req {
    cg_store_done_cb cb;
    void *ud;
    size_t n;
    char channel[CG_CHANNEL_MAX];
    char user[CG_USER_MAX];      /* the first message's, for the log */
    unsigned reserved;           /* entries the pipeline reserved for this read */
    void *taker_ud;              /* the taker it reserved them with (or asked for direct) */
    void *direct;                /* the taker's direct commit's context, or NULL */
    void (*direct_done)(void *ud, void *ctx, int made, const redisReply *read);   /* and its end, */
    void *direct_ud;             /* called even after the taker is unset (its owner waits for it) */
    unsigned outbox_read;        /* the outbox read sent behind the script: its count, 0 none */
    int made;                    /* the script's answer: the direct commit was made */
    int taking;                  /* reserve() was asked: take() gives the reservation back */
} ingest_req;

/* Whether the direct script's reply r says the commit was made: its 5th
 * element "ok". */
static int direct_made(const redisReply *r)
{
    const redisReply *d = r && r->type == REDIS_REPLY_ARRAY && r->elements == 5 ? r->element[4] : NULL;
    return d && (d->type == REDIS_REPLY_STRING || d->type == REDIS_REPLY_STATUS) && !strcmp(d->str, "ok");
}

/* The taker's direct_done for q's direct commit, when there is one; read
 * the outbox read's reply or NULL. */
static void direct_end(ingest_req *q, const redisReply *read)
{
    if (!q->direct) return;
    if (read && read->type != REDIS_REPLY_ARRAY) read = NULL;   /* NOGROUP, nil: nothing read */
    if (q->direct_done) q->direct_done(q->direct_ud, q->direct, q->made, read);
    q->direct = NULL;
}

/* The outbox read behind a direct script: the direct commit's end (the
 * script's reply came first, hiredis answers in order, also with NULL on a
 * lost connection: q->made is known). */
static void outbox_read_reply(cg_store *s, redisReply *r, void *ud)
{
    ingest_req *q = ud;
    (void)s;
    direct_end(q, r);
    free(q);
}

static void ingest_reply(cg_store *s, redisReply *r, void *ud)
{
    ingest_req *q = ud;
    cg_err e = CG_OK;
    const redisReply *taken = NULL, *loads = NULL;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->elements > 5 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER) {
        e = CG_E_UNAVAILABLE;
    } else {
        if (r->elements >= 3 && r->element[2]->type == REDIS_REPLY_ARRAY) taken = r->element[2];
        if (taken && r->elements == 4 && r->element[3]->type == REDIS_REPLY_ARRAY) loads = r->element[3];
        long long added = r->element[0]->integer, limited = r->element[1]->integer;
        for (long long i = added + limited; i < (long long)q->n; i++)
            cg_metrics_inc(CG_M_DUPLICATE, q->channel);
        for (long long i = 0; i < limited; i++) cg_metrics_inc(CG_M_RATE_LIMITED, q->channel);
        if (limited > 0)
            cg_log(CG_LOG_INFO, "citizen_rate_limited", "channel", q->channel, "user", cg_log_user(q->user), NULL);
    }
    /* the webhook's answer first (written at once: the platform's wait
     * does not include the dialog turns the entries start), then the
     * entries (a reservation is always given back), then the wake for
     * whatever the read left */
    q->cb(e, q->ud);
    q->made = q->direct && e == CG_OK && direct_made(r);
    int made = q->made;          /* a direct commit left nothing in the inbox */
    if (!q->outbox_read) direct_end(q, NULL);
    if (q->taking && s->taker.take && s->taker.ud == q->taker_ud)
        s->taker.take(s->taker.ud, taken, loads, q->reserved);
    /* the pipeline reads for itself only when this read may have left new
     * entries behind: it took none, or as many as it had room for */
    size_t ntaken = cg_store_read_count(taken);
    if (e == CG_OK && !made && r->element[0]->integer > 0 && (q->reserved == 0 || ntaken >= q->reserved) &&
        s->wake)
        s->wake(s->wake_ud);
    if (!q->outbox_read) free(q);    /* else the outbox read's reply ends it */
}

/* What a citizen sends (counted against limits.citizen_messages_per_minute);
 * not platform events such as statuses, edits or blocks. */
static int counted_kind(cg_msg_kind k)
{
    return k == CG_MSG_TEXT || k == CG_MSG_BUTTON || k == CG_MSG_START || k == CG_MSG_LANGUAGE ||
           k == CG_MSG_LOCATION || k == CG_MSG_MEDIA || k == CG_MSG_UNSUPPORTED;
}

/* The flood notice in the citizen's language (the platform's hint when the
 * table has it, else the table's default); *lang set. Borrowed from the
 * current snapshot, valid until the next reload; copied by cg_args_add. */
static const char *rate_notice(const cg_gateway *gw, const cg_msg *m, const char **lang)
{
    static const char fallback[] = "You are sending messages faster than I can read them. I will answer again "
                                   "in a minute; what you wrote is kept.";
    const cg_intents *t = gw->intents;
    *lang = "en";
    if (!t) return fallback;
    const cg_settings *st = &t->settings;
    *lang = st->default_language;
    for (size_t i = 0; m->lang_hint[0] && i < st->nlanguages; i++)
        if (!strncmp(st->languages[i], m->lang_hint, 2)) *lang = st->languages[i];
    const char *p = cg_settings_phrase(st, "rate_limited", *lang);
    return p && strcmp(p, "rate_limited") ? p : fallback;
}

/* A call's argument pointers gathered from several cg_args (the ingest's
 * and its direct commit's) instead of their bytes copied into one; grown,
 * kept for the next call. 0, or -1 when out of memory. */
static _Thread_local struct { const char **v; size_t *len; int cap; } gather;

static int gather_room(int n)
{
    if (n <= gather.cap) return 0;
    int cap = n < 256 ? 256 : n;
    const char **v = realloc(gather.v, sizeof *v * (size_t)cap);
    if (!v) return -1;
    gather.v = v;
    size_t *len = realloc(gather.len, sizeof *len * (size_t)cap);
    if (!len) return -1;
    gather.len = len;
    gather.cap = cap;
    return 0;
}

void cg_store_ingest(cg_store *s, const cg_msg *msgs, size_t n, cg_store_done_cb cb, void *ud)
{
    cg_args a = { 0 }, dk = { 0 }, da = { 0 };   /* dk, da: the direct commit's keys and arguments */
    cg_store_script *sc = &ingest_script;
    ingest_req *q = NULL;
    char key[CG_KEY_MAX], num[32];
    int64_t now = cg_store_now_ms();
    cg_err fail = CG_E_UNAVAILABLE;
    if (n > CG_MAX_MSGS_PER_WEBHOOK) {
        fail = CG_E_BAD_REQUEST;
        goto fail;
    }
    if (n == 0) {
        cb(CG_OK, ud);
        return;
    }
    store_conn *conn = s && s->ingest.ac && s->ingest.ready ? &s->ingest : s ? &s->main : NULL;
    if (!conn || !conn->ac || s->closing) goto fail;
    fail = CG_E_NOMEM;
    q = calloc(1, sizeof *q);
    if (!q) goto fail;
    q->cb = cb;
    q->ud = ud;
    q->n = n;
    snprintf(q->channel, sizeof q->channel, "%s", msgs[0].channel);
    snprintf(q->user, sizeof q->user, "%s", msgs[0].user);
    /* the taker's direct commit, for a webhook of one message: its keys
     * and arguments go after the ingest's */
    if (n == 1 && s->taker.direct) {
        cg_store_script *d = s->taker.direct(s->taker.ud, &msgs[0], now, &dk, &da, &q->outbox_read, &q->direct);
        if (d && q->direct) {
            sc = d;
            q->taker_ud = s->taker.ud;
            q->direct_done = s->taker.direct_done;
            q->direct_ud = s->taker.ud;
        } else {
            dk.n = da.n = 0;
            q->outbox_read = 0;
        }
    }
    /* keys first */
    cg_args_add(&a, CG_K_INBOX);
    cg_args_add(&a, CG_K_OUTBOX);
    for (size_t i = 0; i < n; i++) {
        if (cg_store_key(key, sizeof key, "dedupe", msgs[i].channel, msgs[i].user)) goto fail;
        size_t kl = strlen(key), il = strlen(msgs[i].msg_id);     /* key ":" msg_id */
        if (kl + 1 + il >= sizeof key) goto fail;
        key[kl] = ':';
        memcpy(key + kl + 1, msgs[i].msg_id, il + 1);
        cg_args_add(&a, key);
        if (cg_store_key(key, sizeof key, "seq", msgs[i].channel, msgs[i].user)) goto fail;
        cg_args_add(&a, key);
        if (cg_store_key(key, sizeof key, "rate", msgs[i].channel, msgs[i].user)) goto fail;
        cg_args_add(&a, key);
        if (cg_store_key(key, sizeof key, "conv", msgs[i].channel, msgs[i].user)) goto fail;
        cg_args_add(&a, key);
    }
    int ikeys = a.n, nkeys = a.n + dk.n;    /* the direct commit's keys go after the ingest's */
    const cg_config *cfg = s->gw->cfg;
    cg_store_fmt_ll(num, cfg && cfg->dedupe_ttl_s > 0 ? cfg->dedupe_ttl_s : 172800);
    cg_args_add(&a, num);
    cg_store_fmt_ll(num, cfg && cfg->session_ttl_s > 0 ? cfg->session_ttl_s : 2592000);
    cg_args_add(&a, num);
    cg_args_addi(&a, cfg ? cfg->citizen_per_minute : 0);
    cg_args_addi(&a, cfg && cfg->transcript_max > 0 ? cfg->transcript_max : 500);
    cg_args_addi(&a, cfg && cfg->transcript_ttl_s > 0 ? cfg->transcript_ttl_s : 7776000);
    cg_args_addi(&a, (long long)now);
    if (!q->direct && s->taker.reserve && s->taker.take) {
        q->reserved = s->taker.reserve(s->taker.ud);
        q->taking = 1;
        q->taker_ud = s->taker.ud;
    }
    if (!q->direct) {           /* the direct script reads nothing for the pipeline */
        cg_args_add(&a, CG_G_PIPELINE);
        cg_args_add(&a, s->gw->instance);
        cg_args_addi(&a, q->reserved);
    }
    for (size_t i = 0; i < n; i++) {
        cg_args_add(&a, msgs[i].msg_id[0] ? "1" : "0");
        const char *lang = NULL;
        cg_args_add(&a, counted_kind(msgs[i].kind) ? "1" : "0");
        /* the notice only where a limit can send it (each argument costs
         * Redis ~800 instructions to parse and hand to Lua) */
        cg_args_add(&a, cfg && cfg->citizen_per_minute > 0 ? rate_notice(s->gw, &msgs[i], &lang) : "");
        cg_args_add(&a, lang ? lang : "");
        int at = cg_args_placeholder(&a);   /* field count */
        int nf = ingest_fields(&a, &msgs[i], now);
        if (q->direct) {            /* read only if the commit is not made */
            cg_args_join(&a, at + 1);
            nf = -1;
        }
        cg_args_patch(&a, at, nf);
    }
    if (a.oom || dk.oom || da.oom || gather_room(a.n + dk.n + da.n)) goto fail;
    /* the call's arguments: the ingest's keys, the direct commit's keys, the
     * ingest's arguments, the direct commit's (pointers, not copies) */
    int argc = 0;
    const char **av = cg_args_argv(&a), **dkv = cg_args_argv(&dk), **dav = cg_args_argv(&da);
    for (int i = 0; i < ikeys; i++, argc++) { gather.v[argc] = av[i]; gather.len[argc] = a.len[i]; }
    for (int i = 0; i < dk.n; i++, argc++) { gather.v[argc] = dkv[i]; gather.len[argc] = dk.len[i]; }
    for (int i = ikeys; i < a.n; i++, argc++) { gather.v[argc] = av[i]; gather.len[argc] = a.len[i]; }
    for (int i = 0; i < da.n; i++, argc++) { gather.v[argc] = dav[i]; gather.len[argc] = da.len[i]; }
    fail = CG_E_UNAVAILABLE;
    if (eval_on(conn, sc, nkeys, argc, gather.v, gather.len, ingest_reply, q) != 0) goto fail;
    /* right behind the script on its connection; not sent: the script's
     * reply ends the direct commit, reading nothing */
    if (q->outbox_read && outbox_read_on(conn, q->outbox_read, outbox_read_reply, q) != 0) q->outbox_read = 0;
    cg_args_free(&da);
    cg_args_free(&dk);
    cg_args_free(&a);
    return;
fail:
    cg_args_free(&da);
    cg_args_free(&dk);
    cg_args_free(&a);
    if (q) direct_end(q, NULL);
    if (q && q->taking && s->taker.take && s->taker.ud == q->taker_ud)
        s->taker.take(s->taker.ud, NULL, NULL, q->reserved);
    free(q);
    cb(fail, ud);
}

/* ---- history --------------------------------------------------------- */

typedef struct hist_req {
    cg_store_json_cb cb;
    void *ud;
} hist_req;

static void history_reply(cg_store *s, redisReply *r, void *ud)
{
    hist_req *q = ud;
    (void)s;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        q->cb(NULL, 0, q->ud);
        free(q);
        return;
    }
    cJSON *arr = cJSON_CreateArray();
    /* XREVRANGE: newest first; the widget wants oldest first. */
    for (size_t i = r->elements; arr && i-- > 0;) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) continue;
        const redisReply *f = e->element[1];
        char dir[8];
        cg_store_field_str(f, "dir", dir, sizeof dir);
        if (strcmp(dir, "in") != 0 && strcmp(dir, "out") != 0) continue;
        cJSON *o = cJSON_CreateObject();
        if (!o) break;
        cJSON_AddStringToObject(o, "dir", dir);
        char *text = cg_store_field_dup(f, "text");
        cJSON_AddStringToObject(o, "text", text ? text : "");
        free(text);
        char *btn = cg_store_field_dup(f, "buttons");
        cJSON *b = btn ? cJSON_Parse(btn) : NULL;
        free(btn);
        cJSON_AddItemToObject(o, "buttons", b && cJSON_IsArray(b) ? b : cJSON_CreateArray());
        if (b && !cJSON_IsArray(b)) cJSON_Delete(b);
        cJSON_AddNumberToObject(o, "ts", (double)cg_store_field_i64(f, "ts"));
        cJSON_AddItemToArray(arr, o);
    }
    char *out = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    q->cb(out, out ? strlen(out) : 0, q->ud);
    free(out);
    free(q);
}

void cg_store_history(cg_store *s, const char *channel, const char *user, size_t max,
                      cg_store_json_cb cb, void *ud)
{
    char key[CG_KEY_MAX], cnt[16];
    hist_req *q = calloc(1, sizeof *q);
    if (!q || cg_store_key(key, sizeof key, "conv", channel, user)) goto fail;
    if (max > HISTORY_MAX) max = HISTORY_MAX;
    snprintf(cnt, sizeof cnt, "%zu", max);
    q->cb = cb;
    q->ud = ud;
    const char *av[] = { "XREVRANGE", key, "+", "-", "COUNT", cnt };
    if (cg_store_cmd(s, history_reply, q, 6, av, NULL) == 0) return;
fail:
    free(q);
    cb(NULL, 0, ud);
}

/* ---- queue depth ------------------------------------------------------ */

/* KEYS[1] stream; ARGV[1] group, ARGV[2] "1" for housekeeping: trim what
 * every consumer acknowledged, and forget consumers (dead instances: names
 * are per process start) that hold nothing and were idle for an hour (a live
 * one polls every 50 ms; one deleted anyway is recreated by its next read).
 * Returns {length, pending, lag, age}: age (ms) of the oldest entry not yet
 * finished, pending with a consumer or not yet read by any (0 when none), so
 * that a stuck or missing consumer shows as a growing age. */
static cg_store_script stats_script = {
    .name = "stats",
    .src =
        "if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0, 0, 0} end\n"
        "local len = redis.call('XLEN', KEYS[1])\n"
        "local pending, lag, last = 0, 0, nil\n"
        "for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do\n"
        "  local t = {}\n"
        "  for i = 1, #g, 2 do t[g[i]] = g[i + 1] end\n"
        "  if t['name'] == ARGV[1] then\n"
        "    pending = t['pending']; lag = t['lag'] or 0; last = t['last-delivered-id']\n"
        "  end\n"
        "end\n"
        "if last and ARGV[2] == '1' then\n"
        "  local minid = last\n"
        "  if pending > 0 then minid = redis.call('XPENDING', KEYS[1], ARGV[1])[2] end\n"
        "  redis.call('XTRIM', KEYS[1], 'MINID', '~', minid)\n"
        "  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do\n"
        "    local t = {}\n"
        "    for i = 1, #c, 2 do t[c[i]] = c[i + 1] end\n"
        "    if t['pending'] == 0 and t['idle'] > 3600000 then\n"
        "      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], t['name'])\n"
        "    end\n"
        "  end\n"
        "end\n"
        "local oldest = nil\n"
        "local function ms(id) return tonumber(string.match(id, '^(%d+)')) end\n"
        "if pending > 0 then oldest = ms(redis.call('XPENDING', KEYS[1], ARGV[1])[2]) end\n"
        "local unread = redis.call('XRANGE', KEYS[1], last and ('(' .. last) or '-', '+', 'COUNT', 1)[1]\n"
        "if unread and (not oldest or ms(unread[1]) < oldest) then oldest = ms(unread[1]) end\n"
        "local age = 0\n"
        "if oldest then\n"
        "  local t = redis.call('TIME')\n"
        "  age = math.max(0, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - oldest)\n"
        "end\n"
        "return {len, pending, lag, age}\n",
};

typedef struct gauge_req { char prefix[64]; } gauge_req;

static void gauges_reply(cg_store *s, redisReply *r, void *ud)
{
    gauge_req *g = ud;
    static const char *const suffix[] = { "length", "pending", "lag" };
    (void)s;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 3) {
        for (int i = 0; i < 3; i++) {
            char name[96];
            snprintf(name, sizeof name, "%s_%s", g->prefix, suffix[i]);
            const redisReply *e = r->element[i];
            cg_metrics_set_gauge(name, e->type == REDIS_REPLY_INTEGER ? (double)e->integer : 0);
        }
        if (r->elements >= 4) {   /* a stuck consumer shows as a growing age */
            char name[96];
            snprintf(name, sizeof name, "%s_oldest_age_seconds", g->prefix);
            const redisReply *e = r->element[3];
            cg_metrics_set_gauge(name, e->type == REDIS_REPLY_INTEGER ? (double)e->integer / 1000.0 : 0);
        }
    }
    free(g);
}

void cg_store_stream_gauges(cg_store *s, const char *stream, const char *group,
                            const char *prefix, int trim)
{
    gauge_req *g = calloc(1, sizeof *g);
    if (!g) return;
    snprintf(g->prefix, sizeof g->prefix, "%s", prefix);
    const char *av[] = { stream, group, trim ? "1" : "0" };
    if (cg_store_eval(s, &stats_script, 1, 3, av, NULL, gauges_reply, g) != 0) free(g);
}

/* ---- replies from outside the pipeline ---------------------------------- */

/*
 * KEYS 1 cg:seq:{c:u}  2 cg:conv:{c:u}  3 cg:outbox
 * ARGV 1 transcript max  2 transcript TTL  3 seq TTL  4 n (outbox pairs),
 *      then n outbox name/value pairs, then transcript name/value pairs.
 */
static cg_store_script reply_script = {
    .name = "send_reply",
    .src =
        "local n = tonumber(ARGV[4])\n"
        "local o = {}\n"
        "for i = 5, 4 + 2 * n do o[#o + 1] = ARGV[i] end\n"
        "local c = {}\n"
        "for i = 5 + 2 * n, #ARGV do c[#c + 1] = ARGV[i] end\n"
        "local seq = redis.call('HINCRBY', KEYS[1], 'out', 1)\n"
        "redis.call('EXPIRE', KEYS[1], ARGV[3])\n"
        "o[#o + 1] = 'seq'; o[#o + 1] = tostring(seq)\n"
        "redis.call('XADD', KEYS[3], '*', unpack(o))\n"
        "redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', unpack(c))\n"
        "redis.call('EXPIRE', KEYS[2], ARGV[2])\n"
        "return seq\n",
};

typedef struct reply_req { cg_store_done_cb cb; void *ud; } reply_req;

static void send_reply_done(cg_store *s, redisReply *r, void *ud)
{
    reply_req *q = ud;
    cg_err e = r && r->type == REDIS_REPLY_INTEGER ? CG_OK : CG_E_UNAVAILABLE;
    if (e == CG_OK && s->gw && s->gw->outbox) cg_outbox_wake(s->gw->outbox);
    q->cb(e, q->ud);
    free(q);
}

void cg_store_send_reply(cg_store *s, const cg_reply *r, const char *lang, cg_store_done_cb cb,
                         void *ud)
{
    cg_store_send_reply_ex(s, r, lang, NULL, 0, cb, ud);
}

void cg_store_send_reply_ex(cg_store *s, const cg_reply *r, const char *lang, const char *const *extra,
                            size_t nextra, cg_store_done_cb cb, void *ud)
{
    cg_args a = { 0 };
    reply_req *q = calloc(1, sizeof *q);
    char key[CG_KEY_MAX], num[32];
    char *btn = NULL;
    cJSON *arr = cJSON_CreateArray();
    if (!q || !arr || !s || !r) goto fail;
    for (size_t i = 0; i < r->nbuttons && i < CG_REPLY_MAX_BUTTONS; i++) {
        cJSON *b = cJSON_CreateObject();
        if (!b) goto fail;
        cJSON_AddStringToObject(b, "title", r->buttons[i].title ? r->buttons[i].title : "");
        if (r->buttons[i].url) cJSON_AddStringToObject(b, "url", r->buttons[i].url);
        else cJSON_AddStringToObject(b, "payload", r->buttons[i].payload ? r->buttons[i].payload : "");
        cJSON_AddItemToArray(arr, b);
    }
    btn = cJSON_PrintUnformatted(arr);
    if (!btn) goto fail;
    const cg_config *cfg = s->gw->cfg;
    static const char *const kinds[] = { "seq", "conv" };
    for (int i = 0; i < 2; i++) {
        if (cg_store_key(key, sizeof key, kinds[i], r->channel, r->user)) goto fail;
        cg_args_add(&a, key);
    }
    cg_args_add(&a, CG_K_OUTBOX);
    snprintf(num, sizeof num, "%d", cfg && cfg->transcript_max > 0 ? cfg->transcript_max : 500);
    cg_args_add(&a, num);
    snprintf(num, sizeof num, "%d", cfg && cfg->transcript_ttl_s > 0 ? cfg->transcript_ttl_s : 7776000);
    cg_args_add(&a, num);
    snprintf(num, sizeof num, "%d", cfg && cfg->session_ttl_s > 0 ? cfg->session_ttl_s : 2592000);
    cg_args_add(&a, num);
    char now[32];
    snprintf(now, sizeof now, "%lld", (long long)cg_store_now_ms());
    int at = cg_args_placeholder(&a);
    int n = 0;
#define P(k, v) do { cg_args_add(&a, k); cg_args_add(&a, v); n++; } while (0)
    P("channel", r->channel);
    P("user", r->user);
    P("text", r->text ? r->text : "");
    P("buttons", btn);
    if (r->callback_id) P("callback_id", r->callback_id);
    P("lang", lang ? lang : "");
    P("from_agent", r->from_agent ? "1" : "0");
    P("created_at", now);
    P("received_at", now);
#undef P
    cg_args_patch(&a, at, n);
    cg_args_add(&a, "dir"); cg_args_add(&a, "out");
    cg_args_add(&a, "text"); cg_args_add(&a, r->text ? r->text : "");
    cg_args_add(&a, "buttons"); cg_args_add(&a, btn);
    cg_args_add(&a, "from_agent"); cg_args_add(&a, r->from_agent ? "1" : "0");
    cg_args_add(&a, "ts"); cg_args_add(&a, now);
    for (size_t i = 0; i + 1 < nextra; i += 2) {
        cg_args_add(&a, extra[i]);
        cg_args_add(&a, extra[i + 1] ? extra[i + 1] : "");
    }
    if (a.oom) goto fail;
    q->cb = cb;
    q->ud = ud;
    if (cg_store_eval(s, &reply_script, 3, a.n, cg_args_argv(&a), a.len, send_reply_done, q) != 0)
        goto fail;
    cg_args_free(&a);
    free(btn);
    cJSON_Delete(arr);
    return;
fail:
    cg_args_free(&a);
    free(btn);
    cJSON_Delete(arr);
    free(q);
    cb(CG_E_UNAVAILABLE, ud);
}

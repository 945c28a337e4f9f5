/*
 * analytics.c: what citizens asked that the bot could not answer, and the
 * daily figures (analytics.h has the keys and the write side's contract).
 *
 * Write side. The daily counters and the day's conversations
 * (cg:an:day, cg:an:conv) are summed per process in a cg_analytics_batch:
 * the pipeline adds a message once its commit script answered "ok" (so a
 * re-delivered message, answered "dup", or a failed commit is never
 * counted), and a timer writes the batch CG_AN_BATCH_MS after its first
 * message: one script call (batch_script) for every commit answered in that
 * time, or sooner when the batch is full (CG_AN_BATCH_*: a message that
 * does not fit sends it at once). Each message cost 3-5 commands inside the
 * commit script (each converted Lua <-> Redis and appended to the AOF with
 * its arguments); a batch per loop iteration still cost a script call per
 * message at 2 000 messages/s, where iterations hold one message or two;
 * per 100 ms the batch sums until it holds CG_AN_BATCH_CIDS conversations.
 * What it costs: the counts are at-most-once. A crash loses those summed and
 * not yet written (at most CG_AN_BATCH_MS' worth), a failed or refused batch
 * is logged and dropped, never retried; the pipeline's graceful stop
 * flushes before the store closes; and the figures the admin API reads lag
 * the commits by up to CG_AN_BATCH_MS.
 * The unmatched question stays in the commit (operation "an" from
 * cg_analytics_op_make(), in the same round trip as the rest of the turn,
 * guarded by the same seq compare-and-set): fallbacks, ambiguity questions
 * and hand-offs of typed text store the question: NFKC → cg_redact →
 * normalise → cg_redact again, so no digit run, e-mail, phone number or id
 * is ever written.
 *
 * Read side, both routes authorised by cg_admin_auth (admins and
 * supervisors), both one Redis round trip (a read script over the period's
 * keys):
 *   GET /api/v1/admin/stats?from=&to=&channel=&format=json|csv
 *       per day and channel ("rows", only those with any figure), per day
 *       over the channels asked ("days", every day of the period, for
 *       charts) and over the period ("totals"): conversations, messages,
 *       answers per intent, fallback and hand-off rates, median agent wait,
 *       CSAT average. CSV (the rows) with ?format=csv, or Accept: text/csv
 *       when there is no ?format=.
 *   GET /api/v1/admin/unmatched?from=&to=&lang=&min=
 *       the period's stored questions per language, grouped by
 *       cg_analytics_group(), shown only when the group holds at least
 *       analytics.unmatched_min_count questions from as many different
 *       citizens (?min= may raise it, never lower it), each with the nearest
 *       intents of the loaded table (cg_intents_match).
 * Periods: at most STATS_MAX_DAYS / UNM_MAX_DAYS days; default the last 30.
 * Grouping works on at most UNM_MAX_TEXTS distinct questions per language
 * (the most asked), ~n² / 2 similarity checks of a few tokens each, on the
 * libuv thread pool (the reply's questions are copied first; the intent
 * snapshot is immutable and held by a ref), so the loop never waits for it.
 *
 * Extending: a route is a row in cg_analytics_api_routes; a daily counter a
 * name in turn_fields(), a row in row_add_field()'s table, a field
 * in row_json() (and the CSV's cols[] in stats_csv()) and docs/redis.md.
 */
#include "analytics.h"

#include <ctype.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include <cjson/cJSON.h>

#include "admin.h"
#include "api.h"
#include "civicgate/text.h"
#include "log.h"
#include "redact.h"
#include "store.h"

#define STATS_MAX_DAYS   366
#define UNM_MAX_DAYS     92
#define DEFAULT_DAYS     30
#define UNM_MAX_TEXTS    2000
#define UNM_MAX_GROUPS   200     /* shown */
#define NEAREST_MAX      3
#define GROUP_MIN_DOCS   50      /* idf as if among at least this many questions */

static const char *const an_channels[] = { "telegram", "whatsapp", "messenger", "webchat" };
#define AN_NCHAN (sizeof an_channels / sizeof an_channels[0])

/* Wait histogram upper bounds, seconds; then w:inf. */
static const int wait_le[] = { 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400 };
#define NWAIT (sizeof wait_le / sizeof wait_le[0])

/* ---- days ---------------------------------------------------------------- */

/* Days since 1970-01-01 of a civil date (H. Hinnant's algorithm). */
static long days_from_civil(int y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long)doe - 719468;
}

static void day_format(long days, char out[11])
{
    time_t t = (time_t)days * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 11, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

/* "YYYY-MM-DD" → days; -1 when malformed or not a real date. */
static long day_parse(const char *s)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') return -1;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i])) return -1;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    if (y < 2000 || y > 2200 || m < 1 || m > 12 || d < 1 || d > 31) return -1;
    long days = days_from_civil(y, (unsigned)m, (unsigned)d);
    char back[11];
    day_format(days, back);
    return strcmp(back, s) == 0 ? days : -1;   /* 2026-02-30 is refused */
}

void cg_analytics_day(int64_t ms, char out[11])
{
    day_format((long)(ms / 86400000), out);
}

long long cg_analytics_expire_at(const cg_config *cfg, int64_t ms)
{
    long long ttl = cfg && cfg->analytics_ttl_s > 0 ? cfg->analytics_ttl_s : 15552000;
    return (ms / 86400000 + 1) * 86400LL + ttl;
}

/* ---- write side ---------------------------------------------------------- */

void cg_analytics_cid(const char *channel, const char *user, char out[8])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)"civicgate-analytics:", 20);
    crypto_hash_sha256_update(&st, (const unsigned char *)channel, strlen(channel));
    crypto_hash_sha256_update(&st, (const unsigned char *)":", 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)user, strlen(user));
    crypto_hash_sha256_final(&st, h);
    unsigned v = ((unsigned)h[0] << 12) | ((unsigned)h[1] << 4) | (h[2] >> 4);
    snprintf(out, 8, "%05x", v & 0xFFFFFu);
}

static int placeholder_at(const char *s, size_t *len)
{
    static const char *const names[] = { "<email>", "<date>", "<phone>", "<id>", "<num>" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t n = strlen(names[i]);
        if (strncmp(s, names[i], n) == 0) {
            *len = n;
            return 1;
        }
    }
    return 0;
}

static void append(char **buf, size_t *n, size_t *cap, const char *s, size_t len, int *oom)
{
    if (*oom || !len) return;
    if (*n + len + 2 > *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        while (c < *n + len + 2) c *= 2;
        char *p = realloc(*buf, c);
        if (!p) { *oom = 1; return; }
        *buf = p;
        *cap = c;
    }
    if (*n) (*buf)[(*n)++] = ' ';
    memcpy(*buf + *n, s, len);
    *n += len;
    (*buf)[*n] = '\0';
}

char *cg_analytics_text(const char *raw, size_t len, const char *lang)
{
    if (!raw || !len || len > CG_REDACT_MAX_IN || !cg_text_valid_utf8(raw, len)) return NULL;
    char *tmp = malloc(len + 1);
    if (!tmp) return NULL;
    memcpy(tmp, raw, len);
    tmp[len] = '\0';
    /* NFKC first: a fullwidth ＠ or digit is then what the redaction knows */
    char *nfkc = (char *)utf8proc_NFKC((const utf8proc_uint8_t *)tmp);
    free(tmp);
    if (!nfkc) return NULL;
    char *red = cg_redact(nfkc, strlen(nfkc));
    free(nfkc);
    if (!red) return NULL;
    char *out = NULL;
    size_t n = 0, cap = 0;
    int oom = 0;
    const char *p = red, *seg = red;
    for (;;) {
        size_t pl = 0;
        if (*p == '\0' || (*p == '<' && placeholder_at(p, &pl))) {
            if (p > seg) {
                char *norm = cg_text_normalize(seg, (size_t)(p - seg), lang);
                if (norm) append(&out, &n, &cap, norm, strlen(norm), &oom);
                free(norm);
            }
            if (*p == '\0') break;
            append(&out, &n, &cap, p, pl, &oom);
            p += pl;
            seg = p;
        } else {
            p++;
        }
    }
    free(red);
    if (oom || !out) {
        free(out);
        return NULL;
    }
    char *again = cg_redact(out, n);   /* ① ② ③ become digits only when normalised */
    free(out);
    if (!again) return NULL;
    size_t l = strlen(again);
    if (l > CG_AN_TEXT_MAX) {
        l = CG_AN_TEXT_MAX;
        while (l > 0 && again[l] != ' ') l--;    /* at a word: spaces are ASCII */
        again[l] = '\0';
    }
    if (!again[0]) {
        free(again);
        return NULL;
    }
    return again;
}

void cg_analytics_op_free(cg_analytics_op *op)
{
    if (!op) return;
    free(op->unm_field);
    op->unm_field = NULL;
    op->argc = 0;
}

int cg_analytics_op_make(const cg_config *cfg, const cg_analytics_turn *t, cg_analytics_op *op)
{
    memset(op, 0, sizeof *op);
    if (!t || !t->channel || !t->user || !t->channel[0]) return -1;
    /* only a question the bot could not answer is stored: most messages
     * stop here, before any formatting */
    const char *kind = t->handoff ? "handoff" : t->ambiguous ? "ambiguous" : t->fallback ? "fallback" : NULL;
    if (!kind || !t->turn || !t->text || !t->lang || !t->lang[0]) return -1;
    char *q = cg_analytics_text(t->text, strlen(t->text), t->lang);
    if (!q) return -1;
    size_t need = strlen(kind) + strlen(t->channel) + strlen(q) + 3;
    op->unm_field = malloc(need);
    if (!op->unm_field) {
        free(q);
        return -1;
    }
    snprintf(op->unm_field, need, "%s|%s|%s", kind, t->channel, q);
    free(q);
    char day[11];
    cg_analytics_day(t->now_ms, day);
    snprintf(op->ttl, sizeof op->ttl, "%lld", cg_analytics_expire_at(cfg, t->now_ms));
    snprintf(op->day_key, sizeof op->day_key, "cg:an:day:%s:%s", day, t->channel);
    snprintf(op->unm_key, sizeof op->unm_key, "cg:an:unm:%s:%s", day, t->lang);
    cg_analytics_cid(t->channel, t->user, op->cid);
    snprintf(op->max_fields, sizeof op->max_fields, "%d", CG_AN_UNM_FIELDS);
    const char **a = op->argv;
    int n = 0;
    a[n++] = op->ttl;
    a[n++] = op->day_key;
    a[n++] = op->unm_key;
    a[n++] = op->unm_field;
    a[n++] = op->cid;
    a[n++] = op->max_fields;
    op->argc = n;
    return 0;
}

/* ---- the daily counters' batch ------------------------------------------ */

#define FIELD_NAME_MAX  (CG_INTENT_ID_MAX + 3)   /* "i:<intent id>" + NUL */
#define TURN_FIELDS     10                       /* at most per message */

typedef struct an_field {
    char name[FIELD_NAME_MAX];
    long long n;
} an_field;

/* One (day, channel): cg:an:day:<day>:<channel> and cg:an:conv:<day>:<channel>. */
typedef struct an_pair {
    long day;                            /* days since the epoch (UTC) */
    char channel[CG_CHANNEL_MAX];
    long long expire_at;
    an_field f[CG_AN_BATCH_FIELDS];      /* f[0] is "messages" */
    unsigned nf;
    char cid[CG_AN_BATCH_CIDS][8];
    unsigned ncid;
} an_pair;

/* State: owned by whoever called cg_analytics_batch_new (the pipeline);
 * touched on the loop thread only. The flush's reply callback gets only a
 * count, never the batch, so the batch may be freed with a flush in
 * flight. */
struct cg_analytics_batch {
    uv_timer_t timer;                    /* runs while anything is summed */
    cg_store *store;                     /* borrowed */
    const cg_config *cfg;                /* borrowed */
    an_pair pair[CG_AN_BATCH_KEYS];
    unsigned npair;
    size_t messages;                     /* summed since the last flush */
};

/* The counters one message adds, "messages" first; names point into t or
 * static text, intent_buf holds "i:<intent>". Returns how many. */
static unsigned turn_fields(const cg_analytics_turn *t, const char *name[TURN_FIELDS],
                            long long inc[TURN_FIELDS], char intent_buf[FIELD_NAME_MAX])
{
    static const char *const csat_names[] = { "csat:1", "csat:2", "csat:3", "csat:4", "csat:5" };
    unsigned n = 0;
#define ADD(s, v) do { name[n] = (s); inc[n] = (v); n++; } while (0)
    ADD("messages", 1);
    if (t->turn) ADD("turns", 1);
    if (t->agent) ADD("to_agent", 1);
    if (t->turn && t->fallback) ADD("fallback", 1);
    if (t->turn && t->ambiguous) ADD("ambiguous", 1);
    if (t->turn && t->handoff) ADD("handoff", 1);
    if (t->turn && t->intent && t->intent[0] && !t->fallback && !t->ambiguous) {
        snprintf(intent_buf, FIELD_NAME_MAX, "i:%s", t->intent);
        ADD(intent_buf, 1);
    }
    if (t->csat >= 1 && t->csat <= 5) {
        ADD("csat_n", 1);
        ADD("csat_sum", t->csat);
        ADD(csat_names[t->csat - 1], 1);
    }
#undef ADD
    return n;
}

static an_field *pair_field(an_pair *p, const char *name)
{
    for (unsigned i = 0; i < p->nf; i++)
        if (strcmp(p->f[i].name, name) == 0) return &p->f[i];
    return NULL;
}

static int pair_has_cid(const an_pair *p, const char *cid)
{
    for (unsigned i = 0; i < p->ncid; i++)
        if (strcmp(p->cid[i], cid) == 0) return 1;
    return 0;
}

static void batch_due(uv_timer_t *h)
{
    cg_analytics_batch_flush(h->data);
}

cg_analytics_batch *cg_analytics_batch_new(uv_loop_t *loop, cg_store *store, const cg_config *cfg)
{
    cg_analytics_batch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->store = store;
    b->cfg = cfg;
    uv_timer_init(loop, &b->timer);
    b->timer.data = b;
    return b;
}

int cg_analytics_batch_add(cg_analytics_batch *b, const cg_analytics_turn *t)
{
    if (!b || !t || !t->channel || !t->channel[0] || !t->user || strlen(t->channel) >= CG_CHANNEL_MAX) return -1;
    const char *name[TURN_FIELDS];
    long long inc[TURN_FIELDS];
    char intent_buf[FIELD_NAME_MAX], cid[8] = "";
    unsigned nf = turn_fields(t, name, inc, intent_buf);
    cg_analytics_cid(t->channel, t->user, cid);
    long day = (long)(t->now_ms / 86400000);
    an_pair *p = NULL;
    for (unsigned i = 0; i < b->npair && !p; i++)
        if (b->pair[i].day == day && strcmp(b->pair[i].channel, t->channel) == 0) p = &b->pair[i];
    /* does it fit? else send what is there and start again */
    int fits = p ? 1 : b->npair < CG_AN_BATCH_KEYS;
    if (p) {
        unsigned more = 0;
        for (unsigned i = 0; i < nf; i++) more += !pair_field(p, name[i]);
        fits = p->nf + more <= CG_AN_BATCH_FIELDS && (p->ncid < CG_AN_BATCH_CIDS || pair_has_cid(p, cid));
    }
    if (!fits) {
        cg_analytics_batch_flush(b);
        p = NULL;
    }
    if (!p) {
        p = &b->pair[b->npair++];
        p->day = day;
        snprintf(p->channel, sizeof p->channel, "%s", t->channel);
        p->expire_at = cg_analytics_expire_at(b->cfg, t->now_ms);
        p->nf = p->ncid = 0;
    }
    for (unsigned i = 0; i < nf; i++) {
        an_field *f = pair_field(p, name[i]);
        if (!f) {
            f = &p->f[p->nf++];
            snprintf(f->name, sizeof f->name, "%s", name[i]);
            f->n = 0;
        }
        f->n += inc[i];
    }
    if (!pair_has_cid(p, cid)) memcpy(p->cid[p->ncid++], cid, sizeof cid);
    if (b->messages++ == 0) uv_timer_start(&b->timer, batch_due, CG_AN_BATCH_MS, 0);
    return 0;
}

size_t cg_analytics_batch_pending(const cg_analytics_batch *b)
{
    return b ? b->messages : 0;
}

static void batch_lost(size_t messages, const char *reason)
{
    char n[24];
    snprintf(n, sizeof n, "%zu", messages);
    cg_log(CG_LOG_WARN, "analytics_batch_lost", "messages", n, "reason", reason, NULL);
}

static void batch_written(cg_store *s, redisReply *r, void *ud)
{
    (void)s;
    if (!r || r->type == REDIS_REPLY_ERROR)
        batch_lost((size_t)(uintptr_t)ud, r ? r->str : "redis unavailable");
}

/* KEYS per (day, channel) k: 2k-1 the day's hash, 2k its HyperLogLog.
 * ARGV per pair, in the same order: expiry (cg_analytics_expire_at), n, n
 * field, increment pairs ("messages" first), m, m cids. The day's first
 * write (its "messages" coming back equal to the increment) sets the
 * EXPIREAT of both keys: the expiry is absolute, later writes would only
 * set the same value again. */
static cg_store_script batch_script = {
    .name = "analytics_batch",
    .src =
        "local i = 1\n"
        "for k = 1, #KEYS, 2 do\n"
        "  local at, nf = ARGV[i], tonumber(ARGV[i + 1])\n"
        "  i = i + 2\n"
        "  local first = redis.call('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1]) == tonumber(ARGV[i + 1])\n"
        "  for j = i + 2, i + 2 * nf - 1, 2 do redis.call('HINCRBY', KEYS[k], ARGV[j], ARGV[j + 1]) end\n"
        "  i = i + 2 * nf\n"
        "  if first then redis.call('EXPIREAT', KEYS[k], at) end\n"
        "  local nc = tonumber(ARGV[i])\n"
        "  if nc > 0 then\n"
        "    redis.call('PFADD', KEYS[k + 1], unpack(ARGV, i + 1, i + nc))\n"
        "    if first then redis.call('EXPIREAT', KEYS[k + 1], at) end\n"
        "  end\n"
        "  i = i + 1 + nc\n"
        "end\n"
        "return 1\n",
};

size_t cg_analytics_batch_flush(cg_analytics_batch *b)
{
    if (!b) return 0;
    uv_timer_stop(&b->timer);
    size_t messages = b->messages;
    if (!messages) return 0;
    cg_args a = { .n = 0 };
    char day[11], key[64];
    for (unsigned k = 0; k < b->npair; k++) {
        const an_pair *p = &b->pair[k];
        day_format(p->day, day);
        snprintf(key, sizeof key, "cg:an:day:%s:%s", day, p->channel);
        cg_args_add(&a, key);
        snprintf(key, sizeof key, "cg:an:conv:%s:%s", day, p->channel);
        cg_args_add(&a, key);
    }
    for (unsigned k = 0; k < b->npair; k++) {
        const an_pair *p = &b->pair[k];
        cg_args_addi(&a, p->expire_at);
        cg_args_addi(&a, p->nf);
        for (unsigned i = 0; i < p->nf; i++) {
            cg_args_add(&a, p->f[i].name);
            cg_args_addi(&a, p->f[i].n);
        }
        cg_args_addi(&a, p->ncid);
        for (unsigned i = 0; i < p->ncid; i++) cg_args_add(&a, p->cid[i]);
    }
    int nkeys = 2 * (int)b->npair;
    b->npair = 0;
    b->messages = 0;
    if (a.oom)
        batch_lost(messages, "out of memory");
    else if (cg_store_eval(b->store, &batch_script, nkeys, a.n, cg_args_argv(&a), a.len, batch_written,
                           (void *)(uintptr_t)messages) != 0)
        batch_lost(messages, "redis unavailable");
    cg_args_free(&a);
    return messages;
}

static void batch_closed(uv_handle_t *h)
{
    free(h->data);
}

void cg_analytics_batch_free(cg_analytics_batch *b)
{
    if (!b) return;
    if (b->messages) batch_lost(b->messages, "dropped unsent");
    uv_timer_stop(&b->timer);
    uv_close((uv_handle_t *)&b->timer, batch_closed);
}

static void case_written(cg_store *s, redisReply *r, void *ud)
{
    (void)s;
    (void)ud;
    if (!r || r->type == REDIS_REPLY_ERROR)
        cg_log(CG_LOG_WARN, "analytics_write_failed", "reason", r ? r->str : "redis unavailable", NULL);
}

/* KEYS 1 the day's hash; ARGV 1 its expiry (cg_analytics_expire_at), then field,
 * increment pairs. */
static cg_store_script case_script = {
    .name = "analytics_case",
    .src =
        "for i = 2, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end\n"
        "redis.call('EXPIREAT', KEYS[1], ARGV[1])\n"
        "return 1\n",
};

void cg_analytics_record_case(cg_gateway *gw, const char *channel, long long wait_ms, int csat)
{
    if (!gw || !gw->store || !channel || !channel[0] || strlen(channel) >= 32) return;
    if (wait_ms < 0 && (csat < 1 || csat > 5)) return;
    char day[11], key[64], ttl[24], wsum[24], bucket[16], score[8], csatf[16];
    cg_analytics_day(cg_store_now_ms(), day);
    snprintf(key, sizeof key, "cg:an:day:%s:%s", day, channel);
    snprintf(ttl, sizeof ttl, "%lld", cg_analytics_expire_at(gw->cfg, cg_store_now_ms()));
    const char *argv[16];
    int n = 0;
    argv[n++] = key;
    argv[n++] = ttl;
    if (wait_ms >= 0) {
        snprintf(wsum, sizeof wsum, "%lld", wait_ms);
        size_t b = 0;
        while (b < NWAIT && wait_ms > (long long)wait_le[b] * 1000) b++;
        if (b < NWAIT) snprintf(bucket, sizeof bucket, "w:%d", wait_le[b]);
        else snprintf(bucket, sizeof bucket, "w:inf");
        argv[n++] = "wait_n"; argv[n++] = "1";
        argv[n++] = "wait_ms_sum"; argv[n++] = wsum;
        argv[n++] = bucket; argv[n++] = "1";
    }
    if (csat >= 1 && csat <= 5) {
        snprintf(score, sizeof score, "%d", csat);
        snprintf(csatf, sizeof csatf, "csat:%d", csat);
        argv[n++] = "csat_n"; argv[n++] = "1";
        argv[n++] = "csat_sum"; argv[n++] = score;
        argv[n++] = csatf; argv[n++] = "1";
    }
    if (cg_store_eval(gw->store, &case_script, 1, n, argv, NULL, case_written, NULL) != 0)
        cg_log(CG_LOG_WARN, "analytics_write_failed", "reason", "redis unavailable", NULL);
}

/* ---- grouping ------------------------------------------------------------- */

typedef struct grp_tok { char *s; double w; } grp_tok;
typedef struct grp_set { size_t *ids; size_t n; } grp_set;   /* sorted token ids */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Weighted Jaccard of two sorted id sets. */
static double set_sim(const grp_set *a, const grp_set *b, const double *w)
{
    double inter = 0, uni = 0;
    size_t i = 0, j = 0;
    while (i < a->n || j < b->n) {
        if (j >= b->n || (i < a->n && a->ids[i] < b->ids[j])) uni += w[a->ids[i++]];
        else if (i >= a->n || b->ids[j] < a->ids[i]) uni += w[b->ids[j++]];
        else { inter += w[a->ids[i]]; uni += w[a->ids[i]]; i++; j++; }
    }
    return uni > 0 ? inter / uni : 0;
}

int cg_analytics_group(const char *const *texts, size_t n, const char *lang, double threshold,
                       size_t *group_of)
{
    int rc = -1;
    cg_text_ctx *ctx = cg_text_ctx_new();
    cg_tokens *tok = calloc(n ? n : 1, sizeof *tok);
    grp_set *sets = calloc(n ? n : 1, sizeof *sets);
    char **all = NULL, **vocab = NULL;
    double *df = NULL;
    size_t nall = 0, nv = 0, *reps = NULL, nreps = 0;
    if (!ctx || !tok || !sets) goto out;
    for (size_t i = 0; i < n; i++) {
        if (cg_text_tokenize(ctx, texts[i], lang, 1, &tok[i]) != 0) goto out;
        nall += tok[i].n;
    }
    /* vocabulary: every distinct token, sorted */
    all = malloc((nall ? nall : 1) * sizeof *all);
    if (!all) goto out;
    nall = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < tok[i].n; k++) all[nall++] = tok[i].v[k];
    qsort(all, nall, sizeof *all, cmp_str);
    vocab = malloc((nall ? nall : 1) * sizeof *vocab);
    df = calloc(nall ? nall : 1, sizeof *df);
    if (!vocab || !df) goto out;
    for (size_t i = 0; i < nall; i++)
        if (!nv || strcmp(vocab[nv - 1], all[i]) != 0) vocab[nv++] = all[i];
    /* each text's set of token ids; document frequencies */
    for (size_t i = 0; i < n; i++) {
        sets[i].ids = malloc((tok[i].n ? tok[i].n : 1) * sizeof(size_t));
        if (!sets[i].ids) goto out;
        for (size_t k = 0; k < tok[i].n; k++) {
            char **f = bsearch(&tok[i].v[k], vocab, nv, sizeof *vocab, cmp_str);
            sets[i].ids[sets[i].n++] = (size_t)(f - vocab);
        }
        qsort(sets[i].ids, sets[i].n, sizeof(size_t), cmp_size);
        size_t u = 0;
        for (size_t k = 0; k < sets[i].n; k++)
            if (!u || sets[i].ids[u - 1] != sets[i].ids[k]) sets[i].ids[u++] = sets[i].ids[k];
        sets[i].n = u;
        for (size_t k = 0; k < u; k++) df[sets[i].ids[k]] += 1;
    }
    /* now the weight: inverse document frequency, over at least
     * GROUP_MIN_DOCS texts, so that in a handful of questions all on one
     * topic the topic's words still weigh (plain Jaccard, in effect), and in
     * many, "how do I" weighs little */
    double docs = n > GROUP_MIN_DOCS ? (double)n : GROUP_MIN_DOCS;
    for (size_t v = 0; v < nv; v++) df[v] = log(1.0 + docs / df[v]);
    reps = malloc((n ? n : 1) * sizeof *reps);
    if (!reps) goto out;
    for (size_t i = 0; i < n; i++) {
        size_t best = SIZE_MAX;
        double bs = threshold;
        for (size_t g = 0; g < nreps; g++) {
            double s = set_sim(&sets[i], &sets[reps[g]], df);
            if (s >= bs && (best == SIZE_MAX || s > bs)) {
                bs = s;
                best = reps[g];
            }
        }
        if (best == SIZE_MAX || sets[i].n == 0) {
            /* an empty set joins nothing, except an identical empty text */
            best = i;
            if (sets[i].n == 0)
                for (size_t g = 0; g < nreps; g++)
                    if (strcmp(texts[reps[g]], texts[i]) == 0) { best = reps[g]; break; }
            if (best == i) reps[nreps++] = i;
        }
        group_of[i] = best;
    }
    rc = 0;
out:
    if (tok)
        for (size_t i = 0; i < n; i++) cg_tokens_free(&tok[i]);
    if (sets)
        for (size_t i = 0; i < n; i++) free(sets[i].ids);
    free(tok);
    free(sets);
    free(all);
    free(vocab);
    free(df);
    free(reps);
    cg_text_ctx_free(ctx);
    return rc;
}

/* ---- read side: common ----------------------------------------------------- */

/* KEYS none (the period's key names are built here: no cluster, as every
 * script of the gateway); ARGV: daily hash, HLL pairs → per pair
 * {HGETALL, PFCOUNT}. */
static cg_store_script stats_read_script = {
    .name = "analytics_stats",
    .src =
        "local r = {}\n"
        "for i = 1, #ARGV, 2 do\n"
        "  r[#r + 1] = {redis.call('HGETALL', ARGV[i]), redis.call('PFCOUNT', ARGV[i + 1])}\n"
        "end\n"
        "return r\n",
};

/* ARGV: unmatched hashes → per hash its HGETALL. */
static cg_store_script unm_read_script = {
    .name = "analytics_unmatched",
    .src =
        "local r = {}\n"
        "for i = 1, #ARGV do r[#r + 1] = redis.call('HGETALL', ARGV[i]) end\n"
        "return r\n",
};

typedef struct an_period { long from, to; char from_s[11], to_s[11]; } an_period;

/* ?from= and ?to= (YYYY-MM-DD, UTC), default the last DEFAULT_DAYS days to
 * today; answers 400 and returns -1 when invalid or longer than max_days. */
static int period_parse(const cg_api_req *req, cg_api_call *call, long max_days, an_period *p)
{
    char f[32] = "", t[32] = "";
    long today = (long)(cg_store_now_ms() / 86400000);
    int hf = cg_api_query(req, "from", f, sizeof f) == 0 && f[0];
    int ht = cg_api_query(req, "to", t, sizeof t) == 0 && t[0];
    p->to = ht ? day_parse(t) : today;
    p->from = hf ? day_parse(f) : p->to - (DEFAULT_DAYS - 1);
    if (p->to < 0 || p->from < 0) {
        cg_api_error(call, 400, "from and to must be dates YYYY-MM-DD");
        return -1;
    }
    if (p->from > p->to) {
        cg_api_error(call, 400, "from must not be after to");
        return -1;
    }
    if (p->to - p->from + 1 > max_days) {
        char m[80];
        snprintf(m, sizeof m, "the period may be at most %ld days", max_days);
        cg_api_error(call, 400, m);
        return -1;
    }
    day_format(p->from, p->from_s);
    day_format(p->to, p->to_s);
    return 0;
}

static size_t period_days(const an_period *p)
{
    return (size_t)(p->to - p->from + 1);
}

/* What each read route's context starts with (stats_ctx, unm_ctx). */
typedef struct an_read {
    cg_api_req *req;              /* owned: freed with the context */
    cg_api_call *call;
    an_period p;
} an_read;

/* A route's context: size bytes, zeroed, an_read first, holding copy and
 * call. NULL after answering 500 (copy freed). */
static void *read_new(size_t size, cg_api_req *copy, cg_api_call *call)
{
    an_read *rd = calloc(1, size);
    if (!rd) {
        cg_api_req_free(copy);
        cg_api_error(call, 500, "out of memory");
        return NULL;
    }
    rd->req = copy;
    rd->call = call;
    return rd;
}

/* Sends script with the period's keys "<prefix>:<day>:<suffix>" as ARGV:
 * per day, per suffix, one key per prefix in that order; reply gets ud.
 * 0 when sent; else answers 503 and returns -1 (ud stays the caller's). */
static int read_eval(an_read *rd, cg_store_script *script, const char *const *prefixes, size_t nprefix,
                     const char *const *suffixes, size_t nsuffix, cg_store_reply_fn reply, void *ud)
{
    size_t ndays = period_days(&rd->p), argc = ndays * nsuffix * nprefix;
    char (*keys)[64] = malloc((argc ? argc : 1) * sizeof *keys);
    const char **argv = malloc((argc ? argc : 1) * sizeof *argv);
    int rc = -1;
    if (keys && argv) {
        size_t n = 0;
        for (size_t d = 0; d < ndays; d++) {
            char day[11];
            day_format(rd->p.from + (long)d, day);
            for (size_t k = 0; k < nsuffix; k++)
                for (size_t i = 0; i < nprefix; i++, n++) {
                    snprintf(keys[n], 64, "%s:%s:%s", prefixes[i], day, suffixes[k]);
                    argv[n] = keys[n];
                }
        }
        rc = cg_store_eval(rd->req->gw->store, script, 0, (int)n, argv, NULL, reply, ud);
    }
    free(keys);
    free(argv);
    if (rc != 0) cg_api_error(rd->call, 503, "storage unavailable, retry later");
    return rc;
}

/* 1 when r, the read script's reply, holds per_day elements for each day of
 * the period; else answers 503 and returns 0 (the caller frees its context). */
static int read_reply_ok(const an_read *rd, const redisReply *r, size_t per_day)
{
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == period_days(&rd->p) * per_day) return 1;
    cg_api_error(rd->call, 503, "storage unavailable, retry later");
    return 0;
}

static long long int_of(const redisReply *r)
{
    if (!r) return 0;
    if (r->type == REDIS_REPLY_INTEGER) return r->integer;
    if (r->type == REDIS_REPLY_STRING) return strtoll(r->str, NULL, 10);
    return 0;
}

/* Conversations from a PFCOUNT of 20-bit members: distinct values d out of
 * M = 2^20 come from about n = -M ln(1 - d/M) conversations. */
static long long conv_estimate(long long d)
{
    const double M = 1048576.0;
    if (d <= 0) return 0;
    if (d >= M) return d;
    return llround(-M * log(1.0 - (double)d / M));
}

/* ---- stats ----------------------------------------------------------------- */

typedef struct an_row {
    long long conversations, messages, turns, fallback, ambiguous, handoff, to_agent;
    long long wait_n, wait_ms_sum, csat_n, csat_sum, answered, unmatched_dropped;
    long long wait[NWAIT + 1];
    cJSON *answers;           /* {"intent": n} */
} an_row;

static void row_add_field(an_row *r, const char *f, long long v)
{
    static const struct { const char *name; size_t off; } fields[] = {
        {"messages", offsetof(an_row, messages)},   {"turns", offsetof(an_row, turns)},
        {"fallback", offsetof(an_row, fallback)},   {"ambiguous", offsetof(an_row, ambiguous)},
        {"handoff", offsetof(an_row, handoff)},     {"to_agent", offsetof(an_row, to_agent)},
        {"wait_n", offsetof(an_row, wait_n)},       {"wait_ms_sum", offsetof(an_row, wait_ms_sum)},
        {"csat_n", offsetof(an_row, csat_n)},       {"csat_sum", offsetof(an_row, csat_sum)},
        {"unmatched_dropped", offsetof(an_row, unmatched_dropped)},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (strcmp(f, fields[i].name) == 0) {
            *(long long *)((char *)r + fields[i].off) += v;
            return;
        }
    if (strncmp(f, "i:", 2) == 0 && f[2]) {
        cJSON *x = cJSON_GetObjectItemCaseSensitive(r->answers, f + 2);
        if (x) cJSON_SetNumberValue(x, x->valuedouble + (double)v);
        else cJSON_AddNumberToObject(r->answers, f + 2, (double)v);
        r->answered += v;
        return;
    }
    if (strncmp(f, "w:", 2) == 0) {
        if (strcmp(f + 2, "inf") == 0) { r->wait[NWAIT] += v; return; }
        int le = atoi(f + 2);
        for (size_t i = 0; i < NWAIT; i++)
            if (wait_le[i] == le) { r->wait[i] += v; return; }
    }
}

static void row_merge(an_row *into, const an_row *r)
{
    into->conversations += r->conversations;
    into->messages += r->messages;
    into->turns += r->turns;
    into->fallback += r->fallback;
    into->ambiguous += r->ambiguous;
    into->handoff += r->handoff;
    into->to_agent += r->to_agent;
    into->wait_n += r->wait_n;
    into->wait_ms_sum += r->wait_ms_sum;
    into->csat_n += r->csat_n;
    into->csat_sum += r->csat_sum;
    into->unmatched_dropped += r->unmatched_dropped;
    for (size_t i = 0; i <= NWAIT; i++) into->wait[i] += r->wait[i];
    const cJSON *a;
    cJSON_ArrayForEach(a, r->answers) {
        char f[80];
        snprintf(f, sizeof f, "i:%s", a->string);
        row_add_field(into, f, (long long)a->valuedouble);
    }
}

/* Median wait in seconds from the histogram, interpolated within the
 * bucket that holds the middle case; -1 when no case. */
static double row_median_wait(const an_row *r)
{
    long long total = 0;
    for (size_t i = 0; i <= NWAIT; i++) total += r->wait[i];
    if (total <= 0) return -1;
    double half = (double)total / 2.0, cum = 0;
    for (size_t i = 0; i <= NWAIT; i++) {
        if (r->wait[i] == 0) continue;
        if (cum + (double)r->wait[i] >= half) {
            double lo = i == 0 ? 0 : wait_le[i - 1];
            if (i == NWAIT) return lo;
            double hi = wait_le[i];
            return lo + (hi - lo) * (half - cum) / (double)r->wait[i];
        }
        cum += (double)r->wait[i];
    }
    return -1;
}

static double ratio(long long a, long long b) { return b > 0 ? (double)a / (double)b : 0; }

static double round3(double v) { return round(v * 1000.0) / 1000.0; }

static cJSON *row_json(const an_row *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "conversations", (double)r->conversations);
    cJSON_AddNumberToObject(o, "messages", (double)r->messages);
    cJSON_AddNumberToObject(o, "bot_turns", (double)r->turns);
    cJSON_AddNumberToObject(o, "answered", (double)r->answered);
    cJSON_AddNumberToObject(o, "fallbacks", (double)r->fallback);
    cJSON_AddNumberToObject(o, "ambiguous", (double)r->ambiguous);
    cJSON_AddNumberToObject(o, "handoffs", (double)r->handoff);
    cJSON_AddNumberToObject(o, "to_agent", (double)r->to_agent);
    cJSON_AddNumberToObject(o, "fallback_rate", round3(ratio(r->fallback, r->turns)));
    cJSON_AddNumberToObject(o, "handoff_rate", round3(ratio(r->handoff, r->conversations)));
    cJSON_AddNumberToObject(o, "cases", (double)r->wait_n);
    double med = row_median_wait(r);
    if (med >= 0) cJSON_AddNumberToObject(o, "median_wait_s", round3(med));
    else cJSON_AddNullToObject(o, "median_wait_s");
    if (r->csat_n > 0) cJSON_AddNumberToObject(o, "csat_avg", round3(ratio(r->csat_sum, r->csat_n)));
    else cJSON_AddNullToObject(o, "csat_avg");
    cJSON_AddNumberToObject(o, "csat_n", (double)r->csat_n);
    cJSON_AddItemToObject(o, "answers", cJSON_Duplicate(r->answers, 1));
    return o;
}

/* row_json() with "day" (and "channel" unless NULL) first, for readers;
 * NULL on allocation failure. */
static cJSON *row_json_at(const an_row *r, const char *day, const char *channel)
{
    cJSON *o = row_json(r);
    if (!o) return NULL;
    cJSON *ordered = cJSON_CreateObject();
    if (!ordered) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddStringToObject(ordered, "day", day);
    if (channel) cJSON_AddStringToObject(ordered, "channel", channel);
    cJSON *it = o->child;
    while (it) {
        cJSON *next = it->next;
        cJSON_AddItemToObject(ordered, it->string, cJSON_DetachItemViaPointer(o, it));
        it = next;
    }
    cJSON_Delete(o);
    return ordered;
}

typedef struct stats_ctx {
    an_read rd;                   /* first: made by read_new() */
    int csv;
    size_t nchan;
    const char *chans[AN_NCHAN];
} stats_ctx;

static void stats_ctx_free(stats_ctx *c)
{
    cg_api_req_free(c->rd.req);
    free(c);
}

/* CSV field: quoted when it holds a comma, quote or newline. */
static void csv_field(char **buf, size_t *n, size_t *cap, const char *s, int *oom)
{
    int q = strpbrk(s, ",\"\n\r") != NULL;
    size_t need = strlen(s) * 2 + 4;
    if (*oom) return;
    if (*n + need + 1 > *cap) {
        size_t c = *cap ? *cap * 2 : 4096;
        while (c < *n + need + 1) c *= 2;
        char *p = realloc(*buf, c);
        if (!p) { *oom = 1; return; }
        *buf = p;
        *cap = c;
    }
    if (q) (*buf)[(*n)++] = '"';
    for (const char *p = s; *p; p++) {
        if (*p == '"') (*buf)[(*n)++] = '"';
        (*buf)[(*n)++] = *p;
    }
    if (q) (*buf)[(*n)++] = '"';
    (*buf)[*n] = '\0';
}

static void csv_sep(char **buf, size_t *n, size_t *cap, char c, int *oom)
{
    if (*oom) return;
    if (*n + 2 > *cap) {
        size_t nc = *cap ? *cap * 2 : 4096;
        char *p = realloc(*buf, nc);
        if (!p) { *oom = 1; return; }
        *buf = p;
        *cap = nc;
    }
    (*buf)[(*n)++] = c;
    (*buf)[*n] = '\0';
}

/* The JSON answer as CSV: one line per day and channel; per-intent answers
 * as columns "answers:<intent id>" (every intent of the period). */
static char *stats_csv(const cJSON *doc, size_t *len)
{
    static const char *const cols[] = { "day", "channel", "conversations", "messages", "bot_turns",
                                        "answered", "fallbacks", "ambiguous", "handoffs", "to_agent",
                                        "fallback_rate", "handoff_rate", "cases", "median_wait_s",
                                        "csat_avg", "csat_n" };
    const size_t ncol = sizeof cols / sizeof cols[0];
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(doc, "rows");
    cJSON *intents = cJSON_CreateObject();
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int oom = !intents;
    const cJSON *r, *a;
    cJSON_ArrayForEach(r, rows) {
        cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(r, "answers"))
            if (!cJSON_GetObjectItemCaseSensitive(intents, a->string)) cJSON_AddTrueToObject(intents, a->string);
    }
    for (size_t i = 0; i < ncol; i++) {
        if (i) csv_sep(&buf, &n, &cap, ',', &oom);
        csv_field(&buf, &n, &cap, cols[i], &oom);
    }
    cJSON_ArrayForEach(a, intents) {
        char h[96];
        snprintf(h, sizeof h, "answers:%s", a->string);
        csv_sep(&buf, &n, &cap, ',', &oom);
        csv_field(&buf, &n, &cap, h, &oom);
    }
    csv_sep(&buf, &n, &cap, '\n', &oom);
    cJSON_ArrayForEach(r, rows) {
        for (size_t i = 0; i < ncol; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, cols[i]);
            char num[48] = "";
            const char *s = num;
            if (cJSON_IsString(v)) s = v->valuestring;
            else if (cJSON_IsNumber(v)) snprintf(num, sizeof num, "%.10g", v->valuedouble);
            if (i) csv_sep(&buf, &n, &cap, ',', &oom);
            csv_field(&buf, &n, &cap, s, &oom);
        }
        const cJSON *ans = cJSON_GetObjectItemCaseSensitive(r, "answers");
        cJSON_ArrayForEach(a, intents) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(ans, a->string);
            char num[32];
            snprintf(num, sizeof num, "%.0f", cJSON_IsNumber(v) ? v->valuedouble : 0.0);
            csv_sep(&buf, &n, &cap, ',', &oom);
            csv_field(&buf, &n, &cap, num, &oom);
        }
        csv_sep(&buf, &n, &cap, '\n', &oom);
    }
    cJSON_Delete(intents);
    if (oom) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static void stats_reply(cg_store *s, redisReply *r, void *ud)
{
    stats_ctx *c = ud;
    (void)s;
    if (!read_reply_ok(&c->rd, r, c->nchan)) {
        stats_ctx_free(c);
        return;
    }
    size_t ndays = period_days(&c->rd.p);
    cJSON *doc = cJSON_CreateObject(), *rows = cJSON_CreateArray();
    an_row total = { 0 };
    total.answers = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "from", c->rd.p.from_s);
    cJSON_AddStringToObject(doc, "to", c->rd.p.to_s);
    cJSON *chans = cJSON_AddArrayToObject(doc, "channels");
    for (size_t k = 0; k < c->nchan; k++) cJSON_AddItemToArray(chans, cJSON_CreateString(c->chans[k]));
    cJSON *days = cJSON_CreateArray();
    for (size_t d = 0; d < ndays; d++) {
        char day[11];
        day_format(c->rd.p.from + (long)d, day);
        an_row dayrow = { 0 };   /* every channel of the day (the wait histograms merge exactly) */
        dayrow.answers = cJSON_CreateObject();
        for (size_t k = 0; k < c->nchan; k++) {
            const redisReply *e = r->element[d * c->nchan + k];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) continue;
            const redisReply *h = e->element[0];
            an_row row = { 0 };
            row.answers = cJSON_CreateObject();
            row.conversations = conv_estimate(int_of(e->element[1]));
            for (size_t i = 0; h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2)
                if (h->element[i]->type == REDIS_REPLY_STRING)
                    row_add_field(&row, h->element[i]->str, int_of(h->element[i + 1]));
            if (row.messages || row.wait_n || row.csat_n) {
                cJSON *o = row_json_at(&row, day, c->chans[k]);
                if (o) cJSON_AddItemToArray(rows, o);
                row_merge(&total, &row);
                row_merge(&dayrow, &row);
            }
            cJSON_Delete(row.answers);
        }
        cJSON *dj = row_json_at(&dayrow, day, NULL);
        if (dj) cJSON_AddItemToArray(days, dj);
        cJSON_Delete(dayrow.answers);
    }
    cJSON_AddItemToObject(doc, "rows", rows);
    cJSON_AddItemToObject(doc, "days", days);
    cJSON_AddItemToObject(doc, "totals", row_json(&total));
    cJSON_Delete(total.answers);
    if (c->csv) {
        size_t len = 0;
        char *csv = stats_csv(doc, &len);
        cJSON_Delete(doc);
        if (csv) cg_api_respond(c->rd.call, 200, "text/csv; charset=utf-8", csv, len);
        else cg_api_error(c->rd.call, 500, "out of memory");
        free(csv);
    } else {
        cg_api_json(c->rd.call, 200, doc);
    }
    stats_ctx_free(c);
}

static void stats_authorised(cg_api_req *copy, cg_api_call *call, const char *who, const char *role)
{
    (void)who;
    (void)role;
    stats_ctx *c = read_new(sizeof *c, copy, call);
    if (!c) return;
    char fmt[16] = "", ch[32] = "";
    if (cg_api_query(copy, "format", fmt, sizeof fmt) == 0 && fmt[0]) {
        if (strcmp(fmt, "csv") == 0) c->csv = 1;
        else if (strcmp(fmt, "json") != 0) {
            cg_api_error(call, 400, "format must be json or csv");
            stats_ctx_free(c);
            return;
        }
    } else if (copy->accept) {   /* Accept: text/csv, when ?format= does not say */
        char acc[128];
        size_t i = 0;
        for (; copy->accept[i] && i + 1 < sizeof acc; i++) acc[i] = (char)tolower((unsigned char)copy->accept[i]);
        acc[i] = '\0';
        if (strstr(acc, "text/csv")) c->csv = 1;
    }
    if (cg_api_query(copy, "channel", ch, sizeof ch) == 0 && ch[0]) {
        for (size_t k = 0; k < AN_NCHAN; k++)
            if (strcmp(ch, an_channels[k]) == 0) c->chans[c->nchan++] = an_channels[k];
        if (!c->nchan) {
            cg_api_error(call, 400, "channel must be telegram, whatsapp, messenger or webchat");
            stats_ctx_free(c);
            return;
        }
    } else {
        for (size_t k = 0; k < AN_NCHAN; k++) c->chans[c->nchan++] = an_channels[k];
    }
    if (period_parse(copy, call, STATS_MAX_DAYS, &c->rd.p) != 0) {
        stats_ctx_free(c);
        return;
    }
    static const char *const keys[] = { "cg:an:day", "cg:an:conv" };   /* per day and channel */
    if (read_eval(&c->rd, &stats_read_script, keys, 2, c->chans, c->nchan, stats_reply, c) != 0) stats_ctx_free(c);
}

static void route_stats(const cg_api_req *req, cg_api_call *call)
{
    cg_admin_auth(req, call, 1 /* supervisors too */, stats_authorised);
}

/* ---- unmatched ------------------------------------------------------------- */

static const char *const unm_kinds[] = { "fallback", "ambiguous", "handoff" };
#define NKINDS 3
#define ITEM_CIDS 64

typedef struct unm_item {
    char *text;                   /* owned */
    long long count;
    long long kinds[NKINDS], chans[AN_NCHAN];
    uint32_t cids[ITEM_CIDS];
    size_t ncids;
} unm_item;

typedef struct unm_ctx {
    an_read rd;                   /* first: made by read_new() */
    int min;
    size_t nlang;
    char langs[16][CG_LANG_MAX];
    /* the grouping, on the thread pool: items in, doc out */
    uv_work_t work;
    cg_intents *t;                /* ref held until done */
    unm_item *items[16];
    size_t nitems[16];
    cJSON *doc;
    int oom;
} unm_ctx;

static void unm_ctx_free(unm_ctx *c)
{
    for (size_t l = 0; l < 16; l++) {
        for (size_t i = 0; c->items[l] && i < c->nitems[l]; i++) free(c->items[l][i].text);
        free(c->items[l]);
    }
    if (c->t) cg_intents_unref(c->t);
    cJSON_Delete(c->doc);
    cg_api_req_free(c->rd.req);
    free(c);
}

static void cids_add(uint32_t *v, size_t *n, uint32_t x)
{
    for (size_t i = 0; i < *n; i++)
        if (v[i] == x) return;
    if (*n < ITEM_CIDS) v[(*n)++] = x;
}

static int item_cmp_text(const void *a, const void *b)
{
    return strcmp(((const unm_item *)a)->text, ((const unm_item *)b)->text);
}

static int item_cmp_count(const void *a, const void *b)
{
    const unm_item *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return strcmp(x->text, y->text);
}

/* One stored field "<kind>|<channel>|<text>" = "<count> <cid>,..." into it
 * (text copied); -1 when malformed. */
static int item_parse(const redisReply *f, const redisReply *v, unm_item *it)
{
    if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) return -1;
    const char *k = f->str, *b1 = strchr(k, '|'), *b2 = b1 ? strchr(b1 + 1, '|') : NULL;
    if (!b2 || !b2[1]) return -1;
    memset(it, 0, sizeof *it);
    for (size_t i = 0; i < NKINDS; i++)
        if (strlen(unm_kinds[i]) == (size_t)(b1 - k) && !strncmp(k, unm_kinds[i], (size_t)(b1 - k))) {
            it->kinds[i] = 1;
        }
    it->count = strtoll(v->str, NULL, 10);
    if (it->count <= 0) return -1;
    for (size_t i = 0; i < NKINDS; i++) it->kinds[i] *= it->count;
    for (size_t i = 0; i < AN_NCHAN; i++)
        if (strlen(an_channels[i]) == (size_t)(b2 - b1 - 1) && !strncmp(b1 + 1, an_channels[i], (size_t)(b2 - b1 - 1)))
            it->chans[i] = it->count;
    const char *ids = strchr(v->str, ' ');
    while (ids && *ids) {
        ids++;
        char *end;
        unsigned long x = strtoul(ids, &end, 16);
        if (end == ids) break;
        cids_add(it->cids, &it->ncids, (uint32_t)x);
        ids = strchr(end, ',');
    }
    it->text = strdup(b2 + 1);
    return it->text ? 0 : -1;
}

static void item_merge(unm_item *into, const unm_item *x)
{
    into->count += x->count;
    for (size_t i = 0; i < NKINDS; i++) into->kinds[i] += x->kinds[i];
    for (size_t i = 0; i < AN_NCHAN; i++) into->chans[i] += x->chans[i];
    for (size_t i = 0; i < x->ncids; i++) cids_add(into->cids, &into->ncids, x->cids[i]);
}

typedef struct unm_group { size_t rep; unm_item sum; size_t ntexts; } unm_group;

static int group_cmp(const void *a, const void *b)
{
    const unm_group *x = a, *y = b;
    if (x->sum.count != y->sum.count) return x->sum.count > y->sum.count ? -1 : 1;
    return x->rep < y->rep ? -1 : x->rep > y->rep;
}

/* Groups of one language's items into arr; returns groups hidden by the
 * minimum, or -1 on allocation failure. */
static long unm_language(cg_intents *t, const char *lang, unm_item *items, size_t n, int min, cJSON *arr)
{
    /* merge identical texts (several days, kinds, channels) */
    qsort(items, n, sizeof *items, item_cmp_text);
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        if (u && strcmp(items[u - 1].text, items[i].text) == 0) {
            item_merge(&items[u - 1], &items[i]);
            free(items[i].text);
            items[i].text = NULL;
        } else {
            items[u++] = items[i];
        }
    }
    for (size_t i = u; i < n; i++) items[i].text = NULL;   /* moved or freed: one owner each */
    qsort(items, u, sizeof *items, item_cmp_count);
    size_t used = u < UNM_MAX_TEXTS ? u : UNM_MAX_TEXTS;
    const char **texts = malloc((used ? used : 1) * sizeof *texts);
    size_t *gof = malloc((used ? used : 1) * sizeof *gof);
    unm_group *groups = calloc(used ? used : 1, sizeof *groups);
    long hidden = -1;
    if (!texts || !gof || !groups) goto out;
    for (size_t i = 0; i < used; i++) texts[i] = items[i].text;
    if (cg_analytics_group(texts, used, lang, CG_AN_GROUP_THRESHOLD, gof) != 0) goto out;
    size_t ng = 0;
    for (size_t i = 0; i < used; i++) {
        size_t g = 0;
        while (g < ng && groups[g].rep != gof[i]) g++;
        if (g == ng) {
            groups[ng].rep = gof[i];
            ng++;
        }
        item_merge(&groups[g].sum, &items[i]);
        groups[g].ntexts++;
    }
    qsort(groups, ng, sizeof *groups, group_cmp);
    hidden = 0;
    size_t shown = 0;
    for (size_t g = 0; g < ng; g++) {
        const unm_group *gr = &groups[g];
        if (gr->sum.count < min || (long long)gr->sum.ncids < min) {
            hidden++;
            continue;
        }
        if (shown >= UNM_MAX_GROUPS) continue;
        shown++;
        const char *ex = items[gr->rep].text;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "lang", lang);
        cJSON_AddStringToObject(o, "example", ex);
        cJSON_AddNumberToObject(o, "count", (double)gr->sum.count);
        cJSON_AddNumberToObject(o, "citizens", (double)gr->sum.ncids);
        cJSON_AddNumberToObject(o, "texts", (double)gr->ntexts);
        cJSON *k = cJSON_AddObjectToObject(o, "kinds");
        for (size_t i = 0; i < NKINDS; i++) cJSON_AddNumberToObject(k, unm_kinds[i], (double)gr->sum.kinds[i]);
        cJSON *ch = cJSON_AddObjectToObject(o, "channels");
        for (size_t i = 0; i < AN_NCHAN; i++)
            if (gr->sum.chans[i]) cJSON_AddNumberToObject(ch, an_channels[i], (double)gr->sum.chans[i]);
        cJSON *near = cJSON_AddArrayToObject(o, "nearest");
        cg_match m;
        if (t && cg_intents_match(t, ex, strlen(ex), lang, &m) == 0) {
            for (size_t i = 0; i < m.nalt && i < NEAREST_MAX; i++) {
                const cg_intent *in = m.alt[i].intent;
                if (!in) continue;
                cJSON *x = cJSON_CreateObject();
                cJSON_AddStringToObject(x, "id", in->id);
                const char *title = cg_i18n_get(&in->title, lang, t->settings.default_language);
                cJSON_AddStringToObject(x, "title", title ? title : in->id);
                cJSON_AddNumberToObject(x, "score", round3(m.alt[i].score));
                cJSON_AddItemToArray(near, x);
            }
        }
        cJSON_AddItemToArray(arr, o);
    }
out:
    free(texts);
    free(gof);
    free(groups);
    return hidden;
}

/* Pool thread: group every language's questions into c->doc. Touches only
 * c (and the immutable intent snapshot c->t). */
static void unm_work(uv_work_t *w)
{
    unm_ctx *c = w->data;
    cJSON *doc = cJSON_CreateObject();
    if (!doc) { c->oom = 1; return; }
    c->doc = doc;
    cJSON_AddStringToObject(doc, "from", c->rd.p.from_s);
    cJSON_AddStringToObject(doc, "to", c->rd.p.to_s);
    cJSON_AddNumberToObject(doc, "min_count", c->min);
    cJSON *langs = cJSON_AddArrayToObject(doc, "languages");
    cJSON *groups = cJSON_AddArrayToObject(doc, "groups");
    long hidden = 0;
    for (size_t l = 0; l < c->nlang && !c->oom; l++) {
        cJSON_AddItemToArray(langs, cJSON_CreateString(c->langs[l]));
        long hid = unm_language(c->t, c->langs[l], c->items[l], c->nitems[l], c->min, groups);
        if (hid < 0) c->oom = 1;
        else hidden += hid;
    }
    cJSON_AddNumberToObject(doc, "hidden_groups", (double)hidden);
}

/* Loop thread: answer and free. */
static void unm_done(uv_work_t *w, int status)
{
    unm_ctx *c = w->data;
    if (status != 0 || c->oom || !c->doc) {
        cg_api_error(c->rd.call, status == UV_ECANCELED ? 503 : 500,
                     status == UV_ECANCELED ? "stopping" : "out of memory");
    } else {
        cg_api_json(c->rd.call, 200, c->doc);
        c->doc = NULL;
    }
    unm_ctx_free(c);
}

static void unm_reply(cg_store *s, redisReply *r, void *ud)
{
    unm_ctx *c = ud;
    (void)s;
    if (!read_reply_ok(&c->rd, r, c->nlang)) {
        unm_ctx_free(c);
        return;
    }
    size_t ndays = period_days(&c->rd.p);
    /* copy what the pool thread needs: the reply lives only for this call */
    for (size_t l = 0; l < c->nlang; l++) {
        size_t cap = 0;
        for (size_t d = 0; d < ndays; d++) {
            const redisReply *h = r->element[d * c->nlang + l];
            if (h->type == REDIS_REPLY_ARRAY) cap += h->elements / 2;
        }
        c->items[l] = calloc(cap ? cap : 1, sizeof *c->items[l]);
        if (!c->items[l]) {
            cg_api_error(c->rd.call, 500, "out of memory");
            unm_ctx_free(c);
            return;
        }
        for (size_t d = 0; d < ndays; d++) {
            const redisReply *h = r->element[d * c->nlang + l];
            for (size_t i = 0; h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2)
                if (item_parse(h->element[i], h->element[i + 1], &c->items[l][c->nitems[l]]) == 0) c->nitems[l]++;
        }
    }
    c->t = c->rd.req->gw->intents ? cg_intents_ref(c->rd.req->gw->intents) : NULL;
    c->work.data = c;
    if (uv_queue_work(c->rd.req->gw->loop, &c->work, unm_work, unm_done) != 0) {
        unm_work(&c->work);   /* no pool: do it here */
        unm_done(&c->work, 0);
    }
}

static void unm_authorised(cg_api_req *copy, cg_api_call *call, const char *who, const char *role)
{
    (void)who;
    (void)role;
    unm_ctx *c = read_new(sizeof *c, copy, call);
    if (!c) return;
    const cg_config *cfg = copy->gw->cfg;
    c->min = cfg && cfg->analytics_min_count > 0 ? cfg->analytics_min_count : 3;
    char lang[32] = "", min[16] = "";
    if (cg_api_query(copy, "min", min, sizeof min) == 0 && min[0]) {
        char *end;
        long v = strtol(min, &end, 10);
        if (*end || v < 1 || v > 1000000) {
            cg_api_error(call, 400, "min must be a positive integer");
            unm_ctx_free(c);
            return;
        }
        if (v > c->min) c->min = (int)v;   /* raised, never lowered below the configured minimum */
    }
    cg_intents *t = copy->gw->intents;
    if (cg_api_query(copy, "lang", lang, sizeof lang) == 0 && lang[0]) {
        int known = 0;
        for (size_t i = 0; t && i < t->settings.nlanguages; i++)
            if (strcmp(t->settings.languages[i], lang) == 0) known = 1;
        if (!known || strlen(lang) >= CG_LANG_MAX) {
            cg_api_error(call, 400, "lang must be one of the intent table's languages");
            unm_ctx_free(c);
            return;
        }
        snprintf(c->langs[c->nlang++], CG_LANG_MAX, "%s", lang);
    } else {
        for (size_t i = 0; t && i < t->settings.nlanguages && c->nlang < 16; i++)
            snprintf(c->langs[c->nlang++], CG_LANG_MAX, "%s", t->settings.languages[i]);
    }
    if (period_parse(copy, call, UNM_MAX_DAYS, &c->rd.p) != 0) {
        unm_ctx_free(c);
        return;
    }
    static const char *const keys[] = { "cg:an:unm" };   /* per day and language */
    const char *langs[16];
    for (size_t l = 0; l < c->nlang; l++) langs[l] = c->langs[l];
    if (read_eval(&c->rd, &unm_read_script, keys, 1, langs, c->nlang, unm_reply, c) != 0) unm_ctx_free(c);
}

static void route_unmatched(const cg_api_req *req, cg_api_call *call)
{
    cg_admin_auth(req, call, 1 /* supervisors too */, unm_authorised);
}

const cg_api_route cg_analytics_api_routes[] = {
    {"GET", "/api/v1/admin/unmatched", route_unmatched},
    {"GET", "/api/v1/admin/stats", route_stats},
    {NULL, NULL, NULL},
};

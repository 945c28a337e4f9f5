/*
 * citizens.c: export and erasure of one citizen's data (citizens.h), the one
 * place that knows where a citizen's data lives in Redis.
 *
 * A job walks these steps, one Redis round trip at a time, on the loop
 * thread (nothing blocks Redis for long: every step is bounded):
 *   ZSETS    cit_zsets[]: the member "<channel>:<user>" (ZSCORE / ZREM)
 *   STREAMS  cit_streams[]: entries whose fields name the citizen, CIT_CHUNK
 *            entries per call of the "cit_stream" script (XRANGE from an
 *            exclusive start, match, XDEL when erasing), at most
 *            CIT_STREAM_CALLS calls per stream
 *   AGENTS   erasure only: cg_agents_erase() (agents.h) deletes the
 *            conversation's hand-off cases (cg:cases:{c:u}) and tells the
 *            consoles
 *   RECORDS  cit_records[]: hashes <prefix><id> (SCAN MATCH <prefix>*) whose
 *            fields "channel" and "user" name the citizen, with the sets
 *            that list their id (the "cit_record" script per SCAN reply:
 *            HGETALL for the export; DEL, ZREM/SREM for the erasure)
 *   SCAN     SCAN MATCH *{<channel>:<user>}* COUNT CIT_SCAN_COUNT: every key
 *            with the conversation's hash tag, at most CIT_MAX_KEYS keys and
 *            CIT_SCAN_CALLS calls
 *   KEYS     erase: UNLINK CIT_KEYS_PER_CALL at a time; export: the
 *            "cit_dump" script returns each key's type, TTL and value (at
 *            most CIT_DUMP_MAX elements per key)
 * Erasure removes the shared entries first, so that nothing in flight
 * recreates a key after the SCAN; a limit reached makes "complete" false
 * (the caller erases again); a Redis failure ends the job with
 * CG_E_UNAVAILABLE (erasure is idempotent: run it again).
 *
 * Extending: a module that keeps per-citizen data outside keys tagged
 * {channel:user} adds a row to cit_streams[], cit_zsets[] or cit_records[]
 * (and a line in docs/redis.md); a key made with cg_store_key() needs
 * nothing here.
 */
#include "citizens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents.h"
#include "audit.h"
#include "log.h"
#include "store.h"

#define CIT_CHUNK          "1000"   /* stream entries per script call */
#define CIT_STREAM_CALLS   1000     /* per stream: 1,000,000 entries looked at */
#define CIT_STREAM_EXPORT  10000    /* matched entries exported per stream */
#define CIT_SCAN_COUNT     "1000"
#define CIT_SCAN_CALLS     100000   /* SCAN calls: 100 M keys */
#define CIT_MAX_KEYS       10000    /* keys of one citizen */
#define CIT_KEYS_PER_CALL  32
#define CIT_DUMP_MAX       "100000" /* elements exported per key */
#define CIT_BATCH_MAX      4096     /* keys of one SCAN reply checked at once */

/* ---- where a citizen's data is, besides the tagged keys ----------------- */

enum { CIT_ERASE = 1, CIT_EXPORT = 2, CIT_DELIVERY = 4 };
typedef enum { CIT_MATCH_FIELDS = 0, CIT_MATCH_TARGET } cit_match;

typedef struct cit_stream {
    const char *name;            /* in the export */
    const char *key;
    cit_match match;             /* fields "channel" and "user", or "target" = "<channel>:<user>" */
    unsigned flags;
} cit_stream;

static const cit_stream cit_streams[] = {
    {"flows", CG_K_FLOWS, CIT_MATCH_FIELDS, CIT_ERASE | CIT_EXPORT},
    {"inbox", CG_K_INBOX, CIT_MATCH_FIELDS, CIT_ERASE | CIT_EXPORT | CIT_DELIVERY},
    {"outbox", CG_K_OUTBOX, CIT_MATCH_FIELDS, CIT_ERASE | CIT_EXPORT | CIT_DELIVERY},
    {"deadletter", CG_K_DEADLETTER, CIT_MATCH_FIELDS, CIT_ERASE | CIT_EXPORT},
    {"audit", CG_K_AUDIT, CIT_MATCH_TARGET, CIT_EXPORT},
    {NULL, NULL, 0, 0},
};

typedef struct cit_zset {
    const char *name;
    const char *key;             /* member "<channel>:<user>" */
} cit_zset;

static const cit_zset cit_zsets[] = {
    {"agent_queue", CG_K_AGENTS_Q},
    {NULL, NULL},
};

/* Records: hashes named <prefix><id> whose fields "channel" and "user" name
 * the citizen (found by SCAN MATCH <prefix>*), and the sets or sorted sets
 * that list their <id> (a "<field>" in a set's name is replaced by that
 * field of the record, e.g. the agent holding a case). */
#define CIT_RECORD_SETS 6
typedef struct cit_record {
    const char *name;
    const char *prefix;
    const char *sets[CIT_RECORD_SETS];   /* NULL-terminated */
} cit_record;

static const cit_record cit_records[] = {
    /* the agents' hand-off cases (issue 5) */
    {"cases", "cg:case:", {CG_K_AGENTS_Q, "cg:cases:assigned", "cg:cases:resolved", "cg:agent:held:<agent>", NULL}},
    {NULL, NULL, {NULL}},
};

/* ---- scripts ------------------------------------------------------------ */

/* KEYS[1] stream; ARGV: 1 start (exclusive "(id" or "-"), 2 count, 3 "fields"
 * or "target", 4 channel, 5 user, 6 "<channel>:<user>", 7 erase "1"/"0",
 * 8 export "1"/"0" → {last id or "", entries looked at, deleted, {id, fields, ...}} */
static cg_store_script cit_stream_script = {
    .name = "cit_stream",
    .src =
        "local e = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])\n"
        "local last, got, del = '', {}, 0\n"
        "for _, x in ipairs(e) do\n"
        "  last = x[1]\n"
        "  local f, ch, us, tg = x[2], nil, nil, nil\n"
        "  for i = 1, #f, 2 do\n"
        "    if f[i] == 'channel' then ch = f[i + 1]\n"
        "    elseif f[i] == 'user' then us = f[i + 1]\n"
        "    elseif f[i] == 'target' then tg = f[i + 1] end\n"
        "  end\n"
        "  local hit\n"
        "  if ARGV[3] == 'target' then hit = tg == ARGV[6] else hit = ch == ARGV[4] and us == ARGV[5] end\n"
        "  if hit then\n"
        "    if ARGV[8] == '1' then got[#got + 1] = x[1]; got[#got + 1] = f end\n"
        "    if ARGV[7] == '1' then redis.call('XDEL', KEYS[1], x[1]); del = del + 1 end\n"
        "  end\n"
        "end\n"
        "return {last, #e, del, got}\n",
};

/* KEYS: keys of one citizen (one hash tag, one slot); ARGV[1] max elements
 * → per key {key, type, pttl, value} (stream: {id, fields, ...}; zset: with
 * scores; a key gone meanwhile: type "none"). */
static cg_store_script cit_dump_script = {
    .name = "cit_dump",
    .src =
        "local out, n = {}, tonumber(ARGV[1])\n"
        "for _, k in ipairs(KEYS) do\n"
        "  local t = redis.call('TYPE', k)['ok']\n"
        "  local d = {}\n"
        "  if t == 'string' then d = {redis.call('GET', k)}\n"
        "  elseif t == 'hash' then d = redis.call('HGETALL', k)\n"
        "  elseif t == 'set' then d = redis.call('SRANDMEMBER', k, n)\n"
        "  elseif t == 'zset' then d = redis.call('ZRANGE', k, 0, n - 1, 'WITHSCORES')\n"
        "  elseif t == 'list' then d = redis.call('LRANGE', k, 0, n - 1)\n"
        "  elseif t == 'stream' then\n"
        "    for _, x in ipairs(redis.call('XRANGE', k, '-', '+', 'COUNT', n)) do\n"
        "      d[#d + 1] = x[1]; d[#d + 1] = x[2]\n"
        "    end\n"
        "  end\n"
        "  out[#out + 1] = {k, t, redis.call('PTTL', k), d}\n"
        "end\n"
        "return out\n",
};

/* KEYS: candidate records; ARGV: 1 channel, 2 user, 3 erase "1"/"0",
 * 4 export "1"/"0", 5 prefix length, 6 number of sets, 7.. the sets
 * → {removed (records + memberships), {key, {field, value, ...}, ...}} */
static cg_store_script cit_record_script = {
    .name = "cit_record",
    .src =
        "local out, del = {}, 0\n"
        "for _, k in ipairs(KEYS) do\n"
        "  if redis.call('TYPE', k)['ok'] == 'hash' then\n"
        "    local f = redis.call('HMGET', k, 'channel', 'user')\n"
        "    if f[1] == ARGV[1] and f[2] == ARGV[2] then\n"
        "      local id = string.sub(k, tonumber(ARGV[5]) + 1)\n"
        "      if ARGV[4] == '1' then out[#out + 1] = k; out[#out + 1] = redis.call('HGETALL', k) end\n"
        "      if ARGV[3] == '1' then\n"
        "        for i = 7, 6 + tonumber(ARGV[6]) do\n"
        "          local sk = (string.gsub(ARGV[i], '<(%w+)>', function(fl) return redis.call('HGET', k, fl) or '' end))\n"
        "          local t = redis.call('TYPE', sk)['ok']\n"
        "          if t == 'zset' then del = del + redis.call('ZREM', sk, id)\n"
        "          elseif t == 'set' then del = del + redis.call('SREM', sk, id) end\n"
        "        end\n"
        "        del = del + redis.call('DEL', k)\n"
        "      end\n"
        "    end\n"
        "  end\n"
        "end\n"
        "return {del, out}\n",
};

/* ---- validation ----------------------------------------------------------- */

int cg_citizens_valid(const char *channel, const char *user)
{
    if (!channel || !user) return -1;
    if (strcmp(channel, "webchat") != 0 && !cg_connector_find(channel)) return -1;
    size_t n = strlen(user);
    if (n == 0 || n >= CG_USER_MAX) return -1;
    for (size_t i = 0; i < n; i++) {
        char c = user[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == ':' || c == '@' || c == '+' || c == '=' || c == '-'))
            return -1;
    }
    return 0;
}

/* ---- the job ------------------------------------------------------------ */

typedef enum { ST_ZSETS = 0, ST_STREAMS, ST_AGENTS, ST_RECORDS, ST_SCAN, ST_KEYS, ST_DONE } cit_step;

typedef struct cit_job {
    cg_gateway *gw;
    int erase;
    cg_citizens_mode mode;
    char channel[CG_CHANNEL_MAX], user[CG_USER_MAX];
    char member[CG_CHANNEL_MAX + CG_USER_MAX + 1];   /* "<channel>:<user>" */
    char pattern[CG_CHANNEL_MAX + CG_USER_MAX + 8];  /* "*{<channel>:<user>}*" */
    char seq_key[CG_KEY_MAX];                          /* kept in KEEP_DELIVERY mode */
    char who[64], role[16];
    cit_step step;
    size_t idx;                  /* row of cit_zsets / cit_streams */
    char start[64];              /* stream: next exclusive start */
    unsigned calls;
    size_t matched;
    char cursor[32];
    char **keys;
    size_t nkeys, key_i;
    cg_citizens_counts counts;
    int found;
    char **batch;                /* ST_RECORDS: keys of one SCAN reply */
    size_t nbatch;
    int record_scan_done;
    cJSON *doc, *jkeys, *jstreams, *jzsets, *jrecords;
    cg_citizens_erase_cb erase_cb;
    cg_citizens_export_cb export_cb;
    void *ud;
} cit_job;

static void cit_next(cit_job *j);

static void cit_free(cit_job *j)
{
    for (size_t i = 0; i < j->nkeys; i++) free(j->keys[i]);
    free(j->keys);
    for (size_t i = 0; i < j->nbatch; i++) free(j->batch[i]);
    free(j->batch);
    cJSON_Delete(j->doc);
    free(j);
}

static void cit_end(cit_job *j, cg_err result)
{
    if (j->erase) {
        if (result == CG_OK) {
            char detail[96], k[24], e[24];
            snprintf(detail, sizeof detail, "keys=%zu entries=%zu%s", j->counts.keys, j->counts.entries,
                     j->counts.complete ? "" : " incomplete");
            cg_audit(j->gw, j->who, j->role, "erase", j->member, detail);
            snprintf(k, sizeof k, "%zu", j->counts.keys);
            snprintf(e, sizeof e, "%zu", j->counts.entries);
            cg_log(CG_LOG_INFO, "citizen_erased", "channel", j->channel, "user", cg_log_user(j->user), "keys", k,
                   "entries", e, "by", j->role, "complete", j->counts.complete ? "true" : "false", NULL);
        } else {
            cg_log(CG_LOG_WARN, "citizen_erase_failed", "channel", j->channel, "user", cg_log_user(j->user), "by",
                   j->role, NULL);
        }
        if (j->erase_cb) j->erase_cb(j->ud, result, &j->counts);
    } else {
        cJSON *doc = NULL;
        if (result == CG_OK) {
            cJSON_AddBoolToObject(j->doc, "found", j->found);
            cJSON_AddBoolToObject(j->doc, "complete", j->counts.complete);
            doc = j->doc;
            j->doc = NULL;
        }
        j->export_cb(j->ud, result, doc);
    }
    cit_free(j);
}

/* ---- reply → JSON ------------------------------------------------------- */

static cJSON *reply_json(const redisReply *r)
{
    if (!r) return cJSON_CreateNull();
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS: return cJSON_CreateString(r->str ? r->str : "");
    case REDIS_REPLY_INTEGER: return cJSON_CreateNumber((double)r->integer);
    case REDIS_REPLY_ARRAY: {
        cJSON *a = cJSON_CreateArray();
        for (size_t i = 0; a && i < r->elements; i++) cJSON_AddItemToArray(a, reply_json(r->element[i]));
        return a;
    }
    default: return cJSON_CreateNull();
    }
}

/* [f, v, f, v] → {f: v} */
static cJSON *pairs_json(const redisReply *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !r || r->type != REDIS_REPLY_ARRAY) return o;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING) continue;
        cJSON_AddItemToObject(o, k->str, reply_json(v));
    }
    return o;
}

/* [id, fields, id, fields] → [{"id", "fields": {}}] */
static void entries_json(cJSON *arr, const redisReply *r, size_t *n, size_t max)
{
    if (!arr || !r || r->type != REDIS_REPLY_ARRAY) return;
    for (size_t i = 0; i + 1 < r->elements && *n < max; i += 2, (*n)++) {
        cJSON *e = cJSON_CreateObject();
        if (!e) return;
        cJSON_AddItemToObject(e, "id", reply_json(r->element[i]));
        cJSON_AddItemToObject(e, "fields", pairs_json(r->element[i + 1]));
        cJSON_AddItemToArray(arr, e);
    }
}

/* One key of the dump: {key, type, pttl, value}. */
static void dump_key(cit_job *j, const redisReply *k)
{
    if (k->type != REDIS_REPLY_ARRAY || k->elements != 4 || k->element[0]->type != REDIS_REPLY_STRING ||
        k->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *type = k->element[1]->str;
    if (!strcmp(type, "none")) return;   /* expired or deleted since the SCAN */
    const redisReply *v = k->element[3];
    cJSON *o = cJSON_CreateObject();
    if (!o) return;
    cJSON_AddStringToObject(o, "type", type);
    long long ttl = k->element[2]->type == REDIS_REPLY_INTEGER ? k->element[2]->integer : -1;
    if (ttl >= 0) cJSON_AddNumberToObject(o, "ttl_ms", (double)ttl);
    else cJSON_AddNullToObject(o, "ttl_ms");
    if (!strcmp(type, "string")) {
        cJSON_AddItemToObject(o, "value", v->type == REDIS_REPLY_ARRAY && v->elements ? reply_json(v->element[0])
                                                                                       : cJSON_CreateNull());
    } else if (!strcmp(type, "hash")) {
        cJSON_AddItemToObject(o, "value", pairs_json(v));
    } else if (!strcmp(type, "stream")) {
        cJSON *a = cJSON_AddArrayToObject(o, "value");
        size_t n = 0;
        entries_json(a, v, &n, (size_t)-1);
    } else if (!strcmp(type, "zset")) {
        cJSON *a = cJSON_AddArrayToObject(o, "value");
        for (size_t i = 0; a && v->type == REDIS_REPLY_ARRAY && i + 1 < v->elements; i += 2) {
            cJSON *m = cJSON_CreateObject();
            if (!m) break;
            cJSON_AddItemToObject(m, "member", reply_json(v->element[i]));
            cJSON_AddItemToObject(m, "score", reply_json(v->element[i + 1]));
            cJSON_AddItemToArray(a, m);
        }
    } else {
        cJSON_AddItemToObject(o, "value", reply_json(v));
    }
    cJSON_AddItemToObject(j->jkeys, k->element[0]->str, o);
    j->found = 1;
}

/* ---- steps -------------------------------------------------------------- */

static int reply_bad(const redisReply *r)
{
    return !r || r->type == REDIS_REPLY_ERROR;
}

/* The job of a reply callback (ud); NULL when r is missing or an error (the
 * job then ended: CG_E_UNAVAILABLE). */
static cit_job *reply_job(void *ud, const redisReply *r)
{
    cit_job *j = ud;
    if (reply_bad(r)) {
        cit_end(j, CG_E_UNAVAILABLE);
        return NULL;
    }
    return j;
}

static void zset_reply(cg_store *s, redisReply *r, void *ud)
{
    (void)s;
    cit_job *j = reply_job(ud, r);
    if (!j) return;
    if (j->erase) {
        if (r->type == REDIS_REPLY_INTEGER) j->counts.entries += (size_t)r->integer;
    } else if (r->type == REDIS_REPLY_STRING) {   /* ZSCORE: held */
        cJSON *z = cJSON_CreateObject();
        if (z) {
            cJSON_AddStringToObject(z, "member", j->member);
            cJSON_AddNumberToObject(z, "score", strtod(r->str, NULL));
            cJSON_AddItemToObject(j->jzsets, cit_zsets[j->idx].name, z);
        }
        j->found = 1;
    }
    j->idx++;
    cit_next(j);
}

static int stream_wanted(const cit_job *j, const cit_stream *st)
{
    if (!st->key) return 0;
    if (j->erase) return (st->flags & CIT_ERASE) && !(j->mode == CG_CITIZENS_KEEP_DELIVERY && (st->flags & CIT_DELIVERY));
    return (st->flags & CIT_EXPORT) != 0;
}

static void stream_reply(cg_store *s, redisReply *r, void *ud)
{
    cit_job *j = ud;
    (void)s;
    if (reply_bad(r) || r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_INTEGER) {
        cit_end(j, CG_E_UNAVAILABLE);
        return;
    }
    const cit_stream *st = &cit_streams[j->idx];
    if (r->element[2]->type == REDIS_REPLY_INTEGER) j->counts.entries += (size_t)r->element[2]->integer;
    if (!j->erase && r->element[3]->type == REDIS_REPLY_ARRAY && r->element[3]->elements) {
        cJSON *a = cJSON_GetObjectItemCaseSensitive(j->jstreams, st->name);
        if (!a) a = cJSON_AddArrayToObject(j->jstreams, st->name);
        size_t before = j->matched;
        entries_json(a, r->element[3], &j->matched, CIT_STREAM_EXPORT);
        if (j->matched > before && (st->flags & CIT_ERASE)) j->found = 1;   /* the audit log alone is not "held" */
        if (j->matched >= CIT_STREAM_EXPORT) j->counts.complete = 0;
    }
    long long seen = r->element[1]->integer;
    j->calls++;
    if (seen < atoll(CIT_CHUNK) || r->element[0]->len == 0) {
        j->idx++;                    /* this stream is done */
    } else if (j->calls >= CIT_STREAM_CALLS) {
        j->counts.complete = 0;
        j->idx++;
    } else {
        snprintf(j->start, sizeof j->start, "(%s", r->element[0]->str);
        cit_next(j);
        return;
    }
    j->calls = 0;
    j->matched = 0;
    strcpy(j->start, "-");
    cit_next(j);
}

static void batch_clear(cit_job *j)
{
    for (size_t i = 0; i < j->nbatch; i++) free(j->batch[i]);
    j->nbatch = 0;
}

/* The keys of r, a SCAN reply {cursor, keys} whose cursor fits j->cursor;
 * NULL when r is not one (the job then ended: CG_E_UNAVAILABLE). */
static const redisReply *scan_keys(cit_job *j, const redisReply *r)
{
    if (reply_bad(r) || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY ||
        r->element[0]->len >= sizeof j->cursor) {
        cit_end(j, CG_E_UNAVAILABLE);
        return NULL;
    }
    return r->element[1];
}

/* One key of scan_keys(): its name, or NULL when it is not a key name that
 * fits CG_KEY_MAX (passed over). */
static const char *scan_key(const redisReply *k)
{
    return k->type == REDIS_REPLY_STRING && k->len < CG_KEY_MAX ? k->str : NULL;
}

/* After a SCAN reply (scan_keys): keeps its cursor and counts the call.
 * 1 when the scan is over: the cursor is back at 0, full (enough found), or
 * CIT_SCAN_CALLS calls made (then the search is not complete). */
static int scan_over(cit_job *j, const redisReply *r, int full)
{
    memcpy(j->cursor, r->element[0]->str, r->element[0]->len + 1);
    j->calls++;
    if (!strcmp(j->cursor, "0") || full) return 1;
    if (j->calls >= CIT_SCAN_CALLS) {
        j->counts.complete = 0;
        return 1;
    }
    return 0;
}

/* The end of one record row's SCAN: the next row. */
static void record_row_done(cit_job *j)
{
    j->idx++;
    j->calls = 0;
    j->record_scan_done = 0;
    strcpy(j->cursor, "0");
}

static void record_reply(cg_store *s, redisReply *r, void *ud)
{
    cit_job *j = ud;
    (void)s;
    batch_clear(j);
    if (reply_bad(r) || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        cit_end(j, CG_E_UNAVAILABLE);
        return;
    }
    j->counts.entries += (size_t)r->element[0]->integer;
    const redisReply *got = r->element[1];
    if (!j->erase && got->type == REDIS_REPLY_ARRAY && got->elements) {
        cJSON *a = cJSON_GetObjectItemCaseSensitive(j->jrecords, cit_records[j->idx].name);
        if (!a) a = cJSON_AddArrayToObject(j->jrecords, cit_records[j->idx].name);
        for (size_t i = 0; a && i + 1 < got->elements; i += 2) {
            cJSON *o = cJSON_CreateObject();
            if (!o) break;
            cJSON_AddItemToObject(o, "key", reply_json(got->element[i]));
            cJSON_AddItemToObject(o, "fields", pairs_json(got->element[i + 1]));
            cJSON_AddItemToArray(a, o);
            j->found = 1;
        }
    }
    if (j->record_scan_done) record_row_done(j);
    cit_next(j);
}

static void record_scan_reply(cg_store *s, redisReply *r, void *ud)
{
    cit_job *j = ud;
    (void)s;
    const redisReply *ks = scan_keys(j, r);
    if (!ks) return;
    batch_clear(j);
    if (ks->elements > CIT_BATCH_MAX) j->counts.complete = 0;
    if (ks->elements && !j->batch && !(j->batch = calloc(CIT_BATCH_MAX, sizeof *j->batch))) {
        cit_end(j, CG_E_NOMEM);
        return;
    }
    for (size_t i = 0; i < ks->elements && j->nbatch < CIT_BATCH_MAX; i++) {
        const char *k = scan_key(ks->element[i]);
        if (!k) continue;
        if (!(j->batch[j->nbatch] = strdup(k))) {
            cit_end(j, CG_E_NOMEM);
            return;
        }
        j->nbatch++;
    }
    if (scan_over(j, r, 0)) j->record_scan_done = 1;
    if (!j->nbatch && j->record_scan_done) record_row_done(j);
    cit_next(j);
}

/* cg_agents_erase(): the hand-off cases, with the consoles told. */
static void agents_erased(cg_err result, size_t n, void *ud)
{
    cit_job *j = ud;
    if (result != CG_OK) {
        cit_end(j, CG_E_UNAVAILABLE);
        return;
    }
    j->counts.entries += n;
    j->step = ST_RECORDS;
    j->idx = 0;
    strcpy(j->cursor, "0");
    j->calls = 0;
    j->record_scan_done = 0;
    cit_next(j);
}

static void scan_reply(cg_store *s, redisReply *r, void *ud)
{
    cit_job *j = ud;
    (void)s;
    const redisReply *ks = scan_keys(j, r);
    if (!ks) return;
    for (size_t i = 0; i < ks->elements; i++) {
        const char *k = scan_key(ks->element[i]);
        if (!k) continue;
        if (j->erase && j->mode == CG_CITIZENS_KEEP_DELIVERY && !strcmp(k, j->seq_key)) continue;
        if (j->nkeys >= CIT_MAX_KEYS) {
            j->counts.complete = 0;
            break;
        }
        if (!j->keys && !(j->keys = calloc(CIT_MAX_KEYS, sizeof *j->keys))) {
            cit_end(j, CG_E_NOMEM);
            return;
        }
        if (!(j->keys[j->nkeys] = strdup(k))) {
            cit_end(j, CG_E_NOMEM);
            return;
        }
        j->nkeys++;
    }
    if (scan_over(j, r, j->nkeys >= CIT_MAX_KEYS)) j->step = ST_KEYS;
    cit_next(j);
}

static void keys_reply(cg_store *s, redisReply *r, void *ud)
{
    (void)s;
    cit_job *j = reply_job(ud, r);
    if (!j) return;
    if (j->erase) {
        if (r->type == REDIS_REPLY_INTEGER) j->counts.keys += (size_t)r->integer;
    } else if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++) dump_key(j, r->element[i]);
    }
    cit_next(j);
}

/* Sends the job's next command; ends it when there is none. */
static void cit_next(cit_job *j)
{
    cg_store *st = j->gw->store;
    int rc = 0;
    for (;;) {
        if (j->step == ST_ZSETS) {
            if (!cit_zsets[j->idx].key) {
                j->step = ST_STREAMS;
                j->idx = 0;
                strcpy(j->start, "-");
                continue;
            }
            const char *av[] = {j->erase ? "ZREM" : "ZSCORE", cit_zsets[j->idx].key, j->member};
            rc = cg_store_cmd(st, zset_reply, j, 3, av, NULL);
        } else if (j->step == ST_STREAMS) {
            if (!cit_streams[j->idx].name) {
                j->step = ST_AGENTS;
                continue;
            }
            if (!stream_wanted(j, &cit_streams[j->idx])) {
                j->idx++;
                continue;
            }
            const cit_stream *s = &cit_streams[j->idx];
            const char *av[] = {s->key, j->start, CIT_CHUNK, s->match == CIT_MATCH_TARGET ? "target" : "fields",
                                j->channel, j->user, j->member, j->erase ? "1" : "0", j->erase ? "0" : "1"};
            rc = cg_store_eval(st, &cit_stream_script, 1, 9, av, NULL, stream_reply, j);
        } else if (j->step == ST_AGENTS) {
            if (!j->erase) {             /* the export reads cases as records */
                agents_erased(CG_OK, 0, j);
                return;
            }
            cg_agents_erase(st, j->channel, j->user, agents_erased, j);
            return;
        } else if (j->step == ST_RECORDS) {
            const cit_record *rec = &cit_records[j->idx];
            if (!rec->name) {
                j->step = ST_SCAN;
                strcpy(j->cursor, "0");
                j->calls = 0;
                continue;
            }
            if (j->nbatch) {   /* the keys of the last SCAN reply: check them */
                const char *av[CIT_BATCH_MAX + 6 + CIT_RECORD_SETS];
                char plen[16], nsets[16];
                size_t ns = 0;
                while (ns < CIT_RECORD_SETS && rec->sets[ns]) ns++;
                snprintf(plen, sizeof plen, "%zu", strlen(rec->prefix));
                snprintf(nsets, sizeof nsets, "%zu", ns);
                int ac = 0;
                for (size_t i = 0; i < j->nbatch; i++) av[ac++] = j->batch[i];
                av[ac++] = j->channel;
                av[ac++] = j->user;
                av[ac++] = j->erase ? "1" : "0";
                av[ac++] = j->erase ? "0" : "1";
                av[ac++] = plen;
                av[ac++] = nsets;
                for (size_t i = 0; i < ns; i++) av[ac++] = rec->sets[i];
                rc = cg_store_eval(st, &cit_record_script, (int)j->nbatch, ac, av, NULL, record_reply, j);
            } else {
                char pat[CG_KEY_MAX];
                snprintf(pat, sizeof pat, "%s*", rec->prefix);
                const char *av[] = {"SCAN", j->cursor, "MATCH", pat, "COUNT", CIT_SCAN_COUNT};
                rc = cg_store_cmd(st, record_scan_reply, j, 6, av, NULL);
            }
        } else if (j->step == ST_SCAN) {
            const char *av[] = {"SCAN", j->cursor, "MATCH", j->pattern, "COUNT", CIT_SCAN_COUNT};
            rc = cg_store_cmd(st, scan_reply, j, 6, av, NULL);
        } else if (j->step == ST_KEYS) {
            if (j->key_i >= j->nkeys) {
                j->step = ST_DONE;
                continue;
            }
            size_t n = j->nkeys - j->key_i < CIT_KEYS_PER_CALL ? j->nkeys - j->key_i : CIT_KEYS_PER_CALL;
            const char *av[CIT_KEYS_PER_CALL + 2];
            int ac = 0;
            if (j->erase) av[ac++] = "UNLINK";
            for (size_t i = 0; i < n; i++) av[ac++] = j->keys[j->key_i + i];
            j->key_i += n;
            if (j->erase) {
                rc = cg_store_cmd(st, keys_reply, j, ac, av, NULL);
            } else {
                av[ac++] = CIT_DUMP_MAX;
                rc = cg_store_eval(st, &cit_dump_script, (int)n, ac, av, NULL, keys_reply, j);
            }
        } else {
            cit_end(j, CG_OK);
            return;
        }
        break;
    }
    if (rc != 0) cit_end(j, CG_E_UNAVAILABLE);
}

static cit_job *cit_new(cg_gateway *gw, const char *channel, const char *user)
{
    cit_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->gw = gw;
    snprintf(j->channel, sizeof j->channel, "%s", channel);
    snprintf(j->user, sizeof j->user, "%s", user);
    snprintf(j->member, sizeof j->member, "%s:%s", channel, user);
    snprintf(j->pattern, sizeof j->pattern, "*{%s:%s}*", channel, user);
    if (cg_store_key(j->seq_key, sizeof j->seq_key, "seq", channel, user) != 0) j->seq_key[0] = '\0';
    j->counts.complete = 1;
    j->step = ST_ZSETS;
    return j;
}

void cg_citizens_erase(cg_gateway *gw, const char *channel, const char *user, cg_citizens_mode mode,
                       const char *who, const char *role, cg_citizens_erase_cb cb, void *ud)
{
    cg_citizens_counts none = {0, 0, 0};
    if (cg_citizens_valid(channel, user) != 0) {
        if (cb) cb(ud, CG_E_BAD_REQUEST, &none);
        return;
    }
    cit_job *j = cit_new(gw, channel, user);
    if (!j) {
        if (cb) cb(ud, CG_E_NOMEM, &none);
        return;
    }
    j->erase = 1;
    j->mode = mode;
    snprintf(j->who, sizeof j->who, "%s", who ? who : "");
    snprintf(j->role, sizeof j->role, "%s", role ? role : "");
    j->erase_cb = cb;
    j->ud = ud;
    if (!gw->store || !cg_store_ready(gw->store)) {
        cit_end(j, CG_E_UNAVAILABLE);
        return;
    }
    cit_next(j);
}

void cg_citizens_export(cg_gateway *gw, const char *channel, const char *user, cg_citizens_export_cb cb,
                        void *ud)
{
    if (cg_citizens_valid(channel, user) != 0) {
        cb(ud, CG_E_BAD_REQUEST, NULL);
        return;
    }
    cit_job *j = cit_new(gw, channel, user);
    if (j) j->doc = cJSON_CreateObject();
    if (!j || !j->doc) {
        if (j) cit_free(j);
        cb(ud, CG_E_NOMEM, NULL);
        return;
    }
    j->export_cb = cb;
    j->ud = ud;
    char now[32];
    cg_log_now_iso(now);
    cJSON_AddStringToObject(j->doc, "channel", channel);
    cJSON_AddStringToObject(j->doc, "user", user);
    cJSON_AddStringToObject(j->doc, "exported_at", now);
    j->jkeys = cJSON_AddObjectToObject(j->doc, "keys");
    j->jzsets = cJSON_AddObjectToObject(j->doc, "queues");
    j->jstreams = cJSON_AddObjectToObject(j->doc, "streams");
    j->jrecords = cJSON_AddObjectToObject(j->doc, "records");
    if (!j->jkeys || !j->jzsets || !j->jstreams || !j->jrecords) {
        cit_free(j);
        cb(ud, CG_E_NOMEM, NULL);
        return;
    }
    if (!gw->store || !cg_store_ready(gw->store)) {
        cit_end(j, CG_E_UNAVAILABLE);
        return;
    }
    cit_next(j);
}

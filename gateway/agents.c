/*
 * agents.c: human agents (issue 5): the module's lifecycle, authentication,
 * the fan-out of case events to this instance's sockets, and the sweeps
 * that keep the shared queue honest. Routes are in agents_api.c, the socket
 * in agents_ws.c, the pure rules in agents_queue.c.
 *
 * State lives in Redis only (docs/redis.md, "Human agents"), so any instance
 * serves any agent: a token made on A works on B (cg:agent:token:<sha256>),
 * presence is one sorted set (cg:agent:seen: refreshed every PRESENCE_MS for
 * every agent with a socket here, and by every authenticated call), and
 * every change to a case is PUBLISHed on cg:agents by the script that made
 * it. Each instance subscribes (cg_store_subscribe) and:
 *   {"type":"queue"}                 re-reads the queue (debounced
 *                                    QUEUE_DEBOUNCE_MS) and pushes it to every socket
 *   {"type":"case","case":{...}}     pushes the case to sockets that may see it
 *   {"type":"entry","case","holder","entry"}  to the holder's and supervisors' sockets
 *   {"type":"presence"}              the agents list to supervisors' sockets
 *
 * Sweeps, every SWEEP_MS on every instance; each decision is a compare-and-set
 * in Redis so that a citizen hears a notice once however many instances run:
 *   - grace: an agent not seen for agents.disconnect_grace_s who holds cases
 *     gets them returned to the queue ("returned" note);
 *   - positions: a queued citizen hears their position and expected wait
 *     when cg_agents_should_notify() says so (the first notice comes at once:
 *     the pipeline calls cg_agents_case_queued()); outside office hours when
 *     the office opens instead, and the position again once it has opened;
 *   - call-back: a case queued for agents.no_agent_timeout_s gets, once, the
 *     offer to leave a message ("cb") or keep waiting ("w"); the pipeline
 *     handles the answer.
 *
 * API in call order: cg_agents_start → cg_agents_authenticate /
 * cg_agents_case_queued → cg_agents_stop. Extending: a new event type is
 * published by a script (AG_LUA_PRE helpers) and handled in on_event().
 */
#include "agents_internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

#define TICK_MS           250
#define SWEEP_MS          5000
#define PRESENCE_MS       5000
#define QUEUE_DEBOUNCE_MS 100
#define POSITIONS_MAX     "500"
#define REAUTH_MS         30000   /* live sockets' tokens checked again (expiry, logout missed) */

/* ---- JSON of cases, entries, agents --------------------------------------- */

static const char *fs(const cJSON *flat, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(flat, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double fnum(const cJSON *flat, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(flat, k);
    if (cJSON_IsNumber(v)) return v->valuedouble;
    return cJSON_IsString(v) ? strtod(v->valuestring, NULL) : 0;
}

static void add_str_or_null(cJSON *o, const char *k, const char *v)
{
    if (v && *v) cJSON_AddStringToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

cJSON *ag_case_json(const cJSON *flat, int position)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "id", fs(flat, "id"));
    cJSON_AddStringToObject(o, "channel", fs(flat, "channel"));
    cJSON_AddStringToObject(o, "user", fs(flat, "user"));
    add_str_or_null(o, "name", fs(flat, "name"));
    cJSON_AddStringToObject(o, "lang", fs(flat, "lang"));
    const char *st = fs(flat, "status");
    cJSON_AddStringToObject(o, "status", *st ? st : "queued");
    cJSON_AddNumberToObject(o, "priority", fnum(flat, "priority"));
    cJSON_AddNumberToObject(o, "created_at", fnum(flat, "created_at"));
    if (position > 0 && !strcmp(st, "queued")) cJSON_AddNumberToObject(o, "position", position);
    else cJSON_AddNullToObject(o, "position");
    add_str_or_null(o, "agent", fs(flat, "agent"));
    cJSON_AddStringToObject(o, "question", fs(flat, "question"));
    const char *reason = fs(flat, "reason");
    cJSON_AddStringToObject(o, "reason", *reason ? reason : "asked");
    double last = fnum(flat, "last_message_at");
    cJSON_AddNumberToObject(o, "last_message_at", last > 0 ? last : fnum(flat, "created_at"));
    cJSON_AddNumberToObject(o, "unread", fnum(flat, "unread"));
    double csat = fnum(flat, "csat");
    if (csat >= 1 && csat <= 5) cJSON_AddNumberToObject(o, "csat", csat);
    else cJSON_AddNullToObject(o, "csat");
    cJSON_AddBoolToObject(o, "callback", !strcmp(fs(flat, "callback"), "1"));
    if (!strcmp(fs(flat, "erased"), "1")) cJSON_AddBoolToObject(o, "erased", 1);   /* the citizen's data was erased */
    double t = fnum(flat, "claimed_at");
    if (t > 0) cJSON_AddNumberToObject(o, "claimed_at", t);
    t = fnum(flat, "resolved_at");
    if (t > 0) cJSON_AddNumberToObject(o, "resolved_at", t);
    return o;
}

cJSON *ag_flat_from_reply(const redisReply *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !r || r->type != REDIS_REPLY_ARRAY) return o;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
        cJSON_AddStringToObject(o, k->str, v->str);
    }
    return o;
}

static const char *const note_kinds[] = {"escalated", "claimed", "transferred", "resolved", "csat", "returned",
                                         "callback", NULL};

cJSON *ag_entry_json(const redisReply *e)
{
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements != 2) return NULL;
    const redisReply *f = e->element[1];
    char dir[8], kind[24], agent[CG_AGENT_NAME_MAX], intent[128], fa[4];
    cg_store_field_str(f, "dir", dir, sizeof dir);
    if (strcmp(dir, "in") && strcmp(dir, "out") && strcmp(dir, "note")) return NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "dir", dir);
    char *text = cg_store_field_dup(f, "text");
    cJSON_AddStringToObject(o, "text", text ? text : "");
    free(text);
    cJSON_AddNumberToObject(o, "ts", (double)cg_store_field_i64(f, "ts"));
    cg_store_field_str(f, "agent", agent, sizeof agent);
    cg_store_field_str(f, "from_agent", fa, sizeof fa);
    if (agent[0] && (strcmp(dir, "out") || !strcmp(fa, "1") || fa[0] == '\0')) cJSON_AddStringToObject(o, "agent", agent);
    cg_store_field_str(f, "intent", intent, sizeof intent);
    if (intent[0]) cJSON_AddStringToObject(o, "intent", intent);
    char *btn = cg_store_field_dup(f, "buttons");
    cJSON *b = btn ? cJSON_Parse(btn) : NULL;
    free(btn);
    if (cJSON_IsArray(b) && cJSON_GetArraySize(b) > 0) cJSON_AddItemToObject(o, "buttons", b);
    else cJSON_Delete(b);
    cg_store_field_str(f, "kind", kind, sizeof kind);
    if (!strcmp(dir, "note")) {
        for (size_t i = 0; note_kinds[i]; i++)
            if (!strcmp(kind, note_kinds[i])) cJSON_AddStringToObject(o, "kind", kind);
    }
    return o;
}

cJSON *ag_agent_json(const cg_agent_user *u, int with_presence, int online, long long cases)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "name", u->name);
    cJSON_AddStringToObject(o, "display_name", u->display_name ? u->display_name : u->name);
    cJSON_AddStringToObject(o, "role", u->supervisor ? "supervisor" : "agent");
    if (with_presence) {
        cJSON_AddBoolToObject(o, "online", online);
        cJSON_AddNumberToObject(o, "cases", (double)cases);
    }
    return o;
}

int ag_can_see(const ag_who *who, const cJSON *flat)
{
    if (who->supervisor) return 1;
    const char *st = fs(flat, "status");
    if (!strcmp(st, "queued")) return 1;
    return !strcmp(fs(flat, "agent"), who->name);
}

/* ---- authentication --------------------------------------------------------- */

void ag_token_key(const char *token, char *out, size_t cap)
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)token, strlen(token));
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    snprintf(out, cap, "%s%s", AG_K_TOKEN, hex);
}

static int token_ok(const char *t)
{
    if (!t || strlen(t) != AG_TOKEN_HEX) return 0;
    for (const char *p = t; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

typedef struct auth_req {
    cg_agents *a;
    ag_auth_fn cb;
    void *ud;
} auth_req;

void ag_ignore(cg_store *s, redisReply *r, void *ud)
{
    (void)s;
    (void)r;
    (void)ud;
}

static void touch_seen(cg_agents *a, const char *name)
{
    char now[32];
    snprintf(now, sizeof now, "%lld", (long long)cg_store_now_ms());
    const char *av[] = {"ZADD", AG_K_SEEN, now, name};
    cg_store_cmd(a->gw->store, ag_ignore, NULL, 4, av, NULL);
}

static void auth_reply(cg_store *s, redisReply *r, void *ud)
{
    auth_req *q = ud;
    cg_agents *a = q->a;
    (void)s;
    a->inflight--;
    ag_who who;
    memset(&who, 0, sizeof who);
    const cg_agent_user *u = NULL;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
        r->element[1]->type == REDIS_REPLY_STRING) {
        long long exp = strtoll(r->element[1]->str, NULL, 10);
        u = cg_config_agent(a->gw->cfg, r->element[0]->str);
        if (u && exp > cg_store_now_ms()) {
            snprintf(who.name, sizeof who.name, "%s", u->name);
            who.supervisor = u->supervisor;     /* the role of the config now */
            who.user = u;
            touch_seen(a, u->name);
        } else {
            u = NULL;
        }
    }
    a->auth_unavailable = !r || r->type == REDIS_REPLY_ERROR;
    q->cb(a, u ? &who : NULL, q->ud);
    free(q);
}

void ag_auth(cg_agents *a, const char *token, ag_auth_fn cb, void *ud)
{
    if (!a || a->stopping || !token_ok(token)) {
        if (a) a->auth_unavailable = a->stopping;
        cb(a, NULL, ud);
        return;
    }
    char key[CG_KEY_MAX];
    ag_token_key(token, key, sizeof key);
    auth_req *q = calloc(1, sizeof *q);
    if (!q) {
        a->auth_unavailable = 1;
        cb(a, NULL, ud);
        return;
    }
    q->a = a;
    q->cb = cb;
    q->ud = ud;
    const char *av[] = {"HMGET", key, "name", "expires_at"};
    if (cg_store_cmd(a->gw->store, auth_reply, q, 4, av, NULL) != 0) {
        free(q);
        a->auth_unavailable = 1;
        cb(a, NULL, ud);
        return;
    }
    a->inflight++;
}

typedef struct ext_auth { cg_agents_auth_cb cb; void *ud; } ext_auth;

static void ext_auth_done(cg_agents *a, const ag_who *who, void *ud)
{
    ext_auth *x = ud;
    (void)a;
    if (who) x->cb(x->ud, who->name, who->supervisor ? "supervisor" : "agent");
    else x->cb(x->ud, NULL, NULL);
    free(x);
}

void cg_agents_authenticate(cg_agents *a, const char *token, cg_agents_auth_cb cb, void *ud)
{
    ext_auth *x = calloc(1, sizeof *x);
    if (!x) {
        cb(ud, NULL, NULL);
        return;
    }
    x->cb = cb;
    x->ud = ud;
    ag_auth(a, token, ext_auth_done, x);
}

/* ---- fan-out ---------------------------------------------------------------- */

void ag_queue_dirty(cg_agents *a)
{
    if (!a->queue_dirty) {
        a->queue_dirty = 1;
        a->next_queue = uv_now(a->gw->loop) + QUEUE_DEBOUNCE_MS;
    }
}

/* KEYS 1 queue; ARGV 1 max → {{hgetall}, ...} in queue order; ids whose hash
 * is gone are dropped from the queue. */
static cg_store_script queue_script = {
    .name = "agents_queue",
    .src =
        "local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)\n"
        "local out = {}\n"
        "for _, id in ipairs(ids) do\n"
        "  local h = redis.call('HGETALL', 'cg:case:' .. id)\n"
        "  if #h == 0 then redis.call('ZREM', KEYS[1], id) else out[#out + 1] = h end\n"
        "end\n"
        "return out\n",
};

typedef struct queue_req { cg_agents *a; ag_conn *only; } queue_req;

static cJSON *queue_frame(const redisReply *r, int64_t *oldest)
{
    cJSON *f = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(f, "cases");
    cJSON_AddStringToObject(f, "type", "queue");
    *oldest = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        cJSON *flat = ag_flat_from_reply(r->element[i]);
        int64_t c = (int64_t)fnum(flat, "created_at");
        if (c > 0 && (!*oldest || c < *oldest)) *oldest = c;
        cJSON_AddItemToArray(arr, ag_case_json(flat, (int)i + 1));
        cJSON_Delete(flat);
    }
    return f;
}

static void queue_reply(cg_store *s, redisReply *r, void *ud)
{
    queue_req *q = ud;
    cg_agents *a = q->a;
    (void)s;
    a->inflight--;
    if (!q->only) a->queue_reading = 0;
    if (r && r->type == REDIS_REPLY_ARRAY && !a->stopping) {
        int64_t oldest;
        cJSON *f = queue_frame(r, &oldest);
        char *txt = f ? cJSON_PrintUnformatted(f) : NULL;
        cJSON_Delete(f);
        if (txt) {
            size_t n = strlen(txt);
            if (q->only) {
                if (q->only->wsi && q->only->state == 2) ag_ws_send(q->only, txt, n);
            } else {
                if (!a->last_queue || strcmp(a->last_queue, txt)) {
                    for (ag_conn *c = a->conns; c; c = c->next)
                        if (c->state == 2) ag_ws_send(c, txt, n);
                    free(a->last_queue);
                    a->last_queue = strdup(txt);
                }
                cg_metrics_set_gauge("civicgate_agents_queue_length", (double)r->elements);
                cg_metrics_set_gauge("civicgate_agents_queue_longest_wait_seconds",
                                     oldest ? (double)(cg_store_now_ms() - oldest) / 1000.0 : 0);
            }
        }
        free(txt);
    }
    if (q->only && --q->only->refs == 0) free(q->only);
    free(q);
}

static void read_queue(cg_agents *a, ag_conn *only)
{
    queue_req *q = calloc(1, sizeof *q);
    if (!q) return;
    q->a = a;
    q->only = only;
    char max[16];
    snprintf(max, sizeof max, "%d", AG_LIST_MAX);
    const char *av[] = {CG_K_AGENTS_Q, max};
    if (cg_store_eval(a->gw->store, &queue_script, 1, 2, av, NULL, queue_reply, q) != 0) {
        free(q);
        return;
    }
    if (only) only->refs++;
    else a->queue_reading = 1;
    a->inflight++;
}

void ag_send_queue_to(cg_agents *a, ag_conn *c) { read_queue(a, c); }

/* KEYS 1 seen; ARGV 1 now-online window start, then names → {{online, held}...} */
static cg_store_script presence_script = {
    .name = "agents_presence",
    .src =
        "local out = {}\n"
        "for i = 2, #ARGV do\n"
        "  local s = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i]) or '0')\n"
        "  out[#out + 1] = {s >= tonumber(ARGV[1]) and 1 or 0, redis.call('SCARD', 'cg:agent:held:' .. ARGV[i])}\n"
        "end\n"
        "return out\n",
};

typedef struct agents_req { cg_agents *a; ag_conn *only; cg_api_call *call; } agents_req;

static void agents_reply(cg_store *s, redisReply *r, void *ud)
{
    agents_req *q = ud;
    cg_agents *a = q->a;
    (void)s;
    a->inflight--;
    const cg_config *cfg = a->gw->cfg;
    cJSON *arr = cJSON_CreateArray();
    int online = 0;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == cfg->agents.nusers) {
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i];
            int on = e->type == REDIS_REPLY_ARRAY && e->elements == 2 && e->element[0]->integer == 1;
            long long held = e->type == REDIS_REPLY_ARRAY && e->elements == 2 ? e->element[1]->integer : 0;
            online += on;
            cJSON_AddItemToArray(arr, ag_agent_json(&cfg->agents.users[i], 1, on, held));
        }
        if (!q->call && !q->only) cg_metrics_set_gauge("civicgate_agents_online", online);
    } else if (q->call) {
        cJSON_Delete(arr);
        cg_api_error(q->call, 503, "Redis unavailable");
        free(q);
        return;
    }
    if (q->call) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "agents", arr);
        cg_api_json(q->call, 200, o);
    } else {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "type", "agents");
        cJSON_AddItemToObject(f, "agents", arr);
        char *txt = cJSON_PrintUnformatted(f);
        cJSON_Delete(f);
        if (txt && !a->stopping && (q->only || !a->last_agents || strcmp(a->last_agents, txt))) {
            for (ag_conn *c = a->conns; c; c = c->next)
                if (c->state == 2 && c->who.supervisor && (!q->only || q->only == c)) ag_ws_send(c, txt, strlen(txt));
            if (!q->only) {
                free(a->last_agents);
                a->last_agents = strdup(txt);
            }
        }
        free(txt);
    }
    if (q->only && --q->only->refs == 0) free(q->only);
    free(q);
}

/* The agents list with presence: to call (REST answer), to one socket, or
 * (both NULL) to every supervisor's socket here. */
static void read_agents(cg_agents *a, ag_conn *only, cg_api_call *call)
{
    const cg_config *cfg = a->gw->cfg;
    size_t n = cfg->agents.nusers;
    const char **av = calloc(n + 3, sizeof *av);
    agents_req *q = calloc(1, sizeof *q);
    char since[32];
    if (!av || !q) goto fail;
    snprintf(since, sizeof since, "%lld", (long long)cg_store_now_ms() - AG_ONLINE_MS);
    av[0] = AG_K_SEEN;
    av[1] = since;
    for (size_t i = 0; i < n; i++) av[2 + i] = cfg->agents.users[i].name;
    q->a = a;
    q->only = only;
    q->call = call;
    if (cg_store_eval(a->gw->store, &presence_script, 1, (int)n + 2, av, NULL, agents_reply, q) != 0) goto fail;
    if (only) only->refs++;
    a->inflight++;
    free(av);
    return;
fail:
    free(av);
    free(q);
    if (call) cg_api_error(call, 503, "Redis unavailable");
}

void ag_send_agents_to(cg_agents *a, ag_conn *c) { read_agents(a, c, NULL); }
void cg_agents_list(cg_agents *a, cg_api_call *call) { read_agents(a, NULL, call); }

void ag_presence_changed(cg_agents *a, const char *name)
{
    if (name) touch_seen(a, name);
    static const char ev[] = "{\"type\":\"presence\"}";
    const char *av[] = {"PUBLISH", CG_CH_AGENTS, ev};
    cg_store_cmd(a->gw->store, ag_ignore, NULL, 3, av, NULL);
}

/* A pub/sub event of cg:agents. */
static void on_event(const char *payload, size_t len, void *ud)
{
    cg_agents *a = ud;
    if (a->stopping) return;
    cJSON *ev = cJSON_ParseWithLength(payload, len);
    const char *type = fs(ev, "type");
    if (!strcmp(type, "queue")) {
        ag_queue_dirty(a);
    } else if (!strcmp(type, "presence")) {
        a->agents_dirty = 1;
    } else if (!strcmp(type, "revoked")) {
        /* a logout on any instance: sockets on that token are closed */
        const char *key = fs(ev, "key");
        for (ag_conn *c = a->conns; c; c = c->next) {
            char k[CG_KEY_MAX];
            if (c->state != 2) continue;
            ag_token_key(c->token, k, sizeof k);
            if (!strcmp(k, key)) ag_ws_revoke(c);
        }
    } else if (!strcmp(type, "case")) {
        const cJSON *flat = cJSON_GetObjectItemCaseSensitive(ev, "case");
        const char *prev = fs(ev, "prev");
        if (cJSON_IsObject(flat) && *fs(flat, "id")) {
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "type", "case");
            cJSON_AddItemToObject(f, "case", ag_case_json(flat, 0));
            char *txt = cJSON_PrintUnformatted(f);
            cJSON_Delete(f);
            for (ag_conn *c = a->conns; txt && c; c = c->next)
                if (c->state == 2 && (ag_can_see(&c->who, flat) || (*prev && !strcmp(prev, c->who.name))))
                    ag_ws_send(c, txt, strlen(txt));
            free(txt);
            a->agents_dirty = 1;      /* case counts changed */
        }
    } else if (!strcmp(type, "entry")) {
        const char *holder = fs(ev, "holder");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(ev, "case");
        cJSON *entry = cJSON_DetachItemFromObjectCaseSensitive(ev, "entry");
        if (cJSON_IsString(id) && cJSON_IsObject(entry)) {
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "type", "entry");
            cJSON_AddStringToObject(f, "case", id->valuestring);
            cJSON_AddItemToObject(f, "entry", entry);
            entry = NULL;
            char *txt = cJSON_PrintUnformatted(f);
            cJSON_Delete(f);
            for (ag_conn *c = a->conns; txt && c; c = c->next)
                if (c->state == 2 && (c->who.supervisor || (*holder && !strcmp(holder, c->who.name))))
                    ag_ws_send(c, txt, strlen(txt));
            free(txt);
        }
        cJSON_Delete(entry);
    }
    cJSON_Delete(ev);
}

/* ---- sweeps ----------------------------------------------------------------- */

/* KEYS 1 seen; ARGV 1 now, 2 grace ms, 3 transcript max, 4 transcript ttl,
 * then names. Cases held by agents not seen within the grace go back to the
 * queue. Returns how many. */
static cg_store_script grace_script = {
    .name = "agents_grace",
    .src = AG_LUA_PRE
        "local now, n = tonumber(ARGV[1]), 0\n"
        "for i = 5, #ARGV do\n"
        "  local name = ARGV[i]\n"
        "  local held = redis.call('SMEMBERS', 'cg:agent:held:' .. name)\n"
        "  if #held > 0 and tonumber(redis.call('ZSCORE', KEYS[1], name) or '0') < now - tonumber(ARGV[2]) then\n"
        "    for _, id in ipairs(held) do\n"
        "      local c = flat('cg:case:' .. id)\n"
        "      if c.status == 'assigned' and c.agent == name then\n"
        "        to_queue(id, c, now)\n"
        "        note(c, 'returned', name, 'returned to the queue: ' .. name .. ' disconnected', ARGV[1], ARGV[3], ARGV[4])\n"
        "        pub_case(id, name)\n"
        "        n = n + 1\n"
        "      else redis.call('SREM', 'cg:agent:held:' .. name, id) end\n"
        "    end\n"
        "  end\n"
        "end\n"
        "if n > 0 then pub_queue() end\n"
        "return n\n",
};

static void grace_reply(cg_store *s, redisReply *r, void *ud)
{
    cg_agents *a = ud;
    (void)s;
    a->inflight--;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
        char n[24];
        snprintf(n, sizeof n, "%lld", r->integer);
        cg_log(CG_LOG_INFO, "agents_cases_returned", "count", n, NULL);
    }
}

static void sweep_grace(cg_agents *a)
{
    const cg_config *cfg = a->gw->cfg;
    size_t n = cfg->agents.nusers;
    if (!n) return;
    const char **av = calloc(n + 6, sizeof *av);
    if (!av) return;
    char now[32], grace[32], max[16], ttl[16];
    snprintf(now, sizeof now, "%lld", (long long)cg_store_now_ms());
    snprintf(grace, sizeof grace, "%lld", (long long)cfg->agents.disconnect_grace_s * 1000LL);
    snprintf(max, sizeof max, "%d", cfg->transcript_max);
    snprintf(ttl, sizeof ttl, "%d", cfg->transcript_ttl_s);
    av[0] = AG_K_SEEN;
    av[1] = now;
    av[2] = grace;
    av[3] = max;
    av[4] = ttl;
    for (size_t i = 0; i < n; i++) av[5 + i] = cfg->agents.users[i].name;
    if (cg_store_eval(a->gw->store, &grace_script, 1, (int)n + 5, av, NULL, grace_reply, a) == 0) a->inflight++;
    free(av);
}

/* KEYS 1 queue 2 seen 3 stats; ARGV 1 online since, 2 max →
 * {online, handle_ms, {id, told, channel, user, lang, created_at, offered, callback}...}
 * in queue order (position = index). */
static cg_store_script positions_script = {
    .name = "agents_positions",
    .src =
        "local out = {redis.call('ZCOUNT', KEYS[2], ARGV[1], '+inf'),\n"
        "             redis.call('HGET', KEYS[3], 'handle_ms') or '0'}\n"
        "for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)) do\n"
        "  local h = redis.call('HMGET', 'cg:case:' .. id, 'told', 'channel', 'user', 'lang', 'created_at',\n"
        "                       'offered', 'callback')\n"
        "  out[#out + 1] = {id, h[1] or '0', h[2] or '', h[3] or '', h[4] or '', h[5] or '0', h[6] or '', h[7] or ''}\n"
        "end\n"
        "return out\n",
};

/* KEYS 1 case; ARGV 1 field, 2 expected ("" = unset), 3 new: set when the
 * case is still queued and field still holds expected. 1 when set. */
static cg_store_script cas_script = {
    .name = "agents_cas",
    .src =
        "if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end\n"
        "if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 0 end\n"
        "redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])\n"
        "return 1\n",
};

typedef struct notice {
    cg_agents *a;
    cg_reply r;
    char lang[CG_LANG_MAX];
} notice;

static void notice_free(notice *n)
{
    free(n->r.text);
    for (size_t i = 0; i < n->r.nbuttons; i++) {
        free(n->r.buttons[i].title);
        free(n->r.buttons[i].payload);
    }
    free(n);
}

static void notice_sent(cg_err e, void *ud)
{
    notice *n = ud;
    n->a->inflight--;
    if (e != CG_OK) cg_log(CG_LOG_WARN, "agents_notice_failed", "user", cg_log_user(n->r.user), NULL);
    notice_free(n);
}

static void cas_reply(cg_store *s, redisReply *r, void *ud)
{
    notice *n = ud;
    n->a->inflight--;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1 && !n->a->stopping) {
        n->a->inflight++;
        cg_store_send_reply(s, &n->r, n->lang, notice_sent, n);   /* may call back at once */
        return;
    }
    notice_free(n);
}

/* Send text (owned) to the citizen of case id once field moves from
 * expected to value. */
static void notice_cas(cg_agents *a, const char *id, const char *channel, const char *user, const char *lang,
                       const char *field, const char *expected, const char *value, char *text, int offer)
{
    notice *n = calloc(1, sizeof *n);
    if (!n || !text) {
        free(n);
        free(text);
        return;
    }
    n->a = a;
    snprintf(n->r.channel, sizeof n->r.channel, "%s", channel);
    snprintf(n->r.user, sizeof n->r.user, "%s", user);
    snprintf(n->lang, sizeof n->lang, "%s", lang);
    n->r.text = text;
    if (offer) {
        cg_intents *t = cg_intents_ref(a->gw->intents);
        const cg_settings *st = t ? &t->settings : NULL;
        n->r.buttons[0].title = cg_agents_text(st, "queue_callback_leave", lang, NULL, NULL, NULL);
        n->r.buttons[0].payload = strdup("cb");
        n->r.buttons[1].title = cg_agents_text(st, "queue_keep_waiting", lang, NULL, NULL, NULL);
        n->r.buttons[1].payload = strdup("w");
        n->r.nbuttons = 2;
        cg_intents_unref(t);
    }
    char key[CG_KEY_MAX];
    snprintf(key, sizeof key, "%s%s", AG_K_CASE, id);
    const char *av[] = {key, field, expected, value};
    if (cg_store_eval(a->gw->store, &cas_script, 1, 4, av, NULL, cas_reply, n) != 0) {
        notice_free(n);
        return;
    }
    a->inflight++;
}

static void positions_reply(cg_store *s, redisReply *r, void *ud)
{
    cg_agents *a = ud;
    (void)s;
    a->inflight--;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 || a->stopping || !a->gw->intents) return;
    const cg_config *cfg = a->gw->cfg;
    int online = (int)r->element[0]->integer;
    long long handle_ms = r->element[1]->str ? strtoll(r->element[1]->str, NULL, 10) : 0;
    int avg = handle_ms > 0 ? (int)(handle_ms / 1000) : cfg->agents.avg_handle_s;
    if (avg < 30) avg = 30;
    int64_t now_ms = cg_store_now_ms();
    int64_t opens = 0;
    int open = cg_office_open(&cfg->agents.office, now_ms / 1000, &opens);
    char opens_s[64] = "";
    if (!open) {
        if (opens) cg_office_format(&cfg->agents.office, opens, opens_s, sizeof opens_s);
        else snprintf(opens_s, sizeof opens_s, "-");
    }
    cg_intents *t = cg_intents_ref(a->gw->intents);
    const cg_settings *st = t ? &t->settings : NULL;
    for (size_t i = 2; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 8) continue;
        const char *id = e->element[0]->str, *told_s = e->element[1]->str, *channel = e->element[2]->str,
                   *user = e->element[3]->str, *lang = e->element[4]->str;
        int pos = (int)(i - 1), told = atoi(told_s);
        int64_t created = strtoll(e->element[5]->str, NULL, 10);
        int offered = e->element[6]->len > 0, callback = e->element[7]->len > 0;
        if (!*channel || !*user) continue;
        char pos_s[16], wait_s[16];
        snprintf(pos_s, sizeof pos_s, "%d", pos);
        /* told "<n>c": told position n while the office was closed; once it
         * opens they hear the position again, with a wait */
        int told_closed = strchr(told_s, 'c') != NULL;
        if ((cg_agents_should_notify(told, pos) || (open && told_closed)) && !callback) {
            char *text;
            if (!open) {
                text = cg_agents_text(st, "queue_closed", lang, pos_s, NULL, opens_s);
            } else {
                int64_t w = cg_agents_wait_estimate(pos, online, avg);
                snprintf(wait_s, sizeof wait_s, "%d", cg_agents_wait_minutes(w));
                text = cg_agents_text(st, w < 0 ? "queue_position_unknown" : "queue_position", lang, pos_s, wait_s,
                                      NULL);
            }
            char new_told[20];
            snprintf(new_told, sizeof new_told, "%d%s", pos, open ? "" : "c");
            notice_cas(a, id, channel, user, lang, "told", told_s[0] && strcmp(told_s, "0") ? told_s : "",
                       new_told, text, 0);
        } else if (open && cfg->agents.no_agent_timeout_s > 0 && !offered && !callback && told > 0 &&
                   created > 0 && now_ms - created >= (int64_t)cfg->agents.no_agent_timeout_s * 1000) {
            notice_cas(a, id, channel, user, lang, "offered", "", "1",
                       cg_agents_text(st, "queue_callback_offer", lang, NULL, NULL, NULL), 1);
        }
    }
    cg_intents_unref(t);
}

void ag_notify_positions(cg_agents *a)
{
    char since[32];
    snprintf(since, sizeof since, "%lld", (long long)cg_store_now_ms() - AG_ONLINE_MS);
    const char *av[] = {CG_K_AGENTS_Q, AG_K_SEEN, AG_K_STATS, since, POSITIONS_MAX};
    if (cg_store_eval(a->gw->store, &positions_script, 3, 5, av, NULL, positions_reply, a) == 0) a->inflight++;
}

void cg_agents_case_queued(cg_agents *a)
{
    if (a && !a->stopping) ag_notify_positions(a);
}

static void reauth_done(cg_agents *a, const ag_who *who, void *ud)
{
    ag_conn *c = ud;
    (void)a;
    if (c->wsi && c->state == 2 && !who && !a->stopping && !a->auth_unavailable) ag_ws_revoke(c);
    if (--c->refs == 0) free(c);
}

/* Tokens of live sockets expire or are revoked: check them again. */
static void reauth(cg_agents *a)
{
    for (ag_conn *c = a->conns; c; c = c->next) {
        if (c->state != 2) continue;
        c->refs++;
        ag_auth(a, c->token, reauth_done, c);
    }
}

static void refresh_presence(cg_agents *a)
{
    /* every name with a live socket here, once */
    for (ag_conn *c = a->conns; c; c = c->next) {
        if (c->state != 2) continue;
        int dup = 0;
        for (ag_conn *d = a->conns; d != c; d = d->next)
            if (d->state == 2 && !strcmp(d->who.name, c->who.name)) dup = 1;
        if (!dup) touch_seen(a, c->who.name);
    }
}

/* ---- erasure ---------------------------------------------------------------- */

/* KEYS 1 cg:cases:{c:u} 2 queue; → number of cases erased */
static cg_store_script erase_script = {
    .name = "agents_erase",
    .src =
        "local ids = redis.call('SMEMBERS', KEYS[1])\n"
        "for _, id in ipairs(ids) do\n"
        "  local ag = redis.call('HGET', 'cg:case:' .. id, 'agent')\n"
        "  if ag and ag ~= '' then redis.call('SREM', 'cg:agent:held:' .. ag, id) end\n"
        "  redis.call('DEL', 'cg:case:' .. id)\n"
        "  redis.call('ZREM', KEYS[2], id)\n"
        "  redis.call('ZREM', 'cg:cases:assigned', id)\n"
        "  redis.call('ZREM', 'cg:cases:resolved', id)\n"
        "  redis.call('PUBLISH', 'cg:agents', cjson.encode({type = 'case', prev = ag or '',\n"
        "    case = {id = id, status = 'resolved', erased = '1'}}))\n"
        "end\n"
        "redis.call('DEL', KEYS[1])\n"
        "if #ids > 0 then redis.call('PUBLISH', 'cg:agents', '{\"type\":\"queue\"}') end\n"
        "return #ids\n",
};

typedef struct erase_req { cg_agents_erase_cb cb; void *ud; } erase_req;

static void erase_reply(cg_store *s, redisReply *r, void *ud)
{
    erase_req *q = ud;
    (void)s;
    if (r && r->type == REDIS_REPLY_INTEGER) q->cb(CG_OK, (size_t)r->integer, q->ud);
    else q->cb(CG_E_UNAVAILABLE, 0, q->ud);
    free(q);
}

void cg_agents_erase(cg_store *s, const char *channel, const char *user, cg_agents_erase_cb cb, void *ud)
{
    char key[CG_KEY_MAX];
    erase_req *q = calloc(1, sizeof *q);
    if (!q || !s || cg_store_key(key, sizeof key, "cases", channel, user)) {
        free(q);
        cb(CG_E_UNAVAILABLE, 0, ud);
        return;
    }
    q->cb = cb;
    q->ud = ud;
    const char *av[] = {key, CG_K_AGENTS_Q};
    if (cg_store_eval(s, &erase_script, 2, 2, av, NULL, erase_reply, q) != 0) {
        free(q);
        cb(CG_E_UNAVAILABLE, 0, ud);
    }
}

/* ---- lifecycle --------------------------------------------------------------- */

static void maybe_free(cg_agents *a)
{
    if (a->closed == 2 && a->inflight == 0 && a->nconns == 0) {
        free(a->last_queue);
        free(a->last_agents);
        free(a);
    }
}

static void tick_closed(uv_handle_t *h)
{
    cg_agents *a = h->data;
    a->closed = 2;
    maybe_free(a);
}

static void finish_stop(cg_agents *a)
{
    if (a->closed || a->inflight) return;
    a->closed = 1;
    void (*done)(void *) = a->done;
    void *ud = a->done_ud;
    uv_close((uv_handle_t *)&a->tick, tick_closed);
    if (done) done(ud);
}

static void tick_cb(uv_timer_t *t)
{
    cg_agents *a = t->data;
    uint64_t now = uv_now(a->gw->loop);
    if (a->stopping) {
        finish_stop(a);
        return;
    }
    ag_ws_tick(a, now);
    if (!cg_store_ready(a->gw->store)) return;
    if (a->queue_dirty && !a->queue_reading && now >= a->next_queue) {
        a->queue_dirty = 0;
        read_queue(a, NULL);
    }
    if (a->agents_dirty) {
        a->agents_dirty = 0;
        read_agents(a, NULL, NULL);
    }
    if (now >= a->next_presence) {
        a->next_presence = now + PRESENCE_MS;
        refresh_presence(a);
    }
    if (now >= a->next_reauth) {
        a->next_reauth = now + REAUTH_MS;
        reauth(a);
    }
    if (now >= a->next_sweep) {
        a->next_sweep = now + SWEEP_MS;
        sweep_grace(a);
        ag_notify_positions(a);
        ag_queue_dirty(a);          /* waiting times and gauges stay fresh */
        a->agents_dirty = 1;
    }
}

cg_agents *cg_agents_start(cg_gateway *gw)
{
    if (sodium_init() < 0) return NULL;
    cg_agents *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->gw = gw;
    uv_timer_init(gw->loop, &a->tick);
    a->tick.data = a;
    uv_timer_start(&a->tick, tick_cb, TICK_MS, TICK_MS);
    cg_metrics_set_gauge("civicgate_agent_ws_connections", 0);   /* present from the start (operations) */
    a->next_sweep = uv_now(gw->loop) + 1000;
    a->next_reauth = uv_now(gw->loop) + REAUTH_MS;
    if (gw->store) cg_store_subscribe(gw->store, CG_CH_AGENTS, on_event, a);
    return a;
}

void cg_agents_stop(cg_agents *a, void (*done)(void *ud), void *ud)
{
    if (!a) {
        if (done) done(ud);
        return;
    }
    if (a->stopping) return;
    a->stopping = 1;
    a->done = done;
    a->done_ud = ud;
    if (a->gw->store) cg_store_subscribe(a->gw->store, CG_CH_AGENTS, NULL, NULL);
    /* sockets were asked to close with 1001 by http.c; the struct lives until
     * the last one is gone and every Redis callback has come back */
    for (ag_conn *c = a->conns; c; c = c->next) ag_ws_close(c, LWS_CLOSE_STATUS_GOINGAWAY);
    finish_stop(a);
}

void ag_conn_gone(cg_agents *a)
{
    maybe_free(a);
}

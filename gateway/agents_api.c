/*
 * agents_api.c: the agents' REST API under /api/v1/agent/ (api.h routes;
 * docs/openapi.yaml is the contract, /tmp/agents-contract.md its source).
 *
 * Every route but login authenticates the bearer token first (ag_auth: one
 * Redis round trip; 401 when unknown or expired), then does its work in one
 * Lua script where the decision must be atomic across instances (claim,
 * transfer, resolve, note: compare the case's status and holder and change
 * them in the same step) and answers. Every action is audited (cg_audit)
 * with who, role, action, case id — never message text.
 *
 * Login: per name and per client address, agents.login_max_failures failed
 * attempts in FAIL_WINDOW_S lock further attempts (429) until the window
 * ends; the password is checked with crypto_pwhash_str_verify on the libuv
 * thread pool (it is slow on purpose), and an unknown name costs the same
 * hashing work so that timing does not tell names apart. A session token is
 * 32 random bytes (64 hex); Redis keeps only its SHA-256.
 *
 * Errors (closed list): 400 bad input, 401 not authenticated, 403 role,
 * 404 unknown case or agent, 409 state conflict (already claimed, not held
 * by the caller, resolved), 413/415 from api.c, 429 login locked, 503 Redis
 * unavailable.
 *
 * Extending: a new route is a row in cg_agents_api_routes, an op in the enum,
 * a handler calling start() (with a reader of its query or body, if any), a
 * case in authed(), its script here, a path in docs/openapi.yaml and a test
 * in tests/e2e/agents.test.js.
 */
#include "agents_internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics.h"
#include "audit.h"
#include "log.h"
#include "metrics.h"

#define FAIL_WINDOW_S  "900"
#define PASSWORD_MAX   1024
#define CANNED_MAX     50
#define QUERY_MAX      128

typedef enum {
    OP_LOGOUT, OP_ME, OP_QUEUE, OP_CASES, OP_VIEW, OP_CLAIM, OP_REPLY, OP_NOTE, OP_TRANSFER, OP_RESOLVE,
    OP_CANNED, OP_AGENTS
} ag_op;

typedef struct ag_req {
    cg_agents *a;
    cg_api_call *call;
    ag_op op;
    ag_who who;
    char token[AG_TOKEN_HEX + 1];
    char id[CG_CASE_ID_MAX];
    char *text;                        /* reply / note text, owned */
    char to[CG_AGENT_NAME_MAX];        /* transfer target, "" = queue */
    char status[16];
    int mine;
    char lang[CG_LANG_MAX];
    char q[QUERY_MAX];
    cJSON *flat;                       /* the case, when read */
    /* login */
    char name[CG_AGENT_NAME_MAX];
    char peer[64];
    char *password;
    int verified;
    uv_work_t work;
} ag_req;

static void req_free(ag_req *r)
{
    if (!r) return;
    free(r->text);
    if (r->password) {
        sodium_memzero(r->password, strlen(r->password));
        free(r->password);
    }
    cJSON_Delete(r->flat);
    free(r);
}

static cg_agents *agents_of(const cg_api_req *req)
{
    return req->gw ? req->gw->agents : NULL;
}

static const char *role_of(const ag_who *w) { return w->supervisor ? "supervisor" : "agent"; }

static void fail_503(ag_req *r)
{
    cg_api_error(r->call, 503, "Redis unavailable, try again");
    req_free(r);
}

/* Run a script for r; its reply goes to fn (r as ud). */
static int run(ag_req *r, cg_store_script *sc, int nkeys, int argc, const char **argv, cg_store_reply_fn fn)
{
    if (cg_store_eval(r->a->gw->store, sc, nkeys, argc, argv, NULL, fn, r) != 0) return -1;
    r->a->inflight++;
    return 0;
}

/* The start of a reply callback whose ud is an ag_req sent by run() or
 * cg_store_cmd(): counts the reply in; unless rep is of the type, answers
 * 503 (r freed) and returns NULL. */
static ag_req *reply_start(void *ud, const redisReply *rep, int type)
{
    ag_req *r = ud;
    r->a->inflight--;
    if (!rep || rep->type != type) {
        fail_503(r);
        return NULL;
    }
    return r;
}

static void numstr(char *b, size_t cap, long long v) { snprintf(b, cap, "%lld", v); }

/* The reply's "ok" status and HGETALL of the case (element 1), or an error
 * word in element 0. */
static const char *script_status(const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->type != REDIS_REPLY_STRING)
        return NULL;
    return r->element[0]->str;
}

static void answer_case(ag_req *r, int status, const redisReply *hash, int position)
{
    cJSON *flat = ag_flat_from_reply(hash);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "case", ag_case_json(flat, position));
    cJSON_Delete(flat);
    cg_api_json(r->call, status, o);
}

/* Errors of the case scripts → status. */
static void answer_script_error(ag_req *r, const redisReply *rep, const char *st)
{
    if (!st) {
        fail_503(r);
        return;
    }
    if (!strcmp(st, "missing")) cg_api_error(r->call, 404, "no such case");
    else if (!strcmp(st, "taken")) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "error", "already claimed");
        cJSON_AddStringToObject(o, "agent", rep->elements > 1 && rep->element[1]->str ? rep->element[1]->str : "");
        cg_api_json(r->call, 409, o);
    } else if (!strcmp(st, "resolved")) cg_api_error(r->call, 409, "the case is resolved");
    else if (!strcmp(st, "notyours")) cg_api_error(r->call, 409, "the case is not held by you");
    else if (!strcmp(st, "forbidden")) cg_api_error(r->call, 403, "your role may not do this");
    else cg_api_error(r->call, 500, "unexpected answer from the store");
    req_free(r);
}

/* ---- scripts ------------------------------------------------------------------ */

/* KEYS 1 case 2 queue; ARGV 1 name 2 now 3 transcript max 4 ttl */
static cg_store_script claim_script = {
    .name = "agents_claim",
    .src = AG_LUA_PRE
        "local c = flat(KEYS[1])\n"
        "if not c.id then return {'missing'} end\n"
        "if c.status == 'resolved' then return {'resolved'} end\n"
        "if c.status == 'assigned' then\n"
        "  if c.agent == ARGV[1] then return {'ok', redis.call('HGETALL', KEYS[1])} end\n"
        "  return {'taken', c.agent}\n"
        "end\n"
        "redis.call('ZREM', KEYS[2], c.id)\n"
        "redis.call('HSET', KEYS[1], 'status', 'assigned', 'agent', ARGV[1], 'claimed_at', ARGV[2], 'unread', '0')\n"
        "redis.call('ZADD', 'cg:cases:assigned', ARGV[2], c.id)\n"
        "redis.call('SADD', 'cg:agent:held:' .. ARGV[1], c.id)\n"
        "sess_set(c, 'agent', ARGV[1])\n"
        "c.agent = ARGV[1]\n"
        "note(c, 'claimed', ARGV[1], 'claimed by ' .. ARGV[1], ARGV[2], ARGV[3], ARGV[4])\n"
        "pub_case(c.id, '')\n"
        "pub_queue()\n"
        "return {'ok', redis.call('HGETALL', KEYS[1]), 'claimed'}\n",   /* 3rd: a new claim (analytics) */
};

/* KEYS 1 case 2 queue; ARGV 1 caller 2 supervisor 3 to ("" = queue) 4 now 5 max 6 ttl */
static cg_store_script transfer_script = {
    .name = "agents_transfer",
    .src = AG_LUA_PRE
        "local c = flat(KEYS[1])\n"
        "if not c.id then return {'missing'} end\n"
        "if c.status == 'resolved' then return {'resolved'} end\n"
        "local sup = ARGV[2] == '1'\n"
        "if c.status == 'queued' and not sup then return {'notyours'} end\n"
        "if c.status == 'assigned' and c.agent ~= ARGV[1] and not sup then return {'notyours'} end\n"
        "local prev = c.agent or ''\n"
        "if ARGV[3] == prev and c.status == 'assigned' then return {'ok', redis.call('HGETALL', KEYS[1])} end\n"
        "if ARGV[3] == '' then\n"
        "  if c.status == 'queued' then return {'ok', redis.call('HGETALL', KEYS[1])} end\n"
        "  to_queue(c.id, c, ARGV[4])\n"
        "  c.agent = ''\n"
        "  note(c, 'transferred', ARGV[1], 'back to the queue', ARGV[4], ARGV[5], ARGV[6])\n"
        "else\n"
        "  if prev ~= '' then redis.call('SREM', 'cg:agent:held:' .. prev, c.id) end\n"
        "  redis.call('ZREM', KEYS[2], c.id)\n"
        "  redis.call('HSET', KEYS[1], 'status', 'assigned', 'agent', ARGV[3], 'claimed_at', ARGV[4])\n"
        "  redis.call('ZADD', 'cg:cases:assigned', ARGV[4], c.id)\n"
        "  redis.call('SADD', 'cg:agent:held:' .. ARGV[3], c.id)\n"
        "  sess_set(c, 'agent', ARGV[3])\n"
        "  c.agent = ARGV[3]\n"
        "  note(c, 'transferred', ARGV[1], 'transferred to ' .. ARGV[3], ARGV[4], ARGV[5], ARGV[6])\n"
        "end\n"
        "pub_case(c.id, prev)\n"
        "pub_queue()\n"
        "return {'ok', redis.call('HGETALL', KEYS[1])}\n",
};

/* KEYS 1 case 2 queue 3 stats; ARGV 1 caller 2 supervisor 3 now 4 max 5 ttl
 * 6 resolved-list horizon (ms) */
static cg_store_script resolve_script = {
    .name = "agents_resolve",
    .src = AG_LUA_PRE
        "local c = flat(KEYS[1])\n"
        "if not c.id then return {'missing'} end\n"
        "if c.status == 'resolved' then return {'resolved'} end\n"
        "local sup = ARGV[2] == '1'\n"
        "if (c.status ~= 'assigned' or c.agent ~= ARGV[1]) and not sup then return {'notyours'} end\n"
        "local now = tonumber(ARGV[3])\n"
        "redis.call('ZREM', KEYS[2], c.id)\n"
        "redis.call('ZREM', 'cg:cases:assigned', c.id)\n"
        "if c.agent and c.agent ~= '' then redis.call('SREM', 'cg:agent:held:' .. c.agent, c.id) end\n"
        "if not c.agent or c.agent == '' then redis.call('HSET', KEYS[1], 'agent', ARGV[1]); c.agent = ARGV[1] end\n"
        "redis.call('HSET', KEYS[1], 'status', 'resolved', 'resolved_at', ARGV[3], 'resolved_by', ARGV[1])\n"
        "redis.call('ZADD', 'cg:cases:resolved', ARGV[3], c.id)\n"
        "redis.call('ZREMRANGEBYSCORE', 'cg:cases:resolved', '-inf', now - tonumber(ARGV[6]))\n"
        "local sk = sess_key(c)\n"
        "if redis.call('HGET', sk, 'case') == c.id then redis.call('HDEL', sk, 'case', 'agent') end\n"
        "sess_set(c, 'csat', c.id)\n"
        "if c.claimed_at then\n"
        "  local d = now - tonumber(c.claimed_at)\n"
        "  local avg = tonumber(redis.call('HGET', KEYS[3], 'handle_ms') or '0')\n"
        "  if avg <= 0 then avg = d else avg = math.floor(avg * 0.9 + d * 0.1) end\n"
        "  redis.call('HSET', KEYS[3], 'handle_ms', avg)\n"
        "end\n"
        "note(c, 'resolved', ARGV[1], 'resolved by ' .. ARGV[1], ARGV[3], ARGV[4], ARGV[5])\n"
        "pub_case(c.id, '')\n"
        "pub_queue()\n"
        "return {'ok', redis.call('HGETALL', KEYS[1])}\n",
};

/* KEYS 1 case; ARGV 1 caller 2 supervisor 3 text 4 now 5 max 6 ttl */
static cg_store_script note_script = {
    .name = "agents_note",
    .src = AG_LUA_PRE
        "local c = flat(KEYS[1])\n"
        "if not c.id then return {'missing'} end\n"
        "if ARGV[2] ~= '1' and c.status ~= 'queued' and c.agent ~= ARGV[1] then return {'notyours'} end\n"
        "local k = conv_key(c)\n"
        "redis.call('XADD', k, 'MAXLEN', '~', ARGV[5], '*', 'dir', 'note', 'agent', ARGV[1], 'text', ARGV[3],\n"
        "           'ts', ARGV[4])\n"
        "redis.call('EXPIRE', k, ARGV[6])\n"
        "redis.call('PUBLISH', 'cg:agents', cjson.encode({type = 'entry', case = c.id, holder = c.agent or '',\n"
        "  entry = {dir = 'note', agent = ARGV[1], text = ARGV[3], ts = tonumber(ARGV[4])}}))\n"
        "return {'ok'}\n",
};

/* KEYS 1 case 2 queue → {'ok', hgetall, rank} or {'missing'} */
static cg_store_script get_script = {
    .name = "agents_get",
    .src =
        "local h = redis.call('HGETALL', KEYS[1])\n"
        "if #h == 0 then return {'missing'} end\n"
        "local id = redis.call('HGET', KEYS[1], 'id')\n"
        "local r = redis.call('ZRANK', KEYS[2], id)\n"
        "return {'ok', h, r and (r + 1) or 0}\n",
};

/* KEYS 1 queue 2 assigned 3 resolved; ARGV 1 status 2 viewer 3 supervisor
 * 4 mine 5 max → {{position, hgetall}...} */
static cg_store_script list_script = {
    .name = "agents_list",
    .src =
        "local out, max = {}, tonumber(ARGV[5])\n"
        "local function add(id, pos)\n"
        "  if #out >= max then return end\n"
        "  local h = redis.call('HGETALL', 'cg:case:' .. id)\n"
        "  if #h == 0 then return end\n"
        "  local c = {}\n"
        "  for i = 1, #h, 2 do c[h[i]] = h[i + 1] end\n"
        "  if ARGV[4] == '1' and c.agent ~= ARGV[2] then return end\n"
        "  if ARGV[3] ~= '1' and c.status ~= 'queued' and c.agent ~= ARGV[2] then return end\n"
        "  out[#out + 1] = {pos, h}\n"
        "end\n"
        "local st = ARGV[1]\n"
        "if st == 'queued' or st == 'all' then\n"
        "  for i, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, max - 1)) do add(id, i) end\n"
        "end\n"
        "if st == 'assigned' or st == 'all' then\n"
        "  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, 999)) do add(id, 0) end\n"
        "end\n"
        "if st == 'resolved' or st == 'all' then\n"
        "  for _, id in ipairs(redis.call('ZREVRANGE', KEYS[3], 0, 999)) do add(id, 0) end\n"
        "end\n"
        "return out\n",
};

/* KEYS 1 token key 2 name failures; ARGV 1 name 2 role 3 expires_at 4 ttl s */
static cg_store_script login_script = {
    .name = "agents_login",
    .src =
        "redis.call('HSET', KEYS[1], 'name', ARGV[1], 'role', ARGV[2], 'expires_at', ARGV[3])\n"
        "redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
        "redis.call('DEL', KEYS[2])\n"
        "return 1\n",
};

/* KEYS failure counters; ARGV 1 window s → the largest count */
static cg_store_script fail_script = {
    .name = "agents_fail",
    .src =
        "local m = 0\n"
        "for _, k in ipairs(KEYS) do\n"
        "  local n = redis.call('INCR', k)\n"
        "  if n == 1 then redis.call('EXPIRE', k, ARGV[1]) end\n"
        "  if n > m then m = n end\n"
        "end\n"
        "return m\n",
};

/* ---- login --------------------------------------------------------------------- */

static void login_fail_key(char *out, size_t cap, const char *kind, const char *v)
{
    snprintf(out, cap, "%s%s:%s", AG_K_FAIL, kind, v);
}

static void login_stored(cg_store *s, redisReply *rep, void *ud);

static void login_failed_counted(cg_store *s, redisReply *rep, void *ud)
{
    ag_req *r = ud;
    (void)s;
    (void)rep;
    r->a->inflight--;
    cg_api_error(r->call, 401, "wrong name or password");
    req_free(r);
}

static void verify_work(uv_work_t *w)
{
    ag_req *r = w->data;
    const cg_agent_user *u = cg_config_agent(r->a->gw->cfg, r->name);
    size_t n = strlen(r->password);
    if (u) {
        r->verified = crypto_pwhash_str_verify(u->password_hash, r->password, n) == 0;
    } else {
        /* the same work as a verification, so that timing does not tell
         * which names exist */
        char out[crypto_pwhash_STRBYTES];
        if (crypto_pwhash_str(out, r->password, n, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
            out[0] = '\0';
        r->verified = 0;
    }
}

static void verify_done(uv_work_t *w, int status)
{
    ag_req *r = w->data;
    cg_agents *a = r->a;
    a->inflight--;
    const cg_agent_user *u = cg_config_agent(a->gw->cfg, r->name);
    if (status != 0 || a->stopping) {
        cg_api_error(r->call, 503, "stopping");
        req_free(r);
        return;
    }
    char kn[CG_KEY_MAX], kp[CG_KEY_MAX];
    login_fail_key(kn, sizeof kn, "name", r->name);
    login_fail_key(kp, sizeof kp, "peer", r->peer[0] ? r->peer : "-");
    if (!r->verified || !u) {
        cg_audit(a->gw, u ? r->name : "?", u ? role_of(&(ag_who){.supervisor = u->supervisor}) : "", "login_failed",
                 r->peer, NULL);
        cg_log(CG_LOG_WARN, "agent_login_failed", "agent", u ? r->name : "?", NULL);
        const char *av[] = {kn, kp, FAIL_WINDOW_S};
        if (run(r, &fail_script, 2, 3, av, login_failed_counted) != 0) {
            cg_api_error(r->call, 401, "wrong name or password");
            req_free(r);
        }
        return;
    }
    unsigned char rnd[AG_TOKEN_HEX / 2];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(r->token, sizeof r->token, rnd, sizeof rnd);
    char key[CG_KEY_MAX], exp[32], ttl[16];
    ag_token_key(r->token, key, sizeof key);
    int ttl_s = a->gw->cfg->agents.session_ttl_s;
    numstr(exp, sizeof exp, (long long)cg_store_now_ms() + (long long)ttl_s * 1000LL);
    numstr(ttl, sizeof ttl, ttl_s);
    snprintf(r->who.name, sizeof r->who.name, "%s", u->name);
    r->who.supervisor = u->supervisor;
    r->who.user = u;
    const char *av[] = {key, kn, u->name, role_of(&r->who), exp, ttl};
    if (run(r, &login_script, 2, 6, av, login_stored) != 0) fail_503(r);
}

static void login_stored(cg_store *s, redisReply *rep, void *ud)
{
    (void)s;
    ag_req *r = reply_start(ud, rep, REDIS_REPLY_INTEGER);
    if (!r) return;
    cg_audit(r->a->gw, r->who.name, role_of(&r->who), "login", r->peer, NULL);
    cg_log(CG_LOG_INFO, "agent_login", "agent", r->who.name, NULL);
    ag_presence_changed(r->a, r->who.name);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "token", r->token);
    cJSON_AddNumberToObject(o, "expires_at",
                            (double)(cg_store_now_ms() + (int64_t)r->a->gw->cfg->agents.session_ttl_s * 1000));
    cJSON_AddItemToObject(o, "agent", ag_agent_json(r->who.user, 0, 0, 0));
    sodium_memzero(r->token, sizeof r->token);
    cg_api_json(r->call, 200, o);
    req_free(r);
}

static void login_checked(cg_store *s, redisReply *rep, void *ud)
{
    (void)s;
    ag_req *r = reply_start(ud, rep, REDIS_REPLY_ARRAY);
    if (!r) return;
    if (rep->elements != 2) {   /* MGET of the two failure counters */
        fail_503(r);
        return;
    }
    int max = r->a->gw->cfg->agents.login_max_failures;
    for (size_t i = 0; i < 2; i++) {
        const redisReply *e = rep->element[i];
        if (e->type == REDIS_REPLY_STRING && atoi(e->str) >= max) {
            cg_log(CG_LOG_WARN, "agent_login_locked", "agent", r->name, NULL);
            cg_api_error(r->call, 429, "too many failed attempts: try again later");
            req_free(r);
            return;
        }
    }
    r->work.data = r;
    if (uv_queue_work(r->a->gw->loop, &r->work, verify_work, verify_done) != 0) {
        fail_503(r);
        return;
    }
    r->a->inflight++;
}

static void h_login(const cg_api_req *req, cg_api_call *call)
{
    cg_agents *a = agents_of(req);
    if (!a || a->stopping) {
        cg_api_error(call, 503, "stopping");
        return;
    }
    cJSON *b = cg_api_body_object(req, call);
    if (!b) return;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(b, "name");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(b, "password");
    if (!cJSON_IsString(n) || !cJSON_IsString(p) || !*n->valuestring || strlen(n->valuestring) >= CG_AGENT_NAME_MAX ||
        !*p->valuestring || strlen(p->valuestring) > PASSWORD_MAX) {
        cJSON_Delete(b);
        cg_api_error(call, 400, "name and password are required (name ≤ 63 bytes, password ≤ 1024 bytes)");
        return;
    }
    for (const char *c = n->valuestring; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-')) {
            /* no such name can exist: same answer as a wrong password */
            cJSON_Delete(b);
            cg_api_error(call, 401, "wrong name or password");
            return;
        }
    ag_req *r = calloc(1, sizeof *r);
    if (!r || !(r->password = strdup(p->valuestring))) {
        free(r);
        cJSON_Delete(b);
        cg_api_error(call, 500, "out of memory");
        return;
    }
    sodium_memzero(p->valuestring, strlen(p->valuestring));
    r->a = a;
    r->call = call;
    snprintf(r->name, sizeof r->name, "%s", n->valuestring);
    snprintf(r->peer, sizeof r->peer, "%s", req->peer && *req->peer ? req->peer : "-");
    cJSON_Delete(b);
    char kn[CG_KEY_MAX], kp[CG_KEY_MAX];
    login_fail_key(kn, sizeof kn, "name", r->name);
    login_fail_key(kp, sizeof kp, "peer", r->peer);
    const char *av[] = {"MGET", kn, kp};
    if (cg_store_cmd(a->gw->store, login_checked, r, 3, av, NULL) != 0) {
        fail_503(r);
        return;
    }
    a->inflight++;
}

/* ---- authenticated routes -------------------------------------------------------- */

static void authed(cg_agents *a, const ag_who *who, void *ud);

/* Common start: r with op, token checked. Returns r (call answered and NULL
 * on failure). */
static ag_req *begin(const cg_api_req *req, cg_api_call *call, ag_op op)
{
    cg_agents *a = agents_of(req);
    if (!a || a->stopping) {
        cg_api_error(call, 503, "stopping");
        return NULL;
    }
    const char *tok = cg_api_bearer(req);
    if (!tok || strlen(tok) != AG_TOKEN_HEX) {
        cg_api_error(call, 401, "authentication required");
        return NULL;
    }
    ag_req *r = calloc(1, sizeof *r);
    if (!r) {
        cg_api_error(call, 500, "out of memory");
        return NULL;
    }
    r->a = a;
    r->call = call;
    r->op = op;
    memcpy(r->token, tok, AG_TOKEN_HEX);
    if (req->nparams > 0) {
        if (!cg_agents_case_id_valid(req->params[0])) {
            cg_api_error(call, 404, "no such case");
            free(r);
            return NULL;
        }
        snprintf(r->id, sizeof r->id, "%s", req->params[0]);
    }
    return r;
}

static void go(ag_req *r) { ag_auth(r->a, r->token, authed, r); }

/* What a route reads besides the case id (query, body) into r; answers call
 * and returns -1 when it is invalid. */
typedef int (*ag_input_fn)(const cg_api_req *req, cg_api_call *call, ag_req *r);

/* An authenticated route: begin(), the route's input when it has one, then
 * the token's check (authed() does the op). */
static void start(const cg_api_req *req, cg_api_call *call, ag_op op, ag_input_fn input)
{
    ag_req *r = begin(req, call, op);
    if (!r) return;
    if (input && input(req, call, r) != 0) {
        req_free(r);
        return;
    }
    go(r);
}

/* The routes, in the order of cg_agents_api_routes: each an op, and the
 * reader of its input when it has one. */

static void h_logout(const cg_api_req *req, cg_api_call *call) { start(req, call, OP_LOGOUT, NULL); }
static void h_me(const cg_api_req *req, cg_api_call *call) { start(req, call, OP_ME, NULL); }
static void h_queue(const cg_api_req *req, cg_api_call *call) { start(req, call, OP_QUEUE, NULL); }

/* ?status= (default all) and ?mine=. */
static int cases_input(const cg_api_req *req, cg_api_call *call, ag_req *r)
{
    char b[16];
    if (cg_api_query(req, "status", r->status, sizeof r->status) != 0) snprintf(r->status, sizeof r->status, "all");
    if (strcmp(r->status, "queued") && strcmp(r->status, "assigned") && strcmp(r->status, "resolved") &&
        strcmp(r->status, "all")) {
        cg_api_error(call, 400, "status must be queued, assigned, resolved or all");
        return -1;
    }
    r->mine = cg_api_query(req, "mine", b, sizeof b) == 0 && (!strcmp(b, "1") || !strcmp(b, "true"));
    return 0;
}
static void h_cases(const cg_api_req *req, cg_api_call *call) { start(req, call, OP_CASES, cases_input); }

static void h_view(const cg_api_req *req, cg_api_call *call) { start(req, call, OP_VIEW, NULL); }
static void h_claim(const cg_api_req *req, cg_api_call *call) { start(req, call, OP_CLAIM, NULL); }

/* Text of {"text": "..."}: 1..AG_TEXT_MAX bytes, valid UTF-8 (cJSON
 * checked), no NUL. */
static int body_text(const cg_api_req *req, cg_api_call *call, ag_req *r)
{
    cJSON *b = cg_api_body_object(req, call);
    if (!b) return -1;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "text");
    size_t n = cJSON_IsString(t) ? strlen(t->valuestring) : 0;
    if (!n || n > AG_TEXT_MAX) {
        cJSON_Delete(b);
        cg_api_error(call, 400, "text is required: 1 to 4096 bytes");
        return -1;
    }
    /* only blanks is no message */
    const char *c = t->valuestring;
    while (*c == ' ' || *c == '\n' || *c == '\t' || *c == '\r') c++;
    if (!*c) {
        cJSON_Delete(b);
        cg_api_error(call, 400, "text is empty");
        return -1;
    }
    r->text = strdup(t->valuestring);
    cJSON_Delete(b);
    if (!r->text) {
        cg_api_error(call, 500, "out of memory");
        return -1;
    }
    return 0;
}
static void h_reply(const cg_api_req *req, cg_api_call *call) { start(req, call, OP_REPLY, body_text); }
static void h_note(const cg_api_req *req, cg_api_call *call) { start(req, call, OP_NOTE, body_text); }

/* {"to": an agent's name, or null for the queue}. */
static int transfer_input(const cg_api_req *req, cg_api_call *call, ag_req *r)
{
    cJSON *b = cg_api_body_object(req, call);
    if (!b) return -1;
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(b, "to");
    if (!to || (!cJSON_IsNull(to) && !cJSON_IsString(to))) {
        cJSON_Delete(b);
        cg_api_error(call, 400, "to must be an agent's name, or null for the queue");
        return -1;
    }
    if (cJSON_IsString(to)) {
        if (!cg_config_agent(r->a->gw->cfg, to->valuestring)) {
            cJSON_Delete(b);
            cg_api_error(call, 404, "no such agent");
            return -1;
        }
        snprintf(r->to, sizeof r->to, "%s", to->valuestring);
    }
    cJSON_Delete(b);
    return 0;
}
static void h_transfer(const cg_api_req *req, cg_api_call *call) { start(req, call, OP_TRANSFER, transfer_input); }

static void h_resolve(const cg_api_req *req, cg_api_call *call) { start(req, call, OP_RESOLVE, NULL); }

/* ?lang= and ?q=, both optional. */
static int canned_input(const cg_api_req *req, cg_api_call *call, ag_req *r)
{
    (void)call;
    if (cg_api_query(req, "lang", r->lang, sizeof r->lang) != 0) r->lang[0] = '\0';
    if (cg_api_query(req, "q", r->q, sizeof r->q) != 0) r->q[0] = '\0';
    return 0;
}
static void h_canned(const cg_api_req *req, cg_api_call *call) { start(req, call, OP_CANNED, canned_input); }

static void h_agents(const cg_api_req *req, cg_api_call *call) { start(req, call, OP_AGENTS, NULL); }

/* ---- the work of each op ----------------------------------------------------------- */

static void case_script_reply(cg_store *s, redisReply *rep, void *ud);

static void list_reply(cg_store *s, redisReply *rep, void *ud)
{
    (void)s;
    ag_req *r = reply_start(ud, rep, REDIS_REPLY_ARRAY);
    if (!r) return;
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "cases");
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) continue;
        cJSON *flat = ag_flat_from_reply(e->element[1]);
        cJSON_AddItemToArray(arr, ag_case_json(flat, (int)e->element[0]->integer));
        cJSON_Delete(flat);
    }
    cg_api_json(r->call, 200, o);
    req_free(r);
}

static void do_list(ag_req *r, const char *status, int mine)
{
    char max[16];
    numstr(max, sizeof max, AG_LIST_MAX);
    const char *av[] = {CG_K_AGENTS_Q, AG_K_ASSIGNED, AG_K_RESOLVED, status, r->who.name,
                        r->who.supervisor ? "1" : "0", mine ? "1" : "0", max};
    if (run(r, &list_script, 3, 8, av, list_reply) != 0) fail_503(r);
}

static void transcript_reply(cg_store *s, redisReply *rep, void *ud)
{
    (void)s;
    ag_req *r = reply_start(ud, rep, REDIS_REPLY_ARRAY);
    if (!r) return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "case", ag_case_json(r->flat, (int)cJSON_GetNumberValue(
                                                                cJSON_GetObjectItemCaseSensitive(r->flat, "_pos"))));
    cJSON *arr = cJSON_AddArrayToObject(o, "transcript");
    for (size_t i = 0; i < rep->elements; i++) {
        cJSON *e = ag_entry_json(rep->element[i]);
        if (e) cJSON_AddItemToArray(arr, e);
    }
    cg_audit(r->a->gw, r->who.name, role_of(&r->who), "view", r->id, NULL);
    cg_api_json(r->call, 200, o);
    req_free(r);
}

static void conv_key_of(const cJSON *flat, char *out, size_t cap)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(flat, "channel");
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(flat, "user");
    if (cg_store_key(out, cap, "conv", cJSON_IsString(c) ? c->valuestring : "", cJSON_IsString(u) ? u->valuestring : ""))
        out[0] = '\0';
}

static void reply_sent(cg_err e, void *ud);

/* After the case was read (view, reply). */
static void got_case(cg_store *s, redisReply *rep, void *ud)
{
    ag_req *r = ud;
    r->a->inflight--;
    const char *st = script_status(rep);
    if (!st || strcmp(st, "ok") || rep->elements != 3) {
        answer_script_error(r, rep, st);
        return;
    }
    r->flat = ag_flat_from_reply(rep->element[1]);
    cJSON_AddNumberToObject(r->flat, "_pos", (double)rep->element[2]->integer);
    if (!ag_can_see(&r->who, r->flat)) {
        cg_api_error(r->call, 403, "this case is held by another agent");
        req_free(r);
        return;
    }
    const char *status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r->flat, "status"));
    const char *holder = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r->flat, "agent"));
    int mine = holder && !strcmp(holder, r->who.name);
    char key[CG_KEY_MAX], cnt[16];
    if (r->op == OP_VIEW) {
        conv_key_of(r->flat, key, sizeof key);
        if (mine && status && !strcmp(status, "assigned")) {
            char ck[CG_KEY_MAX];
            snprintf(ck, sizeof ck, "%s%s", AG_K_CASE, r->id);
            const char *av[] = {"HSET", ck, "unread", "0"};
            cg_store_cmd(s, ag_ignore, NULL, 4, av, NULL);
            cJSON_ReplaceItemInObjectCaseSensitive(r->flat, "unread", cJSON_CreateString("0"));
        }
        numstr(cnt, sizeof cnt, AG_TRANSCRIPT_MAX);
        const char *av[] = {"XRANGE", key, "-", "+", "COUNT", cnt};
        if (!key[0] || cg_store_cmd(s, transcript_reply, r, 6, av, NULL) != 0) {
            fail_503(r);
            return;
        }
        r->a->inflight++;
        return;
    }
    /* OP_REPLY */
    if (!status || strcmp(status, "assigned") || !mine) {
        cg_api_error(r->call, 409, "the case is not held by you");
        req_free(r);
        return;
    }
    cg_reply out;
    memset(&out, 0, sizeof out);
    snprintf(out.channel, sizeof out.channel, "%s", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r->flat, "channel")));
    snprintf(out.user, sizeof out.user, "%s", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r->flat, "user")));
    out.text = r->text;
    out.from_agent = 1;
    const char *extra[] = {"agent", r->who.name};
    const char *lang = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r->flat, "lang"));
    r->a->inflight++;
    cg_store_send_reply_ex(s, &out, lang ? lang : "", extra, 2, reply_sent, r);
}

static void reply_sent(cg_err e, void *ud)
{
    ag_req *r = ud;
    cg_agents *a = r->a;
    a->inflight--;
    if (e != CG_OK) {
        fail_503(r);
        return;
    }
    int64_t now = cg_store_now_ms();
    cJSON *entry = cJSON_CreateObject();
    cJSON_AddStringToObject(entry, "dir", "out");
    cJSON_AddStringToObject(entry, "text", r->text);
    cJSON_AddNumberToObject(entry, "ts", (double)now);
    cJSON_AddStringToObject(entry, "agent", r->who.name);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "type", "entry");
    cJSON_AddStringToObject(ev, "case", r->id);
    cJSON_AddStringToObject(ev, "holder", r->who.name);
    cJSON_AddItemReferenceToObject(ev, "entry", entry);
    char *evs = cJSON_PrintUnformatted(ev);
    cJSON_Delete(ev);
    if (evs) {
        const char *av[] = {"PUBLISH", CG_CH_AGENTS, evs};
        cg_store_cmd(a->gw->store, ag_ignore, NULL, 3, av, NULL);
        free(evs);
    }
    char ck[CG_KEY_MAX], ts[32];
    snprintf(ck, sizeof ck, "%s%s", AG_K_CASE, r->id);
    numstr(ts, sizeof ts, (long long)now);
    const char *av2[] = {"HSET", ck, "last_agent_at", ts};
    cg_store_cmd(a->gw->store, ag_ignore, NULL, 4, av2, NULL);
    cg_audit(a->gw, r->who.name, role_of(&r->who), "reply", r->id, NULL);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "entry", entry);
    cg_api_json(r->call, 202, o);
    req_free(r);
}

/* The citizen's notice after a resolve: told, and asked for 1-5. */
typedef struct resolved_notice { cg_agents *a; } resolved_notice;

static void resolve_notice_sent(cg_err e, void *ud)
{
    cg_agents *a = ud;
    a->inflight--;
    if (e != CG_OK) cg_log(CG_LOG_WARN, "agents_notice_failed", "reason", "resolve notice not queued", NULL);
}

static void send_resolve_notice(cg_agents *a, const redisReply *hash)
{
    cJSON *flat = ag_flat_from_reply(hash);
    cg_reply out;
    memset(&out, 0, sizeof out);
    const char *lang = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(flat, "lang"));
    snprintf(out.channel, sizeof out.channel, "%s", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(flat, "channel")));
    snprintf(out.user, sizeof out.user, "%s", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(flat, "user")));
    cg_intents *t = cg_intents_ref(a->gw->intents);
    out.text = cg_agents_text(t ? &t->settings : NULL, "case_resolved", lang ? lang : "", NULL, NULL, NULL);
    cg_intents_unref(t);
    static const char *const titles[5] = {"1", "2", "3", "4", "5"};
    static const char *const payloads[5] = {"csat:1", "csat:2", "csat:3", "csat:4", "csat:5"};
    for (int i = 0; i < 5; i++) {
        out.buttons[i].title = (char *)titles[i];
        out.buttons[i].payload = (char *)payloads[i];
    }
    out.nbuttons = 5;
    if (out.text && out.channel[0]) {
        a->inflight++;
        cg_store_send_reply(a->gw->store, &out, lang ? lang : "", resolve_notice_sent, a);
    }
    free(out.text);
    cJSON_Delete(flat);
}

static void case_script_reply(cg_store *s, redisReply *rep, void *ud)
{
    ag_req *r = ud;
    (void)s;
    r->a->inflight--;
    const char *st = script_status(rep);
    if (!st || strcmp(st, "ok")) {
        if (st && !strcmp(st, "taken") && r->op == OP_CLAIM)
            cg_audit(r->a->gw, r->who.name, role_of(&r->who), "claim_refused", r->id, NULL);
        answer_script_error(r, rep, st);
        return;
    }
    const char *g = role_of(&r->who);
    char chan[CG_CHANNEL_MAX] = "";
    long long wait_ms = -1;
    if (rep->elements > 1) {
        cJSON *fl = ag_flat_from_reply(rep->element[1]);
        const char *c = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fl, "channel"));
        snprintf(chan, sizeof chan, "%s", c ? c : "");
        const char *ca = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fl, "created_at"));
        const char *cl = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fl, "claimed_at"));
        if (ca && cl) wait_ms = strtoll(cl, NULL, 10) - strtoll(ca, NULL, 10);
        cJSON_Delete(fl);
    }
    switch (r->op) {
    case OP_CLAIM:
        cg_audit(r->a->gw, r->who.name, g, "claim", r->id, NULL);
        cg_metrics_inc(CG_M_CASES_CLAIMED, chan);
        /* a new claim (not the same agent claiming again): the citizen's wait, for the daily figures */
        if (rep->elements > 2 && wait_ms >= 0) cg_analytics_record_case(r->a->gw, chan, wait_ms, 0);
        answer_case(r, 200, rep->element[1], 0);
        break;
    case OP_TRANSFER: {
        char d[CG_AGENT_NAME_MAX + 8];
        snprintf(d, sizeof d, "to=%s", r->to[0] ? r->to : "queue");
        cg_audit(r->a->gw, r->who.name, g, "transfer", r->id, d);
        answer_case(r, 200, rep->element[1], 0);
        break;
    }
    case OP_RESOLVE:
        cg_audit(r->a->gw, r->who.name, g, "resolve", r->id, NULL);
        cg_metrics_inc(CG_M_CASES_RESOLVED, chan);
        send_resolve_notice(r->a, rep->element[1]);
        answer_case(r, 200, rep->element[1], 0);
        break;
    case OP_NOTE: {
        cg_audit(r->a->gw, r->who.name, g, "note", r->id, NULL);
        cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "entry");
        cJSON_AddStringToObject(e, "dir", "note");
        cJSON_AddStringToObject(e, "text", r->text);
        cJSON_AddNumberToObject(e, "ts", (double)cg_store_now_ms());
        cJSON_AddStringToObject(e, "agent", r->who.name);
        cg_api_json(r->call, 201, o);
        break;
    }
    default:
        cg_api_error(r->call, 500, "unexpected");
        break;
    }
    req_free(r);
}

/* 1 when needle (lower-case ASCII) occurs in hay, ASCII case-folded. */
static int contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i]) {
            char c = hay[i];
            if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
            if (c != needle[i]) break;
            i++;
        }
        if (i == n) return 1;
    }
    return n == 0;
}

static void canned(ag_req *r)
{
    cg_intents *t = cg_intents_ref(r->a->gw->intents);
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "answers");
    if (t) {
        const char *def = t->settings.default_language;
        const char *lang = r->lang[0] ? r->lang : def;
        char q[QUERY_MAX];
        size_t n = 0;
        for (size_t i = 0; r->q[i] && i + 1 < sizeof q; i++) q[i] = (char)((r->q[i] >= 'A' && r->q[i] <= 'Z') ? r->q[i] + 32 : r->q[i]);
        q[strlen(r->q) < sizeof q ? strlen(r->q) : sizeof q - 1] = '\0';
        for (size_t i = 0; i < t->nintents && n < CANNED_MAX; i++) {
            const cg_intent *it = &t->intents[i];
            if (it->special == CG_SPECIAL_FALLBACK || it->flow) continue;
            const char *ans = cg_i18n_get(&it->answer, lang, def);
            if (!ans || !*ans) continue;
            const char *title = cg_i18n_get(&it->title, lang, def);
            if (!title || !*title) title = it->id;
            if (q[0]) {
                /* substring of the id, the title or the answer, ASCII case-folded */
                if (!contains_ci(it->id, q) && !contains_ci(title, q) && !contains_ci(ans, q)) continue;
            }
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "intent", it->id);
            cJSON_AddStringToObject(e, "title", title);
            char *text;
            size_t tl = strlen(ans) + (it->source ? strlen(it->source) : 0) + (it->owner ? strlen(it->owner) : 0) + 64;
            text = malloc(tl);
            if (text) {
                const char *src = cg_settings_phrase(&t->settings, "source", lang);
                if (it->source && !strstr(ans, it->source))
                    snprintf(text, tl, "%s\n%s: %s%s%s", ans, src, it->owner ? it->owner : "", it->owner ? ", " : "", it->source);
                else
                    snprintf(text, tl, "%s", ans);
                cJSON_AddStringToObject(e, "text", text);
                free(text);
            }
            cJSON_AddItemToArray(arr, e);
            n++;
        }
    }
    cg_intents_unref(t);
    cg_api_json(r->call, 200, o);
    req_free(r);
}

static void authed(cg_agents *a, const ag_who *who, void *ud)
{
    ag_req *r = ud;
    if (!who) {
        if (a->auth_unavailable) cg_api_error(r->call, 503, "Redis unavailable, try again");
        else cg_api_error(r->call, 401, "unknown or expired token");
        req_free(r);
        return;
    }
    r->who = *who;
    const cg_config *cfg = r->a->gw->cfg;
    char ck[CG_KEY_MAX], now[32], max[16], ttl[16], horizon[32];
    snprintf(ck, sizeof ck, "%s%s", AG_K_CASE, r->id);
    numstr(now, sizeof now, (long long)cg_store_now_ms());
    numstr(max, sizeof max, cfg->transcript_max);
    numstr(ttl, sizeof ttl, cfg->transcript_ttl_s);
    numstr(horizon, sizeof horizon, (long long)cfg->transcript_ttl_s * 1000LL);
    const char *sup = r->who.supervisor ? "1" : "0";
    switch (r->op) {
    case OP_LOGOUT: {
        char key[CG_KEY_MAX];
        ag_token_key(r->token, key, sizeof key);
        const char *av[] = {"DEL", key};
        cg_store_cmd(r->a->gw->store, ag_ignore, NULL, 2, av, NULL);
        char ev[CG_KEY_MAX + 48];
        snprintf(ev, sizeof ev, "{\"type\":\"revoked\",\"key\":\"%s\"}", key);   /* hex: no escaping */
        const char *pv[] = {"PUBLISH", CG_CH_AGENTS, ev};
        cg_store_cmd(r->a->gw->store, ag_ignore, NULL, 3, pv, NULL);
        cg_audit(r->a->gw, r->who.name, role_of(&r->who), "logout", r->who.name, NULL);
        cg_api_respond(r->call, 204, NULL, NULL, 0);
        req_free(r);
        return;
    }
    case OP_ME:
        cg_api_json(r->call, 200, ag_agent_json(r->who.user, 0, 0, 0));
        req_free(r);
        return;
    case OP_QUEUE:
        do_list(r, "queued", 0);
        return;
    case OP_CASES:
        do_list(r, r->status, r->mine);
        return;
    case OP_VIEW:
    case OP_REPLY: {
        const char *av[] = {ck, CG_K_AGENTS_Q};
        if (run(r, &get_script, 2, 2, av, got_case) != 0) fail_503(r);
        return;
    }
    case OP_CLAIM: {
        const char *av[] = {ck, CG_K_AGENTS_Q, r->who.name, now, max, ttl};
        if (run(r, &claim_script, 2, 6, av, case_script_reply) != 0) fail_503(r);
        return;
    }
    case OP_TRANSFER: {
        const char *av[] = {ck, CG_K_AGENTS_Q, r->who.name, sup, r->to, now, max, ttl};
        if (run(r, &transfer_script, 2, 8, av, case_script_reply) != 0) fail_503(r);
        return;
    }
    case OP_RESOLVE: {
        const char *av[] = {ck, CG_K_AGENTS_Q, AG_K_STATS, r->who.name, sup, now, max, ttl, horizon};
        if (run(r, &resolve_script, 3, 9, av, case_script_reply) != 0) fail_503(r);
        return;
    }
    case OP_NOTE: {
        const char *av[] = {ck, r->who.name, sup, r->text, now, max, ttl};
        if (run(r, &note_script, 1, 7, av, case_script_reply) != 0) fail_503(r);
        return;
    }
    case OP_CANNED:
        canned(r);
        return;
    case OP_AGENTS:
        if (!r->who.supervisor) {
            cg_api_error(r->call, 403, "supervisors only");
        } else {
            cg_agents_list(r->a, r->call);
        }
        r->call = NULL;
        req_free(r);
        return;
    }
}

const cg_api_route cg_agents_api_routes[] = {
    {"POST", "/api/v1/agent/login", h_login},
    {"POST", "/api/v1/agent/logout", h_logout},
    {"GET", "/api/v1/agent/me", h_me},
    {"GET", "/api/v1/agent/queue", h_queue},
    {"GET", "/api/v1/agent/cases", h_cases},
    {"GET", "/api/v1/agent/cases/*", h_view},
    {"POST", "/api/v1/agent/cases/*/claim", h_claim},
    {"POST", "/api/v1/agent/cases/*/reply", h_reply},
    {"POST", "/api/v1/agent/cases/*/notes", h_note},
    {"POST", "/api/v1/agent/cases/*/transfer", h_transfer},
    {"POST", "/api/v1/agent/cases/*/resolve", h_resolve},
    {"GET", "/api/v1/agent/canned", h_canned},
    {"GET", "/api/v1/agent/agents", h_agents},
    {NULL, NULL, NULL},
};

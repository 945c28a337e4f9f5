/*
 * agents_internal.h: shared by the agents module's files only:
 *   agents.c       lifecycle, authentication, pub/sub fan-out, sweeps
 *                  (presence, grace return, position notices, call-back
 *                  offers), the case and entry JSON
 *   agents_api.c   the REST routes (cg_agents_api_routes) and their scripts
 *   agents_ws.c    the /agent/ws socket (frames, calls, sending)
 *   agents_queue.c pure rules (agents_queue.h)
 */
#ifndef CG_AGENTS_INTERNAL_H
#define CG_AGENTS_INTERNAL_H

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "agents.h"
#include "agents_queue.h"
#include "ws_out.h"
#include "api.h"
#include "store.h"

/* Redis keys of the module (docs/redis.md). */
#define AG_K_CASE       "cg:case:"          /* + id: hash */
#define AG_K_ASSIGNED   "cg:cases:assigned" /* zset id → claimed_at */
#define AG_K_RESOLVED   "cg:cases:resolved" /* zset id → resolved_at */
#define AG_K_HELD       "cg:agent:held:"    /* + name: set of case ids */
#define AG_K_TOKEN      "cg:agent:token:"   /* + sha256(token) hex: hash name, role, expires_at */
#define AG_K_SEEN       "cg:agent:seen"     /* zset name → last seen ms */
#define AG_K_FAIL       "cg:agent:fail:"    /* + "name:<n>" / "peer:<ip>": failed logins */
#define AG_K_STATS      "cg:agents:stats"   /* hash: handle_ms (moving average) */

#define AG_TOKEN_HEX    64                  /* 32 random bytes */
#define AG_ONLINE_MS    15000               /* seen this recently = online */
#define AG_LIST_MAX     200                 /* cases in one list answer */
#define AG_TEXT_MAX     4096                /* reply and note text, bytes */
#define AG_TRANSCRIPT_MAX 1000              /* entries in one case view */

typedef struct ag_who {
    char name[CG_AGENT_NAME_MAX];
    int supervisor;
    const cg_agent_user *user;              /* borrowed from the config */
} ag_who;

/* One /agent/ws socket (agents_ws.c); in the module's list while open. */
typedef struct ag_conn {
    struct ag_conn *next;                   /* cg_agents.conns */
    struct lws *wsi;                        /* NULL once closed */
    cg_agents *a;
    unsigned refs;                          /* socket + calls in flight */
    int state;                              /* 0 waiting for auth, 1 authenticating, 2 live */
    int close_code;
    uint64_t opened;                        /* uv_now */
    char token[AG_TOKEN_HEX + 1];
    ag_who who;
    unsigned char *rx; size_t rx_len;
    double tokens; uint64_t refill;
    cg_ws_out q;                            /* frames waiting to be written (ws_out.h) */
} ag_conn;

struct cg_agents {
    cg_gateway *gw;
    uv_timer_t tick;
    int stopping, closed;
    unsigned inflight;                      /* Redis callbacks that reference us */
    void (*done)(void *ud);
    void *done_ud;
    ag_conn *conns;
    size_t nconns;
    int queue_dirty, queue_reading;
    int agents_dirty;
    uint64_t next_presence, next_sweep, next_queue, next_reauth;
    char *last_queue, *last_agents;         /* last frames broadcast: unchanged ones are not resent */
    int auth_unavailable;                   /* set for the ag_auth callback: who is NULL because Redis failed */
};

/* Lua helpers shared by the module's scripts (keys made from a case's
 * channel and user, as cg_store_key does; one Redis, not a cluster):
 *   flat(key)                   HGETALL as a table
 *   note(c, kind, agent, text, now, maxlen, ttl)   system note in the
 *                               transcript + "entry" event
 *   sess_set(c, f, v)           HSET on the citizen's session only while it
 *                               exists: an expired or erased session is not
 *                               made again, without a TTL, for one field
 *   pub_case(id, prev)          "case" event with the whole hash; returns it
 *   to_queue(id, c, now)        back in the queue (its original score) */
#define AG_LUA_PRE \
    "local function flat(k)\n" \
    "  local h = redis.call('HGETALL', k); local o = {}\n" \
    "  for i = 1, #h, 2 do o[h[i]] = h[i + 1] end\n" \
    "  return o\n" \
    "end\n" \
    "local function conv_key(c) return 'cg:conv:{' .. c.channel .. ':' .. c.user .. '}' end\n" \
    "local function sess_key(c) return 'cg:sess:{' .. c.channel .. ':' .. c.user .. '}' end\n" \
    "local function sess_set(c, f, v)\n" \
    "  local k = sess_key(c)\n" \
    "  if redis.call('EXISTS', k) == 1 then redis.call('HSET', k, f, v) end\n" \
    "end\n" \
    "local function note(c, kind, agent, text, now, maxlen, ttl)\n" \
    "  local k = conv_key(c)\n" \
    "  redis.call('XADD', k, 'MAXLEN', '~', maxlen, '*', 'dir', 'note', 'kind', kind, 'agent', agent,\n" \
    "             'text', text, 'ts', now)\n" \
    "  redis.call('EXPIRE', k, ttl)\n" \
    "  redis.call('PUBLISH', 'cg:agents', cjson.encode({type = 'entry', case = c.id, holder = c.agent or '',\n" \
    "    entry = {dir = 'note', kind = kind, agent = agent, text = text, ts = tonumber(now)}}))\n" \
    "end\n" \
    "local function pub_case(id, prev)\n" \
    "  local c = flat('cg:case:' .. id)\n" \
    "  redis.call('PUBLISH', 'cg:agents', cjson.encode({type = 'case', case = c, prev = prev or ''}))\n" \
    "  return c\n" \
    "end\n" \
    "local function pub_queue() redis.call('PUBLISH', 'cg:agents', '{\"type\":\"queue\"}') end\n" \
    "local function to_queue(id, c, now)\n" \
    "  redis.call('ZREM', 'cg:cases:assigned', id)\n" \
    "  if c.agent and c.agent ~= '' then redis.call('SREM', 'cg:agent:held:' .. c.agent, id) end\n" \
    "  redis.call('HSET', 'cg:case:' .. id, 'status', 'queued', 'agent', '')\n" \
    "  redis.call('ZADD', 'cg:queue:agents', c.score or now, id)\n" \
    "  redis.call('HDEL', sess_key(c), 'agent')\n" \
    "end\n"

/* ---- agents.c -------------------------------------------------------------- */

typedef void (*ag_auth_fn)(cg_agents *a, const ag_who *who, void *ud);
/* Token → who (NULL: unknown, expired, or the user left the config; or
 * Redis failed, and then a->auth_unavailable is 1 during the callback).
 * Marks the agent seen. cb may run before return. */
void ag_auth(cg_agents *a, const char *token, ag_auth_fn cb, void *ud);
/* sha256(token) as hex into out (65 bytes). */
void ag_token_key(const char *token, char *out, size_t cap);

/* Case JSON (the contract's Case) from a flat hash (HGETALL as an object of
 * strings); position ≤ 0 → null. Caller deletes. */
cJSON *ag_case_json(const cJSON *flat, int position);
/* HGETALL reply (array of name, value) → object of strings. */
cJSON *ag_flat_from_reply(const redisReply *r);
/* A transcript stream entry [id, [f, v, ...]] → Entry JSON, or NULL when it
 * is not shown to agents. */
cJSON *ag_entry_json(const redisReply *e);
/* Agent JSON; with_presence adds online and cases. */
cJSON *ag_agent_json(const cg_agent_user *u, int with_presence, int online, long long cases);
/* 1 when who may see the case (flat). */
int ag_can_see(const ag_who *who, const cJSON *flat);

/* Something changed: re-read and push the queue (and the agents list to
 * supervisors) soon, on this instance. */
void ag_queue_dirty(cg_agents *a);
/* Send the current queue to one socket / the agents list to one supervisor. */
void ag_send_queue_to(cg_agents *a, ag_conn *c);
void ag_send_agents_to(cg_agents *a, ag_conn *c);
/* A case was queued by this instance's pipeline: tell the citizen now. */
void ag_notify_positions(cg_agents *a);
/* Presence: a socket of name opened or closed here. */
void ag_presence_changed(cg_agents *a, const char *name);
/* GET /agent/agents: the agents list with presence answered through call. */
void cg_agents_list(cg_agents *a, cg_api_call *call);
/* A socket left the list: frees the module when it stopped and this was the last. */
void ag_conn_gone(cg_agents *a);
/* A reply callback that ignores the reply (fire and forget). */
void ag_ignore(cg_store *s, redisReply *r, void *ud);

/* ---- agents_ws.c ----------------------------------------------------------- */

/* Queue a copy of a text frame (dropped when the socket is gone). */
void ag_ws_send(ag_conn *c, const char *frame, size_t len);
void ag_ws_send_json(ag_conn *c, cJSON *frame);   /* takes ownership */
void ag_ws_close(ag_conn *c, int code);
void ag_ws_tick(cg_agents *a, uint64_t now);      /* auth deadlines */
/* The socket's token is no longer valid: error frame "unauthorized", close 4401. */
void ag_ws_revoke(ag_conn *c);

#endif

/*
 * delivery.c: delivery state of outgoing messages (see delivery.h).
 *
 * cg:dlv:{c:u} is a hash:
 *   <platform message id>  {"seq":n,"state":"accepted|sent|delivered|read|failed",
 *                           "at":ms sent,"updated":ms,"code":"131026"?}
 *   #<i>                   the platform id of the i-th record (for trimming)
 *   #n                     records made so far
 * At most CG_DELIVERY_MAX records: making record i deletes record
 * i - CG_DELIVERY_MAX. TTL retention.sessions_s, refreshed on every write.
 * One script does both writes (mode "sent" from the outbox, "status" from
 * the pipeline), so a status that overtakes the outbox's record (Meta can
 * call the webhook before our finish reaches Redis) is merged, not lost.
 *
 * Extending: a platform with statuses is a name in tracked[] and, if its
 * statuses carry a watermark instead of an id, a branch in
 * cg_delivery_status().
 */
#include "delivery.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

static const char *const tracked[] = { "whatsapp", "messenger", NULL };

/* Delivery states, in the order they may advance. */
static const char *const states[] = { "sent", "delivered", "read", "failed", NULL };

/*
 * KEYS: 1 cg:dlv:{c:u}
 * ARGV: 1 mode ("sent" | "status")  2 platform id or ""  3 state  4 seq or ""
 *       5 now / status time (ms)  6 watermark (ms) or "0"  7 error code or ""
 *       8 TTL (s)  9 max records
 * → number of records whose state changed.
 */
static cg_store_script delivery_script = {
    .name = "delivery",
    .src =
        "local k, max = KEYS[1], tonumber(ARGV[9])\n"
        "local rank = {accepted = 1, sent = 2, delivered = 3, read = 4, failed = 5}\n"
        "local ts = tonumber(ARGV[5])\n"
        "local function advance(o, code)\n"
        "  if (rank[ARGV[3]] or 0) > (rank[o.state] or 0) then\n"
        "    o.state = ARGV[3]; o.updated = ts\n"
        "    if code ~= '' then o.code = code end\n"
        "    return true\n"
        "  end\n"
        "  return false\n"
        "end\n"
        "local changed = 0\n"
        "if ARGV[2] ~= '' then\n"
        "  local cur = redis.call('HGET', k, ARGV[2])\n"
        "  local o = {state = ''}\n"
        "  if cur then o = cjson.decode(cur)\n"
        "  else\n"
        "    local n = redis.call('HINCRBY', k, '#n', 1)\n"
        "    redis.call('HSET', k, '#' .. n, ARGV[2])\n"
        "    local old = redis.call('HGET', k, '#' .. (n - max))\n"
        "    if old then redis.call('HDEL', k, old, '#' .. (n - max)) end\n"
        "  end\n"
        "  if ARGV[1] == 'sent' then\n"
        "    o.seq = tonumber(ARGV[4]); o.at = ts\n"
        "    if not cur then o.state = 'accepted'; o.updated = ts end\n"
        "  elseif advance(o, ARGV[7]) then changed = changed + 1 end\n"
        "  redis.call('HSET', k, ARGV[2], cjson.encode(o))\n"
        "end\n"
        "local wm = tonumber(ARGV[6])\n"
        "if ARGV[1] == 'status' and wm > 0 then\n"
        "  local all = redis.call('HGETALL', k)\n"
        "  for i = 1, #all, 2 do\n"
        "    local f = all[i]\n"
        "    if string.sub(f, 1, 1) ~= '#' and f ~= ARGV[2] then\n"
        "      local o = cjson.decode(all[i + 1])\n"
        "      if o.at and o.at <= wm and advance(o, '') then\n"
        "        redis.call('HSET', k, f, cjson.encode(o)); changed = changed + 1\n"
        "      end\n"
        "    end\n"
        "  end\n"
        "end\n"
        "redis.call('EXPIRE', k, ARGV[8])\n"
        "return changed\n",
};

int cg_delivery_tracked(const char *channel)
{
    for (size_t i = 0; channel && tracked[i]; i++)
        if (!strcmp(tracked[i], channel)) return 1;
    return 0;
}

static void delivery_done(cg_store *s, redisReply *r, void *ud)
{
    (void)s; (void)r; (void)ud;   /* errors are counted and logged by the store */
}

/* A platform id we may use as a hash field: printable, not our "#" fields. */
static int id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n >= CG_MSGID_MAX || id[0] == '#') return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] < 0x20 || id[i] == 0x7F) return 0;
    return 1;
}

static void run(cg_store *s, const cg_config *cfg, const char *channel, const char *user, const char *mode,
                const char *pid, const char *state, const char *seq, int64_t ts, int64_t wm, const char *code)
{
    char key[CG_KEY_MAX], t[24], w[24], ttl[24], max[16];
    if (cg_store_key(key, sizeof key, "dlv", channel, user)) return;
    snprintf(t, sizeof t, "%" PRId64, ts);
    snprintf(w, sizeof w, "%" PRId64, wm > 0 ? wm : 0);
    snprintf(ttl, sizeof ttl, "%d", cfg && cfg->session_ttl_s > 0 ? cfg->session_ttl_s : 2592000);
    snprintf(max, sizeof max, "%d", CG_DELIVERY_MAX);
    const char *av[] = { key, mode, pid, state, seq, t, w, code, ttl, max };
    cg_store_eval(s, &delivery_script, 1, 10, av, NULL, delivery_done, NULL);
}

void cg_delivery_sent(cg_store *s, const cg_config *cfg, const char *channel, const char *user,
                      const char *platform_id, long long seq)
{
    if (!s || !cg_delivery_tracked(channel) || !id_ok(platform_id) || !user || !user[0]) return;
    char sq[24];
    snprintf(sq, sizeof sq, "%lld", seq);
    run(s, cfg, channel, user, "sent", platform_id, "accepted", sq, cg_store_now_ms(), 0, "");
}

int cg_delivery_status(cg_store *s, const cg_config *cfg, const cg_msg *m)
{
    if (!s || !m || m->kind != CG_MSG_STATUS || !cg_delivery_tracked(m->channel) || !m->text || !m->user[0])
        return -1;
    int known = 0;
    for (size_t i = 0; states[i]; i++) known |= !strcmp(states[i], m->text);
    if (!known) return -1;
    const char *pid = m->payload && id_ok(m->payload) ? m->payload : "";
    int64_t wm = 0;
    if (!strcmp(m->channel, "messenger")) {
        const char *c = strrchr(m->msg_id, ':');    /* "d:<psid>:<watermark ms>" */
        if (c && c[1]) wm = strtoll(c + 1, NULL, 10);
    }
    if (!pid[0] && wm <= 0) return -1;
    const char *code = "";
    if (!strcmp(m->text, "failed")) {
        code = m->media[0] ? m->media : "";
        cg_metrics_delivery_failed(m->channel, code[0] ? code : "none");
        cg_log(CG_LOG_WARN, "delivery_failed", "channel", m->channel, "user", cg_log_user(m->user), "code",
               code[0] ? code : "none", NULL);
    }
    int64_t ts = m->ts > 0 ? m->ts * 1000 : cg_store_now_ms();
    run(s, cfg, m->channel, m->user, "status", pid, m->text, "", ts, wm, code);
    return 0;
}

/*
 * audit.c: cg_audit() (audit.h): one XADD per action, trimmed by time.
 */
#include "audit.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "store.h"

static void audit_written(cg_store *s, redisReply *r, void *ud)
{
    (void)s;
    (void)ud;
    if (!r || r->type == REDIS_REPLY_ERROR)
        cg_log(CG_LOG_WARN, "audit_write_failed", "reason", r ? r->str : "redis unavailable", NULL);
}

void cg_audit(cg_gateway *gw, const char *who, const char *role, const char *action, const char *target,
              const char *detail)
{
    if (!gw || !gw->store) return;
    char minid[32], ts[32];
    long long now = (long long)cg_store_now_ms();
    snprintf(minid, sizeof minid, "%lld", now - (long long)gw->cfg->audit_ttl_s * 1000LL);
    snprintf(ts, sizeof ts, "%lld", now);
    const char *argv[20];
    int n = 0;
    argv[n++] = "XADD";
    argv[n++] = CG_K_AUDIT;
    argv[n++] = "MINID";
    argv[n++] = "~";
    argv[n++] = minid;
    argv[n++] = "*";
    argv[n++] = "ts"; argv[n++] = ts;
    argv[n++] = "who"; argv[n++] = who ? who : "";
    argv[n++] = "role"; argv[n++] = role ? role : "";
    argv[n++] = "action"; argv[n++] = action ? action : "";
    argv[n++] = "target"; argv[n++] = target ? target : "";
    argv[n++] = "instance"; argv[n++] = gw->instance;
    if (detail) { argv[n++] = "detail"; argv[n++] = detail; }
    size_t lens[20];
    for (int i = 0; i < n; i++) lens[i] = strlen(argv[i]);
    if (cg_store_cmd(gw->store, audit_written, NULL, n, argv, lens) != 0)
        cg_log(CG_LOG_WARN, "audit_write_failed", "reason", "redis unavailable", "action", action ? action : "",
               NULL);
}

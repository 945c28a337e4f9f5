/*
 * health.c: per-channel health for /readyz (see health.h).
 *
 * A fixed table, one row per platform channel, written by the outbox on the
 * loop thread. An unhealthy channel does not make /readyz fail: the instance
 * still takes webhooks for every channel (and a token problem is the same on
 * every instance), so the detail is for operators and alerts
 * (civicgate_channel_auth_failures_total), not for the load balancer.
 */
#include "health.h"

#include <stdio.h>
#include <string.h>

#define HEALTH_REASON_MAX 160

static const char *const health_channels[] = { "telegram", "whatsapp", "messenger", NULL };
#define NCH 3

static struct {
    int unhealthy;
    char reason[HEALTH_REASON_MAX + 1];
    int64_t at_ms;
} health[NCH];

static int health_index(const char *channel)
{
    for (int i = 0; channel && health_channels[i]; i++)
        if (!strcmp(health_channels[i], channel)) return i;
    return -1;
}

void cg_health_channel_ok(const char *channel)
{
    int i = health_index(channel);
    if (i < 0) return;
    health[i].unhealthy = 0;
    health[i].reason[0] = '\0';
    health[i].at_ms = 0;
}

void cg_health_channel_failed(const char *channel, const char *reason, int64_t at_ms)
{
    int i = health_index(channel);
    if (i < 0) return;
    health[i].unhealthy = 1;
    health[i].at_ms = at_ms;
    size_t n = reason ? strlen(reason) : 0;
    if (n > HEALTH_REASON_MAX) {
        n = HEALTH_REASON_MAX;
        while (n > 0 && ((unsigned char)reason[n] & 0xC0) == 0x80) n--;
    }
    if (n) memcpy(health[i].reason, reason, n);
    health[i].reason[n] = '\0';
}

int cg_health_channel_unhealthy(const char *channel)
{
    int i = health_index(channel);
    return i >= 0 && health[i].unhealthy;
}

cJSON *cg_health_channels_json(const cg_config *cfg)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; o && health_channels[i]; i++) {
        const cg_channel_cfg *cc = cfg ? cg_config_channel(cfg, health_channels[i]) : NULL;
        if (!cc || !cc->enabled) continue;
        cJSON *c = cJSON_AddObjectToObject(o, health_channels[i]);
        if (!c) break;
        cJSON_AddStringToObject(c, "status", health[i].unhealthy ? "unhealthy" : "ok");
        if (health[i].unhealthy) {
            cJSON_AddStringToObject(c, "reason", health[i].reason);
            cJSON_AddNumberToObject(c, "at", (double)health[i].at_ms);
        }
    }
    return o;
}

void cg_health_reset(void)
{
    memset(health, 0, sizeof health);
}

/*
 * health.h: each platform channel's health as this process last saw it
 * (gateway/health.c), shown in GET /readyz under "channels".
 *
 * The outbox reports every send's outcome that says something about our
 * credentials: a refused token or permission (CG_SEND_BAD_CONFIG, e.g. Graph
 * code 190) marks the channel unhealthy with the reason; the next successful
 * send marks it ok again. The state is per process and in memory: each
 * instance reports what its own sends saw. Loop thread only.
 *
 * API: cg_health_channel_ok() / cg_health_channel_failed() from the outbox;
 * cg_health_channels_json() for /readyz.
 * Extending: a new platform channel is a name in health_channels[].
 */
#ifndef CG_HEALTH_H
#define CG_HEALTH_H

#include <stdint.h>
#include <cjson/cJSON.h>

#include "config.h"

/* A send on channel succeeded: the channel is "ok" again. Unknown names are ignored. */
void cg_health_channel_ok(const char *channel);
/* A send on channel was refused for our credentials: "unhealthy" with reason
 * (copied, cut to 160 bytes at a UTF-8 boundary; must hold no secret) at at_ms. */
void cg_health_channel_failed(const char *channel, const char *reason, int64_t at_ms);
/* 1 when the channel is marked unhealthy. */
int cg_health_channel_unhealthy(const char *channel);
/* {"<channel>":{"status":"ok"|"unhealthy","reason"?,"at"?(ms)}} for
 * every enabled platform channel of cfg; a new object the caller owns (NULL
 * on allocation failure). */
cJSON *cg_health_channels_json(const cg_config *cfg);
/* Forget every state (tests). */
void cg_health_reset(void);

#endif

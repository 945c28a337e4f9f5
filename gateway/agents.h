/*
 * agents.h: human agents (issue 5): the hand-off queue, agents' sessions,
 * the console's WebSocket (/agent/ws) and its REST API (api.h routes in
 * cg_agents_api_routes).
 *
 * Lifecycle: serve.c calls cg_agents_start() after the pipeline and outbox,
 * and cg_agents_stop() with them on a graceful stop. http.c routes the
 * WebSocket upgrade of /agent/ws to cg_agents_ws_confirm_upgrade() and the
 * frames to the lws protocol callback cg_agents_ws_callback(); when the
 * server stops accepting it asks every agent socket for a writeable
 * callback (the module then closes it with 1001 "going away").
 */
#ifndef CG_AGENTS_H
#define CG_AGENTS_H

#include <libwebsockets.h>
#include "gateway.h"

#define CG_AGENTS_WS_PROTOCOL "civicgate-agent"

typedef struct cg_agents cg_agents;

/* NULL on allocation failure. */
cg_agents *cg_agents_start(cg_gateway *gw);
/* done is called once (possibly before return). */
void cg_agents_stop(cg_agents *a, void (*done)(void *ud), void *ud);

/* Who holds a bearer token (another module's API, e.g. the admin dashboard
 * served to supervisors): cb(ud, name, role) with role "agent" or
 * "supervisor", or cb(ud, NULL, NULL) when the token is unknown or expired.
 * cb may run before return. token is copied. */
typedef void (*cg_agents_auth_cb)(void *ud, const char *name, const char *role);
void cg_agents_authenticate(cg_agents *a, const char *token, cg_agents_auth_cb cb, void *ud);

/* The pipeline queued a case (its commit is in Redis): tell waiting
 * citizens their position now rather than at the next sweep. a may be NULL. */
void cg_agents_case_queued(cg_agents *a);

/* Erase a citizen's hand-off cases (the admin module's erasure): every case
 * of the conversation (cg:cases:{c:u}) is deleted and taken out of the
 * queue, the assigned and resolved lists and its holder's set; consoles are
 * told (queue and case events). cb gets CG_OK (*n cases, may be 0) or
 * CG_E_UNAVAILABLE; it may run before return. Strings are copied. */
typedef void (*cg_agents_erase_cb)(cg_err result, size_t n, void *ud);
void cg_agents_erase(cg_store *s, const char *channel, const char *user, cg_agents_erase_cb cb, void *ud);

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE for /agent/ws: 0 lets the upgrade go
 * on, >0 when a refusal was written, <0 to hang up. stopping: the server no
 * longer accepts connections. */
int cg_agents_ws_confirm_upgrade(cg_gateway *gw, struct lws *wsi, int stopping);
/* The lws protocol callback of CG_AGENTS_WS_PROTOCOL. */
int cg_agents_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len);
size_t cg_agents_ws_pss_size(void);

#endif

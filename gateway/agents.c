/*
 * agents.c: placeholder of the human-agent module (issue 5), so that the
 * gateway builds and refuses the agents' endpoints cleanly until it lands:
 * no API routes (404), the WebSocket upgrade of /agent/ws refused with 404.
 */
#include "agents.h"

#include <stdlib.h>
#include <string.h>

#include "api.h"

struct cg_agents {
    cg_gateway *gw;
};

const cg_api_route cg_agents_api_routes[] = {
    {NULL, NULL, NULL},
};

cg_agents *cg_agents_start(cg_gateway *gw)
{
    cg_agents *a = calloc(1, sizeof *a);
    if (a) a->gw = gw;
    return a;
}

void cg_agents_stop(cg_agents *a, void (*done)(void *ud), void *ud)
{
    free(a);
    if (done) done(ud);
}

void cg_agents_authenticate(cg_agents *a, const char *token, cg_agents_auth_cb cb, void *ud)
{
    (void)a;
    (void)token;
    cb(ud, NULL, NULL);
}

int cg_agents_ws_confirm_upgrade(cg_gateway *gw, struct lws *wsi, int stopping)
{
    (void)gw;
    (void)stopping;
    static const char body[] = "{\"error\":\"not found\"}";
    if (lws_return_http_status(wsi, 404, body)) return -1;
    return 1;
}

int cg_agents_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    (void)wsi;
    (void)reason;
    (void)user;
    (void)in;
    (void)len;
    return 0;
}

size_t cg_agents_ws_pss_size(void)
{
    return sizeof(void *);
}

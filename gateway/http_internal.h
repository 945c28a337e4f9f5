/*
 * http_internal.h: shared between gateway/http.c (the server, routes,
 * webhooks, static files) and gateway/http_webchat.c (the web-chat WebSocket
 * transport); agents_ws.c reads cg_http.gw from the lws context user. Not
 * part of any contract; only these files include it.
 */
#ifndef CG_HTTP_INTERNAL_H
#define CG_HTTP_INTERNAL_H

#include <libwebsockets.h>
#include "gateway.h"

typedef struct http_wc http_wc;

struct cg_http {
    cg_gateway *gw;
    struct lws_context *ctx;
    int accepting;
    size_t inflight;             /* HTTP requests not yet answered in full */
    http_wc *wc;                 /* web-chat connections of this instance */
    char csp[768];               /* Content-Security-Policy of pages */
};

#define HTTP_WC_PROTOCOL "civicgate-webchat"

/* 1 when origin (exact, case-sensitive scheme://host[:port]) is allowed. */
int http_origin_allowed(const cg_config *c, const char *origin);

/* ---- http_webchat.c ---------------------------------------------------- */

/* Registry of this instance's web-chat connections; registers the
 * cg_store_on_webchat push callback. NULL on allocation failure. */
http_wc *http_wc_new(cg_http *h);
/* Frees the registry; call after the lws context is destroyed (every
 * connection closed). */
void http_wc_free(http_wc *wc);
/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE on the http protocol: 0 lets the upgrade
 * proceed, >0 when a refusal was written (403/400), <0 to hang up. */
int http_wc_confirm_upgrade(cg_http *h, struct lws *wsi, const char *upgrade);
/* The protocol callback of "civicgate-webchat". */
int http_wc_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len);
/* Open web-chat connections. */
size_t http_wc_count(const http_wc *wc);
/* Size of the per-session data of the protocol. */
size_t http_wc_pss_size(void);

#endif

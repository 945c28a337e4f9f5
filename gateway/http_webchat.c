/*
 * http_webchat.c: the web-chat WebSocket transport at /chat/ws (subprotocol
 * "civicgate-webchat"). The frame protocol itself is a pure translator in
 * connectors/webchat.c (include/civicgate/webchat.h); this file does the I/O.
 *
 * Life of a connection:
 *   upgrade   http_wc_confirm_upgrade(): path /chat/ws, web chat enabled,
 *             Origin in channels.webchat.allowed_origins (403 otherwise),
 *             subprotocol offered (400 otherwise)
 *   hello     resume token validated or made (32 random bytes → 64 hex),
 *             user = cg_webchat_user(token), the connection registered under
 *             user, cg_store_history() → welcome frame (Redis unavailable:
 *             close 1011, the client reconnects and says hello again)
 *   message / button → cg_store_ingest(); error frame when Redis refused it
 *             (the client resends)
 *   replies   cg_store_on_webchat() pushes frames for a user; every socket of
 *             that user on this instance gets a copy
 * Limits: a client frame ≤ CG_WC_MAX_FRAME (close 1009 beyond), text frames
 * only (close 1003), WC_RATE_PER_S frames per second with bursts of WC_BURST
 * (error frame beyond), WC_MAX_QUEUE frames waiting to be sent (close 1008
 * beyond: the client reconnects and gets the history).
 *
 * Ownership: a wc_conn is heap allocated and reference counted: one
 * reference for the socket, one per store call in flight. When the socket
 * closes, conn->wsi becomes NULL and callbacks that arrive later only drop
 * their reference. Frames are written only in LWS_CALLBACK_SERVER_WRITEABLE,
 * one per callback.
 */
#include "http_internal.h"
#include "ws_out.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "civicgate/webchat.h"
#include "log.h"
#include "metrics.h"

#define WC_BUCKETS    1024
#define WC_MAX_QUEUE  32
#define WC_RATE_PER_S 5.0
#define WC_BURST      10.0
#define WC_HISTORY    50


typedef struct wc_conn {
    struct lws *wsi;             /* NULL once the socket closed */
    http_wc *wc;
    unsigned refs;
    int state;                   /* 0 new, 1 hello sent to the store, 2 greeted */
    int close_code;              /* nonzero: close at the next writeable */
    char token[CG_WC_TOKEN_LEN + 1];
    char user[CG_USER_MAX];
    char lang[8];
    unsigned char *rx;           /* a frame arriving in pieces (malloc'd ≤ CG_WC_MAX_FRAME), else NULL */
    size_t rx_len;
    double tokens;
    uint64_t refill_ms;
    cg_ws_out q;                 /* frames waiting to be written */
    struct wc_conn *next;        /* registry chain */
    int registered;
} wc_conn;

struct http_wc {
    cg_http *h;
    wc_conn *buckets[WC_BUCKETS];
    size_t nconns;
};

typedef struct wc_pss { wc_conn *c; } wc_pss;

size_t http_wc_pss_size(void) { return sizeof(wc_pss); }

size_t http_wc_count(const http_wc *wc) { return wc ? wc->nconns : 0; }

/* ---- registry: user → connections --------------------------------------- */

static size_t wc_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h % WC_BUCKETS;
}

static void wc_register(wc_conn *c)
{
    size_t b = wc_hash(c->user);
    c->next = c->wc->buckets[b];
    c->wc->buckets[b] = c;
    c->registered = 1;
}

static void wc_unregister(wc_conn *c)
{
    if (!c->registered) return;
    wc_conn **pp = &c->wc->buckets[wc_hash(c->user)];
    while (*pp && *pp != c) pp = &(*pp)->next;
    if (*pp) *pp = c->next;
    c->next = NULL;
    c->registered = 0;
}

static void wc_unref(wc_conn *c)
{
    if (--c->refs == 0) {
        free(c->rx);
        free(c);
    }
}

static void wc_gauge(http_wc *wc)
{
    cg_metrics_set_gauge("civicgate_webchat_connections", (double)wc->nconns);
}

/* ---- sending ------------------------------------------------------------ */

static void wc_close_soon(wc_conn *c, int code)
{
    if (!c->wsi || c->close_code) return;
    c->close_code = code;
    lws_callback_on_writable(c->wsi);
}

/* Queue a copy of a frame. */
static void wc_send(wc_conn *c, const char *frame, size_t len)
{
    if (!c->wsi || c->close_code || !frame) return;
    int rc = cg_ws_out_push(&c->q, frame, len, WC_MAX_QUEUE);
    if (rc == -1) {
        cg_log(CG_LOG_WARN, "webchat_queue_full", "user", cg_log_user(c->user), NULL);
        wc_close_soon(c, LWS_CLOSE_STATUS_POLICY_VIOLATION);
        return;
    }
    if (rc < 0) {
        wc_close_soon(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
        return;
    }
    lws_callback_on_writable(c->wsi);
}

static void wc_send_owned(wc_conn *c, char *frame)
{
    if (frame) wc_send(c, frame, strlen(frame));
    else wc_close_soon(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
    free(frame);
}

static void wc_send_error(wc_conn *c, const char *reason)
{
    wc_send_owned(c, cg_webchat_render_error(reason));
}

static void wc_queue_free(wc_conn *c)
{
    cg_ws_out_clear(&c->q);
}

static int wc_writeable(struct lws *wsi, wc_conn *c)
{
    if (c->close_code) {
        /* the close frame, then drop the socket (ws_out.h) */
        cg_ws_write_close(wsi, c->close_code);
        return -1;
    }
    int rc = cg_ws_out_write(&c->q, wsi);
    if (rc < 0) return -1;
    if (c->q.n) lws_callback_on_writable(wsi);
    return 0;
}

/* Push from the store: reply frames for a user. */
static void wc_push(const char *user, const char *frame_json, size_t len, void *ud)
{
    http_wc *wc = ud;
    if (!user || !frame_json) return;
    for (wc_conn *c = wc->buckets[wc_hash(user)]; c; c = c->next)
        if (c->state == 2 && !strcmp(c->user, user)) wc_send(c, frame_json, len);
}

/* ---- frames from the client -------------------------------------------- */

static void wc_history_done(const char *json, size_t len, void *ud)
{
    wc_conn *c = ud;
    if (c->wsi && !json) {
        /* Redis unavailable: a welcome with an empty history would blank a
         * resumed conversation; close with 1011 and the widget reconnects
         * (with backoff) and says hello again */
        wc_unregister(c);
        wc_close_soon(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
    } else if (c->wsi) {
        char *hist = malloc(len + 1);
        if (hist) {
            memcpy(hist, json, len);
            hist[len] = '\0';
            c->state = 2;
            wc_send_owned(c, cg_webchat_render_welcome(c->token, hist));
            free(hist);
        } else {
            wc_close_soon(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
        }
    }
    wc_unref(c);
}

static void wc_ingest_done(cg_err result, void *ud)
{
    wc_conn *c = ud;
    if (result == CG_OK) {
        cg_metrics_inc(CG_M_RECEIVED, "webchat");
    } else if (c->wsi) {
        wc_send_error(c, "unavailable: message not stored, send it again");
    }
    wc_unref(c);
}

static void wc_hello(wc_conn *c, const cg_wc_frame *f)
{
    if (c->state != 0) {
        wc_send_error(c, "hello already received");
        return;
    }
    if (f->token[0] && cg_webchat_token_valid(f->token)) {
        memcpy(c->token, f->token, sizeof c->token);
    } else {
        unsigned char rnd[CG_WC_TOKEN_LEN / 2];
        randombytes_buf(rnd, sizeof rnd);
        sodium_bin2hex(c->token, sizeof c->token, rnd, sizeof rnd);
    }
    cg_webchat_user(c->token, c->user);
    snprintf(c->lang, sizeof c->lang, "%s", f->lang);
    wc_register(c);
    c->state = 1;
    cg_store *store = c->wc->h->gw->store;
    if (store) {
        c->refs++;
        cg_store_history(store, "webchat", c->user, WC_HISTORY, wc_history_done, c);
    } else {
        c->refs++;
        wc_history_done(NULL, 0, c);
    }
}

static void wc_message(wc_conn *c, cg_wc_frame *f)
{
    if (c->state != 2) {
        wc_send_error(c, "hello first");
        return;
    }
    cg_store *store = c->wc->h->gw->store;
    if (!store) {
        wc_send_error(c, "unavailable: message not stored, send it again");
        return;
    }
    if (!f->msg.ts) f->msg.ts = (int64_t)time(NULL);
    if (!f->msg.lang_hint[0] && c->lang[0]) snprintf(f->msg.lang_hint, sizeof f->msg.lang_hint, "%s", c->lang);
    c->refs++;
    cg_store_ingest(store, &f->msg, 1, wc_ingest_done, c);   /* may call back at once */
}

/* Token bucket: 1 when the frame may pass. */
static int wc_rate_ok(wc_conn *c)
{
    uint64_t now = uv_now(c->wc->h->gw->loop);
    if (now > c->refill_ms) {
        c->tokens += (double)(now - c->refill_ms) * WC_RATE_PER_S / 1000.0;
        if (c->tokens > WC_BURST) c->tokens = WC_BURST;
        c->refill_ms = now;
    }
    if (c->tokens < 1.0) return 0;
    c->tokens -= 1.0;
    return 1;
}

static void wc_frame(wc_conn *c, const unsigned char *data, size_t len)
{
    if (!wc_rate_ok(c)) {
        wc_send_error(c, "rate limited: slow down");
        return;
    }
    cg_wc_frame f;
    memset(&f, 0, sizeof f);
    char reason[160] = "";
    cg_err e = cg_webchat_parse((const char *)data, len, c->state == 2 ? c->user : "", &f, reason, sizeof reason);
    if (e != CG_OK) {
        wc_send_error(c, reason[0] ? reason : "bad frame");
    } else {
        switch (f.kind) {
        case CG_WC_HELLO: wc_hello(c, &f); break;
        case CG_WC_MESSAGE:
        case CG_WC_BUTTON: wc_message(c, &f); break;
        case CG_WC_PING: {
            static const char pong[] = "{\"type\":\"pong\"}";
            wc_send(c, pong, sizeof pong - 1);
            break;
        }
        }
    }
    cg_msg_free(&f.msg);
}

static int wc_receive(struct lws *wsi, wc_conn *c, const void *in, size_t len)
{
    if (lws_frame_is_binary(wsi)) {
        static const char why[] = "text frames only";
        lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, (unsigned char *)why, sizeof why - 1);
        return -1;
    }
    if (c->rx_len + len > CG_WC_MAX_FRAME) {
        static const char why[] = "frame too large";
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)why, sizeof why - 1);
        return -1;
    }
    int complete = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
    if (complete && c->rx_len == 0) {   /* the usual case: the whole frame at once, no copy */
        wc_frame(c, in, len);
        return 0;
    }
    /* a frame in pieces: the buffer exists only while one is arriving, so
     * 10,000 idle sockets do not hold 8 KiB each */
    if (!c->rx && !(c->rx = malloc(CG_WC_MAX_FRAME))) return -1;
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (!complete) return 0;
    size_t n = c->rx_len;
    c->rx_len = 0;
    wc_frame(c, c->rx, n);
    free(c->rx);
    c->rx = NULL;
    return 0;
}

/* ---- lws glue ----------------------------------------------------------- */

int http_wc_confirm_upgrade(cg_http *h, struct lws *wsi, const char *upgrade)
{
    if (!upgrade || strcasecmp(upgrade, "websocket")) return 0;
    char buf[256];
    int status = 0;
    const char *why = "";
    if (lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_GET_URI) <= 0 || strcmp(buf, "/chat/ws") ||
        !h->gw->cfg->webchat_enabled) {
        status = 404;
        why = "not found";
    } else if (!h->accepting || h->gw->stopping) {
        status = 503;
        why = "stopping";
    } else if (lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_ORIGIN) <= 0 ||
               !http_origin_allowed(h->gw->cfg, buf)) {
        status = 403;
        why = "origin not allowed";
    } else {
        int n = lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_PROTOCOL);
        int found = 0;
        if (n > 0) {
            char *save = NULL;
            for (char *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
                if (!strcmp(t, HTTP_WC_PROTOCOL)) found = 1;
        }
        if (!found) {
            status = 400;
            why = "subprotocol civicgate-webchat required";
        }
    }
    if (!status) return 0;
    cg_log(CG_LOG_WARN, "webchat_refused", "reason", why, NULL);
    cg_metrics_http_status(status);
    if (lws_return_http_status(wsi, (unsigned)status, NULL)) return -1;
    return 1;
}

int http_wc_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    wc_pss *pss = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED: {
        cg_http *h = lws_context_user(lws_get_context(wsi));
        wc_conn *c = calloc(1, sizeof *c);
        if (!c) return -1;
        c->wsi = wsi;
        c->wc = h->wc;
        c->refs = 1;
        c->tokens = WC_BURST;
        c->refill_ms = uv_now(h->gw->loop);
        pss->c = c;
        h->wc->nconns++;
        wc_gauge(h->wc);
        return 0;
    }
    case LWS_CALLBACK_RECEIVE:
        if (!pss || !pss->c) return -1;
        return wc_receive(wsi, pss->c, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        if (!pss || !pss->c) return 0;
        cg_http *h = lws_context_user(lws_get_context(wsi));
        if (!h->accepting && !pss->c->close_code) pss->c->close_code = LWS_CLOSE_STATUS_GOINGAWAY;

        return wc_writeable(wsi, pss->c);
    }
    case LWS_CALLBACK_CLOSED: {
        if (!pss || !pss->c) return 0;
        wc_conn *c = pss->c;
        pss->c = NULL;
        wc_unregister(c);
        wc_queue_free(c);
        c->wsi = NULL;
        if (c->wc->nconns) c->wc->nconns--;
        wc_gauge(c->wc);
        wc_unref(c);
        return 0;
    }
    default:
        return 0;
    }
}

http_wc *http_wc_new(cg_http *h)
{
    if (sodium_init() < 0) return NULL;
    http_wc *wc = calloc(1, sizeof *wc);
    if (!wc) return NULL;
    wc->h = h;
    if (h->gw->store) cg_store_on_webchat(h->gw->store, wc_push, wc);
    wc_gauge(wc);   /* 0 open sockets is a figure too: present from the start */
    return wc;
}

void http_wc_free(http_wc *wc)
{
    if (!wc) return;
    /* every socket is closed by now (lws context destroyed); connections
     * still referenced by store callbacks free themselves */
    if (wc->h->gw->store) cg_store_on_webchat(wc->h->gw->store, NULL, NULL);
    free(wc);
}

/*
 * agents_ws.c: the agents' console socket, /agent/ws, subprotocol
 * "civicgate-agent" (docs/openapi.yaml, "WebSocket"; docs/agents.md).
 *
 * Life of a connection:
 *   upgrade   cg_agents_ws_confirm_upgrade(): path /agent/ws, not stopping
 *             (503), Origin = the gateway's own host or one of
 *             channels.webchat.allowed_origins (403), subprotocol offered (400)
 *   auth      the first frame must be {"type":"auth","token":"..."} within
 *             AUTH_DEADLINE_MS; anything else, a bad token or the deadline:
 *             {"type":"error","error":"unauthorized"} then close 4401 (Redis
 *             unavailable: an "unavailable" error and close 1011, to retry)
 *   live      hello, the queue, the agents list (supervisors); then pushes
 *             from agents.c (queue, case, entry, agents) and answers to
 *             {"type":"call","req":n,"method","path","body"}: the REST
 *             handlers of agents_api.c run with the socket's token as bearer
 *             (cg_api_call_new) and their answer comes back as
 *             {"type":"result","req":n,"status":s,"body":...}
 * Limits: a frame ≤ FRAME_MAX (close 1009), text only (1003), RATE_PER_S
 * frames a second with bursts of BURST (error frame beyond), QUEUE_MAX
 * frames waiting to be sent (close 1008: the console reconnects and gets
 * the whole state again).
 *
 * Ownership: an ag_conn is reference counted (the socket, each call or
 * Redis read in flight); once closed, wsi is NULL and late answers only
 * drop their reference. Frames are written only in SERVER_WRITEABLE.
 */
#include "agents_internal.h"
#include "http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "metrics.h"

#define AUTH_DEADLINE_MS 5000
#define FRAME_MAX        (CG_API_MAX_BODY + 2048)
#define QUEUE_MAX        256
#define RATE_PER_S       20.0
#define BURST            40.0
#define CLOSE_UNAUTHORIZED 4401

typedef struct ag_pss { ag_conn *c; } ag_pss;

size_t cg_agents_ws_pss_size(void) { return sizeof(ag_pss); }

static void conn_unref(ag_conn *c)
{
    if (--c->refs == 0) free(c);
}

/* ---- sending --------------------------------------------------------------- */

void ag_ws_close(ag_conn *c, int code)
{
    if (!c->wsi || c->close_code) return;
    c->close_code = code;
    lws_callback_on_writable(c->wsi);
}

void ag_ws_send(ag_conn *c, const char *frame, size_t len)
{
    if (!c->wsi || c->close_code || !frame) return;
    int rc = cg_ws_out_push(&c->q, frame, len, QUEUE_MAX);
    if (rc == -1) {
        cg_log(CG_LOG_WARN, "agent_ws_queue_full", "agent", c->who.name, NULL);
        ag_ws_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION);
        return;
    }
    if (rc < 0) {
        ag_ws_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
        return;
    }
    lws_callback_on_writable(c->wsi);
}

void ag_ws_send_json(ag_conn *c, cJSON *frame)
{
    char *t = frame ? cJSON_PrintUnformatted(frame) : NULL;
    cJSON_Delete(frame);
    if (t) ag_ws_send(c, t, strlen(t));
    else ag_ws_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
    free(t);
}

static void send_error(ag_conn *c, const char *why)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "type", "error");
    cJSON_AddStringToObject(f, "error", why);
    ag_ws_send_json(c, f);
}

static void queue_free(ag_conn *c)
{
    cg_ws_out_clear(&c->q);
}

static int writeable(struct lws *wsi, ag_conn *c)
{
    int rc = cg_ws_out_write(&c->q, wsi);
    if (rc < 0) return -1;
    if (rc > 0) {
        if (c->q.n || c->close_code) lws_callback_on_writable(wsi);
        return 0;
    }
    if (c->close_code) {
        cg_ws_write_close(wsi, c->close_code);   /* the queue first, then the close (ws_out.h) */
        return -1;
    }
    return 0;
}

/* ---- frames from the console ----------------------------------------------- */

static void auth_done(cg_agents *a, const ag_who *who, void *ud)
{
    ag_conn *c = ud;
    if (c->wsi && !a->stopping) {
        if (!who && a->auth_unavailable) {
            /* Redis down: not the token's fault; the console reconnects */
            send_error(c, "unavailable: try again");
            ag_ws_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
        } else if (!who) {
            send_error(c, "unauthorized");
            ag_ws_close(c, CLOSE_UNAUTHORIZED);
        } else {
            int first = 1;
            for (ag_conn *d = a->conns; d; d = d->next)
                if (d != c && d->state == 2 && !strcmp(d->who.name, who->name)) first = 0;
            c->who = *who;
            c->state = 2;
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "type", "hello");
            cJSON_AddItemToObject(f, "agent", ag_agent_json(who->user, 0, 0, 0));
            ag_ws_send_json(c, f);
            ag_send_queue_to(a, c);
            if (who->supervisor) ag_send_agents_to(a, c);
            if (first) ag_presence_changed(a, who->name);
            cg_log(CG_LOG_INFO, "agent_ws_open", "agent", who->name, NULL);
        }
    }
    conn_unref(c);
}

typedef struct ws_call { ag_conn *c; double req; } ws_call;

static void call_done(void *ud, int status, const char *ctype, const char *body, size_t len)
{
    ws_call *w = ud;
    ag_conn *c = w->c;
    (void)ctype;
    if (c->wsi) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "type", "result");
        cJSON_AddNumberToObject(f, "req", w->req);
        cJSON_AddNumberToObject(f, "status", status);
        cJSON *b = len ? cJSON_ParseWithLength(body, len) : NULL;
        if (b) cJSON_AddItemToObject(f, "body", b);
        else cJSON_AddNullToObject(f, "body");
        ag_ws_send_json(c, f);
    }
    conn_unref(c);
    free(w);
}

static void on_call(ag_conn *c, const cJSON *f)
{
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(f, "req");
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(f, "method");
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(f, "path");
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(f, "body");
    if (!cJSON_IsNumber(req) || !cJSON_IsString(method) || !cJSON_IsString(path) ||
        strlen(path->valuestring) >= 512 || strncmp(path->valuestring, CG_API_PREFIX, strlen(CG_API_PREFIX))) {
        send_error(c, "call needs req (number), method and path (under /api/v1/)");
        return;
    }
    char p[512], query[512] = "";
    snprintf(p, sizeof p, "%s", path->valuestring);
    char *qm = strchr(p, '?');
    if (qm) {
        *qm = '\0';
        snprintf(query, sizeof query, "%s", qm + 1);
    }
    ws_call *w = calloc(1, sizeof *w);
    if (!w) return;
    w->c = c;
    w->req = req->valuedouble;
    c->refs++;
    cg_api_call *call = cg_api_call_new(call_done, w);
    if (!call) {
        c->refs--;
        free(w);
        send_error(c, "out of memory");
        return;
    }
    const cg_api_route *route;
    char segs[CG_API_MAX_PARAMS][CG_API_PARAM_MAX];
    cg_api_req r;
    memset(&r, 0, sizeof r);
    int st = cg_api_match(method->valuestring, p, &route, segs, r.params, &r.nparams);
    if (st != 200) {
        cg_api_error(call, st, st == 405 ? "method not allowed" : "not found");
        return;
    }
    char auth[AG_TOKEN_HEX + 16];
    snprintf(auth, sizeof auth, "Bearer %s", c->token);
    char *b = body && !cJSON_IsNull(body) ? cJSON_PrintUnformatted(body) : NULL;
    r.gw = c->a->gw;
    r.method = method->valuestring;
    r.path = p;
    r.query = query;
    r.authorization = auth;
    r.peer = "";
    r.content_type = "application/json";
    r.body = b ? b : "";
    r.body_len = b ? strlen(b) : 0;
    route->fn(&r, call);
    free(b);
}

static int rate_ok(ag_conn *c)
{
    uint64_t now = uv_now(c->a->gw->loop);
    if (now > c->refill) {
        c->tokens += (double)(now - c->refill) * RATE_PER_S / 1000.0;
        if (c->tokens > BURST) c->tokens = BURST;
        c->refill = now;
    }
    if (c->tokens < 1.0) return 0;
    c->tokens -= 1.0;
    return 1;
}

static void on_frame(ag_conn *c, const char *data, size_t len)
{
    cg_agents *a = c->a;
    if (a->stopping) return;
    if (!rate_ok(c)) {
        send_error(c, "rate limited: slow down");
        return;
    }
    cJSON *f = cJSON_ParseWithLength(data, len);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(f, "type");
    const char *t = cJSON_IsString(type) ? type->valuestring : "";
    if (c->state == 0) {
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(f, "token");
        if (strcmp(t, "auth") || !cJSON_IsString(tok) || strlen(tok->valuestring) != AG_TOKEN_HEX) {
            send_error(c, "unauthorized");
            ag_ws_close(c, CLOSE_UNAUTHORIZED);
        } else {
            memcpy(c->token, tok->valuestring, AG_TOKEN_HEX + 1);
            c->state = 1;
            c->refs++;
            ag_auth(a, c->token, auth_done, c);
        }
    } else if (c->state == 1) {
        send_error(c, "wait for hello");
    } else if (!strcmp(t, "call")) {
        on_call(c, f);
    } else if (!strcmp(t, "ping")) {
        static const char pong[] = "{\"type\":\"pong\"}";
        ag_ws_send(c, pong, sizeof pong - 1);
    } else {
        send_error(c, "unknown frame type");
    }
    cJSON_Delete(f);
}

static int receive(struct lws *wsi, ag_conn *c, const void *in, size_t len)
{
    if (lws_frame_is_binary(wsi)) {
        static const char why[] = "text frames only";
        lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, (unsigned char *)why, sizeof why - 1);
        return -1;
    }
    if (c->rx_len + len > FRAME_MAX) {
        static const char why[] = "frame too large";
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)why, sizeof why - 1);
        return -1;
    }
    if (!c->rx && !(c->rx = malloc(FRAME_MAX))) return -1;
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi)) return 0;
    size_t n = c->rx_len;
    c->rx_len = 0;
    on_frame(c, (const char *)c->rx, n);
    return 0;
}

void ag_ws_revoke(ag_conn *c)
{
    if (!c->wsi || c->close_code) return;
    send_error(c, "unauthorized");
    ag_ws_close(c, CLOSE_UNAUTHORIZED);
}

void ag_ws_tick(cg_agents *a, uint64_t now)
{
    for (ag_conn *c = a->conns; c; c = c->next)
        if (c->state != 2 && !c->close_code && now - c->opened > AUTH_DEADLINE_MS) {
            send_error(c, "unauthorized");
            ag_ws_close(c, CLOSE_UNAUTHORIZED);
        }
}

/* ---- lws glue --------------------------------------------------------------- */

/* Origin is our own host (http(s)://<Host header>) or an allowed origin. */
static int origin_ok(const cg_config *cfg, struct lws *wsi)
{
    char origin[256], host[256], own[300];
    if (lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) <= 0) return 0;
    for (size_t i = 0; i < cfg->norigins; i++)
        if (!strcmp(cfg->origins[i], origin)) return 1;
    if (lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) <= 0) return 0;
    snprintf(own, sizeof own, "http://%s", host);
    if (!strcmp(own, origin)) return 1;
    snprintf(own, sizeof own, "https://%s", host);
    return !strcmp(own, origin);
}

int cg_agents_ws_confirm_upgrade(cg_gateway *gw, struct lws *wsi, int stopping)
{
    char buf[256];
    int status = 0;
    const char *why = "";
    if (stopping || gw->stopping || !gw->agents || gw->agents->stopping) {
        status = 503;
        why = "stopping";
    } else if (!origin_ok(gw->cfg, wsi)) {
        status = 403;
        why = "origin not allowed";
    } else {
        int n = lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_PROTOCOL), found = 0;
        if (n > 0) {
            char *save = NULL;
            for (char *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
                if (!strcmp(t, CG_AGENTS_WS_PROTOCOL)) found = 1;
        }
        if (!found) {
            status = 400;
            why = "subprotocol civicgate-agent required";
        }
    }
    if (!status) return 0;
    cg_log(CG_LOG_WARN, "agent_ws_refused", "reason", why, NULL);
    cg_metrics_http_status(status);
    if (lws_return_http_status(wsi, (unsigned)status, NULL)) return -1;
    return 1;
}

static cg_agents *agents_of_wsi(struct lws *wsi)
{
    cg_http *h = lws_context_user(lws_get_context(wsi));
    return h && h->gw ? h->gw->agents : NULL;
}

static void conn_unlink(cg_agents *a, ag_conn *c)
{
    for (ag_conn **pp = &a->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            a->nconns--;
            return;
        }
}

int cg_agents_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    ag_pss *pss = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED: {
        cg_agents *a = agents_of_wsi(wsi);
        if (!a || a->stopping) return -1;
        ag_conn *c = calloc(1, sizeof *c);
        if (!c) return -1;
        c->wsi = wsi;
        c->a = a;
        c->refs = 1;
        c->opened = uv_now(a->gw->loop);
        c->tokens = BURST;
        c->refill = c->opened;
        c->next = a->conns;
        a->conns = c;
        a->nconns++;
        pss->c = c;
        cg_metrics_set_gauge("civicgate_agent_ws_connections", (double)a->nconns);
        return 0;
    }
    case LWS_CALLBACK_RECEIVE:
        if (!pss || !pss->c) return -1;
        return receive(wsi, pss->c, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        if (!pss || !pss->c) return 0;
        ag_conn *c = pss->c;
        if (c->a->stopping && !c->close_code) c->close_code = LWS_CLOSE_STATUS_GOINGAWAY;
        else if (c->a->gw->stopping && !c->close_code) c->close_code = LWS_CLOSE_STATUS_GOINGAWAY;
        return writeable(wsi, c);
    }
    case LWS_CALLBACK_CLOSED: {
        if (!pss || !pss->c) return 0;
        ag_conn *c = pss->c;
        cg_agents *a = c->a;
        pss->c = NULL;
        conn_unlink(a, c);
        queue_free(c);
        free(c->rx);
        c->rx = NULL;
        c->wsi = NULL;
        int live = c->state == 2;
        c->state = 3;
        cg_metrics_set_gauge("civicgate_agent_ws_connections", (double)a->nconns);
        if (live && !a->stopping) {
            cg_log(CG_LOG_INFO, "agent_ws_closed", "agent", c->who.name, NULL);
            ag_presence_changed(a, NULL);
        }
        conn_unref(c);
        ag_conn_gone(a);
        return 0;
    }
    default:
        return 0;
    }
}

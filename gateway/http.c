/*
 * http.c: the gateway's HTTP server, libwebsockets on the application's libuv
 * loop (LWS_SERVER_OPTION_LIBUV + foreign_loops, as in the lws minimal example
 * minimal-http-server-eventlib-foreign).
 *
 * Routes (protocols[0] "http" gets every request; no lws mounts):
 *   POST /webhooks/<connector>   verify → parse → cg_store_ingest → 200 only
 *                                when Redis said OK (401/400/413/503 otherwise)
 *   GET  /webhooks/<connector>   connector->handshake (Meta hub.challenge)
 *   GET  /healthz /readyz /metrics
 *   GET  /chat/ and /agent/      static files from www.dir (flat, whitelisted)
 *   GET  /chat/ws                web-chat WebSocket (http_webchat.c)
 *   GET  /agent/ws               agents' console WebSocket (agents module)
 *   *    /api/v1/...             the JSON API: api.h finds the route, the
 *                                owning module answers (cg_api_respond)
 * Anything else: 404 JSON; a known path with another method: 405.
 *
 * A request's state lives in lws's per-session data (http_pss), which lws
 * zeroes for every transaction. respond() stores the response; made inside
 * an lws callback it is written from LWS_CALLBACK_HTTP_WRITEABLE, made later
 * (a Redis answer) it is written at once; the headers go in one write, the
 * body in the following writeable callbacks (a small body goes with the
 * headers, in one write).
 * A webhook waiting for Redis holds an http_pending that the store callback
 * owns: if the connection closes first, the pending's wsi is set to NULL and
 * the callback just frees it (never touch a wsi after its close).
 *
 * API in call order: cg_http_start(), cg_http_stop_accepting(),
 * cg_http_inflight(), cg_http_free(), and cg_http_final() once uv_run()
 * returned (lws on a foreign loop finishes its destruction in a second call).
 *
 * Extending: an API route is a row in its module's table (api.h); another
 * route is a branch in route_request(); a static file type a row
 * in static_types[]; a webhook header a row in hdr_table[].
 */
#include "http_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "agents.h"
#include "api.h"
#include "health.h"
#include "log.h"
#include "metrics.h"

#define HTTP_MAX_PATH   256
#define HTTP_MAX_QUERY  1024
#define HTTP_HDR_BUF    4096
#define HTTP_CHUNK      16384
#define HTTP_MAX_HEADER_DATA 8192   /* lws header storage per connection */
/* lws's idle and pending timeouts: a request's body, and also (as
 * timeout_secs_ah_idle) the time a connection may hold lws's header table
 * before its headers are complete. That starts when a connection is
 * accepted and again with each keep-alive request. lws's default for it,
 * 10 s, closed a new connection that had not sent yet (a client's pool
 * opens them ahead) and cut headers short of the documented 30 s. */
#define HTTP_TIMEOUT_S  30
/* An idle keep-alive connection, after an answer, is kept this long for the
 * next request. lws's default (5 s) closed the platforms' webhook
 * connections between bursts: they reconnect (a TLS handshake behind a
 * proxy), and a request sent just as the server closes fails (the
 * keep-alive race: the platform retries it). Longer than the usual
 * clients' own idle timeouts, so that the client closes first. */
#define HTTP_KEEPALIVE_S 65

enum { ROUTE_NONE = 0, ROUTE_WEBHOOK, ROUTE_REJECTED, ROUTE_STATIC, ROUTE_API };
enum { RESP_NONE = 0, RESP_HEADERS, RESP_BODY };

typedef struct http_pending {
    struct lws *wsi;             /* NULL once the connection closed */
    size_t n;                    /* messages handed to the store */
    char channel[CG_CHANNEL_MAX];
} http_pending;

struct cg_api_call {
    struct lws *wsi;             /* NULL once the connection closed */
    cg_api_done_fn done;         /* detached calls (cg_api_call_new) */
    void *ud;
    int detached;
};

typedef struct http_pss {
    int counted;                 /* counted in h->inflight */
    int route;
    uint64_t t0;                 /* uv_hrtime() at request start */
    const cg_connector *conn;
    const cg_channel_cfg *ch;
    const char *method;
    char path[HTTP_MAX_PATH];
    char query[HTTP_MAX_QUERY];
    char *hbuf; size_t hlen;     /* HTTP_HDR_BUF bytes, malloc'd by gather_headers */
    cg_header hdrs[CG_HTTP_MAX_HEADERS]; size_t nhdrs;
    unsigned char *body; size_t body_len, body_cap, limit;
    http_pending *pending;
    /* API (ROUTE_API) */
    const cg_api_route *api;
    cg_api_call *call;           /* the handler's until it answers */
    int api_dispatched;          /* the handler ran (an empty POST body still gets BODY callbacks) */
    char segs[CG_API_MAX_PARAMS][CG_API_PARAM_MAX];
    const char *params[CG_API_MAX_PARAMS]; size_t nparams;
    char auth[600];
    char ctype_in[128];
    char accept_in[128];         /* API: the Accept header (cut to fit) */
    /* response */
    int resp_state;
    int status;
    char ctype[48];
    int page;                    /* add the page security headers (CSP) */
    int close_after;
    char location[16];           /* redirect target, or "" */
    int body_completed;          /* LWS_CALLBACK_HTTP_BODY_COMPLETION seen */
    char *resp; size_t resp_len, resp_off;   /* LWS_PRE bytes then the body */
} http_pss;

/* lws writes NULL here once the context is wholly destroyed (after the
 * loop closed its handles), which may be after cg_http_free(). */
static struct lws_context *http_ctx_slot;

static cg_http *http_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

int http_origin_allowed(const cg_config *c, const char *origin)
{
    if (!origin || !*origin) return 0;
    for (size_t i = 0; i < c->norigins; i++)
        if (!strcmp(c->origins[i], origin)) return 1;
    return 0;
}

/* ---- responses ---------------------------------------------------------- */

static void pss_release(cg_http *h, http_pss *pss)
{
    free(pss->hbuf);
    pss->hbuf = NULL;
    pss->hlen = pss->nhdrs = 0;
    free(pss->body);
    pss->body = NULL;
    pss->body_len = pss->body_cap = 0;
    free(pss->resp);
    pss->resp = NULL;
    if (pss->pending) {           /* the store callback frees it */
        pss->pending->wsi = NULL;
        pss->pending = NULL;
    }
    if (pss->call) {              /* the API handler frees it when it answers */
        pss->call->wsi = NULL;
        pss->call = NULL;
    }
    if (pss->counted) {
        pss->counted = 0;
        if (h && h->inflight) h->inflight--;
    }
}

static int write_response(struct lws *wsi, cg_http *h, http_pss *pss);

/* > 0 while lws is in callback_http: a response made there waits for the
 * writeable callback (lws goes on with the transaction after we return). */
static int http_cb_depth;

/* Queue a response, body copied. Made inside callback_http it is written
 * from LWS_CALLBACK_HTTP_WRITEABLE; made from elsewhere (a Redis answer:
 * a stored webhook, an API call) its headers and a small body are written
 * at once, as that callback would: waiting for the socket's POLLOUT cost a
 * loop iteration between Redis's answer and the platform's, and two poll
 * restarts (four epoll_ctl) per webhook. lws buffers what the socket does
 * not take, and finishes a transaction after such a partial write itself. */
static void respond(struct lws *wsi, http_pss *pss, int status, const char *ctype, const void *body,
                    size_t len)
{
    free(pss->resp);
    pss->resp = malloc(LWS_PRE + len + 1);
    if (!pss->resp) {
        len = 0;
        status = 500;
        pss->close_after = 1;
    } else if (len) {
        memcpy(pss->resp + LWS_PRE, body, len);
    }
    pss->status = status;
    snprintf(pss->ctype, sizeof pss->ctype, "%s", ctype);
    pss->resp_len = len;
    pss->resp_off = 0;
    pss->resp_state = RESP_HEADERS;
    if (http_cb_depth > 0) {
        lws_callback_on_writable(wsi);
    } else if (write_response(wsi, http_of(wsi), pss) < 0) {
        lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);   /* as a -1 from the callback */
    }
}

static void respond_json(struct lws *wsi, http_pss *pss, int status, cJSON *obj)
{
    char *s = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!s) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        respond(wsi, pss, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    respond(wsi, pss, status, "application/json", s, strlen(s));
    free(s);
}

static void respond_error(struct lws *wsi, http_pss *pss, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    if (o) cJSON_AddStringToObject(o, "error", msg);
    respond_json(wsi, pss, status, o);
}

static int add_hdr(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                   unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)value,
                                       (int)strlen(value), p, end);
}

/* Headers every response gets; pages also the CSP. */
static int add_security_headers(struct lws *wsi, cg_http *h, int page, unsigned char **p,
                                unsigned char *end)
{
    if (add_hdr(wsi, "x-content-type-options:", "nosniff", p, end) ||
        add_hdr(wsi, "referrer-policy:", "no-referrer", p, end))
        return -1;
    if (page && add_hdr(wsi, "content-security-policy:", h->csp, p, end)) return -1;
    if (h->gw->cfg->tls_cert && add_hdr(wsi, "strict-transport-security:", "max-age=31536000", p, end)) return -1;
    return 0;
}

static void request_done(cg_http *h, http_pss *pss, int status)
{
    cg_metrics_http_status(status);
    if (pss->route == ROUTE_WEBHOOK || pss->route == ROUTE_REJECTED) {
        const char *chan = pss->conn ? pss->conn->name : NULL;
        double dt = (double)(uv_hrtime() - pss->t0) / 1e9;
        cg_metrics_observe(CG_H_WEBHOOK, chan, dt);
        if (status >= 400 && status != 503) cg_metrics_inc(CG_M_WEBHOOK_REJECTED, chan);
    }
}

/* LWS_CALLBACK_HTTP_WRITEABLE. Returns what the callback returns. */
static int write_response(struct lws *wsi, cg_http *h, http_pss *pss)
{
    if (pss->resp_state == RESP_HEADERS) {
        unsigned char buf[LWS_PRE + 2048];
        unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
        if (lws_add_http_common_headers(wsi, (unsigned)pss->status, pss->ctype, pss->resp_len, &p, end) ||
            add_hdr(wsi, "cache-control:", "no-store", &p, end) ||
            add_security_headers(wsi, h, pss->page, &p, end) ||
            (pss->close_after && add_hdr(wsi, "connection:", "close", &p, end)) ||
            (pss->location[0] && add_hdr(wsi, "location:", pss->location, &p, end)))
            return -1;
        if (pss->resp_len && pss->resp_len < (size_t)(end - p) - 2) {
            /* a small body (a webhook's answer) goes out with the headers in
             * one write: a second writeable callback cost a send() and two
             * poll restarts (four epoll_ctl) per request. HTTP/1 only (no
             * TLS here): the bytes go out as they are, and lws buffers what
             * the socket does not take. */
            if (lws_finalize_http_header(wsi, &p, end)) return -1;
            memcpy(p, pss->resp + LWS_PRE, pss->resp_len);
            p += pss->resp_len;
            if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) != (int)(p - start))
                return -1;
            pss->resp_off = pss->resp_len;
            pss->resp_state = RESP_BODY;
            goto done;
        }
        if (lws_finalize_write_http_header(wsi, start, &p, end)) return -1;
        pss->resp_state = RESP_BODY;
        if (pss->resp_len) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    } else if (pss->resp_state == RESP_BODY) {
        size_t left = pss->resp_len - pss->resp_off;
        size_t chunk = left > HTTP_CHUNK ? HTTP_CHUNK : left;
        int final = chunk == left;
        unsigned char *at = (unsigned char *)pss->resp + LWS_PRE + pss->resp_off;
        if (lws_write(wsi, at, chunk, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)chunk)
            return -1;
        pss->resp_off += chunk;
        if (!final) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    } else {
        return 0;
    }
done:;
    int status = pss->status, close_after = pss->close_after;
    request_done(h, pss, status);
    pss_release(h, pss);
    pss->resp_state = RESP_NONE;
    if (close_after) return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- request data ------------------------------------------------------- */

/* tok -1: a custom header, which lws looks up by "name:" (custom) */
static const struct { const char *name; int tok; const char *custom; } hdr_table[] = {
    {"content-type", WSI_TOKEN_HTTP_CONTENT_TYPE, NULL},
    {"content-length", WSI_TOKEN_HTTP_CONTENT_LENGTH, NULL},
    {"user-agent", WSI_TOKEN_HTTP_USER_AGENT, NULL},
    {"host", WSI_TOKEN_HOST, NULL},
    {"origin", WSI_TOKEN_ORIGIN, NULL},
    {"x-forwarded-for", WSI_TOKEN_X_FORWARDED_FOR, NULL},
    {"x-telegram-bot-api-secret-token", -1, "x-telegram-bot-api-secret-token:"},
    {"x-hub-signature-256", -1, "x-hub-signature-256:"},
    {"x-hub-signature", -1, "x-hub-signature:"},
};

/* Copy the headers a connector may need into pss (lower-case names). A header
 * that does not fit is left out (the connector then refuses the request). */
static void gather_headers(struct lws *wsi, http_pss *pss)
{
    const char *cname = NULL;
    pss->hlen = 0;
    pss->nhdrs = 0;
    /* not in pss itself: lws zeroes the whole pss twice per request, and
     * 4 KiB of it for routes that never gather headers was 2% of a webhook */
    if (!pss->hbuf && !(pss->hbuf = malloc(HTTP_HDR_BUF))) return;
    for (size_t i = 0; i < sizeof hdr_table / sizeof hdr_table[0] && pss->nhdrs < CG_HTTP_MAX_HEADERS; i++) {
        const char *name = hdr_table[i].name;
        size_t nlen = strlen(name);
        int vlen;
        if (hdr_table[i].tok >= 0) {
            vlen = lws_hdr_total_length(wsi, (enum lws_token_indexes)hdr_table[i].tok);
        } else {
            cname = hdr_table[i].custom;
            vlen = lws_hdr_custom_length(wsi, cname, (int)strlen(cname));
        }
        if (vlen < 0) continue;
        if (hdr_table[i].tok >= 0 && vlen == 0) continue;
        size_t need = nlen + 1 + (size_t)vlen + 1;
        if (pss->hlen + need > HTTP_HDR_BUF) continue;
        char *n = pss->hbuf + pss->hlen;
        memcpy(n, name, nlen + 1);
        char *v = n + nlen + 1;
        int got;
        if (hdr_table[i].tok >= 0)
            got = lws_hdr_copy(wsi, v, vlen + 1, (enum lws_token_indexes)hdr_table[i].tok);
        else
            got = lws_hdr_custom_copy(wsi, v, vlen + 1, cname, (int)strlen(cname));
        if (got < 0) continue;
        v[got] = '\0';
        pss->hlen += nlen + 1 + (size_t)got + 1;
        pss->hdrs[pss->nhdrs].name = n;
        pss->hdrs[pss->nhdrs].value = v;
        pss->nhdrs++;
    }
}

static void urlencode_into(char *dst, size_t cap, size_t *pos, const char *s, int *overflow)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == '~';
        size_t need = plain ? 1 : 3;
        if (*pos + need + 1 > cap) { *overflow = 1; return; }
        if (plain) dst[(*pos)++] = (char)c;
        else {
            dst[(*pos)++] = '%';
            dst[(*pos)++] = hex[c >> 4];
            dst[(*pos)++] = hex[c & 15];
        }
    }
}

/* lws decodes the query into name=value fragments; rebuild an encoded query
 * string for cg_http_in_query(). -1 when it does not fit. */
static int gather_query(struct lws *wsi, http_pss *pss)
{
    char frag[HTTP_MAX_QUERY];
    size_t pos = 0;
    int overflow = 0;
    pss->query[0] = '\0';
    for (int i = 0; i < 64; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0) {
            if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) > 0) return -1;
            break;
        }
        if (n == 0) break;
        if (pos + 2 >= sizeof pss->query) return -1;
        if (pos) pss->query[pos++] = '&';
        char *eq = strchr(frag, '=');
        if (eq) *eq = '\0';
        urlencode_into(pss->query, sizeof pss->query, &pos, frag, &overflow);
        if (eq && !overflow) {
            if (pos + 2 >= sizeof pss->query) return -1;
            pss->query[pos++] = '=';
            urlencode_into(pss->query, sizeof pss->query, &pos, eq + 1, &overflow);
        }
        if (overflow) return -1;
    }
    pss->query[pos] = '\0';
    return 0;
}

static void fill_in(http_pss *pss, cg_http_in *req)
{
    memset(req, 0, sizeof *req);
    req->method = pss->method;
    req->path = pss->path;
    req->query = pss->query;
    memcpy(req->headers, pss->hdrs, sizeof pss->hdrs);
    req->nheaders = pss->nhdrs;
    req->body = pss->body ? pss->body : (const unsigned char *)"";
    req->body_len = pss->body_len;
}

/* ---- health, readiness, metrics ---------------------------------------- */

static void route_readyz(struct lws *wsi, cg_http *h, http_pss *pss)
{
    cg_gateway *gw = h->gw;
    int redis = gw->store && cg_store_ready(gw->store);
    int intents = gw->intents != NULL;
    int ready = cg_gateway_ready(gw);
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "status", ready ? "ready" : "not ready");
        cJSON_AddStringToObject(o, "redis", redis ? "up" : "down");
        cJSON_AddStringToObject(o, "intents", intents ? "loaded" : "missing");
        if (gw->stopping) cJSON_AddStringToObject(o, "gateway", "stopping");
        cJSON *ch = cg_health_channels_json(gw->cfg);   /* detail only: never 503 for a channel */
        if (ch) cJSON_AddItemToObject(o, "channels", ch);
    }
    respond_json(wsi, pss, ready ? 200 : 503, o);
}

/* /metrics is not public: with metrics.token set, it takes
 * "Authorization: Bearer <token>" (constant-time compare); without one, only
 * a client on the loopback interface (a local scraper or sidecar). */
static int metrics_allowed(struct lws *wsi, const cg_config *cfg, int *status)
{
    if (cfg->metrics_token) {
        char auth[600];
        int n = lws_hdr_copy(wsi, auth, sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION);
        static const char pre[] = "Bearer ";
        *status = 401;
        if (n <= (int)sizeof pre - 1 || strncmp(auth, pre, sizeof pre - 1) != 0) return 0;
        const char *tok = auth + sizeof pre - 1;
        return cg_secure_equal(tok, strlen(tok), cfg->metrics_token, strlen(cfg->metrics_token));
    }
    char ip[64] = "";
    lws_get_peer_simple(wsi, ip, sizeof ip);
    *status = 403;
    return !strncmp(ip, "127.", 4) || !strcmp(ip, "::1") || !strncmp(ip, "::ffff:127.", 11);
}

static void route_metrics(struct lws *wsi, cg_http *h, http_pss *pss)
{
    int denied;
    if (!metrics_allowed(wsi, h->gw->cfg, &denied)) {
        respond_error(wsi, pss, denied, denied == 401 ? "metrics need Authorization: Bearer <metrics.token>"
                                                      : "metrics are served to loopback clients only "
                                                        "unless metrics.token is set");
        return;
    }
    size_t len = 0;
    char *m = cg_metrics_render(&len);
    if (!m) {
        respond_error(wsi, pss, 500, "out of memory");
        return;
    }
    respond(wsi, pss, 200, "text/plain; version=0.0.4; charset=utf-8", m, len);
    free(m);
}

/* ---- static files ------------------------------------------------------- */

static const struct { const char *ext, *mime; int page; } static_types[] = {
    {".html", "text/html; charset=utf-8", 1},
    {".js", "text/javascript; charset=utf-8", 0},
    {".css", "text/css; charset=utf-8", 0},
    {".svg", "image/svg+xml", 0},
    {".png", "image/png", 0},
    {".ico", "image/x-icon", 0},
    {".json", "application/json", 0},
    {".woff2", "font/woff2", 0},
    {".txt", "text/plain; charset=utf-8", 0},
};

/* name: the part after "/chat/" or "/agent/". Only flat names of
 * [A-Za-z0-9_-][A-Za-z0-9_.-]* with a known extension are served: no
 * directories, no dot files, no traversal. */
static int serve_static(struct lws *wsi, cg_http *h, http_pss *pss, const char *dir, const char *name)
{
    if (!*name) name = "index.html";
    size_t n = strlen(name);
    int ok = n > 0 && n < 100 && name[0] != '.';
    for (size_t i = 0; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
             c == '_' || c == '.';
    }
    if (ok && strstr(name, "..")) ok = 0;
    const char *mime = NULL;
    int page = 0;
    const char *dot = ok ? strrchr(name, '.') : NULL;
    for (size_t i = 0; dot && i < sizeof static_types / sizeof static_types[0]; i++) {
        if (!strcmp(dot, static_types[i].ext)) {
            mime = static_types[i].mime;
            page = static_types[i].page;
        }
    }
    char full[1024];
    struct stat st;
    if (!mime || snprintf(full, sizeof full, "%s/%s/%s", h->gw->cfg->www_dir, dir, name) >= (int)sizeof full ||
        stat(full, &st) != 0 || !S_ISREG(st.st_mode)) {
        respond_error(wsi, pss, 404, "not found");
        return 0;
    }
    unsigned char hb[2048], *p = hb, *end = hb + sizeof hb;
    if (add_hdr(wsi, "cache-control:", page ? "no-cache" : "public, max-age=300", &p, end) ||
        add_security_headers(wsi, h, page, &p, end)) {
        respond_error(wsi, pss, 500, "headers too large");
        return 0;
    }
    pss->route = ROUTE_STATIC;
    int rc = lws_serve_http_file(wsi, full, mime, (const char *)hb, (int)(p - hb));
    if (rc < 0) return -1;
    if (rc > 0) {   /* sent in full: transaction completed by lws */
        request_done(h, pss, 200);
        pss_release(h, pss);
        return 0;
    }
    return 0;
}

/* ---- request bodies ----------------------------------------------------- */

/* Check Content-Length against limit (required when need_length) and make
 * room for the body. Returns 1: no body, process now; 2: the body follows
 * (LWS_CALLBACK_HTTP_BODY); 0: refused and answered (close after); -1: hang
 * up. */
static int body_begin(struct lws *wsi, http_pss *pss, size_t limit, int need_length)
{
    char cl[32];
    int cll = lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    if (cll <= 0) {
        if (!need_length) return 1;
        pss->close_after = 1;
        respond_error(wsi, pss, 411, "Content-Length required");
        return 0;
    }
    char *endp;
    errno = 0;
    unsigned long long len = strtoull(cl, &endp, 10);
    if (errno || *endp || cl[0] == '-') {
        pss->close_after = 1;
        respond_error(wsi, pss, 400, "bad Content-Length");
        return 0;
    }
    if (len > limit) {
        pss->close_after = 1;
        if (pss->conn)
            cg_log(CG_LOG_WARN, "webhook_rejected", "channel", pss->conn->name, "reason", "payload too large", NULL);
        respond_error(wsi, pss, 413, "payload too large");
        return 0;
    }
    if (len == 0) return 1;
    /* lws does not answer Expect: 100-continue; do it here, before the
     * body, so that such clients need not wait (the status line is raw
     * bytes on the wire; the response headers come later as usual) */
    char expect[32];
    if (lws_hdr_copy(wsi, expect, sizeof expect, WSI_TOKEN_HTTP_EXPECT) > 0 && !strcasecmp(expect, "100-continue")) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        unsigned char buf[LWS_PRE + sizeof cont];
        memcpy(buf + LWS_PRE, cont, sizeof cont - 1);
        if (lws_write(wsi, buf + LWS_PRE, sizeof cont - 1, LWS_WRITE_HTTP) != (int)(sizeof cont - 1)) return -1;
    }
    pss->body = malloc((size_t)len + 1);   /* + NUL for the API's handlers */
    if (!pss->body) {
        pss->close_after = 1;
        respond_error(wsi, pss, 500, "out of memory");
        return 0;
    }
    pss->body_cap = (size_t)len;
    pss->limit = limit;
    return 2;
}

/* A chunk of the body (LWS_CALLBACK_HTTP_BODY). */
static int body_chunk(struct lws *wsi, http_pss *pss, const void *in, size_t len)
{
    if (pss->route != ROUTE_WEBHOOK && pss->route != ROUTE_API) return 0;   /* already answered: drain */
    if (pss->resp_state != RESP_NONE) return 0;
    if (pss->route == ROUTE_API && pss->api_dispatched) return 0;   /* Content-Length: 0, answer pending */
    if (!pss->body || pss->body_len + len > pss->body_cap || pss->body_len + len > pss->limit) {
        if (pss->route == ROUTE_WEBHOOK) pss->route = ROUTE_REJECTED;
        pss->close_after = 1;
        respond_error(wsi, pss, 413, "payload too large");
        return 0;
    }
    memcpy(pss->body + pss->body_len, in, len);
    pss->body_len += len;
    return 0;
}

/* ---- webhooks ----------------------------------------------------------- */

static void webhook_stored(cg_err result, void *ud)
{
    http_pending *p = ud;
    if (p->wsi) {
        http_pss *pss = lws_wsi_user(p->wsi);
        pss->pending = NULL;
        if (result == CG_OK) {
            for (size_t i = 0; i < p->n; i++) cg_metrics_inc(CG_M_RECEIVED, p->channel);
            static const char ok[] = "{\"ok\":true}";
            respond(p->wsi, pss, 200, "application/json", ok, sizeof ok - 1);
        } else {
            cg_log(CG_LOG_WARN, "webhook_not_stored", "channel", p->channel, "status", "503", NULL);
            respond_error(p->wsi, pss, cg_err_http_status(result) == 503 ? 503 : 500,
                          result == CG_E_UNAVAILABLE ? "storage unavailable, retry later" : "internal error");
        }
    }
    free(p);
}

static const char *err_text(cg_err e)
{
    switch (e) {
    case CG_E_AUTH: return "unauthorized";
    case CG_E_FORBIDDEN: return "forbidden";
    case CG_E_BAD_REQUEST: return "bad request";
    case CG_E_TOO_LARGE: return "payload too large";
    case CG_E_UNAVAILABLE: return "unavailable";
    case CG_E_NOMEM: return "out of memory";
    default: return "internal error";
    }
}

static void webhook_process(struct lws *wsi, cg_http *h, http_pss *pss)
{
    cg_http_in req;
    fill_in(pss, &req);
    const cg_connector *conn = pss->conn;
    cg_err e = conn->verify ? conn->verify(pss->ch, &req) : CG_OK;
    if (e != CG_OK) {
        pss->route = ROUTE_REJECTED;
        cg_log(CG_LOG_WARN, "webhook_rejected", "channel", conn->name, "reason", err_text(e), NULL);
        respond_error(wsi, pss, cg_err_http_status(e), err_text(e));
        return;
    }
    /* One array for every webhook (loop thread only; cg_store_ingest copies
     * what it needs before returning): a 26 KiB calloc per webhook made
     * malloc consolidate its free lists each time. Connectors clear each
     * message they fill; cg_msg_free below leaves no pointer behind. */
    static cg_msg msgs[CG_MAX_MSGS_PER_WEBHOOK];
    size_t n = 0;
    char reason[200] = "";
    e = conn->parse(pss->ch, &req, msgs, CG_MAX_MSGS_PER_WEBHOOK, &n, reason, sizeof reason);
    if (n > CG_MAX_MSGS_PER_WEBHOOK) n = CG_MAX_MSGS_PER_WEBHOOK;
    if (e != CG_OK) {
        pss->route = ROUTE_REJECTED;
        cg_log(CG_LOG_WARN, "webhook_rejected", "channel", conn->name, "reason", reason[0] ? reason : err_text(e),
               NULL);
        respond_error(wsi, pss, cg_err_http_status(e), reason[0] ? reason : err_text(e));
    } else if (n == 0) {
        static const char ok[] = "{\"ok\":true}";
        respond(wsi, pss, 200, "application/json", ok, sizeof ok - 1);
    } else if (!h->gw->store) {
        respond_error(wsi, pss, 503, "storage unavailable, retry later");
    } else {
        http_pending *p = calloc(1, sizeof *p);
        if (!p) {
            respond_error(wsi, pss, 500, "out of memory");
        } else {
            p->wsi = wsi;
            p->n = n;
            snprintf(p->channel, sizeof p->channel, "%s", conn->name);
            pss->pending = p;
            lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, HTTP_TIMEOUT_S);
            cg_store_ingest(h->gw->store, msgs, n, webhook_stored, p);   /* may call back at once */
        }
    }
    /* the n messages, and the slot after them that a connector may have
     * begun and dropped (an ignored update); every slot after a failure */
    size_t used = e != CG_OK || n + 1 > CG_MAX_MSGS_PER_WEBHOOK ? CG_MAX_MSGS_PER_WEBHOOK : n + 1;
    for (size_t i = 0; i < used; i++) cg_msg_free(&msgs[i]);
}

/* Start of a webhook POST: limits, then collect the body. Returns the
 * callback's return value. */
static int webhook_begin(struct lws *wsi, cg_http *h, http_pss *pss)
{
    pss->route = ROUTE_WEBHOOK;
    size_t limit = h->gw->cfg->max_body;
    if (pss->conn->max_body && pss->conn->max_body < limit) limit = pss->conn->max_body;
    pss->limit = limit;
    gather_headers(wsi, pss);
    if (gather_query(wsi, pss) < 0) {
        pss->route = ROUTE_REJECTED;
        pss->close_after = 1;
        respond_error(wsi, pss, 414, "query too long");
        return 0;
    }
    /* every platform posts JSON; anything else is refused before the body */
    char ct[64];
    if (lws_hdr_copy(wsi, ct, sizeof ct, WSI_TOKEN_HTTP_CONTENT_TYPE) <= 0 || strncasecmp(ct, "application/json", 16) ||
        (ct[16] && ct[16] != ';' && ct[16] != ' ')) {
        pss->route = ROUTE_REJECTED;
        pss->close_after = 1;
        respond_error(wsi, pss, 415, "Content-Type must be application/json");
        return 0;
    }
    int rc = body_begin(wsi, pss, limit, 1);
    if (rc < 0) return -1;
    if (rc == 0) {
        pss->route = ROUTE_REJECTED;
        return 0;
    }
    if (rc == 1) webhook_process(wsi, h, pss);
    return 0;
}

static void route_handshake(struct lws *wsi, http_pss *pss)
{
    const cg_connector *conn = pss->conn;
    if (!(conn->flags & CG_CONN_HANDSHAKE) || !conn->handshake) {
        respond_error(wsi, pss, 405, "method not allowed");
        return;
    }
    gather_headers(wsi, pss);
    if (gather_query(wsi, pss) < 0) {
        respond_error(wsi, pss, 414, "query too long");
        return;
    }
    cg_http_in req;
    fill_in(pss, &req);
    cg_http_resp resp;
    memset(&resp, 0, sizeof resp);
    cg_err e = conn->handshake(pss->ch, &req, &resp);
    if (e != CG_OK) {
        pss->route = ROUTE_REJECTED;
        cg_log(CG_LOG_WARN, "handshake_rejected", "channel", conn->name, "reason", err_text(e), NULL);
        respond_error(wsi, pss, cg_err_http_status(e), err_text(e));
        return;
    }
    if (resp.body_len > sizeof resp.body) resp.body_len = sizeof resp.body;
    respond(wsi, pss, resp.status ? resp.status : 200, resp.content_type[0] ? resp.content_type : "text/plain",
            resp.body, resp.body_len);
}

/* ---- the JSON API (api.h) ----------------------------------------------- */

void cg_api_respond(cg_api_call *call, int status, const char *content_type, const char *body, size_t len)
{
    if (!call) return;
    if (call->detached) {
        if (call->done) call->done(call->ud, status, content_type ? content_type : "application/json",
                                   body ? body : "", body ? len : 0);
    } else if (call->wsi) {
        http_pss *pss = lws_wsi_user(call->wsi);
        pss->call = NULL;
        respond(call->wsi, pss, status, content_type ? content_type : "application/json", body ? body : "",
                body ? len : 0);
    }
    free(call);
}

void cg_api_json(cg_api_call *call, int status, cJSON *obj)
{
    char *s = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!s) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        cg_api_respond(call, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    cg_api_respond(call, status, "application/json", s, strlen(s));
    free(s);
}

void cg_api_error(cg_api_call *call, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    if (o && !cJSON_AddStringToObject(o, "error", msg ? msg : "error")) {
        cJSON_Delete(o);
        o = NULL;
    }
    cg_api_json(call, status, o);   /* NULL: 500 "out of memory" */
}

int cg_api_alive(const cg_api_call *call)
{
    return call && (call->detached ? call->done != NULL : call->wsi != NULL);
}

cg_api_call *cg_api_call_new(cg_api_done_fn done, void *ud)
{
    cg_api_call *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->detached = 1;
    c->done = done;
    c->ud = ud;
    return c;
}

void cg_api_call_cancel(cg_api_call *call)
{
    if (call) call->done = NULL;
}

/* The request is complete (no body, or all of it): hand it to the route. */
static void api_dispatch(struct lws *wsi, cg_http *h, http_pss *pss)
{
    cg_api_call *call = calloc(1, sizeof *call);
    if (!call) {
        respond_error(wsi, pss, 500, "out of memory");
        return;
    }
    call->wsi = wsi;
    pss->call = call;
    pss->api_dispatched = 1;
    char peer[64] = "";
    lws_get_peer_simple(wsi, peer, sizeof peer);
    if (pss->body) pss->body[pss->body_len] = '\0';
    cg_api_req req = {
        .gw = h->gw,
        .method = pss->method,
        .path = pss->path,
        .nparams = pss->nparams,
        .query = pss->query,
        .authorization = pss->auth,
        .peer = peer,
        .content_type = pss->ctype_in,
        .accept = pss->accept_in,
        .body = pss->body ? (const char *)pss->body : "",
        .body_len = pss->body_len,
    };
    for (size_t i = 0; i < pss->nparams; i++) req.params[i] = pss->params[i];
    lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, HTTP_TIMEOUT_S);
    pss->api->fn(&req, call);   /* may answer at once (then pss->call is NULL) */
}

/* Start of a request under /api/v1/. Returns the callback's return value. */
static int api_begin(struct lws *wsi, cg_http *h, http_pss *pss)
{
    int st = cg_api_match(pss->method, pss->path, &pss->api, pss->segs, pss->params, &pss->nparams);
    if (st != 200) {
        respond_error(wsi, pss, st, st == 405 ? "method not allowed" : "not found");
        return 0;
    }
    pss->route = ROUTE_API;
    if (gather_query(wsi, pss) < 0) {
        pss->close_after = 1;
        respond_error(wsi, pss, 414, "query too long");
        return 0;
    }
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) >= (int)sizeof pss->auth) {
        pss->close_after = 1;
        respond_error(wsi, pss, 431, "Authorization header too long");
        return 0;
    }
    if (lws_hdr_copy(wsi, pss->auth, sizeof pss->auth, WSI_TOKEN_HTTP_AUTHORIZATION) < 0) pss->auth[0] = '\0';
    if (lws_hdr_copy(wsi, pss->accept_in, sizeof pss->accept_in, WSI_TOKEN_HTTP_ACCEPT) < 0)
        pss->accept_in[0] = '\0';
    if (lws_hdr_copy(wsi, pss->ctype_in, sizeof pss->ctype_in, WSI_TOKEN_HTTP_CONTENT_TYPE) < 0)
        pss->ctype_in[0] = '\0';
    int body = !strcmp(pss->method, "POST") || !strcmp(pss->method, "PUT") || !strcmp(pss->method, "PATCH");
    int rc = body_begin(wsi, pss, CG_API_MAX_BODY, body);
    if (rc < 0) return -1;
    if (rc == 1) api_dispatch(wsi, h, pss);
    return 0;
}

/* ---- routing ------------------------------------------------------------ */

static const char *method_name(int m)
{
    switch (m) {
    case LWSHUMETH_GET: return "GET";
    case LWSHUMETH_POST: return "POST";
    case LWSHUMETH_OPTIONS: return "OPTIONS";
    case LWSHUMETH_PUT: return "PUT";
    case LWSHUMETH_PATCH: return "PATCH";
    case LWSHUMETH_DELETE: return "DELETE";
    case LWSHUMETH_HEAD: return "HEAD";
    default: return "OTHER";
    }
}

static int route_request(struct lws *wsi, cg_http *h, http_pss *pss, const char *uri)
{
    char *u;
    int ulen;
    int m = lws_http_get_uri_and_method(wsi, &u, &ulen);
    pss->method = method_name(m);
    pss->t0 = uv_hrtime();
    pss->api_dispatched = 0;
    if (!pss->counted) {
        pss->counted = 1;
        h->inflight++;
    }
    lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, HTTP_TIMEOUT_S);
    if (strlen(uri) >= sizeof pss->path) {
        respond_error(wsi, pss, 414, "path too long");
        return 0;
    }
    snprintf(pss->path, sizeof pss->path, "%s", uri);
    int get = m == LWSHUMETH_GET, post = m == LWSHUMETH_POST;

    if (!strncmp(uri, CG_API_PREFIX, sizeof CG_API_PREFIX - 1)) return api_begin(wsi, h, pss);
    if (!strncmp(uri, "/webhooks/", 10)) {
        const char *name = uri + 10;
        pss->conn = cg_connector_find(name);
        pss->ch = pss->conn ? cg_config_channel(h->gw->cfg, name) : NULL;
        if (!pss->conn || !pss->ch || !pss->ch->enabled) {
            pss->conn = NULL;
            respond_error(wsi, pss, 404, "no such channel");
            return 0;
        }
        if (post) return webhook_begin(wsi, h, pss);
        if (get) {
            route_handshake(wsi, pss);
            return 0;
        }
        respond_error(wsi, pss, 405, "method not allowed");
        return 0;
    }
    if (!strcmp(uri, "/healthz") || !strcmp(uri, "/readyz") || !strcmp(uri, "/metrics") ||
        !strncmp(uri, "/chat/", 6) || !strncmp(uri, "/agent/", 7) || !strcmp(uri, "/chat") ||
        !strcmp(uri, "/agent") || !strcmp(uri, "/")) {
        if (!get) {
            respond_error(wsi, pss, 405, "method not allowed");
            return 0;
        }
    } else {
        respond_error(wsi, pss, 404, "not found");
        return 0;
    }
    if (!strcmp(uri, "/healthz")) {
        static const char ok[] = "{\"status\":\"ok\"}";
        respond(wsi, pss, 200, "application/json", ok, sizeof ok - 1);
        return 0;
    }
    if (!strcmp(uri, "/readyz")) {
        route_readyz(wsi, h, pss);
        return 0;
    }
    if (!strcmp(uri, "/metrics")) {
        route_metrics(wsi, h, pss);
        return 0;
    }
    if (!strcmp(uri, "/chat/ws")) {
        respond_error(wsi, pss, 426, "WebSocket upgrade required (subprotocol civicgate-webchat)");
        return 0;
    }
    if (!strcmp(uri, "/") || !strcmp(uri, "/chat") || !strcmp(uri, "/agent")) {
        snprintf(pss->location, sizeof pss->location, "%s", !strcmp(uri, "/agent") ? "/agent/" : "/chat/");
        respond(wsi, pss, 302, "text/plain; charset=utf-8", "", 0);
        return 0;
    }
    if (!strncmp(uri, "/chat/", 6)) {
        if (!h->gw->cfg->webchat_enabled) {
            respond_error(wsi, pss, 404, "not found");
            return 0;
        }
        return serve_static(wsi, h, pss, "chat", uri + 6);
    }
    return serve_static(wsi, h, pss, "agent", uri + 7);
}

static int callback_http_in(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    http_pss *pss = user;
    cg_http *h;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        h = http_of(wsi);
        return route_request(wsi, h, pss, in ? (const char *)in : "/");
    case LWS_CALLBACK_HTTP_BODY:
        return body_chunk(wsi, pss, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        /* lws 4.1 signals the completion of a body again and again, without
         * returning to the loop, when the client pipelined more bytes after
         * it (found by tests/e2e/hostile.test.js: one such request spun the
         * process). Pipelining after a body is refused: hang up; the client
         * retries, and a webhook already stored is deduplicated. */
        if (pss->body_completed) {
            cg_log(CG_LOG_WARN, "http_pipelined_after_body", "action", "connection closed", NULL);
            return -1;
        }
        pss->body_completed = 1;
        if (pss->resp_state != RESP_NONE) return 0;
        if (pss->route == ROUTE_WEBHOOK) webhook_process(wsi, http_of(wsi), pss);
        else if (pss->route == ROUTE_API && !pss->api_dispatched) api_dispatch(wsi, http_of(wsi), pss);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!pss) return 0;
        return write_response(wsi, http_of(wsi), pss);
    case LWS_CALLBACK_HTTP_FILE_COMPLETION:
        h = http_of(wsi);
        if (pss) {
            request_done(h, pss, 200);
            pss_release(h, pss);
        }
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
        char uri[16];
        h = http_of(wsi);
        if (in && !strcasecmp(in, "websocket") && lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) > 0 &&
            !strcmp(uri, "/agent/ws"))
            return cg_agents_ws_confirm_upgrade(h->gw, wsi, !h->accepting);
        return http_wc_confirm_upgrade(h, wsi, in);
    }
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (pss) pss_release(http_of(wsi), pss);
        return 0;
    default:
        return 0;
    }
}

static int callback_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    http_cb_depth++;
    int rc = callback_http_in(wsi, reason, user, in, len);
    http_cb_depth--;
    return rc;
}

/* ---- lifecycle ---------------------------------------------------------- */

static void lws_log_emit(int level, const char *line)
{
    char msg[512];
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
    if (n >= sizeof msg) n = sizeof msg - 1;
    memcpy(msg, line, n);
    msg[n] = '\0';
    cg_log(level & LLL_ERR ? CG_LOG_ERROR : CG_LOG_WARN, "lws", "msg", msg, NULL);
}

static const struct lws_protocols *http_protocols(void)
{
    static struct lws_protocols p[4];
    if (!p[0].name) {
        p[0].name = "http";
        p[0].callback = callback_http;
        p[0].per_session_data_size = sizeof(http_pss);
        p[1].name = HTTP_WC_PROTOCOL;
        p[1].callback = http_wc_callback;
        p[1].per_session_data_size = http_wc_pss_size();
        /* lws keeps this much per socket: small, so that 10,000 idle web
         * chats fit in little memory; larger frames arrive in pieces and
         * http_webchat.c joins them (up to CG_WC_MAX_FRAME) */
        p[1].rx_buffer_size = 1024;
        p[2].name = CG_AGENTS_WS_PROTOCOL;
        p[2].callback = cg_agents_ws_callback;
        p[2].per_session_data_size = cg_agents_ws_pss_size();
        p[2].rx_buffer_size = 4096;
    }
    return p;
}

cg_http *cg_http_start(cg_gateway *gw, char *err, size_t errcap)
{
    cg_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    h->gw = gw;
    h->accepting = 1;

    /* pages: only our own scripts and styles; the web chat connects back */
    size_t o = (size_t)snprintf(h->csp, sizeof h->csp,
                                "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
                                "style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'self'; "
                                "frame-ancestors 'self'");
    for (size_t i = 0; i < gw->cfg->norigins && o < sizeof h->csp; i++)
        o += (size_t)snprintf(h->csp + o, sizeof h->csp - o, " %s", gw->cfg->origins[i]);

    h->wc = http_wc_new(h);
    if (!h->wc) {
        snprintf(err, errcap, "out of memory");
        free(h);
        return NULL;
    }

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    void *loops[1] = {gw->loop};
    info.foreign_loops = loops;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (strchr(gw->cfg->listen_address, ':') == NULL) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.port = gw->cfg->listen_port;
    info.iface = gw->cfg->listen_address;
    info.protocols = http_protocols();
    info.user = h;
    info.pcontext = &http_ctx_slot;
    info.max_http_header_data = HTTP_MAX_HEADER_DATA;
    info.timeout_secs = HTTP_TIMEOUT_S;
    info.keepalive_timeout = HTTP_KEEPALIVE_S;
    info.timeout_secs_ah_idle = HTTP_TIMEOUT_S;
    info.server_string = "civicgate";
    if (gw->cfg->tls_cert) {
        /* TLS terminated here (OpenSSL through lws); otherwise by a proxy */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = gw->cfg->tls_cert;
        info.ssl_private_key_filepath = gw->cfg->tls_key;
        info.ssl_cipher_list = NULL;   /* OpenSSL's defaults */
        info.alpn = "http/1.1";        /* no HTTP/2: every route here is written for HTTP/1.1 */
    }
    info.vhost_name = "civicgate";

    /* explicit vhost: lws_create_context() succeeds even when the default
     * vhost cannot bind, lws_create_vhost() does not */
    info.options |= LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    h->ctx = lws_create_context(&info);
    if (!h->ctx) {
        snprintf(err, errcap, "cannot create the HTTP server");
        http_wc_free(h->wc);
        free(h);
        return NULL;
    }
    http_ctx_slot = h->ctx;
    if (!lws_create_vhost(h->ctx, &info)) {
        if (gw->cfg->tls_cert)
            snprintf(err, errcap, "cannot listen on %s:%d (address in use or not available, or listen.tls_cert / "
                     "listen.tls_key unreadable or not a matching PEM pair)", gw->cfg->listen_address,
                     gw->cfg->listen_port);
        else
            snprintf(err, errcap, "cannot listen on %s:%d (address in use or not available)",
                     gw->cfg->listen_address, gw->cfg->listen_port);
        lws_context_destroy(h->ctx);   /* finished by cg_http_final() */
        http_wc_free(h->wc);
        free(h);
        return NULL;
    }
    return h;
}

void cg_http_stop_accepting(cg_http *h)
{
    if (!h || !h->accepting || !h->ctx) return;
    h->accepting = 0;
    lws_context_deprecate(h->ctx, NULL);   /* closes the listen socket */
    /* web-chat sockets close with 1001 "going away": clients reconnect to
     * another instance and get their history there */
    lws_callback_on_writable_all_protocol(h->ctx, &http_protocols()[1]);
    lws_callback_on_writable_all_protocol(h->ctx, &http_protocols()[2]);   /* agents: same */
}

size_t cg_http_inflight(const cg_http *h)
{
    if (!h) return 0;
    /* once stopping, web-chat sockets count until their close frame is out */
    return h->inflight + (h->accepting ? 0 : http_wc_count(h->wc));
}

void cg_http_final(void)
{
    if (http_ctx_slot) lws_context_destroy(http_ctx_slot);
}

void cg_http_free(cg_http *h)
{
    if (!h) return;
    if (h->ctx) lws_context_destroy(h->ctx);
    http_wc_free(h->wc);
    free(h);
}

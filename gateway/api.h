/*
 * api.h: the JSON API under /api/v1/ (agents' console, admins), served by
 * http.c and answered by the modules that own each route.
 *
 * A module exports a route table (NULL-method terminated) and api.c lists the
 * tables; http.c finds the route for each request under /api/v1/, reads the
 * body (≤ CG_API_MAX_BODY), then calls the handler on the loop thread:
 *
 *   http.c ── cg_api_match(method, path) ──> route + params
 *          ── route->fn(&req, call) ──> handler answers with cg_api_respond()
 *             (now, or later from a Redis callback), exactly once.
 *
 * Patterns are paths whose segments are literal or "*" (one non-empty
 * segment, bound to req->params[] in order), e.g.
 * "/api/v1/admin/citizens/ * / * /export" without the spaces. A path that
 * matches a pattern under another method gets 405; no pattern, 404.
 *
 * Ownership: req and everything it points to are valid only during the
 * handler call: copy what an asynchronous answer needs. call belongs to
 * http.c until cg_api_respond(), which frees it; if the client went away
 * first, cg_api_respond() only frees (cg_api_alive() tells).
 *
 * Authentication is the handler's (each module knows its roles): use
 * cg_api_bearer() to read "Authorization: Bearer <token>" and compare with
 * cg_secure_equal(). Every response gets the security headers of http.c and
 * Cache-Control: no-store.
 *
 * Extending: a new module adds `extern const cg_api_route cg_<module>_api_routes[];`
 * below and its table to api.c's list.
 */
#ifndef CG_API_H
#define CG_API_H

#include <stddef.h>
#include <cjson/cJSON.h>
#include "gateway.h"

#define CG_API_PREFIX      "/api/v1/"
#define CG_API_MAX_BODY    (64 * 1024)   /* request bodies; 413 beyond */
#define CG_API_MAX_PARAMS  4
#define CG_API_PARAM_MAX   160           /* bytes per "*" segment, NUL included */

typedef struct cg_api_call cg_api_call;   /* one request awaiting its answer */

typedef struct cg_api_req {
    cg_gateway *gw;
    const char *method;                   /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *path;                     /* decoded path without the query */
    const char *params[CG_API_MAX_PARAMS];/* the "*" segments, in order */
    size_t nparams;
    const char *query;                    /* URL-encoded query without '?', or "" */
    const char *authorization;            /* the Authorization header, or "" */
    const char *peer;                     /* client IP address, or "" */
    const char *content_type;             /* or "" */
    const char *body;                     /* NUL-terminated; "" when none */
    size_t body_len;
    const char *accept;                   /* the Accept header, or "" (NULL: not given by the caller) */
} cg_api_req;

typedef void (*cg_api_fn)(const cg_api_req *req, cg_api_call *call);

typedef struct cg_api_route {
    const char *method;                   /* NULL ends a table */
    const char *pattern;
    cg_api_fn fn;
} cg_api_route;

/* ---- answering (http.c) ----------------------------------------------- */

/* Answer once; body copied (len bytes, may be 0). Frees call. */
void cg_api_respond(cg_api_call *call, int status, const char *content_type, const char *body,
                    size_t len);
/* JSON answer; takes ownership of obj (NULL → 500). Frees call. */
void cg_api_json(cg_api_call *call, int status, cJSON *obj);
/* {"error": msg} with status. Frees call. */
void cg_api_error(cg_api_call *call, int status, const char *msg);
/* 1 while the client still waits for the answer. */
int cg_api_alive(const cg_api_call *call);

/* Calls that do not come from an HTTP request (the agents' WebSocket runs
 * the same handlers): done gets the answer (body borrowed for the call),
 * then the call is freed. NULL on allocation failure. */
typedef void (*cg_api_done_fn)(void *ud, int status, const char *content_type, const char *body,
                               size_t len);
cg_api_call *cg_api_call_new(cg_api_done_fn done, void *ud);
/* The requester is gone: the answer, when it comes, is dropped (the call is
 * still freed by cg_api_respond). */
void cg_api_call_cancel(cg_api_call *call);

/* ---- helpers (api.c) ---------------------------------------------------- */

/* URL-decoded query parameter into buf: 0, or -1 when absent or too long. */
int cg_api_query(const cg_api_req *req, const char *name, char *buf, size_t cap);
/* The token of "Authorization: Bearer <token>", or NULL (pointer into req). */
const char *cg_api_bearer(const cg_api_req *req);
/* The body parsed as a JSON object; on failure answers 400 (or 415 when the
 * content type is not JSON) through call and returns NULL. Caller deletes. */
cJSON *cg_api_body_object(const cg_api_req *req, cg_api_call *call);

/* A heap copy of req (every string copied) for handlers that answer after
 * an asynchronous step; NULL on allocation failure. cg_api_req_free()
 * frees it. */
cg_api_req *cg_api_req_copy(const cg_api_req *req);
void cg_api_req_free(cg_api_req *copy);

/* Route lookup: *route set and params bound (pointers into the caller's
 * storage segs[], CG_API_MAX_PARAMS × CG_API_PARAM_MAX) when found: 200.
 * 405 when the path exists under another method, 404 otherwise. */
int cg_api_match(const char *method, const char *path, const cg_api_route **route,
                 char segs[CG_API_MAX_PARAMS][CG_API_PARAM_MAX], const char **params, size_t *nparams);
/* The same over given tables (tests). */
int cg_api_match_in(const cg_api_route *const *tables, size_t ntables, const char *method, const char *path,
                    const cg_api_route **route, char segs[CG_API_MAX_PARAMS][CG_API_PARAM_MAX],
                    const char **params, size_t *nparams);

/* ---- the route tables --------------------------------------------------- */
extern const cg_api_route cg_agents_api_routes[];   /* agents.c: /api/v1/agent..., cases, login */
extern const cg_api_route cg_admin_api_routes[];    /* admin.c:  /api/v1/admin/... */
extern const cg_api_route cg_analytics_api_routes[];/* analytics.c: /api/v1/admin/unmatched, stats */

#endif

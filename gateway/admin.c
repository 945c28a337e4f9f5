/*
 * admin.c: the admins' API under /api/v1/admin/ (issue 6) and their
 * authentication, cg_admin_auth() (admin.h), which analytics.c uses too.
 *
 * Authentication, in order:
 *   1. "Authorization: Bearer <token>" is required (401 without).
 *   2. SHA-256 of the token compared, in constant time, with every hash of
 *      admin.tokens (config.h; CIVICGATE_ADMIN_TOKEN is the one named
 *      "env"): a match is the admin of that name, role "admin".
 *   3. Otherwise the agents' module is asked (cg_agents_authenticate): a
 *      supervisor passes on routes that allow supervisors, and gets 403 on
 *      the others; an agent gets 403; an unknown token 401.
 * Every call let through writes one audit entry (audit.h): who, role,
 * action = the HTTP method, target = the path (which names the citizen on
 * the citizens' routes), detail = the client's address; never the body or
 * the query. Refusals are logged (admin_auth_refused, without the token and
 * with citizens' ids cut from the path) and not audited.
 *
 * Routes (cg_admin_api_routes):
 *   GET    /api/v1/admin/intents                      the loaded table
 *   POST   /api/v1/admin/intents/reload               reload, answer when done
 *   GET    /api/v1/admin/citizens/{channel}/{id}/export  everything held
 *   DELETE /api/v1/admin/citizens/{channel}/{id}      erasure
 * The intents' state lives with the reload in serve.c (intents_live.h); the
 * citizens' data in citizens.c (citizens.h), shared with the pipeline.
 *
 * Extending: a route is a row in cg_admin_api_routes and a handler that
 * starts with cg_admin_auth(); document it in docs/admin.md (and
 * docs/openapi.yaml).
 */
#include "admin.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents.h"
#include "audit.h"
#include "citizens.h"
#include "intents_live.h"
#include "log.h"

/* ---- authentication ----------------------------------------------------- */

#define ADMIN_CITIZENS_PREFIX "/api/v1/admin/citizens/"

/* The path for a log line: citizens' ids cut out. */
static void admin_log_path(const char *path, char *out, size_t cap)
{
    size_t n = sizeof ADMIN_CITIZENS_PREFIX - 1;
    if (!strncmp(path, ADMIN_CITIZENS_PREFIX, n)) snprintf(out, cap, "%s...", ADMIN_CITIZENS_PREFIX);
    else snprintf(out, cap, "%.200s", path);
}

static void admin_refuse(const cg_api_req *req, cg_api_call *call, int status, const char *reason)
{
    char p[256];
    admin_log_path(req->path ? req->path : "", p, sizeof p);
    cg_log(CG_LOG_WARN, "admin_auth_refused", "method", req->method ? req->method : "", "path", p, "peer",
           req->peer ? req->peer : "", "reason", reason, NULL);
    cg_api_error(call, status, status == 403 ? "forbidden: admin role required" : "admin token required");
}

/* Audits, then hands the copy to next (which owns it from here). */
static void admin_grant(cg_api_req *copy, cg_api_call *call, const char *who, const char *role,
                        cg_admin_next_fn next)
{
    char detail[80];
    snprintf(detail, sizeof detail, "peer=%s", copy->peer && *copy->peer ? copy->peer : "-");
    cg_audit(copy->gw, who, role, copy->method, copy->path, detail);
    next(copy, call, who, role);
}

/* Name of the admin whose token hashes to h, or NULL. Every configured hash
 * is compared (constant time each), whatever matched before. */
static const char *admin_token_owner(const cg_config *cfg, const unsigned char h[32])
{
    const char *who = NULL;
    for (size_t i = 0; cfg && i < cfg->nadmin_tokens; i++)
        if (cg_secure_equal((const char *)h, 32, (const char *)cfg->admin_tokens[i].sha256, 32))
            who = cfg->admin_tokens[i].name;
    return who;
}

typedef struct admin_auth_ctx {
    cg_api_req *copy;
    cg_api_call *call;
    int allow_supervisor;
    cg_admin_next_fn next;
} admin_auth_ctx;

static void admin_agents_said(void *ud, const char *name, const char *role)
{
    admin_auth_ctx *x = ud;
    if (!name || !role) {
        admin_refuse(x->copy, x->call, 401, "unknown token");
        cg_api_req_free(x->copy);
    } else if (!strcmp(role, "supervisor") && x->allow_supervisor) {
        admin_grant(x->copy, x->call, name, "supervisor", x->next);
    } else {
        admin_refuse(x->copy, x->call, 403, !strcmp(role, "supervisor") ? "supervisor on an admin route"
                                                                        : "agent on an admin route");
        cg_api_req_free(x->copy);
    }
    free(x);
}

void cg_admin_auth(const cg_api_req *req, cg_api_call *call, int allow_supervisor, cg_admin_next_fn next)
{
    const char *tok = cg_api_bearer(req);
    if (!tok) {
        admin_refuse(req, call, 401, "no bearer token");
        return;
    }
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)tok, strlen(tok));
    const char *who = admin_token_owner(req->gw ? req->gw->cfg : NULL, h);
    sodium_memzero(h, sizeof h);
    cg_api_req *copy = cg_api_req_copy(req);
    if (!copy) {
        cg_api_error(call, 500, "out of memory");
        return;
    }
    if (who) {
        admin_grant(copy, call, who, "admin", next);
        return;
    }
    admin_auth_ctx *x = req->gw && req->gw->agents ? calloc(1, sizeof *x) : NULL;
    if (!x) {
        admin_refuse(req, call, 401, "unknown token");
        cg_api_req_free(copy);
        return;
    }
    *x = (admin_auth_ctx){copy, call, allow_supervisor, next};
    cg_agents_authenticate(req->gw->agents, tok, admin_agents_said, x);
}

/* ---- the intent table ---------------------------------------------------- */

static void intents_info(cg_api_req *copy, cg_api_call *call, const char *who, const char *role)
{
    (void)who;
    (void)role;
    cg_gateway *gw = copy->gw;
    cg_api_req_free(copy);
    if (!gw->live) {
        cg_api_error(call, 503, "the intent table is not available");
        return;
    }
    cg_api_json(call, 200, cg_intents_live_info(gw->live));
}

static void intents_get(const cg_api_req *req, cg_api_call *call)
{
    cg_admin_auth(req, call, 0, intents_info);
}

typedef struct reload_wait { cg_gateway *gw; cg_api_call *call; } reload_wait;

static void intents_reloaded(void *ud, cg_live_result r)
{
    reload_wait *w = ud;
    if (r == CG_LIVE_STOPPED) cg_api_error(w->call, 503, "the gateway is stopping");
    else cg_api_json(w->call, r == CG_LIVE_OK ? 200 : 422, cg_intents_live_last(w->gw->live));
    free(w);
}

static void intents_reload_go(cg_api_req *copy, cg_api_call *call, const char *who, const char *role)
{
    (void)role;
    cg_gateway *gw = copy->gw;
    cg_api_req_free(copy);
    reload_wait *w = calloc(1, sizeof *w);
    if (!w) {
        cg_api_error(call, 500, "out of memory");
        return;
    }
    *w = (reload_wait){gw, call};
    cg_log(CG_LOG_INFO, "intents_reload_requested", "by", who, NULL);
    cg_intents_live_reload(gw->live, "api", intents_reloaded, w);
}

static void intents_reload(const cg_api_req *req, cg_api_call *call)
{
    cg_admin_auth(req, call, 0, intents_reload_go);
}

/* ---- citizens' data ------------------------------------------------------ */

static int citizen_status(cg_err e)
{
    switch (e) {
    case CG_OK: return 200;
    case CG_E_BAD_REQUEST: return 400;
    case CG_E_UNAVAILABLE: return 503;
    default: return 500;
    }
}

static const char *citizen_error(cg_err e)
{
    switch (e) {
    case CG_E_BAD_REQUEST: return "unknown channel or malformed id";
    case CG_E_UNAVAILABLE: return "Redis is unavailable; nothing or part was done: try again";
    default: return "internal error";
    }
}

static void citizen_exported(void *ud, cg_err result, cJSON *doc)
{
    cg_api_call *call = ud;
    if (result != CG_OK) {
        cg_api_error(call, citizen_status(result), citizen_error(result));
        return;
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "found"))) {
        cJSON_Delete(doc);
        cg_api_error(call, 404, "nothing is held about this citizen");
        return;
    }
    cg_api_json(call, 200, doc);
}

static void citizen_export_go(cg_api_req *copy, cg_api_call *call, const char *who, const char *role)
{
    (void)who;
    (void)role;
    cg_citizens_export(copy->gw, copy->params[0], copy->params[1], citizen_exported, call);
    cg_api_req_free(copy);
}

static void citizen_export(const cg_api_req *req, cg_api_call *call)
{
    if (req->nparams != 2 || cg_citizens_valid(req->params[0], req->params[1]) != 0) {
        cg_api_error(call, 400, citizen_error(CG_E_BAD_REQUEST));
        return;
    }
    cg_admin_auth(req, call, 0, citizen_export_go);
}

static void citizen_erased(void *ud, cg_err result, const cg_citizens_counts *n)
{
    cg_api_call *call = ud;
    if (result != CG_OK) {
        cg_api_error(call, citizen_status(result), citizen_error(result));
        return;
    }
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddBoolToObject(o, "erased", 1);
        cJSON_AddNumberToObject(o, "keys", (double)n->keys);
        cJSON_AddNumberToObject(o, "entries", (double)n->entries);
        cJSON_AddBoolToObject(o, "complete", n->complete);
    }
    cg_api_json(call, 200, o);
}

static void citizen_erase_go(cg_api_req *copy, cg_api_call *call, const char *who, const char *role)
{
    cg_citizens_erase(copy->gw, copy->params[0], copy->params[1], CG_CITIZENS_ALL, who, role, citizen_erased,
                      call);
    cg_api_req_free(copy);
}

static void citizen_erase(const cg_api_req *req, cg_api_call *call)
{
    if (req->nparams != 2 || cg_citizens_valid(req->params[0], req->params[1]) != 0) {
        cg_api_error(call, 400, citizen_error(CG_E_BAD_REQUEST));
        return;
    }
    cg_admin_auth(req, call, 0, citizen_erase_go);
}

/* ---- routes ------------------------------------------------------------- */

const cg_api_route cg_admin_api_routes[] = {
    {"GET", "/api/v1/admin/intents", intents_get},
    {"POST", "/api/v1/admin/intents/reload", intents_reload},
    {"GET", "/api/v1/admin/citizens/*/*/export", citizen_export},
    {"DELETE", "/api/v1/admin/citizens/*/*", citizen_erase},
    {NULL, NULL, NULL},
};

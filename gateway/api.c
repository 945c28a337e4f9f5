/*
 * api.c: route lookup and request helpers of the JSON API (api.h). Pure: no
 * I/O; http.c does the transport, the modules the answers.
 *
 * Matching walks every table in order; the first route whose method and
 * pattern both match wins. Segments are compared literally except "*",
 * which takes one non-empty segment of at most CG_API_PARAM_MAX - 1 bytes
 * (longer: no match, so 404).
 *
 * Extending: a new table goes in tables[] (and its extern in api.h).
 */
#include "api.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "civicgate/connector.h"

static const cg_api_route *const tables[] = {
    cg_agents_api_routes,
    cg_admin_api_routes,
    cg_analytics_api_routes,
};

/* 1 when path matches pattern; binds the "*" segments. */
static int match_one(const char *pattern, const char *path, char segs[CG_API_MAX_PARAMS][CG_API_PARAM_MAX],
                     size_t *n)
{
    *n = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p != '/' || *s != '/') return 0;
        p++;
        s++;
        const char *pe = strchr(p, '/'), *se = strchr(s, '/');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p), sl = se ? (size_t)(se - s) : strlen(s);
        if (pl == 1 && *p == '*') {
            if (sl == 0 || sl >= CG_API_PARAM_MAX || *n >= CG_API_MAX_PARAMS) return 0;
            memcpy(segs[*n], s, sl);
            segs[*n][sl] = '\0';
            (*n)++;
        } else if (pl != sl || memcmp(p, s, pl) != 0) {
            return 0;
        }
        p += pl;
        s += sl;
    }
    return *p == '\0' && *s == '\0';
}

int cg_api_match_in(const cg_api_route *const *tabs, size_t ntabs, const char *method, const char *path,
                    const cg_api_route **route, char segs[CG_API_MAX_PARAMS][CG_API_PARAM_MAX],
                    const char **params, size_t *nparams)
{
    int other = 0;
    *route = NULL;
    *nparams = 0;
    for (size_t t = 0; t < ntabs; t++) {
        for (const cg_api_route *r = tabs[t]; r->method; r++) {
            size_t n;
            if (!match_one(r->pattern, path, segs, &n)) continue;
            if (strcmp(r->method, method) != 0) {
                other = 1;
                continue;
            }
            *route = r;
            *nparams = n;
            for (size_t i = 0; i < n; i++) params[i] = segs[i];
            return 200;
        }
    }
    return other ? 405 : 404;
}

int cg_api_match(const char *method, const char *path, const cg_api_route **route,
                 char segs[CG_API_MAX_PARAMS][CG_API_PARAM_MAX], const char **params, size_t *nparams)
{
    return cg_api_match_in(tables, sizeof tables / sizeof tables[0], method, path, route, segs, params, nparams);
}

/* One allocation: the struct, then every string, NUL-terminated. */
cg_api_req *cg_api_req_copy(const cg_api_req *req)
{
    const char *strs[7 + CG_API_MAX_PARAMS] = {req->method, req->path, req->query, req->authorization, req->peer,
                                              req->content_type, req->accept};
    size_t nstr = 7, total = sizeof(cg_api_req) + req->body_len + 1;
    for (size_t i = 0; i < req->nparams && i < CG_API_MAX_PARAMS; i++) strs[nstr++] = req->params[i];
    for (size_t i = 0; i < nstr; i++) total += (strs[i] ? strlen(strs[i]) : 0) + 1;
    cg_api_req *c = malloc(total);
    if (!c) return NULL;
    *c = *req;
    char *p = (char *)(c + 1);
    const char **dst[7 + CG_API_MAX_PARAMS] = {&c->method, &c->path, &c->query, &c->authorization, &c->peer,
                                               &c->content_type, &c->accept};
    for (size_t i = 0; i < c->nparams && i < CG_API_MAX_PARAMS; i++) dst[7 + i] = &c->params[i];
    for (size_t i = 0; i < nstr; i++) {
        size_t n = strs[i] ? strlen(strs[i]) : 0;
        memcpy(p, strs[i] ? strs[i] : "", n + 1);
        *dst[i] = p;
        p += n + 1;
    }
    if (req->body_len) memcpy(p, req->body, req->body_len);
    p[req->body_len] = '\0';
    c->body = p;
    return c;
}

void cg_api_req_free(cg_api_req *copy)
{
    free(copy);
}

int cg_api_query(const cg_api_req *req, const char *name, char *buf, size_t cap)
{
    cg_http_in in;
    memset(&in, 0, sizeof in);
    in.query = req->query ? req->query : "";
    return cg_http_in_query(&in, name, buf, cap);
}

const char *cg_api_bearer(const cg_api_req *req)
{
    const char *a = req->authorization;
    if (!a || strncasecmp(a, "Bearer ", 7) != 0) return NULL;
    a += 7;
    while (*a == ' ') a++;
    return *a ? a : NULL;
}

cJSON *cg_api_body_object(const cg_api_req *req, cg_api_call *call)
{
    const char *ct = req->content_type ? req->content_type : "";
    if (strncasecmp(ct, "application/json", 16) != 0) {
        cg_api_error(call, 415, "Content-Type must be application/json");
        return NULL;
    }
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(req->body, req->body_len, &end, 0);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        cg_api_error(call, 400, "the body must be a JSON object");
        return NULL;
    }
    return o;
}

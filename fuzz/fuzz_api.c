/*
 * fuzz_api.c: libFuzzer driver for the request handling that is ours in the
 * JSON API (gateway/api.c): route lookup over the real route tables, query
 * parameters, bearer tokens and the request copy. Input: "<method>\n<path>\n
 * <query>\n<authorization>\n<body>" (missing parts are empty).
 * Seed corpus: fuzz/corpus/api/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *next_line(char **p)
{
    char *s = *p, *nl = strchr(s, '\n');
    if (nl) {
        *nl = '\0';
        *p = nl + 1;
    } else {
        *p = s + strlen(s);
    }
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 70000) return 0;
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *p = buf;
    const char *method = next_line(&p), *path = next_line(&p), *query = next_line(&p), *auth = next_line(&p);
    const char *body = p;

    const cg_api_route *route;
    char segs[CG_API_MAX_PARAMS][CG_API_PARAM_MAX];
    cg_api_req req = {.method = method, .path = path, .query = query, .authorization = auth, .peer = "127.0.0.1",
                      .content_type = "application/json", .body = body, .body_len = strlen(body)};
    int st = cg_api_match(method, path, &route, segs, req.params, &req.nparams);
    if (st == 200 && (!route || req.nparams > CG_API_MAX_PARAMS)) abort();
    if (st != 200 && st != 404 && st != 405) abort();
    for (size_t i = 0; st == 200 && i < req.nparams; i++)
        if (strlen(req.params[i]) >= CG_API_PARAM_MAX || !req.params[i][0]) abort();

    char v[256];
    static const char *const names[] = {"lang", "from", "to", "q", "status", "format", ""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (cg_api_query(&req, names[i], v, sizeof v) == 0 && strlen(v) >= sizeof v) abort();
    const char *tok = cg_api_bearer(&req);
    if (tok && (tok < auth || tok > auth + strlen(auth))) abort();

    cg_api_req *c = cg_api_req_copy(&req);
    if (c) {
        if (strcmp(c->path, path) || c->body_len != req.body_len || memcmp(c->body, body, req.body_len)) abort();
        cg_api_req_free(c);
    }
    free(buf);
    return 0;
}

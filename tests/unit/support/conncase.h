/*
 * conncase.h: what the connectors' case-table tests share (test_telegram.c,
 * test_meta.c): reading case files, expanding long texts written as
 * segments ({"repeat": "...", "times": N}), naming enum values, running
 * every case of a folder, and the classify cases, which are the same for
 * every connector. Test support only; failures are cmocka failures.
 */
#ifndef CG_TEST_CONNCASE_H
#define CG_TEST_CONNCASE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "civicgate/connector.h"
#include "civicgate/message.h"

char *cg_case_slurp(const char *path, size_t *len);
char **cg_case_list(const char *dir, size_t *n);
cJSON *cg_case_load(const char *path);
char *cg_case_expand(const cJSON *spec);
void cg_case_expand_texts(cJSON *node);
const char *cg_case_kind_name(cg_msg_kind k);
const char *cg_case_status_name(cg_err e);
const char *cg_case_send_name(cg_send_kind k);
void cg_case_check_str(const char *cname, const char *field, const char *want, const char *got);
unsigned char *cg_case_from_hex(const char *hex, size_t *len);
/* A parse case's request body into req: body_hex (raw bytes), body as a
 * string (sent as is) or as JSON (printed); returns what to free, or NULL. */
void *cg_case_body(const cJSON *c, cg_http_in *req);
void cg_case_run_dir(const char *dir, void (*fn)(const char *), size_t min_cases);
/* The reply a render case gives ({user, text, callback_id, from_agent,
 * window_closed, buttons: [{title, payload, url}]}) for channel; free it
 * with cg_reply_free. */
void cg_case_reply(const cJSON *jr, const char *channel, cg_reply *r);
/* A render's result against a case's expect ({status, requests: [{url,
 * body}]}): each request a POST to url with exactly these headers, the
 * secret in its URL or (secret_in_url 0) not, secret then nowhere in the
 * URL, and the body the expected JSON. Frees the requests. */
void cg_case_check_render(const char *cname, const cJSON *expect, cg_err e, cg_http_out *out, size_t n,
                          const char *const *headers, size_t nheaders, int secret_in_url, const char *secret);
/* Runs one classify case file against conn's classify(). */
void cg_case_classify(const cg_connector *conn, const char *path);

#endif

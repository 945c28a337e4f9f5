/*
 * meta.h: what the WhatsApp Cloud API and Messenger connectors share
 * (connectors/meta.c). Both are Meta Graph API platforms: the same webhook
 * signature (X-Hub-Signature-256), the same GET subscription handshake, the
 * same error body, the same request shape (Bearer token, JSON body).
 *
 * API in call order:
 *   cg_meta_verify        connector verify(): HMAC-SHA256 of the raw body
 *   cg_meta_handshake     connector handshake(): hub.challenge echo
 *   cg_meta_parse_body    connector parse(): bounded strict JSON object
 *   cg_meta_* json/text   helpers for parse and render
 *   cg_meta_reply_text    connector render(): the text with URL buttons as lines
 *   cg_meta_request       connector render(): one POST with a JSON body
 *   cg_meta_graph_error   connector classify(): read {"error":{...}}
 *   cg_meta_classify      connector classify(): the whole policy, from a table
 *
 * Everything here is pure (no I/O, clock or globals).
 */
#ifndef CIVICGATE_CONNECTORS_META_H
#define CIVICGATE_CONNECTORS_META_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "civicgate/connector.h"

#define CG_META_MAX_BODY (1024u * 1024u)
#define CG_META_NAME_MAX 256       /* bytes kept of a profile name */

/* Contract: CG_OK when the header x-hub-signature-256 is "sha256=" followed
 * by 64 hex digits (either case) equal to HMAC-SHA256(cfg->secret, raw body
 * bytes); compared in constant time. Missing header, wrong prefix, wrong
 * length, empty or absent cfg->secret → CG_E_AUTH. Borrows everything. */
cg_err cg_meta_verify(const cg_channel_cfg *cfg, const cg_http_in *req);

/* Contract: GET /webhooks/<name>?hub.mode=subscribe&hub.verify_token=T&
 * hub.challenge=C. CG_OK with resp = 200 text/plain C when T equals
 * cfg->verify_token (constant time; an empty configured token never
 * matches); CG_E_FORBIDDEN when the mode is not "subscribe" or the token is
 * missing or wrong; CG_E_BAD_REQUEST when the challenge is missing, over 128
 * bytes or not made of [A-Za-z0-9._-] (it is echoed back). resp is written
 * only on CG_OK. */
cg_err cg_meta_handshake(const cg_channel_cfg *cfg, const cg_http_in *req, cg_http_resp *resp);

/* Contract: parses req->body as one JSON object (≤ CG_META_MAX_BODY bytes,
 * nothing but blanks after it, no escaped NUL in any string) into *root,
 * which the caller deletes with cJSON_Delete. CG_E_TOO_LARGE,
 * CG_E_BAD_REQUEST with reason (cap bytes) otherwise, *root NULL. */
cg_err cg_meta_parse_body(const cg_http_in *req, cJSON **root, char *reason, size_t cap);

/* printf into reason (cap bytes); no-op when reason is NULL or cap 0. */
void cg_meta_reason(char *reason, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Borrowed string / object / array member of o, or NULL when absent or of
 * another type. */
const char *cg_meta_str(const cJSON *o, const char *key);
const cJSON *cg_meta_obj(const cJSON *o, const char *key);
const cJSON *cg_meta_arr(const cJSON *o, const char *key);

/* 1 when s is 1..max-1 bytes of [0-9] (a wa_id, PSID or watermark). */
int cg_meta_digits(const char *s, size_t max);

/* Heap copy of s (valid UTF-8 required: NULL and *bad = 1 otherwise) cut at
 * a character boundary to max bytes; NULL with *bad = 0 on ENOMEM. */
char *cg_meta_dup_utf8(const char *s, size_t max, int *bad);
/* *dst = cg_meta_dup_utf8(s, max): CG_OK; CG_E_BAD_REQUEST with "<what> is
 * not valid UTF-8" in reason; CG_E_NOMEM. */
cg_err cg_meta_take_text(char **dst, const char *s, size_t max, const char *what, char *reason, size_t cap);
/* *dst = copy of a button payload p of 1..max bytes of UTF-8: CG_OK;
 * CG_E_BAD_REQUEST with reason; CG_E_NOMEM. */
cg_err cg_meta_take_payload(char **dst, const char *p, size_t max, const char *what, char *reason, size_t cap);

/* Characters of s[0..len) as Meta counts them: code points, astral ones as
 * two (UTF-16 units; the stricter reading of "characters"). */
size_t cg_meta_chars(const char *s, size_t len);

/* Length in bytes of the next piece of s[0..len) (valid UTF-8) of at most
 * max_chars characters, cut at a line end, else a sentence end (". " "! "
 * "? "), else a space, else a character boundary; len when it all fits. */
size_t cg_meta_chunk(const char *s, size_t len, size_t max_chars);

/* Splits s[0..len) (valid UTF-8) into pieces [starts[i], starts[i] +
 * lens[i]) of at most max_chars characters each (cg_meta_chunk), the last
 * one at most last_max (≤ max_chars) characters: when the last piece is
 * longer, its tail is cut at the first line / sentence / word boundary that
 * leaves at most last_max characters. Blank edges of pieces are dropped.
 * Returns the count (0 for a blank text), or max + 1 when more than max
 * pieces are needed. */
size_t cg_meta_split(const char *s, size_t len, size_t max_chars, size_t last_max, size_t *starts,
                     size_t *lens, size_t max);

/* Heap copy of title (valid UTF-8) of at most max_chars characters: when
 * longer, cut after the last whole word that fits with "…" (a single word
 * longer than that is cut at a character boundary), trailing blanks and
 * punctuation dropped before the ellipsis. NULL on ENOMEM. */
char *cg_meta_shorten(const char *title, size_t max_chars);

/* Contract: fills o with POST {api_base}/{api_version}/{path}, headers
 * "Content-Type: application/json" and "Authorization: Bearer <token>"
 * (secret_in_url = 0: the token is in a header, never in the URL) and the
 * unformatted JSON of body, which is consumed (deleted) in every case.
 * CG_E_NOMEM on allocation failure (o then owns nothing). */
cg_err cg_meta_request(const cg_channel_cfg *cfg, const char *path, cJSON *body, cg_http_out *o);

/* A Graph API error body, {"error":{"message","type","code","error_subcode",
 * "error_data":{"details"},"is_transient","fbtrace_id"}}. */
typedef struct cg_meta_error {
    int present;            /* 1 when body had an "error" object */
    long code;              /* 0 when absent */
    long subcode;           /* 0 when absent */
    int is_transient;
    char message[128];      /* message, then error_data.details, cut, UTF-8 safe */
} cg_meta_error;

/* Contract: reads body[0..len) (any bytes; NULL allowed) into *e (zeroed
 * first). Never fails: an unreadable body gives present = 0. */
void cg_meta_graph_error(const char *body, size_t len, cg_meta_error *e);

/* Contract: the reply's text with blank edges trimmed, followed (when
 * links_in_text) by "\n\n<title>: <url>" lines for its URL buttons;
 * malloc'd, the caller frees; NULL on ENOMEM. Buttons must be valid
 * (cg_reply_buttons_valid). */
char *cg_meta_reply_text(const cg_reply *r, int links_in_text);

/* One row of a connector's Graph error policy: what an error code (and, when
 * subcode != 0, that subcode only) means for delivery. Tables end with
 * code -1. */
typedef struct cg_meta_policy {
    long code;
    long subcode;           /* 0: any */
    cg_send_kind kind;
    const char *prefix;     /* reason prefix, or NULL for "<name> <status>/<code>: " */
} cg_meta_policy;

/* Contract: the whole classify() of a Meta connector: no response → RETRY;
 * 2xx → OK with platform_id (as cg_meta_platform_id with arr / key); else
 * code = the Graph error code (0 without one) and the first policy row matching the Graph error, then permission codes
 * 200-299 → BAD_CONFIG, is_transient → RETRY, then by HTTP status (429
 * THROTTLED, 401 BAD_CONFIG, 5xx/408 RETRY, other FAILED). The reason names
 * the connector and never ends inside a UTF-8 sequence. */
void cg_meta_classify(const char *name, const cg_meta_policy *policies, const char *arr,
                      const char *key, long status, const char *body, size_t len,
                      cg_send_result *out);

/* Contract: OK result with platform_id from root[arr][0].id (WhatsApp
 * "messages") or root[key] (Messenger "message_id") when it fits; neither
 * NULL-safe lookups fail. */
void cg_meta_platform_id(const char *body, size_t len, const char *arr, const char *key,
                         cg_send_result *out);

#endif

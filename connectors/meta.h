/*
 * meta.h: what the WhatsApp Cloud API and Messenger connectors share
 * (connectors/meta.c). Both are Meta Graph API platforms: the same webhook
 * signature (X-Hub-Signature-256), the same GET subscription handshake, the
 * same error body, the same request shape (Bearer token, JSON body).
 *
 * API in call order:
 *   cg_meta_verify        connector verify(): HMAC-SHA256 of the raw body
 *   cg_meta_handshake     connector handshake(): hub.challenge echo
 *   cg_meta_parse         connector parse(): the whole frame, from a
 *                         cg_meta_webhook (object, entry[] callback)
 *   cg_meta_each          the callback: each object of an array of events
 *   cg_meta_new / _keep   take a message, then count or free it
 *   cg_meta_parse_body    bounded strict JSON object (cg_meta_parse uses it)
 *   cg_meta_* json/text   helpers for parse and render
 *   cg_meta_cfg_ok        connector render(): token, api_base, api_version set
 *   cg_meta_send_text     connector render(): the text split into requests,
 *                         each body from the connector (cg_meta_text_plan)
 *   cg_meta_reply_text    the text with URL buttons as lines
 *   cg_meta_request       one POST with a JSON body
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

/* A parse() in progress: out[0..n) are the messages taken so far, of max;
 * reason (cap bytes) is the caller's. It lives on cg_meta_parse's stack:
 * the callbacks borrow it for the call. */
typedef struct cg_meta_batch {
    const cg_channel_cfg *cfg;
    cg_msg *out;
    size_t max, n;
    char *reason;
    size_t cap;
    const struct cg_meta_webhook *hook;
} cg_meta_batch;

/* What differs between the Meta platforms' webhooks (a const per
 * connector): {"object":<object>,"entry":[...]} with each entry read by
 * entry(), which adds messages through cg_meta_new / cg_meta_keep. */
typedef struct cg_meta_webhook {
    const char *channel;    /* cg_msg.channel of every message */
    const char *object;     /* the root's "object" */
    const char *not_ours;   /* reason when object or entry[] is not that */
    const char *unit;       /* reason when full: "more than <max> <unit> in one webhook" */
    cg_err (*entry)(cg_meta_batch *b, const cJSON *entry);   /* borrows entry */
} cg_meta_webhook;

/* Contract: a connector's whole parse() (cg_connector.parse) for webhook w:
 * *n = 0 and reason "" first; CG_E_INTERNAL when req, out or n is NULL;
 * the body read by cg_meta_parse_body; CG_E_BAD_REQUEST with w->not_ours
 * when object or entry[] is wrong; then w->entry() on each entry in order,
 * stopping at its first error. On CG_OK out[0..*n) are the messages (the
 * caller frees each with cg_msg_free); on error none is left and *n is 0. */
cg_err cg_meta_parse(const cg_meta_webhook *w, const cg_channel_cfg *cfg, const cg_http_in *req,
                     cg_msg *out, size_t max, size_t *n, char *reason, size_t cap);

/* One element of an array of events (an object), read into b. */
typedef cg_err cg_meta_each_fn(cg_meta_batch *b, const cJSON *item, const void *arg);

/* Contract: each(b, item, arg) on every element of the array o[key] (none
 * when absent) in order, stopping at its first error; CG_E_BAD_REQUEST with
 * "<key>[] holds a non-object" at an element that is not an object. */
cg_err cg_meta_each(cg_meta_batch *b, const cJSON *o, const char *key, cg_meta_each_fn *each,
                    const void *arg);

/* Contract: the next message of b, zeroed with its channel set, at
 * out[b->n] but not counted until cg_meta_keep; NULL with the reason set
 * when max are taken. */
cg_msg *cg_meta_new(cg_meta_batch *b);

/* Contract: ends the message m of cg_meta_new: counted when e is CG_OK and
 * emit is set, else freed (cg_msg_free). Returns e. */
cg_err cg_meta_keep(cg_meta_batch *b, cg_msg *m, cg_err e, int emit);

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

/* 1 when id is a usable message id: 1..CG_MSGID_MAX-1 bytes of UTF-8. */
int cg_meta_id_ok(const char *id);

/* Contract: m becomes a LOCATION at o[lat_key], o[lon_key] when both are
 * numbers in range (latitude -90..90, longitude -180..180): CG_OK; else
 * CG_E_BAD_REQUEST with the message bad in reason, m unchanged. */
cg_err cg_meta_location(cg_msg *m, const cJSON *o, const char *lat_key, const char *lon_key,
                        const char *bad, char *reason, size_t cap);

/* m becomes UNSUPPORTED with media = the printable-ASCII start of type, cut
 * to fit. */
void cg_meta_unsupported(cg_msg *m, const char *type);

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

/* 1 when cfg has the token, api_base and api_version a request needs. */
int cg_meta_cfg_ok(const cg_channel_cfg *cfg);

/* How a connector's render() sends a reply's text (cg_meta_send_text). */
typedef struct cg_meta_text_plan {
    int links_in_text;      /* URL buttons as "<title>: <url>" lines (cg_meta_reply_text) */
    int need_text;          /* a blank text is CG_E_INTERNAL: the buttons need one */
    size_t max_chars;       /* characters per request */
    size_t last_max;        /* characters in the last request (≤ max_chars) */
    /* The request body for the text piece (a string borrowed for the call);
     * last: the final piece, which carries the buttons. arg is the plan's.
     * NULL on ENOMEM. */
    cJSON *(*body)(const cg_reply *r, const char *piece, int last, const void *arg);
    const void *arg;
} cg_meta_text_plan;

/* Contract: the text of r (cg_meta_reply_text; r's text valid UTF-8 and its
 * buttons valid) split by plan (cg_meta_split) into one POST to path each
 * (cg_meta_request), out[0..*n), which the caller frees with
 * cg_http_out_free; no request for a blank text. CG_E_INTERNAL when more
 * than max requests would be needed or the text is blank and need_text,
 * CG_E_NOMEM: then out holds nothing and *n is not written. */
cg_err cg_meta_send_text(const cg_channel_cfg *cfg, const char *path, const cg_reply *r,
                         const cg_meta_text_plan *plan, cg_http_out *out, size_t max, size_t *n);

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

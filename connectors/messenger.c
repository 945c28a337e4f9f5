/*
 * messenger.c: the Facebook Messenger Platform connector, a pure translator.
 *
 * What it does, in the order the gateway calls it:
 *
 *   handshake GET hub.mode=subscribe&hub.verify_token=..&hub.challenge=..
 *             → 200 text/plain challenge when the token is cfg->verify_token,
 *             else 403 (cg_meta_handshake).
 *   verify    X-Hub-Signature-256 over the raw body with cfg->secret (the
 *             app secret), constant time (cg_meta_verify).
 *   parse     {"object":"page","entry":[{"id","time","messaging":[event]}]}
 *             → up to max cg_msg, in order. Every event has sender.id (the
 *             PSID: user) and timestamp (milliseconds: ts = timestamp/1000).
 *               message.is_echo (our own messages)       → nothing
 *               message.quick_reply.payload              → BUTTON, payload
 *               message.text                             → TEXT
 *               message.attachments[0] (no text):
 *                 image (sticker_id set: media "sticker"), video, audio,
 *                 file                                   → MEDIA, media = type
 *                 location, payload.coordinates.lat/long → LOCATION
 *                 fallback, template, anything else      → UNSUPPORTED, media = type
 *               message without text or attachments      → nothing
 *               msg_id = message.mid (required)
 *               postback: payload "GET_STARTED" (the payload to configure for
 *                 the Get Started button) → START, text = postback.referral.ref
 *                 (m.me/<page>?ref=<ref>) or NULL; other payloads → BUTTON
 *                 msg_id = postback.mid, else "pb:<psid>:<timestamp>"
 *               referral (m.me link opened in an existing conversation) →
 *                 START, text = referral.ref, msg_id "rf:<psid>:<timestamp>"
 *               delivery → STATUS, text "delivered", payload = delivery.mids[0]
 *                 or NULL, msg_id "d:<psid>:<watermark>"; read → STATUS, text
 *                 "read", payload NULL, msg_id "r:<psid>:<watermark>". The
 *                 watermark (ms) means every message sent before it; ts =
 *                 watermark/1000.
 *               reactions, optins, account linking, pass/take/request thread
 *               control, entry[].standby[] (another app owns the thread) →
 *               nothing.
 *             More events than max, a missing or non-numeric PSID, a missing
 *             or over-long mid, invalid UTF-8 text, malformed JSON, object
 *             other than "page" → CG_E_BAD_REQUEST with a reason.
 *   render    a cg_reply → POST {api_base}/{api_version}/me/messages with
 *             "Authorization: Bearer <page token>" and {"recipient":{"id":
 *             user},"messaging_type":"RESPONSE","message":{...}}; a reply
 *             the outbox marks window_closed (more than 24 hours since the
 *             citizen wrote: only a person's reply, gateway/window.c) is sent
 *             with "messaging_type":"MESSAGE_TAG","tag":"HUMAN_AGENT"
 *             (allowed for 7 days after the citizen wrote; beyond that the
 *             outbox refuses it). Text over 2,000 characters is split at a line /
 *             sentence / word boundary into several requests. Buttons ride
 *             on the last request:
 *               only payload buttons → quick_replies (≤ 13, content_type
 *                 "text", title ≤ 20 characters shortened with "…", payload)
 *               URL buttons, 3 buttons or fewer → a button template (text ≤
 *                 640 characters: the text before it is split to fit;
 *                 web_url for links, postback for payloads; titles ≤ 20)
 *               URL buttons, more than 3 → the links become "<title>: <url>"
 *                 lines of the text and the payload buttons quick replies
 *                 (they always fit: CG_REPLY_MAX_BUTTONS is 10, so no
 *                 numbered text menu is needed)
 *             callback_id is ignored. Missing token / api_base / api_version,
 *             a user that is not a PSID, buttons without text, a payload
 *             over 64 bytes, more requests than max → CG_E_INTERNAL.
 *   classify  the Graph API answer → cg_send_result:
 *               2xx → OK, platform_id = message_id
 *               status 0, 5xx, error.is_transient, codes 1, 2 → RETRY
 *               HTTP 429, codes 4, 17, 32, 613 → THROTTLED
 *               551 (this person isn't available) → CONTACT_GONE
 *               10 with subcode 2018278, or 2018278 (outside the messaging
 *               window) → FAILED, reason "reengagement: ..."
 *               HTTP 401, codes 190, 200-299 (permissions) → BAD_CONFIG
 *               other 4xx → FAILED with the message
 *
 * Extending: a new event is a branch in ms_event(); a new attachment type a
 * row in ms_media_kinds[]; an error code with policy a row in ms_policies[].
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "civicgate/connector.h"
#include "civicgate/message.h"
#include "civicgate/text.h"
#include "meta.h"
#include "messenger.h"

#define MS_MAX_TEXT_CHARS    2000
#define MS_TEMPLATE_TEXT_MAX 640
#define MS_TITLE_MAX         20
#define MS_MAX_QUICK_REPLIES 13
#define MS_MAX_TEMPLATE_BTNS 3
#define MS_PAYLOAD_MAX       64
#define MS_GET_STARTED       "GET_STARTED"

static const char *const ms_media_kinds[] = { "image", "video", "audio", "file", NULL };

/* Non-negative integral number at o[key] (ms timestamps): 0 and *v; -1. */
static int ms_int(const cJSON *o, const char *key, int64_t *v)
{
    const cJSON *x = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (!cJSON_IsNumber(x) || !(x->valuedouble >= 0 && x->valuedouble <= 9007199254740991.0)) return -1;
    int64_t i = (int64_t)x->valuedouble;
    if ((double)i != x->valuedouble) return -1;
    *v = i;
    return 0;
}

static cg_msg *ms_new(cg_meta_batch *c, const char *psid, int64_t ts_ms)
{
    cg_msg *m = cg_meta_new(c);
    if (!m) return NULL;
    snprintf(m->user, sizeof m->user, "%s", psid);
    m->ts = ts_ms / 1000;
    return m;
}

static cg_err ms_dup(cg_meta_batch *c, char **dst, const char *s, size_t max, const char *what)
{
    return cg_meta_take_text(dst, s, max, what, c->reason, c->cap);
}

static cg_err ms_payload(cg_meta_batch *c, cg_msg *m, const char *p, const char *what)
{
    return cg_meta_take_payload(&m->payload, p, 1000, what, c->reason, c->cap);
}

static cg_err ms_message(cg_meta_batch *c, cg_msg *m, const cJSON *msg, int *emit)
{
    *emit = 0;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "is_echo"))) return CG_OK;
    const char *mid = cg_meta_str(msg, "mid");
    if (!cg_meta_id_ok(mid)) {
        cg_meta_reason(c->reason, c->cap, "message.mid missing or over %d bytes", CG_MSGID_MAX - 1);
        return CG_E_BAD_REQUEST;
    }
    snprintf(m->msg_id, sizeof m->msg_id, "%s", mid);
    const char *qr = cg_meta_str(cg_meta_obj(msg, "quick_reply"), "payload");
    const char *text = cg_meta_str(msg, "text");
    *emit = 1;
    if (qr) {
        m->kind = CG_MSG_BUTTON;
        return ms_payload(c, m, qr, "quick_reply.payload");
    }
    if (text && text[0]) {
        m->kind = CG_MSG_TEXT;
        return ms_dup(c, &m->text, text, CG_MSG_TEXT_MAX, "message.text");
    }
    const cJSON *atts = cg_meta_arr(msg, "attachments");
    const cJSON *a = atts ? cJSON_GetArrayItem(atts, 0) : NULL;
    const char *type = cg_meta_str(a, "type");
    if (!type) { *emit = 0; return CG_OK; }
    const cJSON *pl = cg_meta_obj(a, "payload");
    if (strcmp(type, "location") == 0)
        return cg_meta_location(m, cg_meta_obj(pl, "coordinates"), "lat", "long",
                                "location attachment needs coordinates lat and long in range", c->reason, c->cap);
    for (size_t i = 0; ms_media_kinds[i]; i++) {
        if (strcmp(type, ms_media_kinds[i]) == 0) {
            m->kind = CG_MSG_MEDIA;
            int sticker = cJSON_GetObjectItemCaseSensitive(pl, "sticker_id") != NULL;
            snprintf(m->media, sizeof m->media, "%s", sticker ? "sticker" : type);
            return CG_OK;
        }
    }
    cg_meta_unsupported(m, type);
    return CG_OK;
}

static cg_err ms_postback(cg_meta_batch *c, cg_msg *m, const cJSON *pb, const char *psid, int64_t ts_ms)
{
    const char *mid = cg_meta_str(pb, "mid");
    const char *payload = cg_meta_str(pb, "payload");
    if (mid) {
        if (!cg_meta_id_ok(mid)) {
            cg_meta_reason(c->reason, c->cap, "postback.mid over %d bytes", CG_MSGID_MAX - 1);
            return CG_E_BAD_REQUEST;
        }
        snprintf(m->msg_id, sizeof m->msg_id, "%s", mid);
    } else {
        snprintf(m->msg_id, sizeof m->msg_id, "pb:%s:%" PRId64, psid, ts_ms);
    }
    if (!payload) {
        cg_meta_reason(c->reason, c->cap, "postback without payload");
        return CG_E_BAD_REQUEST;
    }
    if (strcmp(payload, MS_GET_STARTED) == 0) {
        m->kind = CG_MSG_START;
        const char *ref = cg_meta_str(cg_meta_obj(pb, "referral"), "ref");
        return ref && ref[0] ? ms_dup(c, &m->text, ref, 256, "postback.referral.ref") : CG_OK;
    }
    m->kind = CG_MSG_BUTTON;
    return ms_payload(c, m, payload, "postback.payload");
}

static cg_err ms_event(cg_meta_batch *c, const cJSON *ev, const void *arg)
{
    (void)arg;
    const char *psid = cg_meta_str(cg_meta_obj(ev, "sender"), "id");
    int64_t ts_ms = 0;
    const cJSON *o;
    int known = cg_meta_obj(ev, "message") || cg_meta_obj(ev, "postback") || cg_meta_obj(ev, "referral") ||
                cg_meta_obj(ev, "delivery") || cg_meta_obj(ev, "read");
    if (!known) return CG_OK;   /* reactions, optins, handover, ...: acknowledged */
    const cJSON *msg = cg_meta_obj(ev, "message");
    if (msg && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "is_echo"))) return CG_OK;
    if (!cg_meta_digits(psid, CG_USER_MAX)) {
        cg_meta_reason(c->reason, c->cap, "sender.id missing, not a PSID or too long");
        return CG_E_BAD_REQUEST;
    }
    if (ms_int(ev, "timestamp", &ts_ms) != 0) ts_ms = 0;
    cg_msg *m = ms_new(c, psid, ts_ms);
    if (!m) return CG_E_BAD_REQUEST;
    cg_err e = CG_OK;
    int emit = 1;
    if (msg) {
        e = ms_message(c, m, msg, &emit);
    } else if ((o = cg_meta_obj(ev, "postback"))) {
        e = ms_postback(c, m, o, psid, ts_ms);
    } else if ((o = cg_meta_obj(ev, "referral"))) {
        const char *ref = cg_meta_str(o, "ref");
        m->kind = CG_MSG_START;
        snprintf(m->msg_id, sizeof m->msg_id, "rf:%s:%" PRId64, psid, ts_ms);
        if (ref && ref[0]) e = ms_dup(c, &m->text, ref, 256, "referral.ref");
    } else {
        int read = cg_meta_obj(ev, "delivery") == NULL;
        o = cg_meta_obj(ev, read ? "read" : "delivery");
        int64_t wm;
        if (ms_int(o, "watermark", &wm) != 0) {
            cg_meta_reason(c->reason, c->cap, "%s.watermark missing", read ? "read" : "delivery");
            e = CG_E_BAD_REQUEST;
        } else {
            m->kind = CG_MSG_STATUS;
            m->ts = wm / 1000;
            snprintf(m->msg_id, sizeof m->msg_id, "%c:%s:%" PRId64, read ? 'r' : 'd', psid, wm);
            m->text = strdup(read ? "read" : "delivered");
            if (!m->text) e = CG_E_NOMEM;
            const cJSON *mids = read ? NULL : cg_meta_arr(o, "mids");
            const char *first = mids ? cJSON_IsString(cJSON_GetArrayItem(mids, 0)) ?
                                       cJSON_GetArrayItem(mids, 0)->valuestring : NULL : NULL;
            if (e == CG_OK && first) {
                if (!cg_meta_id_ok(first)) {
                    cg_meta_reason(c->reason, c->cap, "delivery.mids[0] over %d bytes", CG_MSGID_MAX - 1);
                    e = CG_E_BAD_REQUEST;
                } else if (!(m->payload = strdup(first))) {
                    e = CG_E_NOMEM;
                }
            }
        }
    }
    return cg_meta_keep(c, m, e, emit);
}

static cg_err ms_entry(cg_meta_batch *c, const cJSON *entry)
{
    /* entry[].standby[]: another app has the thread; not ours to answer */
    return cg_meta_each(c, entry, "messaging", ms_event, NULL);
}

static const cg_meta_webhook ms_webhook = {
    .channel = "messenger",
    .object = "page",
    .not_ours = "not a page webhook (object \"page\", entry[])",
    .unit = "events",
    .entry = ms_entry,
};

static cg_err ms_parse(const cg_channel_cfg *cfg, const cg_http_in *req, cg_msg *out, size_t max,
                       size_t *n, char *reason, size_t cap)
{
    return cg_meta_parse(&ms_webhook, cfg, req, out, max, n, reason, cap);
}

/* ---- render ------------------------------------------------------------- */

static int ms_buttons_valid(const cg_reply *r, size_t *npay, size_t *nurl)
{
    return cg_reply_buttons_valid(r, MS_PAYLOAD_MAX, npay, nurl) && *npay <= MS_MAX_QUICK_REPLIES;
}

static cJSON *ms_base(const cg_reply *r, cJSON **message)
{
    cJSON *b = cJSON_CreateObject();
    cJSON *rc = b ? cJSON_AddObjectToObject(b, "recipient") : NULL;
    int ok = rc && cJSON_AddStringToObject(rc, "id", r->user);
    if (ok && r->window_closed)
        ok = cJSON_AddStringToObject(b, "messaging_type", "MESSAGE_TAG") &&
             cJSON_AddStringToObject(b, "tag", "HUMAN_AGENT");
    else if (ok)
        ok = cJSON_AddStringToObject(b, "messaging_type", "RESPONSE") != NULL;
    *message = ok ? cJSON_AddObjectToObject(b, "message") : NULL;
    if (!*message) { cJSON_Delete(b); return NULL; }
    return b;
}

static int ms_add_quick_replies(const cg_reply *r, cJSON *message)
{
    cJSON *qrs = cJSON_AddArrayToObject(message, "quick_replies");
    if (!qrs) return 0;
    for (size_t i = 0; i < r->nbuttons; i++) {
        const cg_reply_btn *btn = &r->buttons[i];
        if (!btn->payload) continue;
        char *title = cg_meta_shorten(btn->title, MS_TITLE_MAX);
        cJSON *q = cJSON_CreateObject();
        int ok = title && q && cJSON_AddItemToArray(qrs, q);
        if (!ok) cJSON_Delete(q);
        ok = ok && cJSON_AddStringToObject(q, "content_type", "text") && cJSON_AddStringToObject(q, "title", title) &&
             cJSON_AddStringToObject(q, "payload", btn->payload);
        free(title);
        if (!ok) return 0;
    }
    return 1;
}

static int ms_add_template(const cg_reply *r, cJSON *message, const char *text)
{
    cJSON *att = cJSON_AddObjectToObject(message, "attachment");
    cJSON *pl = att && cJSON_AddStringToObject(att, "type", "template") ? cJSON_AddObjectToObject(att, "payload") : NULL;
    cJSON *btns = pl && cJSON_AddStringToObject(pl, "template_type", "button") && cJSON_AddStringToObject(pl, "text", text)
                      ? cJSON_AddArrayToObject(pl, "buttons") : NULL;
    if (!btns) return 0;
    for (size_t i = 0; i < r->nbuttons; i++) {
        const cg_reply_btn *btn = &r->buttons[i];
        char *title = cg_meta_shorten(btn->title, MS_TITLE_MAX);
        cJSON *b = cJSON_CreateObject();
        int ok = title && b && cJSON_AddItemToArray(btns, b);
        if (!ok) cJSON_Delete(b);
        if (ok && btn->payload)
            ok = cJSON_AddStringToObject(b, "type", "postback") && cJSON_AddStringToObject(b, "title", title) &&
                 cJSON_AddStringToObject(b, "payload", btn->payload);
        else if (ok)
            ok = cJSON_AddStringToObject(b, "type", "web_url") && cJSON_AddStringToObject(b, "url", btn->url) &&
                 cJSON_AddStringToObject(b, "title", title);
        free(title);
        if (!ok) return 0;
    }
    return 1;
}

/* What the last request carries besides text (ms_body's arg). */
typedef struct {
    int use_template;   /* the button template (URL buttons, few enough) */
    size_t npay;        /* payload buttons: quick replies unless templated */
} ms_plan;

static cJSON *ms_body(const cg_reply *r, const char *piece, int last, const void *arg)
{
    const ms_plan *p = arg;
    cJSON *message;
    cJSON *b = ms_base(r, &message);
    int ok = b != NULL;
    if (ok && last && p->use_template) ok = ms_add_template(r, message, piece);
    else if (ok) {
        ok = cJSON_AddStringToObject(message, "text", piece) != NULL;
        if (ok && last && p->npay) ok = ms_add_quick_replies(r, message);
    }
    if (!ok) { cJSON_Delete(b); return NULL; }
    return b;
}

static cg_err ms_render(const cg_channel_cfg *cfg, const cg_reply *r, cg_http_out *out, size_t max,
                        size_t *n)
{
    if (n) *n = 0;
    if (!r || !out || !n || !cg_meta_cfg_ok(cfg)) return CG_E_INTERNAL;
    size_t npay, nurl;
    if (!cg_meta_digits(r->user, CG_USER_MAX) || !ms_buttons_valid(r, &npay, &nurl)) return CG_E_INTERNAL;
    if (r->text && !cg_text_valid_utf8(r->text, strlen(r->text))) return CG_E_INTERNAL;
    ms_plan p = { nurl > 0 && r->nbuttons <= MS_MAX_TEMPLATE_BTNS, npay };
    cg_meta_text_plan plan = {
        .links_in_text = nurl > 0 && !p.use_template,
        .need_text = r->nbuttons > 0,
        .max_chars = MS_MAX_TEXT_CHARS,
        .last_max = p.use_template ? MS_TEMPLATE_TEXT_MAX : MS_MAX_TEXT_CHARS,
        .body = ms_body,
        .arg = &p,
    };
    return cg_meta_send_text(cfg, "me/messages", r, &plan, out, max, n);
}

/* ---- classify ----------------------------------------------------------- */

static const cg_meta_policy ms_policies[] = {
    { 1, 0, CG_SEND_RETRY, NULL },
    { 2, 0, CG_SEND_RETRY, NULL },
    { 4, 0, CG_SEND_THROTTLED, NULL },
    { 17, 0, CG_SEND_THROTTLED, NULL },
    { 32, 0, CG_SEND_THROTTLED, NULL },
    { 613, 0, CG_SEND_THROTTLED, NULL },
    { 551, 0, CG_SEND_CONTACT_GONE, NULL },
    { 10, 2018278, CG_SEND_FAILED, "reengagement: " },
    { 2018278, 0, CG_SEND_FAILED, "reengagement: " },
    { 190, 0, CG_SEND_BAD_CONFIG, NULL },
    { -1, 0, CG_SEND_OK, NULL }
};

static void ms_classify(long status, const char *body, size_t len, cg_send_result *out)
{
    cg_meta_classify("messenger", ms_policies, NULL, "message_id", status, body, len, out);
}

const cg_connector cg_messenger = {
    .name = "messenger",
    .flags = CG_CONN_RAW_BODY | CG_CONN_HANDSHAKE,
    .max_body = CG_META_MAX_BODY,
    .max_text = MS_MAX_TEXT_CHARS,
    .verify = cg_meta_verify,
    .handshake = cg_meta_handshake,
    .parse = ms_parse,
    .render = ms_render,
    .classify = ms_classify,
    .render_read = NULL,
};

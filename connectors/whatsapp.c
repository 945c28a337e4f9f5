/*
 * whatsapp.c: the WhatsApp Cloud API connector, a pure translator.
 *
 * What it does, in the order the gateway calls it:
 *
 *   handshake GET hub.mode=subscribe&hub.verify_token=..&hub.challenge=..
 *             → 200 text/plain challenge when the token is cfg->verify_token,
 *             else 403 (cg_meta_handshake).
 *   verify    X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body
 *             with cfg->secret (app_secret)>, constant time; missing, wrong
 *             or an empty app_secret → CG_E_AUTH (cg_meta_verify).
 *   parse     {"object":"whatsapp_business_account","entry":[{"changes":[
 *             {"field":"messages","value":{...}}]}]} → up to max cg_msg, in
 *             the order of entries, changes, then messages before statuses.
 *             A change is skipped when its field is not "messages", its
 *             value.messaging_product is not "whatsapp", or its
 *             value.metadata.phone_number_id is not cfg->phone_number_id (one
 *             Meta app may serve several numbers through the same URL).
 *               value.messages[] (user = from, the sender's wa_id; msg_id =
 *               id, the wamid; ts = timestamp; name = the profile.name of
 *               the value.contacts[] entry with that wa_id; a `context`
 *               (reply to a message) changes nothing):
 *                 text                      → TEXT, text = text.body
 *                 interactive button_reply,
 *                 interactive list_reply    → BUTTON, payload = reply id
 *                 button (template quick reply) → BUTTON, payload = button.payload
 *                 location                  → LOCATION lat/lon
 *                 image, video, document, sticker, audio → MEDIA, media =
 *                   the type ("voice" for audio with voice:true), text =
 *                   caption when there is one
 *                 contacts, order, other interactive types, unsupported,
 *                   unknown types            → UNSUPPORTED, media = the type
 *                   (cut to fit)
 *                 reaction, system          → nothing
 *               value.statuses[] → STATUS, one per status object:
 *                 user = recipient_id, msg_id = "s:<wamid>:<status>" (the
 *                 dedupe key: each status of a message is a separate event),
 *                 payload = the wamid of our message, text = the status
 *                 ("sent", "delivered", "read", "failed", ...), media = the
 *                 first errors[].code in decimal ("" without errors), ts =
 *                 timestamp.
 *               value.errors[] (errors not tied to a message) → nothing
 *               (acknowledged: Meta must not re-send them).
 *             More messages than max, a missing or over-long id or wa_id, a
 *             non-numeric wa_id, invalid UTF-8 in text, malformed JSON →
 *             CG_E_BAD_REQUEST with a reason. Text is cut at a character
 *             boundary to CG_MSG_TEXT_MAX bytes; names to 256 bytes.
 *   render    a cg_reply → POST {api_base}/{api_version}/{phone_number_id}/
 *             messages, "Authorization: Bearer <access_token>" (never in
 *             the URL), {"messaging_product":"whatsapp","recipient_type":
 *             "individual","to":user,...}:
 *               URL buttons become lines "<title>: <url>" after the text
 *               (preview_url on); payload buttons:
 *                 1-3   interactive "button": reply buttons, id = payload,
 *                       title ≤ 20 characters
 *                 4-10  interactive "list": one section, action.button
 *                       "Menu", rows id = payload, title ≤ 24 characters
 *               titles longer than that are shortened at a word end with "…"
 *               (cg_meta_shorten). Text over 4,096 characters is split at a
 *               line / sentence / word boundary into several "text"
 *               requests; an interactive message's body is at most 1,024
 *               characters, so the text before it is split to leave a last
 *               piece that fits. CG_REPLY_MAX_BUTTONS (10) is within the
 *               list's 10 rows, so a numbered text menu is never needed
 *               (add one here if that limit grows). callback_id is ignored
 *               (WhatsApp has nothing to acknowledge).
 *             window_closed (the outbox found the 24-hour customer-service
 *             window closed, gateway/window.c): the reply itself is not
 *             rendered but the approved re-engagement template of the
 *             configuration, one request {"type":"template","template":
 *             {"name":cfg->template_name,"language":{"code":
 *             cfg->template_language}}} (no template configured →
 *             CG_E_INTERNAL; the outbox holds the reply instead).
 *             Missing token / api_base / api_version / phone_number_id, a
 *             user that is not a wa_id, buttons with text empty, a payload
 *             over 64 bytes or more requests than max → CG_E_INTERNAL.
 *   render_read  the read receipt of an inbound message: POST .../messages
 *             {"messaging_product":"whatsapp","status":"read","message_id":
 *             wamid} (Meta answers {"success":true}); a wamid that is empty,
 *             too long or not printable ASCII → CG_E_INTERNAL.
 *   classify  the Graph API answer → cg_send_result:
 *               2xx → OK, platform_id = messages[0].id
 *               status 0, 5xx, error.is_transient, codes 1, 2, 131000,
 *               131016 → RETRY
 *               HTTP 429, codes 4, 80007, 130429, 131048, 131056 → THROTTLED
 *               (Meta gives no retry-after: retry_after_ms 0)
 *               HTTP 401, codes 0 (AuthException), 3, 10, 190, 200-299
 *               (permissions) → BAD_CONFIG
 *               131047 (more than 24 hours since the citizen wrote) →
 *               WINDOW_CLOSED, reason "reengagement: ..." (the outbox sends
 *               the re-engagement template and holds the reply)
 *               100 → FAILED, reason "invalid parameter: <message>"
 *               131026 → FAILED, reason "undeliverable: ..." (not a
 *               WhatsApp user, old app version, ...); 131051 → FAILED,
 *               reason "unsupported message type: ..."; any other 4xx →
 *               FAILED with the message
 *               132001 (template name or language unknown) → BAD_CONFIG,
 *               reason "template missing: ..." (reengagement_template)
 *               every non-2xx: code = the Graph error code
 *
 * Extending: a new inbound type is a row in wa_media_kinds[] or a branch in
 * wa_message(); a Graph error that carries policy is a row in
 * wa_policies[]. Keep tests/connectors/whatsapp/ in step.
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
#include "whatsapp.h"

#define WA_MAX_TEXT_CHARS   4096
#define WA_BODY_MAX_CHARS   1024    /* interactive body.text */
#define WA_BUTTON_TITLE_MAX 20
#define WA_ROW_TITLE_MAX    24
#define WA_PAYLOAD_MAX      64      /* cg_reply_btn contract */
#define WA_MAX_REPLY_BUTTONS 3
#define WA_MAX_LIST_ROWS    10
#define WA_LIST_BUTTON      "Menu"

static const char *const wa_media_kinds[] = { "image", "video", "document", "sticker", "audio", NULL };

/* Timestamp given as a decimal string (Meta's format) or a number. */
static int64_t wa_ts(const cJSON *o)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "timestamp");
    if (cJSON_IsString(v) && cg_meta_digits(v->valuestring, 16)) return (int64_t)strtoll(v->valuestring, NULL, 10);
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e15) return (int64_t)v->valuedouble;
    return 0;
}

static cg_err wa_set_text(cg_meta_batch *c, cg_msg *m, const char *s, const char *what)
{
    return s ? cg_meta_take_text(&m->text, s, CG_MSG_TEXT_MAX, what, c->reason, c->cap) : CG_OK;
}

static cg_err wa_set_payload(cg_meta_batch *c, cg_msg *m, const char *p, const char *what)
{
    return cg_meta_take_payload(&m->payload, p, 256, what, c->reason, c->cap);
}

/* The profile name of wa_id in value.contacts[], or NULL. */
static const char *wa_contact_name(const cJSON *value, const char *wa_id)
{
    const cJSON *ct;
    cJSON_ArrayForEach(ct, cg_meta_arr(value, "contacts")) {
        const char *id = cg_meta_str(ct, "wa_id");
        if (id && strcmp(id, wa_id) == 0) return cg_meta_str(cg_meta_obj(ct, "profile"), "name");
    }
    return NULL;
}

/* Fills kind and content of m from message o; *emit 0 for ignored types. */
static cg_err wa_content(cg_meta_batch *c, cg_msg *m, const cJSON *o, const char *type, int *emit)
{
    *emit = 1;
    if (strcmp(type, "text") == 0) {
        const char *body = cg_meta_str(cg_meta_obj(o, "text"), "body");
        if (!body) {
            cg_meta_reason(c->reason, c->cap, "text message without text.body");
            return CG_E_BAD_REQUEST;
        }
        m->kind = CG_MSG_TEXT;
        return wa_set_text(c, m, body, "text.body");
    }
    if (strcmp(type, "interactive") == 0) {
        const cJSON *in = cg_meta_obj(o, "interactive");
        const char *itype = cg_meta_str(in, "type");
        const cJSON *rep = NULL;
        if (itype && strcmp(itype, "button_reply") == 0) rep = cg_meta_obj(in, "button_reply");
        else if (itype && strcmp(itype, "list_reply") == 0) rep = cg_meta_obj(in, "list_reply");
        if (!rep) {   /* nfm_reply (flows) and future types */
            m->kind = CG_MSG_UNSUPPORTED;
            snprintf(m->media, sizeof m->media, "interactive");
            return CG_OK;
        }
        const char *id = cg_meta_str(rep, "id");
        if (!id) {
            cg_meta_reason(c->reason, c->cap, "interactive %s without id", itype);
            return CG_E_BAD_REQUEST;
        }
        m->kind = CG_MSG_BUTTON;
        return wa_set_payload(c, m, id, "interactive reply id");
    }
    if (strcmp(type, "button") == 0) {
        const char *p = cg_meta_str(cg_meta_obj(o, "button"), "payload");
        if (!p) p = cg_meta_str(cg_meta_obj(o, "button"), "text");
        if (!p) {
            cg_meta_reason(c->reason, c->cap, "button message without payload");
            return CG_E_BAD_REQUEST;
        }
        m->kind = CG_MSG_BUTTON;
        return wa_set_payload(c, m, p, "button.payload");
    }
    if (strcmp(type, "location") == 0)
        return cg_meta_location(m, cg_meta_obj(o, "location"), "latitude", "longitude",
                                "location needs latitude and longitude in range", c->reason, c->cap);
    for (size_t i = 0; wa_media_kinds[i]; i++) {
        if (strcmp(type, wa_media_kinds[i]) != 0) continue;
        const cJSON *media = cg_meta_obj(o, type);
        m->kind = CG_MSG_MEDIA;
        int voice = strcmp(type, "audio") == 0 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(media, "voice"));
        snprintf(m->media, sizeof m->media, "%s", voice ? "voice" : type);
        return wa_set_text(c, m, cg_meta_str(media, "caption"), "caption");
    }
    if (strcmp(type, "reaction") == 0 || strcmp(type, "system") == 0) {
        *emit = 0;
        return CG_OK;
    }
    /* contacts, order, unsupported, request_welcome, anything new */
    cg_meta_unsupported(m, type);
    return CG_OK;
}

/* Message o of value.messages[] (arg: value). */
static cg_err wa_message(cg_meta_batch *c, const cJSON *o, const void *arg)
{
    const cJSON *value = arg;
    const char *from = cg_meta_str(o, "from"), *id = cg_meta_str(o, "id"), *type = cg_meta_str(o, "type");
    if (!cg_meta_digits(from, CG_USER_MAX)) {
        cg_meta_reason(c->reason, c->cap, "message.from missing, not a wa_id or too long");
        return CG_E_BAD_REQUEST;
    }
    if (!cg_meta_id_ok(id)) {
        cg_meta_reason(c->reason, c->cap, "message.id missing or over %d bytes", CG_MSGID_MAX - 1);
        return CG_E_BAD_REQUEST;
    }
    if (!type) {
        cg_meta_reason(c->reason, c->cap, "message.type missing");
        return CG_E_BAD_REQUEST;
    }
    if (strcmp(type, "reaction") == 0 || strcmp(type, "system") == 0) return CG_OK;
    cg_msg *m = cg_meta_new(c);
    if (!m) return CG_E_BAD_REQUEST;
    snprintf(m->user, sizeof m->user, "%s", from);
    snprintf(m->msg_id, sizeof m->msg_id, "%s", id);
    m->ts = wa_ts(o);
    int emit = 1;
    cg_err e = wa_content(c, m, o, type, &emit);
    if (e == CG_OK && emit) {
        const char *name = wa_contact_name(value, from);
        int bad;
        if (name && name[0] && !(m->name = cg_meta_dup_utf8(name, CG_META_NAME_MAX, &bad)) && !bad)
            e = CG_E_NOMEM;
    }
    return cg_meta_keep(c, m, e, emit);
}

static cg_err wa_status(cg_meta_batch *c, const cJSON *o, const void *arg)
{
    (void)arg;
    const char *id = cg_meta_str(o, "id"), *status = cg_meta_str(o, "status");
    const char *rcpt = cg_meta_str(o, "recipient_id");
    if (!id || !id[0] || !status || !status[0] || !cg_text_valid_utf8(id, strlen(id)) ||
        !cg_text_valid_utf8(status, strlen(status)) || strlen(status) > 32) {
        cg_meta_reason(c->reason, c->cap, "status without id or status");
        return CG_E_BAD_REQUEST;
    }
    if (!cg_meta_digits(rcpt, CG_USER_MAX)) {
        cg_meta_reason(c->reason, c->cap, "status.recipient_id missing, not a wa_id or too long");
        return CG_E_BAD_REQUEST;
    }
    if (strlen(id) + strlen(status) + 3 >= CG_MSGID_MAX) {
        cg_meta_reason(c->reason, c->cap, "status id too long for a message id");
        return CG_E_BAD_REQUEST;
    }
    cg_msg *m = cg_meta_new(c);
    if (!m) return CG_E_BAD_REQUEST;
    m->kind = CG_MSG_STATUS;
    snprintf(m->user, sizeof m->user, "%s", rcpt);
    snprintf(m->msg_id, sizeof m->msg_id, "s:%s:%s", id, status);
    m->ts = wa_ts(o);
    const cJSON *errs = cg_meta_arr(o, "errors");
    const cJSON *code = errs ? cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(errs, 0), "code") : NULL;
    if (cJSON_IsNumber(code) && code->valuedouble >= 0 && code->valuedouble < 1e12)
        snprintf(m->media, sizeof m->media, "%.0f", code->valuedouble);
    m->payload = strdup(id);
    m->text = strdup(status);
    return cg_meta_keep(c, m, m->payload && m->text ? CG_OK : CG_E_NOMEM, 1);
}

static cg_err wa_value(cg_meta_batch *c, const cJSON *value)
{
    const char *product = cg_meta_str(value, "messaging_product");
    if (!product || strcmp(product, "whatsapp") != 0) return CG_OK;
    const char *pnid = cg_meta_str(cg_meta_obj(value, "metadata"), "phone_number_id");
    if (c->cfg && c->cfg->phone_number_id && c->cfg->phone_number_id[0] && pnid &&
        strcmp(pnid, c->cfg->phone_number_id) != 0)
        return CG_OK;   /* another number of the same Meta app */
    cg_err e = cg_meta_each(c, value, "messages", wa_message, value);
    if (e != CG_OK) return e;
    /* value.errors[]: acknowledged, nothing to answer */
    return cg_meta_each(c, value, "statuses", wa_status, NULL);
}

static cg_err wa_entry(cg_meta_batch *c, const cJSON *entry)
{
    const cJSON *ch;
    cg_err e;
    cJSON_ArrayForEach(ch, cg_meta_arr(entry, "changes")) {
        const char *field = cg_meta_str(ch, "field");
        const cJSON *value = cg_meta_obj(ch, "value");
        if (!field || strcmp(field, "messages") != 0 || !value) continue;
        if ((e = wa_value(c, value)) != CG_OK) return e;
    }
    return CG_OK;
}

static const cg_meta_webhook wa_webhook = {
    .channel = "whatsapp",
    .object = "whatsapp_business_account",
    .not_ours = "not a whatsapp_business_account webhook (object, entry[])",
    .unit = "messages",
    .entry = wa_entry,
};

static cg_err wa_parse(const cg_channel_cfg *cfg, const cg_http_in *req, cg_msg *out, size_t max,
                       size_t *n, char *reason, size_t cap)
{
    return cg_meta_parse(&wa_webhook, cfg, req, out, max, n, reason, cap);
}

/* ---- render ------------------------------------------------------------- */

static cJSON *wa_base(const cg_reply *r, const char *type)
{
    cJSON *b = cJSON_CreateObject();
    if (!b || !cJSON_AddStringToObject(b, "messaging_product", "whatsapp") ||
        !cJSON_AddStringToObject(b, "recipient_type", "individual") || !cJSON_AddStringToObject(b, "to", r->user) ||
        !cJSON_AddStringToObject(b, "type", type)) {
        cJSON_Delete(b);
        return NULL;
    }
    return b;
}

static cJSON *wa_text_body(const cg_reply *r, const char *piece, int preview)
{
    cJSON *b = wa_base(r, "text");
    cJSON *text = b ? cJSON_AddObjectToObject(b, "text") : NULL;
    if (!text || !cJSON_AddBoolToObject(text, "preview_url", preview) ||
        !cJSON_AddStringToObject(text, "body", piece)) {
        cJSON_Delete(b);
        b = NULL;
    }
    return b;
}

/* The interactive message carrying the payload buttons, body = piece. */
static cJSON *wa_interactive(const cg_reply *r, const char *piece, size_t npay)
{
    int list = npay > WA_MAX_REPLY_BUTTONS;
    cJSON *b = wa_base(r, "interactive");
    cJSON *in = b ? cJSON_AddObjectToObject(b, "interactive") : NULL;
    int ok = in && cJSON_AddStringToObject(in, "type", list ? "list" : "button");
    cJSON *body = ok ? cJSON_AddObjectToObject(in, "body") : NULL;
    ok = body && cJSON_AddStringToObject(body, "text", piece);
    cJSON *action = ok ? cJSON_AddObjectToObject(in, "action") : NULL;
    cJSON *items = NULL;
    if (action && list) {
        cJSON *sections = cJSON_AddArrayToObject(action, "sections");
        cJSON *sec = cJSON_CreateObject();
        ok = cJSON_AddStringToObject(action, "button", WA_LIST_BUTTON) && sections && sec &&
             cJSON_AddItemToArray(sections, sec);
        if (!ok) cJSON_Delete(sec);
        items = ok ? cJSON_AddArrayToObject(sec, "rows") : NULL;
    } else if (action) {
        items = cJSON_AddArrayToObject(action, "buttons");
    }
    ok = items != NULL;
    for (size_t i = 0; ok && i < r->nbuttons; i++) {
        const cg_reply_btn *btn = &r->buttons[i];
        if (!btn->payload) continue;
        char *title = cg_meta_shorten(btn->title, list ? WA_ROW_TITLE_MAX : WA_BUTTON_TITLE_MAX);
        cJSON *it = cJSON_CreateObject();
        if (!title || !it || !cJSON_AddItemToArray(items, it)) {
            cJSON_Delete(it);
            ok = 0;
        } else if (list) {
            ok = cJSON_AddStringToObject(it, "id", btn->payload) && cJSON_AddStringToObject(it, "title", title);
        } else {
            cJSON *rep = cJSON_AddObjectToObject(it, "reply");
            ok = cJSON_AddStringToObject(it, "type", "reply") && rep &&
                 cJSON_AddStringToObject(rep, "id", btn->payload) && cJSON_AddStringToObject(rep, "title", title);
        }
        free(title);
    }
    if (!ok) { cJSON_Delete(b); return NULL; }
    return b;
}

/* Outside the 24-hour window: the configured approved template, alone. */
static cg_err wa_render_template(const cg_channel_cfg *cfg, const cg_reply *r, cg_http_out *out, size_t max,
                                 size_t *n)
{
    if (max < 1 || !cg_meta_digits(r->user, CG_USER_MAX) || !cfg->template_name || !cfg->template_name[0] ||
        !cfg->template_language || !cfg->template_language[0])
        return CG_E_INTERNAL;
    cJSON *b = wa_base(r, "template");
    cJSON *t = b ? cJSON_AddObjectToObject(b, "template") : NULL;
    cJSON *lang = t && cJSON_AddStringToObject(t, "name", cfg->template_name) ? cJSON_AddObjectToObject(t, "language")
                                                                             : NULL;
    if (!lang || !cJSON_AddStringToObject(lang, "code", cfg->template_language)) {
        cJSON_Delete(b);
        return CG_E_NOMEM;
    }
    char path[64];
    snprintf(path, sizeof path, "%s/messages", cfg->phone_number_id);
    cg_err e = cg_meta_request(cfg, path, b, &out[0]);
    if (e == CG_OK) *n = 1;
    return e;
}

static cg_err wa_render_read(const cg_channel_cfg *cfg, const char *user, const char *msg_id, cg_http_out *out)
{
    if (!out || !msg_id || !cg_meta_cfg_ok(cfg) || !cg_meta_digits(cfg->phone_number_id, 33) ||
        !cg_meta_digits(user, CG_USER_MAX))
        return CG_E_INTERNAL;
    size_t len = strlen(msg_id);
    if (len == 0 || len >= CG_MSGID_MAX) return CG_E_INTERNAL;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)msg_id[i] <= 0x20 || (unsigned char)msg_id[i] >= 0x7F) return CG_E_INTERNAL;
    cJSON *b = cJSON_CreateObject();
    if (!b || !cJSON_AddStringToObject(b, "messaging_product", "whatsapp") ||
        !cJSON_AddStringToObject(b, "status", "read") || !cJSON_AddStringToObject(b, "message_id", msg_id)) {
        cJSON_Delete(b);
        return CG_E_NOMEM;
    }
    char path[64];
    snprintf(path, sizeof path, "%s/messages", cfg->phone_number_id);
    return cg_meta_request(cfg, path, b, out);
}

static int wa_buttons_valid(const cg_reply *r, size_t *npay, size_t *nurl)
{
    return cg_reply_buttons_valid(r, WA_PAYLOAD_MAX, npay, nurl) && *npay <= WA_MAX_LIST_ROWS;
}

/* The buttons of a reply (wa_body's arg). */
typedef struct {
    size_t npay;   /* payload buttons: the last request is interactive */
    size_t nurl;   /* URL buttons: lines of the text, with a preview */
} wa_plan;

static cJSON *wa_body(const cg_reply *r, const char *piece, int last, const void *arg)
{
    const wa_plan *p = arg;
    return last && p->npay ? wa_interactive(r, piece, p->npay) : wa_text_body(r, piece, p->nurl > 0);
}

static cg_err wa_render(const cg_channel_cfg *cfg, const cg_reply *r, cg_http_out *out, size_t max,
                        size_t *n)
{
    if (n) *n = 0;
    if (!r || !out || !n || !cg_meta_cfg_ok(cfg) || !cg_meta_digits(cfg->phone_number_id, 33))
        return CG_E_INTERNAL;
    wa_plan p;
    if (r->window_closed) return wa_render_template(cfg, r, out, max, n);
    if (!cg_meta_digits(r->user, CG_USER_MAX) || !wa_buttons_valid(r, &p.npay, &p.nurl)) return CG_E_INTERNAL;
    if (r->text && !cg_text_valid_utf8(r->text, strlen(r->text))) return CG_E_INTERNAL;
    cg_meta_text_plan plan = {
        .links_in_text = 1,
        .need_text = p.npay > 0,
        .max_chars = WA_MAX_TEXT_CHARS,
        .last_max = p.npay ? WA_BODY_MAX_CHARS : WA_MAX_TEXT_CHARS,
        .body = wa_body,
        .arg = &p,
    };
    char path[64];
    snprintf(path, sizeof path, "%s/messages", cfg->phone_number_id);
    return cg_meta_send_text(cfg, path, r, &plan, out, max, n);
}

/* ---- classify ----------------------------------------------------------- */

static const cg_meta_policy wa_policies[] = {
    { 1, 0, CG_SEND_RETRY, NULL },             /* API unknown */
    { 2, 0, CG_SEND_RETRY, NULL },             /* API service */
    { 131000, 0, CG_SEND_RETRY, NULL },        /* something went wrong */
    { 131016, 0, CG_SEND_RETRY, NULL },        /* service unavailable */
    { 4, 0, CG_SEND_THROTTLED, NULL },         /* API too many calls */
    { 80007, 0, CG_SEND_THROTTLED, NULL },     /* WABA rate limit */
    { 130429, 0, CG_SEND_THROTTLED, NULL },    /* cloud API throughput */
    { 131048, 0, CG_SEND_THROTTLED, NULL },    /* spam rate limit */
    { 131056, 0, CG_SEND_THROTTLED, NULL },    /* pair rate limit (same recipient) */
    { 0, 0, CG_SEND_BAD_CONFIG, NULL },        /* AuthException */
    { 3, 0, CG_SEND_BAD_CONFIG, NULL },        /* API method / capability */
    { 10, 0, CG_SEND_BAD_CONFIG, NULL },       /* permission denied */
    { 190, 0, CG_SEND_BAD_CONFIG, NULL },      /* access token expired / invalid */
    { 131047, 0, CG_SEND_WINDOW_CLOSED, "reengagement: " },
    { 131026, 0, CG_SEND_FAILED, "undeliverable: " },
    { 131051, 0, CG_SEND_FAILED, "unsupported message type: " },
    { 100, 0, CG_SEND_FAILED, "invalid parameter: " },
    { 132001, 0, CG_SEND_BAD_CONFIG, "template missing: " },   /* reengagement_template not approved */
    { -1, 0, CG_SEND_OK, NULL }
};

static void wa_classify(long status, const char *body, size_t len, cg_send_result *out)
{
    cg_meta_classify("whatsapp", wa_policies, "messages", NULL, status, body, len, out);
}

const cg_connector cg_whatsapp = {
    .name = "whatsapp",
    .flags = CG_CONN_RAW_BODY | CG_CONN_HANDSHAKE,
    .max_body = CG_META_MAX_BODY,
    .max_text = WA_MAX_TEXT_CHARS,
    .verify = cg_meta_verify,
    .handshake = cg_meta_handshake,
    .parse = wa_parse,
    .render = wa_render,
    .classify = wa_classify,
    .render_read = wa_render_read,
};

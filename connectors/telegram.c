/*
 * telegram.c: the Telegram Bot API connector, a pure translator.
 *
 * What it does, in the order the gateway calls it:
 *
 *   verify    the header X-Telegram-Bot-Api-Secret-Token (set with setWebhook
 *             secret_token) must equal cfg->secret, compared in constant
 *             time. An empty or missing cfg->secret fails closed (CG_E_AUTH).
 *   parse     one Update (https://core.telegram.org/bots/api#update) → 0 or
 *             1 cg_msg. Every message's msg_id is "u<update_id>" (the dedupe
 *             key: Telegram re-delivers the same update_id until it gets a
 *             200), user is the chat id in decimal.
 *               message, private chat:
 *                 text "/start [payload]"  → CG_MSG_START, text = payload or NULL
 *                 text "/help", "/menu"    → CG_MSG_TEXT "menu" (the menu request)
 *                 text "/language [code]"  → CG_MSG_LANGUAGE, text = code or NULL
 *                 other text (also other /commands, kept verbatim) → CG_MSG_TEXT
 *                 "/cmd@SomeBot args" is the same as "/cmd args"
 *                 animation, photo, video_note, video, voice, audio, sticker,
 *                 document → CG_MSG_MEDIA, media = that kind, text = caption
 *                 (kept: a citizen often types the question into the caption)
 *                 location, venue → CG_MSG_LOCATION (lat, lon)
 *                 contact, poll, dice, game, story, invoice → CG_MSG_UNSUPPORTED
 *                 (media names the kind, for the logs)
 *                 anything else (service messages: pinned, chat photo, ...) →
 *                 nothing
 *               message, group or supergroup: only when addressed to the bot,
 *                 i.e. its text or caption is a /command or it replies to a
 *                 message sent by a bot (the connector does not know the bot's
 *                 @username, so plain @mentions are not recognised); then as
 *                 above with user = the group's chat id.
 *               edited_message with text or caption, private chat →
 *                 CG_MSG_EDITED with the new text; without (live location
 *                 updates) or in a group → nothing.
 *               callback_query with data → CG_MSG_BUTTON, payload = data
 *                 (≤ 64 bytes), callback_id = query id, user = message.chat.id
 *                 (from.id when the message is absent); without data (games)
 *                 → nothing.
 *               my_chat_member in a private chat: new status "kicked" →
 *                 CG_MSG_BLOCKED, "member" → CG_MSG_UNBLOCKED.
 *               channel_post, edited_channel_post, and every other update
 *               type → nothing, CG_OK (acknowledged so that Telegram stops
 *               re-sending it).
 *             Text and captions must be valid UTF-8 (400 otherwise) and are
 *             cut at a character boundary to CG_MSG_TEXT_MAX bytes (Telegram
 *             allows 4,096 characters, up to 16 KiB). lang_hint is
 *             from.language_code when it fits, else "". name is
 *             from.first_name (dropped when not valid UTF-8), ts the date
 *             (edit_date for edits, 0 for button presses).
 *             Malformed JSON or missing ids → CG_E_BAD_REQUEST with a reason.
 *   render    a cg_reply → up to CG_MAX_OUT_REQUESTS POSTs to
 *             <api_base>/bot<token>/<method> (secret_in_url = 1):
 *               1. answerCallbackQuery {"callback_query_id":...} when the reply
 *                  answers a button press (stops the client's spinner);
 *               2. sendMessage {"chat_id":N,"text":...,"parse_mode":"HTML"},
 *                  text HTML-escaped (& < >). Text over 4,096 UTF-16 units is
 *                  split at a line end, else a sentence end, else a space, else
 *                  a character boundary, into several sendMessage requests;
 *                  the inline keyboard (one button per row, callback_data or
 *                  url) rides on the last one.
 *             Never truncates: a callback payload over 64 bytes, a button
 *             without a title or with neither payload nor an http(s) url,
 *             buttons without text, a user that is not a chat id, or text
 *             needing more requests than fit → CG_E_INTERNAL (the dialog
 *             layer guarantees all of these; the outbox dead-letters).
 *   classify  the Bot API answer → cg_send_result:
 *               2xx ("ok":true, or an unreadable body: Telegram took it, a
 *               retry could send twice) → OK, platform_id = result.message_id
 *               429 → THROTTLED, retry_after_ms = parameters.retry_after·1000
 *               401, 404 → BAD_CONFIG (wrong bot token)
 *               403 blocked / deactivated / can't initiate / kicked → CONTACT_GONE
 *               400 "chat not found" → CONTACT_GONE
 *               400 "query is too old" / "query ID is invalid" → OK: the
 *               button press can no longer be acknowledged and retrying
 *               cannot help, and it must not hold back the reply behind it
 *               other 4xx → FAILED with the description
 *               5xx, 408, status 0 (no answer) → RETRY
 *
 * Extending: a new update type is a branch in tg_parse_update(); a new
 * Bot API error that carries policy is a row in tg_policies[]; a new media
 * kind is a row in tg_media_kinds[]. Keep tests/connectors/telegram/ in step.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "civicgate/text.h"
#include "civicgate/connector.h"
#include "civicgate/message.h"
#include "telegram.h"

#define TG_MAX_BODY          (1024u * 1024u)
#define TG_MAX_TEXT_UNITS    4096     /* sendMessage limit, UTF-16 code units */
#define TG_CALLBACK_DATA_MAX 64       /* bytes, Bot API limit */
#define TG_CALLBACK_ID_MAX   128      /* query ids are ~19 digits; bound anything */
#define TG_NAME_MAX          256      /* bytes kept of first_name */
#define TG_MAX_SAFE_INT      9007199254740991.0   /* 2^53 - 1: ids are exact doubles */

/* ---- small helpers ------------------------------------------------------ */

static void set_reason(char *reason, size_t cap, const char *fmt, ...)
{
    if (!reason || cap == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, cap, fmt, ap);
    va_end(ap);
}


/* Largest length ≤ max that does not cut a UTF-8 sequence of s (valid). */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max) return len;
    size_t i = max;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    return i;
}

/* Heap copy of a valid UTF-8 string cut to max bytes; NULL on ENOMEM. */
static char *dup_cut(const char *s, size_t max)
{
    size_t len = utf8_cut(s, strlen(s), max);
    char *d = malloc(len + 1);
    if (!d) return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

/* Integral JSON number at o[key]: 0 and *out set; -1 absent; -2 not an
 * integer within ±2^53. */
static int json_int(const cJSON *o, const char *key, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return -1;
    if (!cJSON_IsNumber(v)) return -2;
    double d = v->valuedouble;
    if (!(d >= -TG_MAX_SAFE_INT && d <= TG_MAX_SAFE_INT)) return -2;
    int64_t i = (int64_t)d;
    if ((double)i != d) return -2;
    *out = i;
    return 0;
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const cJSON *json_obj(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsObject(v) ? v : NULL;
}

/* Case-insensitive ASCII substring test. */
static int contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t k = 0;
        while (k < n && hay[k]) {
            char a = hay[k], b = needle[k];
            if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
            if (b >= 'A' && b <= 'Z') b = (char)(b - 'A' + 'a');
            if (a != b) break;
            k++;
        }
        if (k == n) return 1;
    }
    return 0;
}

/* ---- verify ------------------------------------------------------------- */

static cg_err tg_verify(const cg_channel_cfg *cfg, const cg_http_in *req)
{
    if (!cfg || !cfg->secret || !cfg->secret[0] || !req) return CG_E_AUTH;
    const char *got = cg_http_in_header(req, "x-telegram-bot-api-secret-token");
    if (!got) return CG_E_AUTH;
    return cg_secure_equal(got, strlen(got), cfg->secret, strlen(cfg->secret)) ? CG_OK : CG_E_AUTH;
}

/* ---- parse -------------------------------------------------------------- */

typedef struct {
    cg_msg *m;
    char *reason;
    size_t cap;
} tg_ctx;

/* Fills the fields every message from a "from" user shares. */
static cg_err tg_from(tg_ctx *c, const cJSON *from)
{
    if (!from) return CG_OK;
    const char *lc = json_str(from, "language_code");
    if (lc && strlen(lc) < sizeof c->m->lang_hint) {
        int ok = lc[0] != '\0';
        for (const char *p = lc; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '-' || *p == '_')) ok = 0;
        if (ok) memcpy(c->m->lang_hint, lc, strlen(lc) + 1);
    }
    const char *fn = json_str(from, "first_name");
    if (fn && fn[0] && cg_text_valid_utf8(fn, strlen(fn))) {
        c->m->name = dup_cut(fn, TG_NAME_MAX);
        if (!c->m->name) return CG_E_NOMEM;
    }
    return CG_OK;
}

static cg_err tg_set_text(tg_ctx *c, const char *what, const char *s, size_t len)
{
    if (!cg_text_valid_utf8(s, len)) {
        set_reason(c->reason, c->cap, "%s is not valid UTF-8", what);
        return CG_E_BAD_REQUEST;
    }
    len = utf8_cut(s, len, CG_MSG_TEXT_MAX);
    c->m->text = malloc(len + 1);
    if (!c->m->text) return CG_E_NOMEM;
    memcpy(c->m->text, s, len);
    c->m->text[len] = '\0';
    return CG_OK;
}

static cg_err tg_chat_user(tg_ctx *c, const cJSON *chat, const char *where)
{
    int64_t id;
    int r = json_int(chat, "id", &id);
    if (r != 0) {
        set_reason(c->reason, c->cap, "%s.chat.id %s", where, r == -1 ? "missing" : "is not an integer");
        return CG_E_BAD_REQUEST;
    }
    snprintf(c->m->user, sizeof c->m->user, "%" PRId64, id);
    return CG_OK;
}

/* "/cmd@bot rest" → cmd into buf, *rest points past the blanks after it. */
static void tg_command(const char *text, char *buf, size_t cap, const char **rest)
{
    const char *p = text + 1;
    size_t n = 0;
    while (*p && *p != ' ' && *p != '\n' && *p != '\t' && *p != '@') {
        if (n + 1 < cap) {
            char ch = *p;
            if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
            buf[n++] = ch;
        }
        p++;
    }
    buf[n] = '\0';
    while (*p && *p != ' ' && *p != '\n' && *p != '\t') p++;   /* @botname */
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    *rest = p;
}

static const char *const tg_media_kinds[] = {
    /* animation first: an animation message carries a "document" too */
    "animation", "photo", "video_note", "video", "voice", "audio", "sticker", "document", NULL
};
static const char *const tg_unsupported_kinds[] = {
    "contact", "poll", "dice", "game", "story", "invoice", NULL
};

static cg_err tg_text_message(tg_ctx *c, const char *text)
{
    size_t len = strlen(text);
    if (!cg_text_valid_utf8(text, len)) {
        set_reason(c->reason, c->cap, "message.text is not valid UTF-8");
        return CG_E_BAD_REQUEST;
    }
    if (text[0] == '/') {
        char cmd[33];
        const char *rest;
        tg_command(text, cmd, sizeof cmd, &rest);
        /* trim trailing blanks of the argument */
        size_t rlen = strlen(rest);
        while (rlen && (rest[rlen - 1] == ' ' || rest[rlen - 1] == '\n' ||
                        rest[rlen - 1] == '\t' || rest[rlen - 1] == '\r')) rlen--;
        if (strcmp(cmd, "start") == 0 || strcmp(cmd, "language") == 0) {
            c->m->kind = cmd[0] == 's' ? CG_MSG_START : CG_MSG_LANGUAGE;
            return rlen ? tg_set_text(c, "command argument", rest, rlen) : CG_OK;
        }
        if (strcmp(cmd, "help") == 0 || strcmp(cmd, "menu") == 0) {
            c->m->kind = CG_MSG_TEXT;
            return tg_set_text(c, "text", "menu", 4);
        }
    }
    c->m->kind = CG_MSG_TEXT;
    return tg_set_text(c, "message.text", text, len);
}

/* One Message object (message or edited_message). Sets *emit. */
static cg_err tg_message(tg_ctx *c, const cJSON *msg, int edited, int *emit)
{
    const char *where = edited ? "edited_message" : "message";
    *emit = 0;
    const cJSON *chat = json_obj(msg, "chat");
    if (!chat) {
        set_reason(c->reason, c->cap, "%s.chat missing", where);
        return CG_E_BAD_REQUEST;
    }
    cg_err e = tg_chat_user(c, chat, where);
    if (e != CG_OK) return e;
    const char *type = json_str(chat, "type");
    const char *text = json_str(msg, "text");
    const char *caption = json_str(msg, "caption");
    if (!type || strcmp(type, "private") != 0) {
        if (!type || edited || (strcmp(type, "group") != 0 && strcmp(type, "supergroup") != 0))
            return CG_OK;
        int addressed = (text && text[0] == '/') || (caption && caption[0] == '/');
        const cJSON *rt = json_obj(msg, "reply_to_message");
        const cJSON *rtf = rt ? json_obj(rt, "from") : NULL;
        if (rtf && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rtf, "is_bot"))) addressed = 1;
        if (!addressed) return CG_OK;
    }
    int64_t date = 0;
    if (json_int(msg, edited ? "edit_date" : "date", &date) != 0) (void)json_int(msg, "date", &date);
    c->m->ts = date;
    if ((e = tg_from(c, json_obj(msg, "from"))) != CG_OK) return e;

    if (edited) {
        if (!text && !caption) return CG_OK;
        c->m->kind = CG_MSG_EDITED;
        *emit = 1;
        return tg_set_text(c, "edited_message.text", text ? text : caption,
                           strlen(text ? text : caption));
    }
    if (text) {
        *emit = 1;
        return tg_text_message(c, text);
    }
    for (size_t i = 0; tg_media_kinds[i]; i++) {
        if (cJSON_GetObjectItemCaseSensitive(msg, tg_media_kinds[i])) {
            c->m->kind = CG_MSG_MEDIA;
            snprintf(c->m->media, sizeof c->m->media, "%s", tg_media_kinds[i]);
            *emit = 1;
            return caption ? tg_set_text(c, "message.caption", caption, strlen(caption)) : CG_OK;
        }
    }
    const cJSON *loc = json_obj(msg, "location");
    if (!loc) {
        const cJSON *venue = json_obj(msg, "venue");
        if (venue) loc = json_obj(venue, "location");
    }
    if (loc) {
        const cJSON *la = cJSON_GetObjectItemCaseSensitive(loc, "latitude");
        const cJSON *lo = cJSON_GetObjectItemCaseSensitive(loc, "longitude");
        if (!cJSON_IsNumber(la) || !cJSON_IsNumber(lo) || !(la->valuedouble >= -90 && la->valuedouble <= 90) ||
            !(lo->valuedouble >= -180 && lo->valuedouble <= 180)) {
            set_reason(c->reason, c->cap, "message.location needs latitude and longitude in range");
            return CG_E_BAD_REQUEST;
        }
        c->m->kind = CG_MSG_LOCATION;
        c->m->lat = la->valuedouble;
        c->m->lon = lo->valuedouble;
        *emit = 1;
        return CG_OK;
    }
    for (size_t i = 0; tg_unsupported_kinds[i]; i++) {
        if (cJSON_GetObjectItemCaseSensitive(msg, tg_unsupported_kinds[i])) {
            c->m->kind = CG_MSG_UNSUPPORTED;
            snprintf(c->m->media, sizeof c->m->media, "%s", tg_unsupported_kinds[i]);
            *emit = 1;
            return CG_OK;
        }
    }
    return CG_OK;   /* service message: nothing to answer */
}

static cg_err tg_callback(tg_ctx *c, const cJSON *q, int *emit)
{
    *emit = 0;
    const char *id = json_str(q, "id");
    if (!id || !id[0]) {
        set_reason(c->reason, c->cap, "callback_query.id missing");
        return CG_E_BAD_REQUEST;
    }
    if (strlen(id) > TG_CALLBACK_ID_MAX || !cg_text_valid_utf8(id, strlen(id))) {
        set_reason(c->reason, c->cap, "callback_query.id is too long or not UTF-8");
        return CG_E_BAD_REQUEST;
    }
    const cJSON *from = json_obj(q, "from");
    const cJSON *msg = json_obj(q, "message");
    const cJSON *chat = msg ? json_obj(msg, "chat") : NULL;
    cg_err e;
    if (chat) {
        if ((e = tg_chat_user(c, chat, "callback_query.message")) != CG_OK) return e;
    } else if (from) {
        int64_t uid;
        if (json_int(from, "id", &uid) != 0) {
            set_reason(c->reason, c->cap, "callback_query.from.id missing or not an integer");
            return CG_E_BAD_REQUEST;
        }
        snprintf(c->m->user, sizeof c->m->user, "%" PRId64, uid);
    } else {
        set_reason(c->reason, c->cap, "callback_query has neither message.chat nor from");
        return CG_E_BAD_REQUEST;
    }
    const char *data = json_str(q, "data");
    if (!data) return CG_OK;   /* game callbacks: nothing to do */
    size_t dlen = strlen(data);
    if (dlen > TG_CALLBACK_DATA_MAX || !cg_text_valid_utf8(data, dlen)) {
        set_reason(c->reason, c->cap, "callback_query.data is over %d bytes or not UTF-8",
                   TG_CALLBACK_DATA_MAX);
        return CG_E_BAD_REQUEST;
    }
    if ((e = tg_from(c, from)) != CG_OK) return e;
    c->m->kind = CG_MSG_BUTTON;
    c->m->payload = strdup(data);
    c->m->callback_id = strdup(id);
    if (!c->m->payload || !c->m->callback_id) return CG_E_NOMEM;
    *emit = 1;
    return CG_OK;
}

static cg_err tg_member(tg_ctx *c, const cJSON *u, int *emit)
{
    *emit = 0;
    const cJSON *chat = json_obj(u, "chat");
    if (!chat) {
        set_reason(c->reason, c->cap, "my_chat_member.chat missing");
        return CG_E_BAD_REQUEST;
    }
    const char *type = json_str(chat, "type");
    if (!type || strcmp(type, "private") != 0) return CG_OK;   /* added to / removed from a group */
    const cJSON *ncm = json_obj(u, "new_chat_member");
    const char *status = ncm ? json_str(ncm, "status") : NULL;
    if (!status) {
        set_reason(c->reason, c->cap, "my_chat_member.new_chat_member.status missing");
        return CG_E_BAD_REQUEST;
    }
    if (strcmp(status, "kicked") == 0) c->m->kind = CG_MSG_BLOCKED;
    else if (strcmp(status, "member") == 0) c->m->kind = CG_MSG_UNBLOCKED;
    else return CG_OK;
    cg_err e = tg_chat_user(c, chat, "my_chat_member");
    if (e != CG_OK) return e;
    int64_t date = 0;
    (void)json_int(u, "date", &date);
    c->m->ts = date;
    if ((e = tg_from(c, json_obj(u, "from"))) != CG_OK) return e;
    *emit = 1;
    return CG_OK;
}

static cg_err tg_parse_update(tg_ctx *c, const cJSON *root, int *emit)
{
    const cJSON *o;
    *emit = 0;
    if ((o = json_obj(root, "message"))) return tg_message(c, o, 0, emit);
    if ((o = json_obj(root, "edited_message"))) return tg_message(c, o, 1, emit);
    if ((o = json_obj(root, "callback_query"))) return tg_callback(c, o, emit);
    if ((o = json_obj(root, "my_chat_member"))) return tg_member(c, o, emit);
    return CG_OK;   /* channel_post, inline_query, poll, chat_member, ...: acknowledged */
}

static cg_err tg_parse(const cg_channel_cfg *cfg, const cg_http_in *req, cg_msg *out, size_t max,
                       size_t *n, char *reason, size_t cap)
{
    (void)cfg;
    if (n) *n = 0;
    if (reason && cap) reason[0] = '\0';
    if (!req || !out || !n) return CG_E_INTERNAL;
    if (req->body_len > TG_MAX_BODY) {
        set_reason(reason, cap, "body over %u bytes", TG_MAX_BODY);
        return CG_E_TOO_LARGE;
    }
    if (!req->body || req->body_len == 0) {
        set_reason(reason, cap, "body is empty");
        return CG_E_BAD_REQUEST;
    }
    const char *body = (const char *)req->body;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, req->body_len, &end, 0);
    if (!root) {
        size_t off = end && end >= body ? (size_t)(end - body) : 0;
        set_reason(reason, cap, "body is not JSON at offset %zu", off);
        return CG_E_BAD_REQUEST;
    }
    if (cg_json_has_escaped_nul(body, req->body_len)) {
        set_reason(reason, cap, "body has a string with an escaped NUL");
        cJSON_Delete(root);
        return CG_E_BAD_REQUEST;
    }
    size_t off = end ? (size_t)(end - body) : req->body_len;
    while (off < req->body_len && (body[off] == ' ' || body[off] == '\n' || body[off] == '\r' ||
                                   body[off] == '\t' || body[off] == '\0'))
        off++;
    cg_err e = CG_OK;
    if (off < req->body_len) {
        set_reason(reason, cap, "body has bytes after the JSON value at offset %zu", off);
        e = CG_E_BAD_REQUEST;
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        set_reason(reason, cap, "body is not a JSON object");
        e = CG_E_BAD_REQUEST;
        goto done;
    }
    int64_t update_id;
    int r = json_int(root, "update_id", &update_id);
    if (r != 0 || update_id < 0) {
        set_reason(reason, cap, r == -1 ? "update_id missing" : "update_id is not a non-negative integer");
        e = CG_E_BAD_REQUEST;
        goto done;
    }
    cg_msg m;
    memset(&m, 0, sizeof m);
    snprintf(m.channel, sizeof m.channel, "telegram");
    snprintf(m.msg_id, sizeof m.msg_id, "u%" PRId64, update_id);
    tg_ctx c = { &m, reason, cap };
    int emit = 0;
    e = tg_parse_update(&c, root, &emit);
    if (e == CG_OK && emit) {
        if (max < 1) {
            set_reason(reason, cap, "no room for the message");
            e = CG_E_INTERNAL;
        } else {
            out[0] = m;
            *n = 1;
            goto done;
        }
    }
    cg_msg_free(&m);
done:
    cJSON_Delete(root);
    return e;
}

/* ---- render ------------------------------------------------------------- */

static int is_blank(char ch) { return ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r'; }

/* Length in bytes of the next piece of s[0..len) (valid UTF-8) that is at
 * most TG_MAX_TEXT_UNITS UTF-16 units, ending at the best boundary. */
static size_t tg_chunk(const char *s, size_t len)
{
    size_t units = 0, i = 0;
    while (i < len) {
        unsigned char ch = (unsigned char)s[i];
        size_t clen = ch < 0x80 ? 1 : (ch & 0xE0) == 0xC0 ? 2 : (ch & 0xF0) == 0xE0 ? 3 : 4;
        size_t u = clen == 4 ? 2 : 1;
        if (units + u > TG_MAX_TEXT_UNITS) break;
        units += u;
        i += clen;
    }
    if (i >= len) return len;
    size_t limit = i, floor = limit / 2;
    for (size_t k = limit; k > floor; k--)          /* a line end */
        if (s[k - 1] == '\n') return k;
    for (size_t k = limit; k > floor + 1; k--)      /* a sentence end: ". " "! " "? " */
        if (is_blank(s[k - 1]) && (s[k - 2] == '.' || s[k - 2] == '!' || s[k - 2] == '?')) return k;
    for (size_t k = limit; k > floor; k--)          /* a space */
        if (is_blank(s[k - 1])) return k;
    return limit;                                    /* a character boundary */
}

static char *tg_url(const cg_channel_cfg *cfg, const char *method)
{
    size_t blen = strlen(cfg->api_base);
    while (blen && cfg->api_base[blen - 1] == '/') blen--;
    size_t need = blen + 4 + strlen(cfg->token) + 1 + strlen(method) + 1;
    char *u = malloc(need);
    if (u) snprintf(u, need, "%.*s/bot%s/%s", (int)blen, cfg->api_base, cfg->token, method);
    return u;
}

/* Fills one POST with the JSON body written in w (taken). */
static cg_err tg_request(const cg_channel_cfg *cfg, const char *method, cg_jw *w, cg_http_out *o)
{
    memset(o, 0, sizeof *o);
    memcpy(o->method, "POST", 5);
    o->secret_in_url = 1;
    o->url = tg_url(cfg, method);
    o->headers[0] = strdup("Content-Type: application/json");
    o->nheaders = 1;
    o->body = cg_jw_take(w, &o->body_len);
    if (!o->url || !o->headers[0] || !o->body) {
        cg_http_out_free(o);
        return CG_E_NOMEM;
    }
    return CG_OK;
}

/* 1 when u is a JSON integer literal of at most 19 digits (it is sent raw
 * as chat_id): optional '-', no leading zero, not "-0". */
static int chat_id_valid(const char *u)
{
    const char *p = u;
    if (*p == '-') p++;
    if (p[0] == '0') return p[1] == '\0' && p == u;
    size_t n = 0;
    for (; *p; p++, n++)
        if (*p < '0' || *p > '9') return 0;
    return n >= 1 && n <= 19;
}

/* "reply_markup": one button a row (buttons already valid) */
static void tg_keyboard(cg_jw *w, const cg_reply *r)
{
    cg_jw_lit(w, ",\"reply_markup\":{\"inline_keyboard\":[");
    for (size_t i = 0; i < r->nbuttons; i++) {
        const cg_reply_btn *b = &r->buttons[i];
        cg_jw_lit(w, i ? ",[{\"text\":" : "[{\"text\":");
        cg_jw_str(w, b->title, strlen(b->title));
        cg_jw_lit(w, b->payload ? ",\"callback_data\":" : ",\"url\":");
        const char *v = b->payload ? b->payload : b->url;
        cg_jw_str(w, v, strlen(v));
        cg_jw_lit(w, "}]");
    }
    cg_jw_lit(w, "]}");
}

static int tg_buttons_valid(const cg_reply *r)
{
    return cg_reply_buttons_valid(r, TG_CALLBACK_DATA_MAX, NULL, NULL);
}

static cg_err tg_render(const cg_channel_cfg *cfg, const cg_reply *r, cg_http_out *out, size_t max,
                        size_t *n)
{
    if (n) *n = 0;
    if (!cfg || !r || !out || !n || !cfg->token || !cfg->token[0] || !cfg->api_base ||
        !cfg->api_base[0])
        return CG_E_INTERNAL;
    if (!chat_id_valid(r->user) || !tg_buttons_valid(r)) return CG_E_INTERNAL;
    const char *text = r->text ? r->text : "";
    size_t tlen = strlen(text);
    if (!cg_text_valid_utf8(text, tlen)) return CG_E_INTERNAL;
    /* leading and trailing blanks only: a whitespace-only text is empty */
    while (tlen && is_blank(text[tlen - 1])) tlen--;
    while (tlen && is_blank(*text)) { text++; tlen--; }
    if (tlen == 0 && r->nbuttons) return CG_E_INTERNAL;

    /* count the requests before building any; a text of at most
     * TG_MAX_TEXT_UNITS bytes is at most that many UTF-16 units: one piece */
    size_t need = r->callback_id ? 1 : 0;
    for (size_t off = 0; off < tlen;) {
        size_t k = tlen - off <= TG_MAX_TEXT_UNITS ? tlen - off : tg_chunk(text + off, tlen - off);
        off += k;
        while (off < tlen && is_blank(text[off])) off++;
        need++;
    }
    if (need > max) return CG_E_INTERNAL;

    size_t made = 0;
    cg_err e = CG_OK;
    if (r->callback_id) {
        cg_jw w = { 0 };
        cg_jw_lit(&w, "{\"callback_query_id\":");
        cg_jw_str(&w, r->callback_id, strlen(r->callback_id));
        cg_jw_lit(&w, "}");
        if ((e = tg_request(cfg, "answerCallbackQuery", &w, &out[made])) != CG_OK) goto fail;
        made++;
    }
    for (size_t off = 0; off < tlen;) {
        size_t k = tlen - off <= TG_MAX_TEXT_UNITS ? tlen - off : tg_chunk(text + off, tlen - off);
        size_t klen = k;
        while (klen && is_blank(text[off + klen - 1])) klen--;
        cg_jw w = { 0 };
        cg_jw_lit(&w, "{\"chat_id\":");
        cg_jw_lit(&w, r->user);          /* a JSON integer: chat_id_valid */
        cg_jw_lit(&w, ",\"text\":");
        cg_jw_str_html(&w, text + off, klen);
        cg_jw_lit(&w, ",\"parse_mode\":\"HTML\"");
        off += k;
        while (off < tlen && is_blank(text[off])) off++;
        if (off >= tlen && r->nbuttons) tg_keyboard(&w, r);
        cg_jw_lit(&w, "}");
        if ((e = tg_request(cfg, "sendMessage", &w, &out[made])) != CG_OK) goto fail;
        made++;
    }
    *n = made;
    return CG_OK;
fail:
    for (size_t i = 0; i < made; i++) cg_http_out_free(&out[i]);
    return e;
}

/* ---- classify ----------------------------------------------------------- */

typedef struct {
    long status;            /* 0: any status */
    const char *needle;     /* substring of the description */
    cg_send_kind kind;
} tg_policy;

static const tg_policy tg_policies[] = {
    { 400, "query is too old", CG_SEND_OK },
    { 400, "query id is invalid", CG_SEND_OK },
    { 400, "chat not found", CG_SEND_CONTACT_GONE },
    { 400, "user not found", CG_SEND_CONTACT_GONE },
    { 403, "bot was blocked by the user", CG_SEND_CONTACT_GONE },
    { 403, "user is deactivated", CG_SEND_CONTACT_GONE },
    { 403, "bot can't initiate conversation", CG_SEND_CONTACT_GONE },
    { 403, "bot was kicked", CG_SEND_CONTACT_GONE },
    { 403, "bot is not a member", CG_SEND_CONTACT_GONE },
    { 0, NULL, CG_SEND_OK }
};

static void tg_classify(long status, const char *body, size_t len, cg_send_result *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    cJSON *root = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    const char *desc = root ? json_str(root, "description") : NULL;
    if (desc && !cg_text_valid_utf8(desc, strlen(desc))) desc = NULL;
    const char *d = desc ? desc : "";

    if (status == 0) {
        out->kind = CG_SEND_RETRY;
        snprintf(out->reason, sizeof out->reason, "telegram: no response");
    } else if (status >= 200 && status < 300) {
        out->kind = CG_SEND_OK;
        const cJSON *res = root ? cJSON_GetObjectItemCaseSensitive(root, "result") : NULL;
        int64_t mid;
        if (cJSON_IsObject(res) && json_int(res, "message_id", &mid) == 0)
            snprintf(out->platform_id, sizeof out->platform_id, "%" PRId64, mid);
    } else if (status == 429) {
        out->kind = CG_SEND_THROTTLED;
        const cJSON *params = root ? json_obj(root, "parameters") : NULL;
        int64_t ra;
        if (params && json_int(params, "retry_after", &ra) == 0 && ra > 0)
            out->retry_after_ms = (long)(ra > 86400 ? 86400 : ra) * 1000L;
    } else if (status == 401 || status == 404) {
        out->kind = CG_SEND_BAD_CONFIG;
    } else if (status == 408 || status >= 500) {
        out->kind = CG_SEND_RETRY;
    } else {
        out->kind = CG_SEND_FAILED;
        for (const tg_policy *p = tg_policies; p->needle; p++) {
            if ((p->status == 0 || p->status == status) && contains_ci(d, p->needle)) {
                out->kind = p->kind;
                break;
            }
        }
    }
    if (!out->reason[0]) {
        const char *shown = desc && desc[0] ? desc : "(no description)";
        size_t cut = utf8_cut(shown, strlen(shown), sizeof out->reason - 24);
        snprintf(out->reason, sizeof out->reason, "telegram %ld: %.*s", status, (int)cut, shown);
    }
    cJSON_Delete(root);
}

const cg_connector cg_telegram = {
    .name = "telegram",
    .flags = 0,
    .max_body = TG_MAX_BODY,
    .max_text = TG_MAX_TEXT_UNITS,
    .verify = tg_verify,
    .handshake = NULL,
    .parse = tg_parse,
    .render = tg_render,
    .classify = tg_classify,
};

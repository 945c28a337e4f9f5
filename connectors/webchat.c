/*
 * webchat.c: the web-chat frame protocol (include/civicgate/webchat.h) as a
 * pure translator. gateway/http.c owns the WebSocket and calls:
 *
 *   cg_webchat_parse           each client text frame → cg_wc_frame
 *   cg_webchat_token_valid     before trusting a resume token
 *   cg_webchat_user            token → the user id the session is stored under
 *   cg_webchat_render_welcome  answer to hello (token + transcript)
 *   cg_webchat_render_reply    each reply of the bot or an agent
 *   cg_webchat_render_error    a refused frame (then the transport decides
 *                              whether to keep the socket)
 *
 * Rules (docs/webchat.md is the public description):
 *   - a frame is one JSON object of at most CG_WC_MAX_FRAME bytes with a
 *     string "type"; unknown types, bytes after the object and unknown kinds
 *     of value are refused (CG_E_BAD_REQUEST, reason says why); oversize →
 *     CG_E_TOO_LARGE. Unknown extra keys are ignored (forward compatible).
 *   - hello: "token" absent or "" (new conversation) or 64 lowercase hex;
 *     "lang" absent or a language tag; a tag longer than 7 bytes keeps its
 *     primary subtag ("zh-Hant-TW" → "zh"); stored lower case.
 *   - message: "id" 1..48 bytes of [A-Za-z0-9._:-]; "text" valid UTF-8, not
 *     blank. msg_id = "<user>:<id>" so that the channel-wide dedupe key is
 *     per conversation. "button": the same with "payload" 1..64 bytes.
 *   - message and button need the connection's user (set after hello);
 *     without one the frame is refused with "hello first".
 *   - ping carries nothing.
 *   Replies carry "agent":true when written by a human agent (an addition to
 *   the frames listed in webchat.h) and "lang" when known.
 *
 * Extending: a new client frame is an entry in wc_kinds[] and a branch in
 * cg_webchat_parse; keep docs/webchat.md and gateway/www/chat/widget.js in step.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/sha.h>

#include "civicgate/text.h"
#include "civicgate/webchat.h"

#define WC_ID_MAX       48
#define WC_PAYLOAD_MAX  64

static void set_reason(char *reason, size_t cap, const char *msg)
{
    if (reason && cap) snprintf(reason, cap, "%s", msg);
}


/* Contract: 1 when token is exactly CG_WC_TOKEN_LEN lowercase hex chars. */
int cg_webchat_token_valid(const char *token)
{
    if (!token) return 0;
    size_t i = 0;
    for (; token[i] && i <= CG_WC_TOKEN_LEN; i++) {
        char c = token[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
    }
    return i == CG_WC_TOKEN_LEN;
}

/* Contract: user = "wc" + the first 30 hex chars of SHA-256(token), always
 * NUL-terminated (32 chars). token is not checked here (callers check it
 * with cg_webchat_token_valid first); NULL hashes as "". */
void cg_webchat_user(const char *token, char user[CG_USER_MAX])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char h[SHA256_DIGEST_LENGTH];
    const char *t = token ? token : "";
    SHA256((const unsigned char *)t, strlen(t), h);
    user[0] = 'w';
    user[1] = 'c';
    for (size_t i = 0; i < 15; i++) {
        user[2 + 2 * i] = hex[h[i] >> 4];
        user[3 + 2 * i] = hex[h[i] & 15];
    }
    user[32] = '\0';
}

static int is_blank_only(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return 0;
    return 1;
}

static int id_valid(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++) {
        char c = id[n];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return 0;
    }
    return n >= 1 && n <= WC_ID_MAX;
}

/* Language tag → lower-case form of ≤ 7 bytes in out[8]; 0, or -1 when not
 * a tag (letters, digits and '-', starting with 2..3 letters). */
static int lang_norm(const char *in, char out[8])
{
    size_t n = strlen(in), primary = 0;
    while (primary < n && ((in[primary] >= 'a' && in[primary] <= 'z') ||
                           (in[primary] >= 'A' && in[primary] <= 'Z')))
        primary++;
    if (primary < 2 || primary > 3) return -1;
    if (n > 35) return -1;
    for (size_t i = primary; i < n; i++) {
        char c = in[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return -1;
    }
    if (primary < n && in[primary] != '-' && in[primary] != '_') return -1;
    size_t keep = n <= 7 ? n : primary;
    for (size_t i = 0; i < keep; i++) {
        char c = in[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c == '_') c = '-';
        out[i] = c;
    }
    out[keep] = '\0';
    return 0;
}

static const char *const wc_kinds[] = { "hello", "message", "button", "ping", NULL };

/* Contract: see webchat.h. out is zeroed first, so cg_msg_free(&out->msg) is
 * always safe; on error out->msg owns nothing. data is borrowed (need not be
 * NUL-terminated); user may be NULL for hello and ping. */
cg_err cg_webchat_parse(const char *data, size_t len, const char *user, cg_wc_frame *out,
                        char *reason, size_t cap)
{
    if (reason && cap) reason[0] = '\0';
    if (!out) return CG_E_INTERNAL;
    memset(out, 0, sizeof *out);
    if (len > CG_WC_MAX_FRAME) {
        set_reason(reason, cap, "frame over 8192 bytes");
        return CG_E_TOO_LARGE;
    }
    if (!data || len == 0) {
        set_reason(reason, cap, "empty frame");
        return CG_E_BAD_REQUEST;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    if (!root) {
        set_reason(reason, cap, "frame is not JSON");
        return CG_E_BAD_REQUEST;
    }
    if (cg_json_has_escaped_nul(data, len)) {
        cJSON_Delete(root);
        set_reason(reason, cap, "string holds an escaped NUL");
        return CG_E_BAD_REQUEST;
    }
    cg_err e = CG_E_BAD_REQUEST;
    size_t off = end ? (size_t)(end - data) : len;
    while (off < len && (data[off] == ' ' || data[off] == '\n' || data[off] == '\r' || data[off] == '\t'))
        off++;
    if (off < len) { set_reason(reason, cap, "bytes after the JSON object"); goto done; }
    if (!cJSON_IsObject(root)) { set_reason(reason, cap, "frame is not a JSON object"); goto done; }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
    if (!cJSON_IsString(type)) { set_reason(reason, cap, "type missing"); goto done; }
    int kind = -1;
    for (int i = 0; wc_kinds[i]; i++)
        if (strcmp(type->valuestring, wc_kinds[i]) == 0) kind = i;
    if (kind < 0) { set_reason(reason, cap, "unknown frame type"); goto done; }
    out->kind = (cg_wc_kind)kind;

    if (out->kind == CG_WC_PING) { e = CG_OK; goto done; }
    if (out->kind == CG_WC_HELLO) {
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(root, "token");
        if (tok && !cJSON_IsNull(tok)) {
            if (!cJSON_IsString(tok)) { set_reason(reason, cap, "token is not a string"); goto done; }
            if (tok->valuestring[0]) {
                if (!cg_webchat_token_valid(tok->valuestring)) {
                    set_reason(reason, cap, "token is not 64 lowercase hex characters");
                    goto done;
                }
                memcpy(out->token, tok->valuestring, CG_WC_TOKEN_LEN + 1);
            }
        }
        const cJSON *lang = cJSON_GetObjectItemCaseSensitive(root, "lang");
        if (lang && !cJSON_IsNull(lang)) {
            if (!cJSON_IsString(lang)) { set_reason(reason, cap, "lang is not a string"); goto done; }
            if (lang->valuestring[0] && lang_norm(lang->valuestring, out->lang) != 0) {
                set_reason(reason, cap, "lang is not a language tag");
                goto done;
            }
        }
        e = CG_OK;
        goto done;
    }

    /* message or button */
    if (!user || !user[0]) { set_reason(reason, cap, "hello first"); goto done; }
    if (strlen(user) >= sizeof out->msg.user || strlen(user) + 1 + WC_ID_MAX >= sizeof out->msg.msg_id) {
        set_reason(reason, cap, "user id too long");
        e = CG_E_INTERNAL;
        goto done;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (!cJSON_IsString(id)) { set_reason(reason, cap, "id missing"); goto done; }
    if (!id_valid(id->valuestring)) {
        set_reason(reason, cap, "id must be 1..48 characters of A-Z a-z 0-9 . _ : -");
        goto done;
    }
    const char *field = out->kind == CG_WC_MESSAGE ? "text" : "payload";
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!cJSON_IsString(v)) {
        set_reason(reason, cap, out->kind == CG_WC_MESSAGE ? "text missing" : "payload missing");
        goto done;
    }
    size_t vlen = strlen(v->valuestring);
    if (!cg_text_valid_utf8(v->valuestring, vlen)) {
        set_reason(reason, cap, out->kind == CG_WC_MESSAGE ? "text is not valid UTF-8"
                                                           : "payload is not valid UTF-8");
        goto done;
    }
    if (is_blank_only(v->valuestring)) {
        set_reason(reason, cap, out->kind == CG_WC_MESSAGE ? "text is empty" : "payload is empty");
        goto done;
    }
    if (out->kind == CG_WC_BUTTON && vlen > WC_PAYLOAD_MAX) {
        set_reason(reason, cap, "payload over 64 bytes");
        goto done;
    }
    if (vlen > CG_MSG_TEXT_MAX) { set_reason(reason, cap, "text too long"); goto done; }
    cg_msg *m = &out->msg;
    m->kind = out->kind == CG_WC_MESSAGE ? CG_MSG_TEXT : CG_MSG_BUTTON;
    snprintf(m->channel, sizeof m->channel, "webchat");
    snprintf(m->user, sizeof m->user, "%s", user);
    snprintf(m->msg_id, sizeof m->msg_id, "%s:%s", user, id->valuestring);
    char *copy = strdup(v->valuestring);
    if (!copy) { e = CG_E_NOMEM; goto done; }
    if (out->kind == CG_WC_MESSAGE) m->text = copy;
    else m->payload = copy;
    e = CG_OK;
done:
    cJSON_Delete(root);
    return e;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when s starts an
 * invalid one (NUL, overlong, surrogate, > U+10FFFF, truncated). */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned c = s[0];
    if (c == 0) return 0;
    if (c < 0x80) return 1;
    size_t n;
    unsigned cp, min;
    if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; min = 0x10000; }
    else return 0;
    for (size_t k = 1; k <= n; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;   /* also stops at the NUL */
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n + 1;
}

/* Adds s to o as key with every invalid UTF-8 byte replaced by U+FFFD: a
 * browser drops a WebSocket whose text frame is not UTF-8. NULL s is "". */
static int add_text(cJSON *o, const char *key, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t len = strlen((const char *)p);
    char *clean = malloc(len * 3 + 1), *w = clean;
    if (!clean) return 0;
    while (*p) {
        size_t n = utf8_seq(p);
        if (n) { memcpy(w, p, n); w += n; p += n; }
        else { memcpy(w, "\xEF\xBF\xBD", 3); w += 3; p++; }
    }
    *w = '\0';
    int ok = cJSON_AddStringToObject(o, key, clean) != NULL;
    free(clean);
    return ok;
}

static char *print_and_delete(cJSON *o, int ok)
{
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

/* Contract: {"type":"reply","text":...,"buttons":[...],"lang":...,"agent":true}
 * as a malloc'd string the caller frees; NULL on ENOMEM or r NULL. Strings
 * that are not valid UTF-8 have the bad bytes replaced by U+FFFD. lang NULL
 * or "" omits "lang"; "agent" is present only for agents' replies. Buttons
 * with a payload render {"title","payload"}, others {"title","url"}. */
char *cg_webchat_render_reply(const cg_reply *r, const char *lang)
{
    if (!r) return NULL;
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "type", "reply") && add_text(o, "text", r->text);
    cJSON *arr = ok ? cJSON_AddArrayToObject(o, "buttons") : NULL;
    ok = ok && arr;
    size_t nb = r->nbuttons < CG_REPLY_MAX_BUTTONS ? r->nbuttons : CG_REPLY_MAX_BUTTONS;
    for (size_t i = 0; ok && i < nb; i++) {
        const cg_reply_btn *b = &r->buttons[i];
        cJSON *bo = cJSON_CreateObject();
        ok = bo && cJSON_AddItemToArray(arr, bo);
        if (!ok) { cJSON_Delete(bo); break; }
        ok = add_text(bo, "title", b->title) &&
             (b->payload ? add_text(bo, "payload", b->payload) : add_text(bo, "url", b->url));
    }
    if (ok && lang && lang[0]) ok = add_text(o, "lang", lang);
    if (ok && r->from_agent) ok = cJSON_AddTrueToObject(o, "agent") != NULL;
    return print_and_delete(o, ok);
}

/* Contract: {"type":"welcome","token":...,"history":[...]} as a malloc'd
 * string the caller frees; NULL on ENOMEM or token NULL. history_json is
 * borrowed: a JSON array made by the transport; NULL or anything that is not
 * an array becomes []. */
char *cg_webchat_render_welcome(const char *token, const char *history_json)
{
    if (!token) return NULL;
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "type", "welcome") &&
             cJSON_AddStringToObject(o, "token", token);
    cJSON *h = history_json ? cJSON_Parse(history_json) : NULL;
    if (!cJSON_IsArray(h)) { cJSON_Delete(h); h = cJSON_CreateArray(); }
    if (ok && h) ok = cJSON_AddItemToObject(o, "history", h);
    else { cJSON_Delete(h); ok = 0; }
    return print_and_delete(o, ok);
}

/* Contract: {"type":"error","reason":...} as a malloc'd string the caller
 * frees; NULL on ENOMEM. reason NULL becomes "error". */
char *cg_webchat_render_error(const char *reason)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "type", "error") &&
             add_text(o, "reason", reason ? reason : "error");
    return print_and_delete(o, ok);
}

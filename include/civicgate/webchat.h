/*
 * webchat.h: the web-chat WebSocket protocol as a pure translator
 * (connectors/webchat.c); the transport (gateway/http.c) does the I/O.
 * Frames are JSON text, documented in docs/webchat.md:
 *
 *   client → server
 *     {"type":"hello","token":"<resume token or empty>","lang":"es"}
 *     {"type":"message","id":"<client msg id>","text":"..."}
 *     {"type":"button","id":"<client msg id>","payload":"..."}
 *     {"type":"ping"}
 *   server → client
 *     {"type":"welcome","token":"<resume token>","history":[...]}
 *     {"type":"reply","text":"...","buttons":[{"title":"...","payload":"..."}|{"title":"...","url":"..."}],"lang":"es"}
 *     {"type":"error","reason":"..."}   {"type":"pong"}
 *
 * A conversation is identified by its resume token (64 hex chars, made by the
 * transport from libsodium randomness); the user id stored in Redis is derived
 * from it (cg_webchat_user), so the token itself is never stored.
 */
#ifndef CIVICGATE_WEBCHAT_H
#define CIVICGATE_WEBCHAT_H

#include <stddef.h>
#include "civicgate/connector.h"

#define CG_WC_MAX_FRAME   8192    /* bytes of one client frame */
#define CG_WC_TOKEN_LEN   64

typedef enum { CG_WC_HELLO = 0, CG_WC_MESSAGE, CG_WC_BUTTON, CG_WC_PING } cg_wc_kind;

typedef struct cg_wc_frame {
    cg_wc_kind kind;
    char token[CG_WC_TOKEN_LEN + 1];   /* HELLO: "" or a well-formed token */
    char lang[8];                      /* HELLO: page language hint, or "" */
    cg_msg msg;                        /* MESSAGE / BUTTON: filled, channel "webchat", user set */
} cg_wc_frame;

/* Parse one client frame. user: the connection's user id (for MESSAGE/BUTTON;
 * may be "" for HELLO). On CG_E_BAD_REQUEST reason says why. The caller frees
 * out->msg with cg_msg_free() (safe for every kind). */
cg_err cg_webchat_parse(const char *data, size_t len, const char *user, cg_wc_frame *out,
                        char *reason, size_t cap);
/* The user id for a token: "wc" + first 30 hex chars of SHA-256(token). */
void cg_webchat_user(const char *token, char user[CG_USER_MAX]);
/* 1 when token is 64 lowercase hex chars. */
int cg_webchat_token_valid(const char *token);
/* Frames to send, malloc'd NUL-terminated JSON; caller frees. */
char *cg_webchat_render_reply(const cg_reply *r, const char *lang);
char *cg_webchat_render_welcome(const char *token, const char *history_json);
char *cg_webchat_render_error(const char *reason);

#endif

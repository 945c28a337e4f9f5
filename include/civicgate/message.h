/*
 * message.h: what a connector makes of a webhook (cg_msg) and what the
 * pipeline asks a connector to send (cg_reply). Both are platform-neutral.
 *
 * Ownership: a cg_msg owns its heap strings (text, payload, callback_id,
 * name); free with cg_msg_free(). Fixed-size fields are bounded copies: a
 * platform value that does not fit is refused by the connector (400), never
 * truncated silently.
 */
#ifndef CIVICGATE_MESSAGE_H
#define CIVICGATE_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#define CG_CHANNEL_MAX   16
#define CG_USER_MAX      64     /* platform user / chat id */
#define CG_MSGID_MAX     96     /* platform message or update id */
#define CG_MSG_TEXT_MAX  8192   /* bytes of citizen text kept */
#define CG_MAX_MSGS_PER_WEBHOOK 100

typedef enum {
    CG_MSG_TEXT = 0,      /* typed text */
    CG_MSG_BUTTON,        /* button / callback: payload set */
    CG_MSG_START,         /* conversation start; text = deep-link payload or NULL */
    CG_MSG_LANGUAGE,      /* platform command to change language */
    CG_MSG_LOCATION,      /* lat / lon set */
    CG_MSG_MEDIA,         /* media names the kind: photo, voice, sticker, document... */
    CG_MSG_EDITED,        /* an edited message: acknowledged, answered politely or ignored */
    CG_MSG_BLOCKED,       /* the citizen blocked the bot */
    CG_MSG_UNBLOCKED,     /* ... and unblocked it */
    CG_MSG_STATUS,        /* delivery status of one of our messages (WhatsApp) */
    CG_MSG_UNSUPPORTED    /* anything else: answered with a polite note */
} cg_msg_kind;

typedef struct cg_msg {
    cg_msg_kind kind;
    char channel[CG_CHANNEL_MAX];   /* "telegram", "webchat", ... */
    char user[CG_USER_MAX];         /* conversation key on the channel (Telegram chat id) */
    char msg_id[CG_MSGID_MAX];      /* dedupe key on the channel */
    char lang_hint[8];              /* platform's language hint, or "" */
    char media[16];                 /* CG_MSG_MEDIA kind, or "" */
    char *text;                     /* owned, NUL-terminated, valid UTF-8, or NULL */
    char *payload;                  /* owned button data, or NULL */
    char *callback_id;              /* owned: platform id of a button press to acknowledge */
    char *name;                     /* owned: the citizen's profile name, or NULL */
    double lat, lon;
    int64_t ts;                     /* platform timestamp, Unix seconds, or 0 */
} cg_msg;

void cg_msg_free(cg_msg *m);

typedef struct cg_reply_btn {
    char *title;        /* owned */
    char *payload;      /* owned, ≤ 64 bytes, or NULL for a URL button */
    char *url;          /* owned, or NULL */
} cg_reply_btn;

#define CG_REPLY_MAX_BUTTONS 10

/* One message from the gateway to a citizen. */
typedef struct cg_reply {
    char channel[CG_CHANNEL_MAX];
    char user[CG_USER_MAX];
    char *text;                     /* owned, plain text (connectors escape as needed) */
    cg_reply_btn buttons[CG_REPLY_MAX_BUTTONS]; size_t nbuttons;
    char *callback_id;              /* owned: acknowledge this button press first, or NULL */
    int from_agent;                 /* written by a human agent */
    int window_closed;              /* set by the outbox (gateway/window.c): the platform's 24-hour
                                     * reply window is closed, so WhatsApp sends the configured
                                     * re-engagement template instead of this reply and Messenger
                                     * tags it HUMAN_AGENT */
} cg_reply;

void cg_reply_free(cg_reply *r);

#endif

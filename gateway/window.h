/*
 * window.h: the platforms' customer-service windows (gateway/window.c).
 *
 * WhatsApp and Messenger accept a free-form reply only within 24 hours of
 * the citizen's last message. What the outbox does with a reply depends on
 * how long ago that was (cg:sess:{c:u} last_in) and who wrote the reply:
 * cg_window_decide() is that whole policy, a pure function of its inputs
 * (the caller reads the clock), so it is tested as a table
 * (tests/unit/test_window.c).
 *
 * Extending: a platform with a window is a branch in cg_window_decide() and a
 * row in docs/channels-meta.md's window table.
 */
#ifndef CG_WINDOW_H
#define CG_WINDOW_H

#include <stdint.h>

#define CG_WINDOW_MS          (24LL * 3600 * 1000)       /* the customer-service window */
#define CG_WINDOW_AGENT_MS    (7LL * 24 * 3600 * 1000)   /* Messenger HUMAN_AGENT tag */
#define CG_WINDOW_HELD_MAX    20                         /* held replies per conversation */

typedef enum {
    CG_WINDOW_SEND = 0,   /* inside the window (or unknown): send as usual */
    CG_WINDOW_TAG,        /* Messenger, 24 h - 7 d, a person's reply: HUMAN_AGENT tag */
    CG_WINDOW_REENGAGE,   /* WhatsApp, closed: send the re-engagement template, hold the reply */
    CG_WINDOW_HOLD,       /* WhatsApp, closed: hold the reply (template already sent, or none) */
    CG_WINDOW_REFUSE      /* Messenger beyond what the platform allows: dead-letter with reason */
} cg_window_action;

typedef struct cg_window_in {
    const char *channel;
    int64_t now_ms;
    int64_t last_in_ms;      /* the citizen's last message; 0 = unknown (no session) */
    int64_t reengaged_ms;    /* when the last re-engagement template went out; 0 = never */
    int from_agent;          /* the reply was written by a person */
    int has_template;        /* channels.whatsapp.reengagement_template is configured */
} cg_window_in;

/* Contract: the action for one reply; *reason (static text, never NULL) says
 * why, for logs and dead letters. Unknown last_in (0) or a clock behind it
 * counts as inside the window: the platform then decides (WhatsApp 131047
 * leads to the same template path). A template is sent at most once per
 * closed window and 24 hours: a later reply while the citizen has not
 * answered (reengaged_ms ≥ last_in_ms, less than 24 h ago) is only held.
 * Channels without a window (telegram, webchat) always get CG_WINDOW_SEND. */
cg_window_action cg_window_decide(const cg_window_in *in, const char **reason);

/* 1 when the channel holds replies outside its window (whatsapp): a
 * citizen's message there releases them (pipeline.c). */
int cg_window_holds(const char *channel);

/* Name of an action for logs and tests: "send", "tag", "reengage", "hold", "refuse". */
const char *cg_window_action_name(cg_window_action a);

#endif

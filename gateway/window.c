/*
 * window.c: the customer-service window policy (see window.h).
 *
 *   WhatsApp    age < 24 h (or unknown)  → send
 *               age ≥ 24 h               → re-engage: the approved template,
 *                                          and the reply is held until the
 *                                          citizen answers; held only when a
 *                                          template already went out in this
 *                                          closed window (< 24 h ago) or none
 *                                          is configured
 *   Messenger   age < 24 h (or unknown)  → send (messaging_type RESPONSE)
 *               24 h ≤ age < 7 d, agent  → HUMAN_AGENT tag
 *               24 h ≤ age, the bot      → refuse (only a person may answer late)
 *               age ≥ 7 d                → refuse
 *   others      → send
 *
 * API: cg_window_decide(), cg_window_holds(), cg_window_action_name().
 * Pure: no clock, no I/O; the outbox passes now and the session's times.
 */
#include "window.h"

#include <string.h>

int cg_window_holds(const char *channel)
{
    return channel && strcmp(channel, "whatsapp") == 0;
}

const char *cg_window_action_name(cg_window_action a)
{
    static const char *const names[] = { "send", "tag", "reengage", "hold", "refuse" };
    return (unsigned)a < sizeof names / sizeof *names ? names[a] : "?";
}

cg_window_action cg_window_decide(const cg_window_in *in, const char **reason)
{
    static const char *dummy;
    if (!reason) reason = &dummy;
    *reason = "inside the 24-hour window";
    if (!in || !in->channel) return CG_WINDOW_SEND;
    int wa = strcmp(in->channel, "whatsapp") == 0, ms = strcmp(in->channel, "messenger") == 0;
    if (!wa && !ms) {
        *reason = "no reply window on this channel";
        return CG_WINDOW_SEND;
    }
    if (in->last_in_ms <= 0) {
        *reason = "last message time unknown: the platform decides";
        return CG_WINDOW_SEND;
    }
    int64_t age = in->now_ms - in->last_in_ms;
    if (age < CG_WINDOW_MS) return CG_WINDOW_SEND;
    if (wa) {
        if (in->reengaged_ms >= in->last_in_ms && in->now_ms - in->reengaged_ms < CG_WINDOW_MS) {
            *reason = "outside the 24-hour window, re-engagement template already sent: held";
            return CG_WINDOW_HOLD;
        }
        if (!in->has_template) {
            *reason = "outside the 24-hour window and no reengagement_template configured: held";
            return CG_WINDOW_HOLD;
        }
        *reason = "outside the 24-hour window: re-engagement template, reply held";
        return CG_WINDOW_REENGAGE;
    }
    if (age >= CG_WINDOW_AGENT_MS) {
        *reason = "outside the window: more than 7 days since the citizen's last message";
        return CG_WINDOW_REFUSE;
    }
    if (!in->from_agent) {
        *reason = "outside the 24-hour window: only a person may answer (HUMAN_AGENT, 7 days)";
        return CG_WINDOW_REFUSE;
    }
    *reason = "outside the 24-hour window: a person's reply, HUMAN_AGENT tag";
    return CG_WINDOW_TAG;
}

/*
 * delivery.h: the delivery state of our outgoing messages
 * (gateway/delivery.c), from the platforms' status callbacks.
 *
 * When the outbox gets a platform message id for a sent request
 * (cg_send_result.platform_id) it records it; when a status arrives (a
 * CG_MSG_STATUS from the WhatsApp statuses[] or the Messenger delivery /
 * read events) the pipeline advances that record. One hash per
 * conversation, cg:dlv:{c:u}, bounded and with a TTL (docs/redis.md).
 *
 * API: cg_delivery_tracked() to ask whether a channel reports statuses;
 * cg_delivery_sent() from the outbox; cg_delivery_status() from the
 * pipeline. Both are fire and forget (a lost update only loses a state).
 */
#ifndef CG_DELIVERY_H
#define CG_DELIVERY_H

#include "store.h"

#define CG_DELIVERY_MAX 100     /* records per conversation; the oldest go first */

/* 1 for channels whose platform reports delivery statuses (whatsapp, messenger). */
int cg_delivery_tracked(const char *channel);

/* The platform accepted our message seq (out seq) and named it platform_id:
 * record {"seq","state":"accepted","at":now} unless a status for it came
 * first (then only seq and at are added). Strings are copied. */
void cg_delivery_sent(cg_store *s, const cg_config *cfg, const char *channel, const char *user,
                      const char *platform_id, long long seq);

/* A status message m (kind CG_MSG_STATUS; text = "sent" | "delivered" |
 * "read" | "failed", payload = our message's platform id or NULL, media =
 * the error code of a failure): advances the state of that message (a state
 * only moves forward: accepted < sent < delivered < read < failed), and for
 * Messenger's watermarks (msg_id "d:" / "r:<psid>:<watermark ms>") of every
 * message we sent before the watermark. A failure is logged and counted in
 * civicgate_delivery_failed_total{channel,code}. Other status texts are
 * ignored. Returns 0, or -1 when m is not a usable status (nothing sent). */
int cg_delivery_status(cg_store *s, const cg_config *cfg, const cg_msg *m);

#endif

/*
 * metrics.h: Prometheus counters and histograms (gateway/metrics.c), exposed
 * as text on GET /metrics. All updates happen on the event loop thread.
 */
#ifndef CG_METRICS_H
#define CG_METRICS_H

#include <stddef.h>

typedef enum {
    CG_M_RECEIVED = 0,   /* civicgate_messages_received_total{channel} */
    CG_M_DUPLICATE,      /* civicgate_messages_duplicate_total{channel} */
    CG_M_PROCESSED,      /* civicgate_messages_processed_total{channel} */
    CG_M_SENT,           /* civicgate_messages_sent_total{channel} */
    CG_M_FAILED,         /* civicgate_messages_failed_total{channel} (dead-lettered) */
    CG_M_RETRIED,        /* civicgate_deliveries_retried_total{channel} */
    CG_M_THROTTLED,      /* civicgate_deliveries_throttled_total{channel} */
    CG_M_WEBHOOK_REJECTED, /* civicgate_webhooks_rejected_total{channel} */
    CG_M_MATCHED,        /* civicgate_intent_matches_total{channel} */
    CG_M_FALLBACK,       /* civicgate_intent_fallbacks_total{channel} */
    CG_M_ESCALATED,      /* civicgate_escalations_total{channel} */
    CG_M_CONTACT_GONE,   /* civicgate_contacts_gone_total{channel}: blocked the bot, deleted... */
    CG_M_READ_SENT,      /* civicgate_read_receipts_sent_total{channel}: inbound marked as read */
    CG_M_READ_FAILED,    /* civicgate_read_receipts_failed_total{channel}: given up on */
    CG_M_REENGAGED,      /* civicgate_reengagements_total{channel}: templates sent outside the window */
    CG_M_HELD,           /* civicgate_replies_held_total{channel}: held until the citizen writes */
    CG_M_AUTH_FAILED,    /* civicgate_channel_auth_failures_total{channel}: token/permission refused */
    CG_M_CASES_CLAIMED,  /* civicgate_agent_cases_claimed_total{channel} (agents_api.c) */
    CG_M_CASES_RESOLVED, /* civicgate_agent_cases_resolved_total{channel} */
    CG_M_RATE_LIMITED,   /* civicgate_messages_rate_limited_total{channel}: over limits.citizen_messages_per_minute */
    CG_M_PRELOADED,      /* civicgate_pipeline_preloaded_total{channel}: started from the ingest's load */
    CG_M_DIRECT,         /* civicgate_pipeline_direct_total{channel}: committed in the ingest's step */
    CG_M__COUNT
} cg_metric;

typedef enum { CG_H_WEBHOOK = 0, CG_H_E2E, CG_H__COUNT } cg_histogram;

void cg_metrics_inc(cg_metric m, const char *channel);
void cg_metrics_observe(cg_histogram h, const char *channel, double seconds);
void cg_metrics_redis_error(void);
/* Gauges set by their owners: queue depths. */
void cg_metrics_set_gauge(const char *name, double v);
/* Intent table loads (start and SIGHUP): ok 1 → civicgate_intent_reloads_total{result="ok"},
 * ok 0 → {result="failed"}. */
void cg_metrics_intent_reload(int ok);
/* One HTTP response sent: civicgate_http_responses_total{code="2xx"|...}. */
void cg_metrics_http_status(int status);
/* One Redis command answered after seconds (sent → reply):
 * civicgate_redis_roundtrip_seconds, a histogram without labels. */
void cg_metrics_redis_roundtrip(double seconds);
/* A reply dead-lettered by the outbox, by kind ("failed", "bad_config",
 * "max_attempts"; anything else counts as "other"):
 * civicgate_deadletters_total{channel,kind}. */
void cg_metrics_deadletter(const char *channel, const char *kind);
/* A delivery the platform reported failed (a status callback), by the
 * platform's error code: civicgate_delivery_failed_total{channel,code}.
 * code: 1-12 digits, else counted as "other"; at most 64 (channel, code)
 * pairs, later new pairs count as code "other". */
void cg_metrics_delivery_failed(const char *channel, const char *code);
/* Render all as Prometheus text into a malloc'd buffer; caller frees. */
char *cg_metrics_render(size_t *len);

#endif

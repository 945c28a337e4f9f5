/*
 * metrics.c: Prometheus counters, histograms and gauges, rendered in the
 * text exposition format (version 0.0.4) on GET /metrics.
 *
 * Everything is a fixed-size array updated on the event loop thread only, so
 * there is no lock and no allocation on the hot path. Channel labels come from
 * a closed list (metric_channels[]); anything else counts as "other", so a
 * caller can never create unbounded label sets. Gauges are named by their
 * owners (cg_metrics_set_gauge("civicgate_inbox_pending", n)); at most
 * METRIC_MAX_GAUGES names, each a valid Prometheus name, others ignored.
 *
 * API: cg_metrics_inc(), cg_metrics_observe(), cg_metrics_redis_error(),
 * cg_metrics_set_gauge(), cg_metrics_intent_reload(), cg_metrics_http_status(),
 * cg_metrics_delivery_failed(), cg_metrics_redis_roundtrip(), cg_metrics_deadletter() at any time;
 * cg_metrics_render() for the scrape.
 *
 * Extending: a new counter needs its enum value in metrics.h and a row in
 * counter_meta[] (same order); a new channel a name in metric_channels[].
 */
#include "metrics.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const metric_channels[] = {"telegram", "whatsapp", "messenger", "webchat", "other"};
#define NCHAN (sizeof metric_channels / sizeof metric_channels[0])

static const struct { const char *name, *help; } counter_meta[CG_M__COUNT] = {
    [CG_M_RECEIVED] = {"civicgate_messages_received_total", "Messages acknowledged to the platform (webhooks) or the web chat once stored, duplicates included."},
    [CG_M_DUPLICATE] = {"civicgate_messages_duplicate_total", "Messages skipped as duplicates of one already received."},
    [CG_M_PROCESSED] = {"civicgate_messages_processed_total", "Messages taken through the pipeline."},
    [CG_M_SENT] = {"civicgate_messages_sent_total", "Replies delivered to the platform."},
    [CG_M_FAILED] = {"civicgate_messages_failed_total", "Replies dead-lettered after permanent failure or too many attempts."},
    [CG_M_RETRIED] = {"civicgate_deliveries_retried_total", "Delivery attempts retried after a transient error."},
    [CG_M_THROTTLED] = {"civicgate_deliveries_throttled_total", "Delivery attempts throttled by the platform (429)."},
    [CG_M_WEBHOOK_REJECTED] = {"civicgate_webhooks_rejected_total", "Webhook requests refused (auth, size, malformed)."},
    [CG_M_MATCHED] = {"civicgate_intent_matches_total", "Citizen messages answered by a matched intent."},
    [CG_M_FALLBACK] = {"civicgate_intent_fallbacks_total", "Citizen messages no intent matched."},
    [CG_M_ESCALATED] = {"civicgate_escalations_total", "Conversations handed to a human agent."},
    [CG_M_CONTACT_GONE] = {"civicgate_contacts_gone_total",
                           "Replies not delivered because the citizen blocked the bot or left the platform."},
    [CG_M_READ_SENT] = {"civicgate_read_receipts_sent_total", "Citizens' messages marked as read on the platform."},
    [CG_M_READ_FAILED] = {"civicgate_read_receipts_failed_total", "Read receipts given up on (logged, not retried further)."},
    [CG_M_REENGAGED] = {"civicgate_reengagements_total",
                        "Re-engagement templates sent because a reply came after the 24-hour window closed."},
    [CG_M_HELD] = {"civicgate_replies_held_total", "Replies held until the citizen writes again (window closed)."},
    [CG_M_AUTH_FAILED] = {"civicgate_channel_auth_failures_total",
                          "Sends refused for our token or permissions: the channel is unhealthy (see /readyz)."},
    [CG_M_CASES_CLAIMED] = {"civicgate_agent_cases_claimed_total", "Hand-off cases claimed by an agent."},
    [CG_M_CASES_RESOLVED] = {"civicgate_agent_cases_resolved_total", "Hand-off cases resolved by an agent."},
    [CG_M_RATE_LIMITED] = {"civicgate_messages_rate_limited_total",
                           "Citizen messages over limits.citizen_messages_per_minute: kept in the transcript, not answered."},
    [CG_M_PRELOADED] = {"civicgate_pipeline_preloaded_total",
                        "Messages whose dialog turn started from the load the ingest read with them (no load round trip)."},
    [CG_M_DIRECT] = {"civicgate_pipeline_direct_total",
                     "Messages whose turn was committed in the same step that stored them (the direct commit: no inbox entry)."},
};

static const struct { const char *name, *help; } hist_meta[CG_H__COUNT] = {
    [CG_H_WEBHOOK] = {"civicgate_webhook_duration_seconds", "Time from webhook request to response."},
    [CG_H_E2E] = {"civicgate_reply_latency_seconds", "Time from receiving a message to delivering its reply."},
};

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

typedef struct hist { unsigned long long b[NBUCKETS]; unsigned long long count; double sum; } hist;

#define METRIC_MAX_GAUGES 64
#define METRIC_NAME_MAX 64

static unsigned long long counters[CG_M__COUNT][NCHAN];
static hist hists[CG_H__COUNT][NCHAN];
static unsigned long long redis_errors;
static unsigned long long reloads_ok, reloads_failed;
static unsigned long long http_status[6];   /* 1xx..5xx, [0] other */
static struct { char name[METRIC_NAME_MAX]; double v; } gauges[METRIC_MAX_GAUGES];
static size_t ngauges;
#define METRIC_MAX_CODES 64
static struct { size_t chan; char code[16]; unsigned long long n; } fail_codes[METRIC_MAX_CODES];
static size_t nfail_codes;

static hist redis_rtt;
static const char *const dead_kinds[] = {"failed", "bad_config", "max_attempts", "other"};
#define NDEAD (sizeof dead_kinds / sizeof dead_kinds[0])
static unsigned long long deadletters[NCHAN][NDEAD];

static size_t chan_index(const char *channel)
{
    if (channel)
        for (size_t i = 0; i + 1 < NCHAN; i++)
            if (!strcmp(channel, metric_channels[i])) return i;
    return NCHAN - 1;
}

void cg_metrics_inc(cg_metric m, const char *channel)
{
    if ((unsigned)m >= CG_M__COUNT) return;
    counters[m][chan_index(channel)]++;
}

void cg_metrics_observe(cg_histogram h, const char *channel, double seconds)
{
    if ((unsigned)h >= CG_H__COUNT || !(seconds >= 0)) return;   /* also drops NaN */
    hist *x = &hists[h][chan_index(channel)];
    for (size_t i = 0; i < NBUCKETS; i++)
        if (seconds <= buckets[i]) x->b[i]++;
    x->count++;
    x->sum += seconds;
}

void cg_metrics_redis_error(void) { redis_errors++; }

void cg_metrics_redis_roundtrip(double seconds)
{
    if (!(seconds >= 0)) return;
    for (size_t i = 0; i < NBUCKETS; i++)
        if (seconds <= buckets[i]) redis_rtt.b[i]++;
    redis_rtt.count++;
    redis_rtt.sum += seconds;
}

void cg_metrics_deadletter(const char *channel, const char *kind)
{
    size_t k = NDEAD - 1;
    for (size_t i = 0; kind && i + 1 < NDEAD; i++)
        if (!strcmp(kind, dead_kinds[i])) k = i;
    deadletters[chan_index(channel)][k]++;
}

void cg_metrics_delivery_failed(const char *channel, const char *code)
{
    size_t c = chan_index(channel), n = code ? strlen(code) : 0;
    int digits = n >= 1 && n <= 12;
    for (size_t i = 0; digits && i < n; i++) digits = isdigit((unsigned char)code[i]) != 0;
    const char *k = digits ? code : "other";
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < nfail_codes; i++) {
            if (fail_codes[i].chan == c && !strcmp(fail_codes[i].code, k)) {
                fail_codes[i].n++;
                return;
            }
        }
        if (nfail_codes < METRIC_MAX_CODES - NCHAN || (!strcmp(k, "other") && nfail_codes < METRIC_MAX_CODES)) {
            fail_codes[nfail_codes].chan = c;
            snprintf(fail_codes[nfail_codes].code, sizeof fail_codes[0].code, "%s", k);
            fail_codes[nfail_codes++].n = 1;
            return;
        }
        k = "other";   /* table full: the second pass counts it as "other" */
    }
}

void cg_metrics_intent_reload(int ok)
{
    if (ok) reloads_ok++;
    else reloads_failed++;
}

void cg_metrics_http_status(int status)
{
    int c = status / 100;
    http_status[c >= 1 && c <= 5 ? c : 0]++;
}

static int valid_name(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len >= METRIC_NAME_MAX) return 0;
    if (!isalpha((unsigned char)n[0]) && n[0] != '_' && n[0] != ':') return 0;
    for (size_t i = 1; i < len; i++)
        if (!isalnum((unsigned char)n[i]) && n[i] != '_' && n[i] != ':') return 0;
    return 1;
}

void cg_metrics_set_gauge(const char *name, double v)
{
    if (!name || !valid_name(name)) return;
    for (size_t i = 0; i < ngauges; i++) {
        if (!strcmp(gauges[i].name, name)) { gauges[i].v = v; return; }
    }
    if (ngauges >= METRIC_MAX_GAUGES) return;
    snprintf(gauges[ngauges].name, METRIC_NAME_MAX, "%s", name);
    gauges[ngauges++].v = v;
}

/* ---- rendering ---------------------------------------------------------- */

typedef struct rbuf { char *p; size_t n, cap; int oom; } rbuf;

static void out(rbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(rbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (n < 0) { b->oom = 1; return; }
        if ((size_t)n < b->cap - b->n) { b->n += (size_t)n; return; }
        size_t ncap = b->cap * 2 + (size_t)n;
        char *np = realloc(b->p, ncap);
        if (!np) { b->oom = 1; return; }
        b->p = np;
        b->cap = ncap;
    }
}

static void fmt_num(char *dst, size_t cap, double v)
{
    snprintf(dst, cap, "%.10g", v);
}

char *cg_metrics_render(size_t *len)
{
    rbuf b = {malloc(16384), 0, 16384, 0};
    if (!b.p) return NULL;
    b.p[0] = '\0';
    char num[40];

    for (int m = 0; m < CG_M__COUNT; m++) {
        out(&b, "# HELP %s %s\n# TYPE %s counter\n", counter_meta[m].name, counter_meta[m].help,
            counter_meta[m].name);
        for (size_t c = 0; c < NCHAN; c++)
            out(&b, "%s{channel=\"%s\"} %llu\n", counter_meta[m].name, metric_channels[c], counters[m][c]);
    }
    for (int h = 0; h < CG_H__COUNT; h++) {
        const char *n = hist_meta[h].name;
        out(&b, "# HELP %s %s\n# TYPE %s histogram\n", n, hist_meta[h].help, n);
        for (size_t c = 0; c < NCHAN; c++) {
            const hist *x = &hists[h][c];
            for (size_t i = 0; i < NBUCKETS; i++) {
                fmt_num(num, sizeof num, buckets[i]);
                out(&b, "%s_bucket{channel=\"%s\",le=\"%s\"} %llu\n", n, metric_channels[c], num, x->b[i]);
            }
            out(&b, "%s_bucket{channel=\"%s\",le=\"+Inf\"} %llu\n", n, metric_channels[c], x->count);
            fmt_num(num, sizeof num, x->sum);
            out(&b, "%s_sum{channel=\"%s\"} %s\n", n, metric_channels[c], num);
            out(&b, "%s_count{channel=\"%s\"} %llu\n", n, metric_channels[c], x->count);
        }
    }
    out(&b, "# HELP civicgate_redis_roundtrip_seconds Time from sending a Redis command to its reply.\n"
            "# TYPE civicgate_redis_roundtrip_seconds histogram\n");
    for (size_t i = 0; i < NBUCKETS; i++) {
        fmt_num(num, sizeof num, buckets[i]);
        out(&b, "civicgate_redis_roundtrip_seconds_bucket{le=\"%s\"} %llu\n", num, redis_rtt.b[i]);
    }
    fmt_num(num, sizeof num, redis_rtt.sum);
    out(&b, "civicgate_redis_roundtrip_seconds_bucket{le=\"+Inf\"} %llu\n"
            "civicgate_redis_roundtrip_seconds_sum %s\ncivicgate_redis_roundtrip_seconds_count %llu\n",
        redis_rtt.count, num, redis_rtt.count);
    out(&b, "# HELP civicgate_deadletters_total Replies dead-lettered by the outbox, by kind.\n"
            "# TYPE civicgate_deadletters_total counter\n");
    for (size_t c = 0; c < NCHAN; c++)
        for (size_t k = 0; k < NDEAD; k++)
            out(&b, "civicgate_deadletters_total{channel=\"%s\",kind=\"%s\"} %llu\n", metric_channels[c],
                dead_kinds[k], deadletters[c][k]);
    out(&b, "# HELP civicgate_redis_errors_total Redis commands that failed or connections lost.\n"
            "# TYPE civicgate_redis_errors_total counter\ncivicgate_redis_errors_total %llu\n",
        redis_errors);
    out(&b, "# HELP civicgate_intent_reloads_total Intent table loads by result.\n"
            "# TYPE civicgate_intent_reloads_total counter\n"
            "civicgate_intent_reloads_total{result=\"ok\"} %llu\n"
            "civicgate_intent_reloads_total{result=\"failed\"} %llu\n",
        reloads_ok, reloads_failed);
    out(&b, "# HELP civicgate_http_responses_total HTTP responses sent by status class.\n"
            "# TYPE civicgate_http_responses_total counter\n");
    static const char *const cls[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int i = 1; i <= 6; i++)
        out(&b, "civicgate_http_responses_total{code=\"%s\"} %llu\n", cls[i % 6], http_status[i % 6]);
    out(&b, "# HELP civicgate_delivery_failed_total Deliveries the platform reported failed, by its error code.\n"
            "# TYPE civicgate_delivery_failed_total counter\n");
    for (size_t i = 0; i < nfail_codes; i++)
        out(&b, "civicgate_delivery_failed_total{channel=\"%s\",code=\"%s\"} %llu\n",
            metric_channels[fail_codes[i].chan], fail_codes[i].code, fail_codes[i].n);
    for (size_t i = 0; i < ngauges; i++) {
        fmt_num(num, sizeof num, gauges[i].v);
        out(&b, "# HELP %s Set by its owner (see docs/configuration.md, Metrics).\n# TYPE %s gauge\n%s %s\n",
            gauges[i].name, gauges[i].name, gauges[i].name, num);
    }
    if (b.oom) { free(b.p); return NULL; }
    if (len) *len = b.n;
    return b.p;
}

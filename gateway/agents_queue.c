/*
 * agents_queue.c: pure rules of the hand-off queue (agents_queue.h).
 *
 * Order: a sorted set scored priority-major, time-minor (queue_score).
 * Office hours: the local weekday, minute and date in the configured zone
 * come from the system tz database through localtime_r/mktime with TZ set
 * for the call (no hand-written zone rules); the next opening is searched
 * day by day (at most 60), so daylight-saving changes are the C library's.
 * Texts: the intent table's optional phrases (CG_PHRASE_OPTIONAL_KEYS) in
 * the citizen's language, else the English defaults below.
 *
 * Extending: a new citizen-facing text needs a key in
 * CG_PHRASE_OPTIONAL_KEYS, a default in defaults[] and a line in
 * docs/intents.md (phrases).
 */
#include "agents_queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PRIORITY_STEP 1e13     /* > any ms timestamp until the year 2286 */
#define SEARCH_DAYS   60

double cg_agents_queue_score(int priority, int64_t created_at_ms)
{
    if (priority > CG_CASE_PRIORITY_MAX) priority = CG_CASE_PRIORITY_MAX;
    if (priority < -CG_CASE_PRIORITY_MAX) priority = -CG_CASE_PRIORITY_MAX;
    if (created_at_ms < 0) created_at_ms = 0;
    return (double)created_at_ms - (double)priority * PRIORITY_STEP;
}

/* ---- office hours -------------------------------------------------------- */

typedef struct tz_saved { char *old; int had; } tz_saved;

static void tz_enter(tz_saved *s, const char *tz)
{
    const char *o = getenv("TZ");
    s->had = o != NULL;
    s->old = o ? strdup(o) : NULL;
    setenv("TZ", tz && *tz ? tz : "UTC", 1);
    tzset();
}

static void tz_leave(tz_saved *s)
{
    if (s->had && s->old) setenv("TZ", s->old, 1);
    else unsetenv("TZ");
    free(s->old);
    tzset();
}

static int is_holiday(const cg_office_hours *o, const struct tm *t)
{
    int d = (t->tm_year + 1900) * 10000 + (t->tm_mon + 1) * 100 + t->tm_mday;
    for (size_t i = 0; i < o->nholidays; i++)
        if (o->holidays[i] == d) return 1;
    return 0;
}

/* time_t of local day (y, m, d as in struct tm) at minute min. */
static time_t local_at(int year, int mon, int mday, int min)
{
    struct tm t;
    memset(&t, 0, sizeof t);
    t.tm_year = year;
    t.tm_mon = mon;
    t.tm_mday = mday;
    t.tm_hour = min / 60;
    t.tm_min = min % 60;
    t.tm_isdst = -1;
    return mktime(&t);
}

int cg_office_open(const cg_office_hours *o, int64_t now, int64_t *opens_at)
{
    if (opens_at) *opens_at = 0;
    if (!o || !o->enabled) return 1;
    tz_saved sv;
    tz_enter(&sv, o->timezone);
    time_t tnow = (time_t)now;
    struct tm lt;
    localtime_r(&tnow, &lt);
    int minute = lt.tm_hour * 60 + lt.tm_min;
    int open = 0;
    if (!is_holiday(o, &lt)) {
        for (int i = 0; i < o->nranges[lt.tm_wday]; i++)
            if (minute >= o->range[lt.tm_wday][i][0] && minute < o->range[lt.tm_wday][i][1]) open = 1;
    }
    if (!open && opens_at) {
        for (int d = 0; d <= SEARCH_DAYS && !*opens_at; d++) {
            struct tm day;
            time_t noon = local_at(lt.tm_year, lt.tm_mon, lt.tm_mday + d, 12 * 60);
            localtime_r(&noon, &day);
            if (is_holiday(o, &day)) continue;
            int best = -1;
            for (int i = 0; i < o->nranges[day.tm_wday]; i++) {
                int st = o->range[day.tm_wday][i][0];
                time_t at = local_at(day.tm_year, day.tm_mon, day.tm_mday, st);
                if (at > tnow && (best < 0 || st < best)) best = st;
            }
            if (best >= 0) *opens_at = (int64_t)local_at(day.tm_year, day.tm_mon, day.tm_mday, best);
        }
    }
    tz_leave(&sv);
    return open;
}

void cg_office_format(const cg_office_hours *o, int64_t t, char *buf, size_t cap)
{
    tz_saved sv;
    tz_enter(&sv, o && o->enabled ? o->timezone : "UTC");
    time_t tt = (time_t)t;
    struct tm lt;
    localtime_r(&tt, &lt);
    if (!strftime(buf, cap, "%Y-%m-%d %H:%M", &lt) && cap) buf[0] = '\0';
    tz_leave(&sv);
}

/* ---- waiting ------------------------------------------------------------- */

int64_t cg_agents_wait_estimate(int position, int agents_online, int avg_handle_s)
{
    if (agents_online <= 0 || position <= 0) return -1;
    if (avg_handle_s <= 0) avg_handle_s = 300;
    /* the cases ahead, shared among the agents; this one starts when the
     * last of them is taken */
    int64_t ahead = position - 1;
    return (ahead / agents_online) * (int64_t)avg_handle_s + (ahead % agents_online ? avg_handle_s / 2 : 0);
}

int cg_agents_wait_minutes(int64_t s)
{
    if (s < 0) s = 0;
    int64_t m = (s + 59) / 60;
    m = (m + 4) / 5 * 5;
    if (m < 5) m = 5;
    return m > 100000 ? 100000 : (int)m;
}

int cg_agents_should_notify(int told, int now)
{
    if (now <= 0) return 0;
    if (told <= 0) return 1;
    if (now >= told) return 0;
    if (now == 1) return 1;
    int step = told / 3;
    if (step < 1) step = 1;
    return told - now >= step;
}

/* ---- ids ---------------------------------------------------------------- */

void cg_agents_case_id(char out[CG_CASE_ID_MAX], int64_t now_ms, const unsigned char rnd[4])
{
    snprintf(out, CG_CASE_ID_MAX, "c_%lld_%02x%02x%02x%02x", (long long)now_ms, rnd[0], rnd[1], rnd[2], rnd[3]);
}

int cg_agents_case_id_valid(const char *s)
{
    if (!s || strncmp(s, "c_", 2) != 0) return 0;
    size_t n = strlen(s);
    if (n < 5 || n >= CG_CASE_ID_MAX) return 0;
    int us = 0;
    for (const char *p = s + 2; *p; p++) {
        if (*p == '_') {
            if (++us > 1 || p[1] == '\0') return 0;
        } else if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
            return 0;
        }
    }
    return us == 1;
}

/* ---- texts --------------------------------------------------------------- */

static const struct { const char *key, *text; } defaults[] = {
    {"queue_position", "A person will answer you here. You are number {{position}} in the queue; "
                       "the expected wait is about {{wait}} minutes."},
    {"queue_position_unknown", "A person will answer you here. You are number {{position}} in the queue; "
                               "no one is available at this moment, so we cannot say how long it will take."},
    {"queue_closed", "Our office is closed now; it opens on {{opens}}. Your message is kept and a person "
                     "will answer you here then. You are number {{position}} in the queue."},
    {"queue_callback_offer", "Sorry, no one has been able to answer yet. Would you like to leave a message "
                             "so that we get back to you, or keep waiting?"},
    {"queue_callback_leave", "Leave a message"},
    {"queue_keep_waiting", "Keep waiting"},
    {"queue_callback_ok", "Please write your message and how we can reach you. A person will read it "
                          "and get back to you."},
    {"queue_waiting_ok", "OK, you keep your place in the queue."},
    {"case_resolved", "The person who helped you has closed this conversation; I am back to answer your "
                      "questions. How satisfied are you with the help you got? (1 = not at all, 5 = very)"},
    {"csat_thanks", "Thank you for your answer."},
    {NULL, NULL},
};

static const char *default_text(const char *key)
{
    for (size_t i = 0; defaults[i].key; i++)
        if (!strcmp(defaults[i].key, key)) return defaults[i].text;
    return key;
}

char *cg_agents_text(const cg_settings *s, const char *key, const char *lang, const char *position,
                     const char *wait, const char *opens)
{
    const char *t = s ? cg_settings_phrase(s, key, lang) : NULL;
    if (!t || !strcmp(t, key)) t = default_text(key);
    size_t cap = strlen(t) + 1 + (position ? strlen(position) : 0) * 4 + (wait ? strlen(wait) : 0) * 4 +
                 (opens ? strlen(opens) : 0) * 4;
    char *out = malloc(cap), *o = out;
    if (!out) return NULL;
    while (*t) {
        const char *v = NULL;
        size_t skip = 0;
        if (!strncmp(t, "{{position}}", 12)) { v = position; skip = 12; }
        else if (!strncmp(t, "{{wait}}", 8)) { v = wait; skip = 8; }
        else if (!strncmp(t, "{{opens}}", 9)) { v = opens; skip = 9; }
        if (skip) {
            size_t n = v ? strlen(v) : 0;
            if ((size_t)(o - out) + n + 1 > cap) break;   /* cannot happen: ≤ 4 uses each */
            memcpy(o, v ? v : "", n);
            o += n;
            t += skip;
        } else {
            *o++ = *t++;
        }
    }
    *o = '\0';
    return out;
}

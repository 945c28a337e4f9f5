/*
 * config_agents.c: the structured parts of the "agents" configuration
 * object, called by config.c's walk for two keys:
 *
 *   agents.users          [{"name", "display_name", "role", "password_hash"}]
 *   agents.office_hours   {"timezone", "week": {"mon": ["09:00-14:00", ...]},
 *                          "holidays": ["2026-12-25", ...]}
 *
 * Everything is validated here so that runtime code sees only good values:
 * names [a-z0-9._-] (1..63 bytes, unique), roles "agent" / "supervisor",
 * password hashes in libsodium's crypto_pwhash_str format (a "$argon2id$" or
 * "$argon2i$" string; never a password in clear), time zones that exist in
 * the system tz database (/usr/share/zoneinfo, or $TZDIR), ranges "HH:MM-HH:MM"
 * with start < end (24:00 allowed as an end), dates that exist.
 *
 * Extending: a new user field is parsed in one_user() and documented in
 * docs/configuration.md ("agents").
 */
#include "config.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DISPLAY_MAX 128
#define HASH_MAX    256

static void fail(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= CG_AGENT_NAME_MAX) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static int hash_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 20 || n >= HASH_MAX) return 0;
    if (strncmp(s, "$argon2id$", 10) != 0 && strncmp(s, "$argon2i$", 9) != 0) return 0;
    for (; *s; s++)
        if (*s <= ' ' || *s > '~') return 0;
    return 1;
}

/* Printable text without control characters, 1..max bytes. */
static int text_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 0;
    return 1;
}

static int one_user(cg_agent_user *u, const cJSON *o, const char *path, int i, char *err, size_t cap)
{
    if (!cJSON_IsObject(o)) {
        fail(err, cap, "%s[%d]: must be an object", path, i);
        return -1;
    }
    for (const cJSON *f = o->child; f; f = f->next) {
        const char *k = f->string ? f->string : "";
        if (strcmp(k, "name") && strcmp(k, "display_name") && strcmp(k, "role") && strcmp(k, "password_hash")) {
            fail(err, cap, "%s[%d].%s: unknown key", path, i, k);
            return -1;
        }
        if (!cJSON_IsString(f)) {
            fail(err, cap, "%s[%d].%s: must be a string", path, i, k);
            return -1;
        }
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    const cJSON *disp = cJSON_GetObjectItemCaseSensitive(o, "display_name");
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(o, "role");
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(o, "password_hash");
    if (!name || !name_ok(name->valuestring)) {
        fail(err, cap, "%s[%d].name: required, 1-63 characters of a-z 0-9 . _ -", path, i);
        return -1;
    }
    if (disp && !text_ok(disp->valuestring, DISPLAY_MAX)) {
        fail(err, cap, "%s[%d].display_name: 1-%d bytes of printable text", path, i, DISPLAY_MAX);
        return -1;
    }
    if (!role || (strcmp(role->valuestring, "agent") && strcmp(role->valuestring, "supervisor"))) {
        fail(err, cap, "%s[%d].role: required, \"agent\" or \"supervisor\"", path, i);
        return -1;
    }
    if (!hash || !hash_ok(hash->valuestring)) {
        fail(err, cap, "%s[%d].password_hash: required, a hash made by `civicgate hash-password` "
                       "(\"$argon2id$...\"), never a password", path, i);
        return -1;
    }
    snprintf(u->name, sizeof u->name, "%s", name->valuestring);
    u->display_name = strdup(disp ? disp->valuestring : name->valuestring);
    u->password_hash = strdup(hash->valuestring);
    u->supervisor = !strcmp(role->valuestring, "supervisor");
    if (!u->display_name || !u->password_hash) {
        fail(err, cap, "%s: out of memory", path);
        return -1;
    }
    return 0;
}

static void users_free(cg_agent_user *u, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(u[i].display_name);
        free(u[i].password_hash);
    }
    free(u);
}

int cg_config_agents_users(cg_agents_cfg *a, const void *json, const char *path, char *err, size_t cap)
{
    const cJSON *arr = json;
    if (!cJSON_IsArray(arr)) {
        fail(err, cap, "%s: must be an array of users", path);
        return -1;
    }
    int n = cJSON_GetArraySize(arr);
    if (n > CG_AGENTS_MAX_USERS) {
        fail(err, cap, "%s: at most %d users", path, CG_AGENTS_MAX_USERS);
        return -1;
    }
    cg_agent_user *u = calloc(n ? (size_t)n : 1, sizeof *u);
    if (!u) {
        fail(err, cap, "%s: out of memory", path);
        return -1;
    }
    int i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        if (one_user(&u[i], e, path, i, err, cap) < 0) {
            users_free(u, (size_t)i + 1);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(u[j].name, u[i].name)) {
                fail(err, cap, "%s[%d].name: \"%s\" is defined twice", path, i, u[i].name);
                users_free(u, (size_t)i + 1);
                return -1;
            }
    }
    users_free(a->users, a->nusers);
    a->users = u;
    a->nusers = (size_t)n;
    return 0;
}

void cg_config_agents_free(cg_agents_cfg *a)
{
    users_free(a->users, a->nusers);
    a->users = NULL;
    a->nusers = 0;
}

const cg_agent_user *cg_config_agent(const cg_config *c, const char *name)
{
    if (!c || !name) return NULL;
    for (size_t i = 0; i < c->agents.nusers; i++)
        if (!strcmp(c->agents.users[i].name, name)) return &c->agents.users[i];
    return NULL;
}

/* ---- office hours ------------------------------------------------------- */

/* A zone name of the tz database: "Europe/Madrid", "UTC". Only the
 * characters the database uses, no "..", and the file must exist. */
static int timezone_ok(const char *tz)
{
    size_t n = strlen(tz);
    if (n == 0 || n >= 64 || tz[0] == '/' || strstr(tz, "..")) return 0;
    for (const char *p = tz; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '/' ||
              *p == '_' || *p == '-' || *p == '+'))
            return 0;
    const char *dir = getenv("TZDIR");
    char file[512];
    snprintf(file, sizeof file, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", tz);
    struct stat st;
    return stat(file, &st) == 0 && S_ISREG(st.st_mode);
}

/* "HH:MM" → minutes, or -1. 24:00 only when end. */
static int hhmm(const char *s, int end)
{
    if (strlen(s) != 5 || s[2] != ':') return -1;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9')) return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (m > 59 || h > 24 || (h == 24 && (m != 0 || !end))) return -1;
    return h * 60 + m;
}

static int date_ok(const char *s, int *out)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return 0;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 2000 || y > 2200 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1]) return 0;
    if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 0;
    *out = y * 10000 + m * 100 + d;
    return 1;
}

int cg_config_office_hours(cg_office_hours *o, const void *json, const char *path, char *err, size_t cap)
{
    static const char *const days[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
    const cJSON *obj = json;
    cg_office_hours t;
    memset(&t, 0, sizeof t);
    t.enabled = 1;
    if (!cJSON_IsObject(obj)) {
        fail(err, cap, "%s: must be an object", path);
        return -1;
    }
    for (const cJSON *f = obj->child; f; f = f->next) {
        const char *k = f->string ? f->string : "";
        if (strcmp(k, "timezone") && strcmp(k, "week") && strcmp(k, "holidays")) {
            fail(err, cap, "%s.%s: unknown key", path, k);
            return -1;
        }
    }
    const cJSON *tz = cJSON_GetObjectItemCaseSensitive(obj, "timezone");
    if (!cJSON_IsString(tz) || !timezone_ok(tz->valuestring)) {
        fail(err, cap, "%s.timezone: required, a zone of the system tz database (e.g. \"Europe/Madrid\")", path);
        return -1;
    }
    snprintf(t.timezone, sizeof t.timezone, "%s", tz->valuestring);
    const cJSON *week = cJSON_GetObjectItemCaseSensitive(obj, "week");
    if (!cJSON_IsObject(week)) {
        fail(err, cap, "%s.week: required, an object of weekdays (\"mon\"...\"sun\")", path);
        return -1;
    }
    for (const cJSON *d = week->child; d; d = d->next) {
        int wd = -1;
        for (int i = 0; i < 7; i++)
            if (d->string && !strcmp(d->string, days[i])) wd = i;
        if (wd < 0) {
            fail(err, cap, "%s.week.%s: unknown day (mon, tue, wed, thu, fri, sat, sun)", path, d->string ? d->string : "");
            return -1;
        }
        if (!cJSON_IsArray(d) || cJSON_GetArraySize(d) > CG_OFFICE_MAX_RANGES) {
            fail(err, cap, "%s.week.%s: an array of at most %d \"HH:MM-HH:MM\" ranges", path, d->string,
                 CG_OFFICE_MAX_RANGES);
            return -1;
        }
        int i = 0;
        for (const cJSON *r = d->child; r; r = r->next, i++) {
            char a[8], b[8];
            const char *s = cJSON_IsString(r) ? r->valuestring : "";
            int st = -1, en = -1;
            if (strlen(s) == 11 && s[5] == '-') {
                memcpy(a, s, 5); a[5] = '\0';
                memcpy(b, s + 6, 5); b[5] = '\0';
                st = hhmm(a, 0);
                en = hhmm(b, 1);
            }
            if (st < 0 || en < 0 || st >= en) {
                fail(err, cap, "%s.week.%s[%d]: must be \"HH:MM-HH:MM\" with start before end", path, d->string, i);
                return -1;
            }
            for (int j = 0; j < i; j++)
                if (st < t.range[wd][j][1] && en > t.range[wd][j][0]) {
                    fail(err, cap, "%s.week.%s[%d]: overlaps an earlier range", path, d->string, i);
                    return -1;
                }
            t.range[wd][i][0] = (unsigned short)st;
            t.range[wd][i][1] = (unsigned short)en;
        }
        t.nranges[wd] = i;
    }
    const cJSON *hol = cJSON_GetObjectItemCaseSensitive(obj, "holidays");
    if (hol) {
        if (!cJSON_IsArray(hol) || cJSON_GetArraySize(hol) > CG_OFFICE_MAX_HOLIDAYS) {
            fail(err, cap, "%s.holidays: an array of at most %d \"YYYY-MM-DD\" dates", path, CG_OFFICE_MAX_HOLIDAYS);
            return -1;
        }
        int i = 0;
        for (const cJSON *h = hol->child; h; h = h->next, i++) {
            if (!cJSON_IsString(h) || !date_ok(h->valuestring, &t.holidays[t.nholidays])) {
                fail(err, cap, "%s.holidays[%d]: must be a date \"YYYY-MM-DD\"", path, i);
                return -1;
            }
            t.nholidays++;
        }
    }
    *o = t;
    return 0;
}

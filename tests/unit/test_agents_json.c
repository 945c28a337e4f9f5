/*
 * test_agents_json.c: what the agents' API and socket say about a case and
 * a transcript entry (gateway/agents.c: ag_case_json, ag_entry_json,
 * ag_can_see), as tables: the stored hash or stream entry in, the contract's
 * JSON out (docs/openapi.yaml).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agents_internal.h"

/* "k=v;k=v" → object of strings */
static cJSON *flat(const char *spec)
{
    cJSON *o = cJSON_CreateObject();
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    for (char *kv = strtok_r(buf, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) continue;
        *eq = '\0';
        cJSON_AddStringToObject(o, kv, eq + 1);
    }
    return o;
}

static const struct {
    const char *hash;
    int position;
    const char *want;      /* the whole Case, printed unformatted */
} case_cases[] = {
    {"id=c_1_ab;channel=telegram;user=42;name=Ana;lang=es;status=queued;priority=1;created_at=1000;"
     "question=quiero hablar con alguien;reason=asked;last_message_at=1500;unread=2",
     3,
     "{\"id\":\"c_1_ab\",\"channel\":\"telegram\",\"user\":\"42\",\"name\":\"Ana\",\"lang\":\"es\","
     "\"status\":\"queued\",\"priority\":1,\"created_at\":1000,\"position\":3,\"agent\":null,"
     "\"question\":\"quiero hablar con alguien\",\"reason\":\"asked\",\"last_message_at\":1500,\"unread\":2,"
     "\"csat\":null,\"callback\":false}"},
    /* held: no position; an empty name is null; claimed_at shown */
    {"id=c_2_cd;channel=webchat;user=wc1;name=;lang=en;status=assigned;agent=alice;priority=0;created_at=2000;"
     "question=help;reason=fallbacks;last_message_at=2100;unread=0;claimed_at=2200",
     4,
     "{\"id\":\"c_2_cd\",\"channel\":\"webchat\",\"user\":\"wc1\",\"name\":null,\"lang\":\"en\","
     "\"status\":\"assigned\",\"priority\":0,\"created_at\":2000,\"position\":null,\"agent\":\"alice\","
     "\"question\":\"help\",\"reason\":\"fallbacks\",\"last_message_at\":2100,\"unread\":0,\"csat\":null,"
     "\"callback\":false,\"claimed_at\":2200}"},
    /* resolved with a rating; a rating out of 1..5 is not shown */
    {"id=c_3_ef;channel=whatsapp;user=34600;lang=es;status=resolved;agent=bob;priority=0;created_at=3000;"
     "question=x;reason=intent;last_message_at=3100;csat=4;callback=1;claimed_at=3050;resolved_at=3200",
     0,
     "{\"id\":\"c_3_ef\",\"channel\":\"whatsapp\",\"user\":\"34600\",\"name\":null,\"lang\":\"es\","
     "\"status\":\"resolved\",\"priority\":0,\"created_at\":3000,\"position\":null,\"agent\":\"bob\","
     "\"question\":\"x\",\"reason\":\"intent\",\"last_message_at\":3100,\"unread\":0,\"csat\":4,"
     "\"callback\":true,\"claimed_at\":3050,\"resolved_at\":3200}"},
    {"id=c_4_aa;channel=messenger;user=9;lang=en;status=resolved;created_at=10;csat=9",
     0,
     "{\"id\":\"c_4_aa\",\"channel\":\"messenger\",\"user\":\"9\",\"name\":null,\"lang\":\"en\","
     "\"status\":\"resolved\",\"priority\":0,\"created_at\":10,\"position\":null,\"agent\":null,"
     "\"question\":\"\",\"reason\":\"asked\",\"last_message_at\":10,\"unread\":0,\"csat\":null,"
     "\"callback\":false}"},
};

static void test_case_json(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof case_cases / sizeof case_cases[0]; i++) {
        cJSON *f = flat(case_cases[i].hash);
        cJSON *c = ag_case_json(f, case_cases[i].position);
        char *got = cJSON_PrintUnformatted(c);
        if (strcmp(got, case_cases[i].want)) fail_msg("case %zu:\n got %s\nwant %s", i, got, case_cases[i].want);
        free(got);
        cJSON_Delete(c);
        cJSON_Delete(f);
    }
}

static void test_can_see(void **state)
{
    (void)state;
    static const struct { const char *hash, *who; int supervisor, want; } t[] = {
        {"status=queued", "alice", 0, 1},
        {"status=assigned;agent=alice", "alice", 0, 1},
        {"status=assigned;agent=bob", "alice", 0, 0},
        {"status=resolved;agent=bob", "alice", 0, 0},
        {"status=resolved;agent=alice", "alice", 0, 1},
        {"status=assigned;agent=bob", "sam", 1, 1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        cJSON *f = flat(t[i].hash);
        ag_who w;
        memset(&w, 0, sizeof w);
        snprintf(w.name, sizeof w.name, "%s", t[i].who);
        w.supervisor = t[i].supervisor;
        if (ag_can_see(&w, f) != t[i].want) fail_msg("case %zu", i);
        cJSON_Delete(f);
    }
}

/* A stream entry [id, [f, v, ...]] built from "f=v;f=v". */
static redisReply *entry(const char *spec)
{
    redisReply *e = calloc(1, sizeof *e), *f = calloc(1, sizeof *f), *id = calloc(1, sizeof *id);
    e->type = REDIS_REPLY_ARRAY;
    e->elements = 2;
    e->element = calloc(2, sizeof *e->element);
    id->type = REDIS_REPLY_STRING;
    id->str = strdup("1-0");
    id->len = 3;
    e->element[0] = id;
    e->element[1] = f;
    f->type = REDIS_REPLY_ARRAY;
    f->element = calloc(32, sizeof *f->element);
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    for (char *kv = strtok_r(buf, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(kv, '=');
        *eq = '\0';
        const char *parts[2] = {kv, eq + 1};
        for (int k = 0; k < 2; k++) {
            redisReply *s = calloc(1, sizeof *s);
            s->type = REDIS_REPLY_STRING;
            s->str = strdup(parts[k]);
            s->len = strlen(parts[k]);
            f->element[f->elements++] = s;
        }
    }
    return e;
}

static void reply_free(redisReply *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->elements; i++) reply_free(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

static const struct { const char *entry, *want; } entry_cases[] = {
    {"dir=in;kind=text;text=hola;ts=5;entry=1-0", "{\"dir\":\"in\",\"text\":\"hola\",\"ts\":5}"},
    /* the bot's reply: intent and buttons kept, no agent */
    {"dir=out;text=Answer;buttons=[{\"title\":\"Menu\",\"payload\":\"m\"}];lang=en;intent=snap;ts=6",
     "{\"dir\":\"out\",\"text\":\"Answer\",\"ts\":6,\"intent\":\"snap\",\"buttons\":[{\"title\":\"Menu\",\"payload\":\"m\"}]}"},
    /* an agent's reply names the agent; an empty buttons list is left out */
    {"dir=out;text=Hi;buttons=[];from_agent=1;agent=alice;ts=7",
     "{\"dir\":\"out\",\"text\":\"Hi\",\"ts\":7,\"agent\":\"alice\"}"},
    /* a note by an agent; a system note with its kind; an unknown kind is dropped */
    {"dir=note;agent=alice;text=file 123;ts=8", "{\"dir\":\"note\",\"text\":\"file 123\",\"ts\":8,\"agent\":\"alice\"}"},
    {"dir=note;kind=claimed;agent=bob;text=claimed by bob;ts=9",
     "{\"dir\":\"note\",\"text\":\"claimed by bob\",\"ts\":9,\"agent\":\"bob\",\"kind\":\"claimed\"}"},
    {"dir=note;kind=bogus;text=x;ts=10", "{\"dir\":\"note\",\"text\":\"x\",\"ts\":10}"},
    {"dir=sideways;text=x;ts=11", NULL},
};

static void test_entry_json(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof entry_cases / sizeof entry_cases[0]; i++) {
        redisReply *e = entry(entry_cases[i].entry);
        cJSON *j = ag_entry_json(e);
        char *got = j ? cJSON_PrintUnformatted(j) : NULL;
        if (!entry_cases[i].want) {
            if (got) fail_msg("case %zu: want nothing, got %s", i, got);
        } else if (!got || strcmp(got, entry_cases[i].want)) {
            fail_msg("case %zu:\n got %s\nwant %s", i, got ? got : "(null)", entry_cases[i].want);
        }
        free(got);
        cJSON_Delete(j);
        reply_free(e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_case_json),
        cmocka_unit_test(test_can_see),
        cmocka_unit_test(test_entry_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

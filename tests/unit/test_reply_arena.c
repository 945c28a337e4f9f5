/*
 * test_reply_arena.c: gateway/reply_arena.c under a real hiredis reader, fed
 * RESP as Redis sends it: a table of replies (each parsed, checked against
 * the redisReply tree hiredis's own functions build from the same bytes, and
 * freed as redisProcessCallbacks does), then the edges: a reply larger than
 * the first chunk, a reply split across reads, a protocol error in the
 * middle of an array, many replies in one arena. Under ASan (make unit) a
 * use after reset or a leaked chunk fails the run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include "reply_arena.h"

static const struct { const char *name; const char *resp; } rows[] = {
    { "status", "+OK\r\n" },
    { "error", "-NOSCRIPT No matching script\r\n" },
    { "integer", ":-42\r\n" },
    { "nil bulk", "$-1\r\n" },
    { "empty bulk", "$0\r\n\r\n" },
    { "bulk with CR LF inside", "$6\r\na\r\nb\r\n\r\n" },
    { "nil array", "*-1\r\n" },
    { "empty array", "*0\r\n" },
    { "commit answer {ok, entries}",
      "*2\r\n$2\r\nok\r\n*1\r\n*2\r\n$8\r\ncg:inbox\r\n*1\r\n*2\r\n$15\r\n1795760153951-0\r\n"
      "*4\r\n$3\r\nseq\r\n$1\r\n1\r\n$4\r\ntext\r\n$8\r\nmedicaid\r\n" },
    { "HMGET with nils", "*4\r\n$1\r\n3\r\n$-1\r\n:7\r\n$-1\r\n" },
    { "nested arrays seven deep", "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n" },
};

/* Same type, value and shape. */
static void same_tree(const redisReply *a, const redisReply *b)
{
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->type, b->type);
    switch (a->type) {
    case REDIS_REPLY_INTEGER: assert_true(a->integer == b->integer); break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        assert_int_equal(a->len, b->len);
        assert_memory_equal(a->str, b->str, a->len);
        assert_int_equal(a->str[a->len], '\0');
        break;
    case REDIS_REPLY_ARRAY:
        assert_int_equal(a->elements, b->elements);
        for (size_t i = 0; i < a->elements; i++) same_tree(a->element[i], b->element[i]);
        break;
    default: break;
    }
}

static redisReader *arena_reader(cg_reply_arena *a)
{
    redisReader *r = redisReaderCreate();
    assert_non_null(r);
    redisContext c;
    memset(&c, 0, sizeof c);
    c.reader = r;
    cg_reply_arena_attach(&c, a);
    return r;
}

/* The arena's reply for resp, as hiredis hands it to a callback. */
static void *read_one(redisReader *r, const char *resp, size_t len)
{
    assert_int_equal(redisReaderFeed(r, resp, len), REDIS_OK);
    void *reply = NULL;
    assert_int_equal(redisReaderGetReply(r, &reply), REDIS_OK);
    return reply;
}

/* got (from the arena reader r) against hiredis's own tree of the same
 * bytes; both freed as redisProcessCallbacks frees them. */
static void same_as_hiredis(redisReader *r, void *got, redisReader *plain, const char *resp, size_t len,
                            const char *name)
{
    void *want = read_one(plain, resp, len);
    if (!got || !want) fail_msg("%s: no reply", name);
    same_tree(got, want);
    r->fn->freeObject(got);
    freeReplyObject(want);
}

static void table(void **state)
{
    (void)state;
    cg_reply_arena a = {0};
    redisReader *r = arena_reader(&a);
    redisReader *plain = redisReaderCreate();
    for (int round = 0; round < 3; round++) {       /* the arena is reused */
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
            size_t len = strlen(rows[i].resp);
            same_as_hiredis(r, read_one(r, rows[i].resp, len), plain, rows[i].resp, len, rows[i].name);
        }
    }
    redisReaderFree(plain);
    redisReaderFree(r);
    cg_reply_arena_free(&a);
}

/* An XREADGROUP-like answer of many entries, > 3 chunks: the extra chunks
 * are taken and given back; the next small reply still works. */
static void larger_than_a_chunk(void **state)
{
    (void)state;
    enum { N = 400, TEXT = 600 };
    size_t cap = (size_t)N * (TEXT + 64) + 64, o = 0;
    char *resp = malloc(cap);
    char text[TEXT + 1];
    memset(text, 'x', TEXT);
    text[TEXT] = '\0';
    o += (size_t)snprintf(resp + o, cap - o, "*%d\r\n", N);
    for (int i = 0; i < N; i++) {
        text[0] = (char)('a' + i % 26);
        o += (size_t)snprintf(resp + o, cap - o, "*2\r\n:%d\r\n$%d\r\n%s\r\n", i, TEXT, text);
    }
    cg_reply_arena a = {0};
    redisReader *r = arena_reader(&a);
    for (int round = 0; round < 2; round++) {
        redisReply *got = read_one(r, resp, o);
        assert_non_null(got);
        assert_int_equal(got->elements, N);
        for (int i = 0; i < N; i++) {
            assert_int_equal(got->element[i]->element[0]->integer, i);
            assert_int_equal(got->element[i]->element[1]->len, TEXT);
            assert_int_equal(got->element[i]->element[1]->str[0], 'a' + i % 26);
        }
        assert_non_null(a.more);                 /* it did outgrow the first chunk */
        r->fn->freeObject(got);
        assert_null(a.more);
        assert_int_equal(a.used, 0);
        redisReply *small = read_one(r, ":5\r\n", 4);
        assert_int_equal(small->integer, 5);
        r->fn->freeObject(small);
    }
    redisReaderFree(r);
    cg_reply_arena_free(&a);
    free(resp);
}

/* A reply that arrives in pieces, as a socket delivers it. */
static void split_across_reads(void **state)
{
    (void)state;
    const char *resp = rows[8].resp;
    size_t len = strlen(resp);
    cg_reply_arena a = {0};
    redisReader *r = arena_reader(&a);
    redisReader *plain = redisReaderCreate();
    for (size_t cut = 1; cut < len; cut += 7) {
        void *got = NULL;
        assert_int_equal(redisReaderFeed(r, resp, cut), REDIS_OK);
        assert_int_equal(redisReaderGetReply(r, &got), REDIS_OK);
        assert_null(got);                        /* not complete yet */
        same_as_hiredis(r, read_one(r, resp + cut, len - cut), plain, resp, len, "split");
    }
    redisReaderFree(plain);
    redisReaderFree(r);
    cg_reply_arena_free(&a);
}

/* Garbage in the middle of an array: hiredis frees the partial reply
 * through the arena; a partial reply pending when the reader is freed is
 * given back too (ASan: no leak, no use after free). */
static void errors_and_partial_replies(void **state)
{
    (void)state;
    cg_reply_arena a = {0};
    redisReader *r = arena_reader(&a);
    static const char bad[] = "*3\r\n$3\r\nabc\r\n:1\r\n!oops\r\n";
    assert_int_equal(redisReaderFeed(r, bad, sizeof bad - 1), REDIS_OK);
    void *got = NULL;
    assert_int_equal(redisReaderGetReply(r, &got), REDIS_ERR);
    assert_null(got);
    redisReaderFree(r);

    r = arena_reader(&a);
    static const char part[] = "*400\r\n$3\r\nabc\r\n";
    assert_int_equal(redisReaderFeed(r, part, sizeof part - 1), REDIS_OK);
    assert_int_equal(redisReaderGetReply(r, &got), REDIS_OK);
    assert_null(got);
    redisReaderFree(r);                          /* the reader drops the partial array */
    cg_reply_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table),
        cmocka_unit_test(larger_than_a_chunk),
        cmocka_unit_test(split_across_reads),
        cmocka_unit_test(errors_and_partial_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * reply_arena.c: see reply_arena.h for why and the lifetime rule (one reply
 * alive per connection at a time, valid until its callback returns).
 *
 * Layout: every allocation is rounded to 16 bytes. A reply's root is
 * preceded by a small header naming its arena, because hiredis's freeObject
 * gets only the object. The first chunk is bump-allocated; once it is full
 * the reply continues in extra chunks (each at least CG_ARENA_CHUNK, or the
 * size asked), which go when the reply does.
 */
#include "reply_arena.h"

#include <stdlib.h>
#include <string.h>

#include <hiredis/read.h>

struct cg_arena_chunk {
    cg_arena_chunk *next;
    size_t used, cap;
};

#define ALIGN16(n) (((n) + 15) & ~(size_t)15)
#define CHUNK_HDR  ALIGN16(sizeof(cg_arena_chunk))

typedef struct root_hdr {
    cg_reply_arena *arena;
    void *pad;                  /* keeps the reply 16-byte aligned */
} root_hdr;

static void arena_reset(cg_reply_arena *a)
{
    while (a->more) {
        cg_arena_chunk *k = a->more;
        a->more = k->next;
        free(k);
    }
    a->used = 0;
}

static void *arena_alloc(cg_reply_arena *a, size_t n)
{
    n = ALIGN16(n);
    if (!a->base && !(a->base = malloc(CG_ARENA_CHUNK))) return NULL;
    if (!a->more && n <= CG_ARENA_CHUNK - a->used) {
        void *p = a->base + a->used;
        a->used += n;
        return p;
    }
    cg_arena_chunk *k = a->more;
    if (!k || n > k->cap - k->used) {
        size_t cap = n > CG_ARENA_CHUNK ? n : CG_ARENA_CHUNK;
        if (!(k = malloc(CHUNK_HDR + cap))) return NULL;
        k->used = 0;
        k->cap = cap;
        k->next = a->more;
        a->more = k;
    }
    void *p = (char *)k + CHUNK_HDR + k->used;
    k->used += n;
    return p;
}

/* A zeroed reply of the task's place; a root starts the arena afresh. */
static redisReply *new_reply(const redisReadTask *task, int type)
{
    cg_reply_arena *a = task->privdata;
    redisReply *r;
    if (!task->parent) {
        arena_reset(a);     /* the previous reply was freed after its callback */
        root_hdr *h = arena_alloc(a, sizeof(root_hdr) + sizeof(redisReply));
        if (!h) return NULL;
        h->arena = a;
        r = (redisReply *)(h + 1);
    } else {
        r = arena_alloc(a, sizeof *r);
        if (!r) return NULL;
    }
    memset(r, 0, sizeof *r);
    r->type = type;
    if (task->parent) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = r;
    }
    return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply *r = new_reply(task, task->type);    /* first: a root resets the arena */
    if (!r) return NULL;
    char *buf = arena_alloc(task->privdata, len + 1);
    if (!buf) return NULL;
    memcpy(buf, str, len);
    buf[len] = '\0';
    r->str = buf;
    r->len = len;
    return r;
}

static void *create_array(const redisReadTask *task, int elements)
{
    redisReply *r = new_reply(task, REDIS_REPLY_ARRAY);
    if (!r) return NULL;
    if (elements > 0) {
        r->element = arena_alloc(task->privdata, (size_t)elements * sizeof *r->element);
        if (!r->element) return NULL;
        memset(r->element, 0, (size_t)elements * sizeof *r->element);
    }
    r->elements = elements > 0 ? (size_t)elements : 0;
    return r;
}

static void *create_integer(const redisReadTask *task, long long value)
{
    redisReply *r = new_reply(task, REDIS_REPLY_INTEGER);
    if (r) r->integer = value;
    return r;
}

static void *create_nil(const redisReadTask *task)
{
    return new_reply(task, REDIS_REPLY_NIL);
}

/* hiredis frees roots only (after the callback, or a partial reply). */
static void free_object(void *reply)
{
    if (!reply) return;
    root_hdr *h = (root_hdr *)reply - 1;
    arena_reset(h->arena);
}

static redisReplyObjectFunctions arena_functions = {
    create_string, create_array, create_integer, create_nil, free_object,
};

void cg_reply_arena_attach(redisContext *c, cg_reply_arena *a)
{
    c->reader->fn = &arena_functions;
    c->reader->privdata = a;
}

void cg_reply_arena_free(cg_reply_arena *a)
{
    if (!a) return;
    arena_reset(a);
    free(a->base);
    a->base = NULL;
}

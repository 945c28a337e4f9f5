/*
 * reply_arena.h: hiredis reply objects carved from one arena per connection
 * instead of two mallocs per string and a recursive free per reply.
 *
 * Why: a message's replies from Redis hold about 50 strings (the pipeline's
 * and the outbox's entries, the session's fields); hiredis 0.14 callocs a
 * redisReply and mallocs a buffer for each, and frees them one by one after
 * the callback: about 45 k instructions per message, a tenth of the
 * gateway's work (callgrind, docs/benchmarks.md "Fourth round").
 *
 * How: hiredis lets a reader's object functions be replaced
 * (redisReplyObjectFunctions) and hands its privdata to every create call.
 * An async context parses one reply at a time, runs its callback, then
 * frees it (redisProcessCallbacks), before it parses the next; so one arena
 * serves one connection: creating a reply's root starts it afresh, freeing
 * the root (after its callback, or a partial reply on a protocol error or a
 * disconnect) empties it. A reply is therefore valid until its callback
 * returns, exactly as with hiredis's own functions; nothing may keep a
 * pointer into it (nothing in the gateway does: callbacks copy).
 *
 * Memory: a first chunk of CG_ARENA_CHUNK bytes kept for the connection's
 * life; a reply that outgrows it gets more chunks (at least its size),
 * freed when the reply is. Objects are the same redisReply structs, so every
 * reader of a reply is unchanged.
 *
 * Ownership: the arena belongs to its store connection (store.c) and must
 * outlive the redisAsyncContext it is attached to (the reader frees a
 * partial reply when the context is freed); cg_reply_arena_free after the
 * context is gone.
 */
#ifndef CG_REPLY_ARENA_H
#define CG_REPLY_ARENA_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#define CG_ARENA_CHUNK (64 * 1024)

typedef struct cg_arena_chunk cg_arena_chunk;

typedef struct cg_reply_arena {
    char *base;                 /* first chunk (NULL until first used) */
    size_t used;
    cg_arena_chunk *more;       /* further chunks of the current reply */
} cg_reply_arena;

/* Make the context's reader build its replies in a (zeroed by the caller). */
void cg_reply_arena_attach(redisContext *c, cg_reply_arena *a);

/* Releases the arena's memory; the context it served must be freed. */
void cg_reply_arena_free(cg_reply_arena *a);

#endif

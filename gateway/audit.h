/*
 * audit.h: the audit log, one Redis stream (cg:audit) written by every
 * module whose users act on citizens' data: agents (login, claim, reply,
 * note, transfer, resolve, view of a transcript) and admins (every call).
 *
 * Entry fields: ts (ms), who (agent or admin name), role, action (a short
 * verb from the caller's closed list, e.g. "claim"), target (e.g. a case id
 * or "<channel>:<user>" — never message text), detail (optional, short, no
 * citizen content), instance. Entries older than retention.audit_s are
 * trimmed by every write (XADD MINID ~). Fire and forget: a write that Redis
 * refuses is logged (audit_write_failed) and counted, never retried.
 */
#ifndef CG_AUDIT_H
#define CG_AUDIT_H

#include "gateway.h"

#define CG_K_AUDIT "cg:audit"

/* Strings are copied; detail may be NULL. */
void cg_audit(cg_gateway *gw, const char *who, const char *role, const char *action, const char *target,
              const char *detail);

#endif

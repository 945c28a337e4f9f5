/*
 * admin.h: admins' authentication for the API under /api/v1/admin/ (issue 6),
 * shared by admin.c (intents, reloads, citizens' data) and analytics.c
 * (unmatched questions, daily figures).
 *
 * An admin presents "Authorization: Bearer <token>"; the configuration holds
 * only each token's SHA-256 (admin.tokens). Routes that supervisors may see
 * (the dashboard's) also take a supervisor's agent session token
 * (cg_agents_authenticate). Every authorised admin call is written to the
 * audit log (who, role, method and path; never the body).
 */
#ifndef CG_ADMIN_H
#define CG_ADMIN_H

#include "api.h"

/* next takes ownership of copy (free with cg_api_req_free) and answers call.
 * who: the admin's or supervisor's name; role: "admin" or "supervisor". */
typedef void (*cg_admin_next_fn)(cg_api_req *copy, cg_api_call *call, const char *who, const char *role);

/* Authenticate req; on success next runs (maybe before return) with a copy
 * of req; on failure call is answered 401 (no or unknown token) or 403 (a
 * supervisor on an admin-only route) and next does not run. */
void cg_admin_auth(const cg_api_req *req, cg_api_call *call, int allow_supervisor, cg_admin_next_fn next);

#endif

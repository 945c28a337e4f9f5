/*
 * admin.c: placeholder of the admin API (issue 6): no routes yet, so every
 * /api/v1/admin/ path answers 404, and cg_admin_auth() refuses everyone.
 */
#include "admin.h"

const cg_api_route cg_admin_api_routes[] = {
    {NULL, NULL, NULL},
};

void cg_admin_auth(const cg_api_req *req, cg_api_call *call, int allow_supervisor, cg_admin_next_fn next)
{
    (void)req;
    (void)allow_supervisor;
    (void)next;
    cg_api_error(call, 401, "admin token required");
}

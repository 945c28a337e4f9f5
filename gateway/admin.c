/*
 * admin.c: placeholder of the admin API (issue 6): no routes yet, so every
 * /api/v1/admin/ path answers 404.
 */
#include "api.h"

const cg_api_route cg_admin_api_routes[] = {
    {NULL, NULL, NULL},
};

/*
 * analytics.c: placeholder of the admins' analytics (issue 6): no routes yet.
 */
#include "api.h"

const cg_api_route cg_analytics_api_routes[] = {
    {NULL, NULL, NULL},
};

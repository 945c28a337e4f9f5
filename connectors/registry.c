/*
 * registry.c: the table of every platform connector.
 *
 * http.c routes POST /webhooks/<name> through cg_connector_find(name); the
 * outbox finds the connector of a reply's channel the same way. Adding a
 * platform: include its header and add its descriptor before the NULL (see
 * connector.h for the other places to change). The web chat is not here: it
 * speaks its own frame protocol (webchat.h) over the gateway's WebSocket.
 */
#include <string.h>

#include "civicgate/connector.h"
#include "messenger.h"
#include "telegram.h"
#include "whatsapp.h"

const cg_connector *const cg_connectors[] = {
    &cg_telegram,
    &cg_whatsapp,
    &cg_messenger,
    NULL
};

/* Contract: the connector whose name equals name exactly (case-sensitive,
 * as in the route), borrowed for the process; NULL when none or name NULL. */
const cg_connector *cg_connector_find(const char *name)
{
    if (!name) return NULL;
    for (size_t i = 0; cg_connectors[i]; i++)
        if (strcmp(cg_connectors[i]->name, name) == 0) return cg_connectors[i];
    return NULL;
}

/*
 * whatsapp.h: the WhatsApp Cloud API connector (connectors/whatsapp.c).
 * Registered in connectors/registry.c; the behaviour (including the mapping
 * of statuses onto cg_msg) is documented at the top of whatsapp.c and
 * tested by tests/unit/test_meta.c.
 */
#ifndef CIVICGATE_CONNECTORS_WHATSAPP_H
#define CIVICGATE_CONNECTORS_WHATSAPP_H

#include "civicgate/connector.h"

extern const cg_connector cg_whatsapp;

#endif

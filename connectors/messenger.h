/*
 * messenger.h: the Facebook Messenger Platform connector
 * (connectors/messenger.c). Registered in connectors/registry.c; the
 * behaviour is documented at the top of messenger.c and tested by
 * tests/unit/test_meta.c.
 */
#ifndef CIVICGATE_CONNECTORS_MESSENGER_H
#define CIVICGATE_CONNECTORS_MESSENGER_H

#include "civicgate/connector.h"

extern const cg_connector cg_messenger;

#endif

/*
 * telegram.h: the Telegram Bot API connector (connectors/telegram.c).
 * Registered in connectors/registry.c; the behaviour is documented at the
 * top of telegram.c and tested by tests/unit/test_telegram.c.
 */
#ifndef CIVICGATE_CONNECTORS_TELEGRAM_H
#define CIVICGATE_CONNECTORS_TELEGRAM_H

#include "civicgate/connector.h"

extern const cg_connector cg_telegram;

#endif

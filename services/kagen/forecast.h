/* The forecast events of the opportunity stream. */
#ifndef KAGEN_FORECAST_H
#define KAGEN_FORECAST_H

#include "orders.h"

void plan_forecast(gen_t *g, ogen_t *og, int nopps, int64_t split);

#endif

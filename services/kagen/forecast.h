/* The forecast events of the opportunity stream. */
#ifndef KAGEN_FORECAST_H
#define KAGEN_FORECAST_H

#include "orders.h"

void plan_forecast(gen_t *g, ogen_t *og, int nopps, int64_t split);
void plan_reconfirmations(gen_t *g, int nopps, int n0, int n1, int64_t split);

#endif

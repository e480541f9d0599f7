// The one floating-point type of the core.
//
// The trainer is built with `real = float`. The gradient-check tests build the very same sources
// with -DREAL_DOUBLE so finite differences can be compared at tight tolerances (a wrong formula
// shows up as an O(1) relative error, float rounding would blur it at ~1e-3).
#ifndef REAL_H
#define REAL_H

#ifdef REAL_DOUBLE
typedef double real;
#define REAL_NAME "double"
#else
typedef float real;
#define REAL_NAME "float"
#endif

#endif

// AVX2 build of the RNS glue kernels (compiled with -mavx2 -mfma; called only on the
// AVX2 path): the portable loops of rns_kernels_impl.h, vectorised by the compiler.
#define HEINFER_RNS_KERNELS_ISA avx2
#include "ring/rns_kernels_impl.h"

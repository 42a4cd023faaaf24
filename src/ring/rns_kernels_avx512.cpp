// AVX-512 build of the RNS glue kernels (compiled with -mavx512f etc.; called only on
// the IFMA path): the portable loops of rns_kernels_impl.h, vectorised by the compiler.
#define HEINFER_RNS_KERNELS_ISA avx512
#include "ring/rns_kernels_impl.h"

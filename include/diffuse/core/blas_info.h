// Which BLAS LibTorch's CPU matrix products run on. Debian's libtorch links libblas.so.3,
// whose default provider is the unoptimised netlib reference: with it, Linear layers (the
// whole of a DiT) run about 20× slower on CPU than with OpenBLAS (measured: the Fashion DiT
// trained at 6 img/s on reference BLAS vs 133 img/s on libopenblas0-openmp, 2 cores).
#pragma once

#include <string>

namespace diffuse {

struct BlasInfo {
  std::string library;  // resolved path of the library providing sgemm_; empty when not found
  bool reference = false;  // the netlib reference implementation
};

// Looks up the sgemm_ symbol in the running process. LibTorch builds that bundle MKL (the
// official CUDA and CPU zips) export none, and report an empty library.
BlasInfo detect_blas();

// True for the netlib reference BLAS as Debian installs it (<libdir>/blas/libblas.so.3, the
// alternative that libblas3 provides).
bool is_reference_blas_path(const std::string& resolved_path);

// Logs a warning with the fix when CPU work would run on the reference BLAS.
void warn_if_reference_blas();

}  // namespace diffuse

#pragma once
// NumPy .npy files (format versions 1-3): the magic "\x93NUMPY", a version, a header length
// and a Python-literal header {'descr': '<f4', 'fortran_order': False, 'shape': (N, C, H, W)},
// then the raw array in C order. Read onto the CPU; a DataError names the file and what does
// not fit (Fortran order, big-endian or unsupported dtypes, truncation).
#include <torch/torch.h>

#include <string>

namespace diffuse {

// Dtypes: float64/32/16, int64/32/16/8, uint8, bool, little-endian.
torch::Tensor read_npy(const std::string& path);

}  // namespace diffuse

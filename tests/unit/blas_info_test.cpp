#include "diffuse/core/blas_info.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace diffuse {
namespace {

TEST(BlasInfo, RecognisesDebianReferenceBlasByItsAlternativeDirectory) {
  EXPECT_TRUE(is_reference_blas_path("/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0"));
  EXPECT_TRUE(is_reference_blas_path("/usr/lib/aarch64-linux-gnu/blas/libblas.so.3"));
  EXPECT_FALSE(is_reference_blas_path("/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3"));
  EXPECT_FALSE(is_reference_blas_path("/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3"));
  EXPECT_FALSE(is_reference_blas_path("/usr/lib/x86_64-linux-gnu/blis-openmp/libblas.so.3"));
  EXPECT_FALSE(is_reference_blas_path("/opt/libtorch/lib/libtorch_cpu.so"));
  EXPECT_FALSE(is_reference_blas_path(""));
}

TEST(BlasInfo, DetectedLibraryIsARealFileAndClassifiedByItsPath) {
  const BlasInfo blas = detect_blas();
  if (blas.library.empty()) GTEST_SKIP() << "this LibTorch exports no sgemm_ (BLAS bundled inside it)";
  EXPECT_TRUE(std::filesystem::is_regular_file(blas.library)) << blas.library;
  EXPECT_FALSE(std::filesystem::is_symlink(blas.library)) << blas.library << " was not resolved";
  EXPECT_EQ(blas.reference, is_reference_blas_path(blas.library));
}

}  // namespace
}  // namespace diffuse

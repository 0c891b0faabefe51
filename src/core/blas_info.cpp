#include "diffuse/core/blas_info.h"

#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <system_error>

namespace diffuse {

bool is_reference_blas_path(const std::string& resolved_path) {
  const std::filesystem::path path(resolved_path);
  return path.parent_path().filename() == "blas" &&
         path.filename().string().rfind("libblas.so", 0) == 0;
}

BlasInfo detect_blas() {
  BlasInfo info;
  void* symbol = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info where{};
  if (symbol == nullptr || dladdr(symbol, &where) == 0 || where.dli_fname == nullptr) return info;
  std::error_code error;
  // libblas.so.3 is a chain of update-alternatives links: the real file names the provider.
  const auto resolved = std::filesystem::canonical(where.dli_fname, error);
  info.library = error ? std::string(where.dli_fname) : resolved.string();
  info.reference = is_reference_blas_path(info.library);
  return info;
}

void warn_if_reference_blas() {
  const BlasInfo blas = detect_blas();
  if (!blas.reference) return;
  spdlog::warn(
      "matrix products run on the reference BLAS ({}), about 20x slower than OpenBLAS for "
      "Linear and attention layers; install Debian's libopenblas0-openmp (scripts/install_deps.sh "
      "does) to switch libblas.so.3 to OpenBLAS",
      blas.library);
}

}  // namespace diffuse

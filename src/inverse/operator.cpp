#include <algorithm>
#include <cmath>

#include "diffuse/core/error.h"
#include "diffuse/core/seeded_noise.h"
#include "diffuse/core/shape_text.h"
#include "diffuse/core/text.h"
#include "diffuse/inverse/operator.h"
#include "inverse/concrete_operators.h"

namespace diffuse {
namespace {

// Stride/padding/dilation as named arrays: bare integer literals make torch::conv2d ambiguous
// with its string-padding overload.
const std::vector<int64_t> kUnit2d{1, 1};
const std::vector<int64_t> kZero2d{0, 0};

constexpr double kPi = 3.14159265358979323846;

// Operators are built for one image geometry; a tensor of another shape is a caller error
// (e.g. a restore input image that does not match the model).
void check_shape(const std::string& op, const char* what, const torch::Tensor& t,
                 const std::vector<int64_t>& expected) {
  bool ok = t.dim() == static_cast<int64_t>(expected.size()) + 1;
  for (size_t i = 0; ok && i < expected.size(); ++i) ok = t.size(static_cast<int64_t>(i) + 1) == expected[i];
  if (!ok)
    throw DataError("operator '" + op + "': " + what + " must be [B, " +
                    shape_text(expected).substr(1) + ", found " + shape_text(t.sizes()));
}

std::vector<int64_t> image_shape(int64_t channels, int64_t image_size) {
  return {channels, image_size, image_size};
}

[[noreturn]] void bad_option(const std::string& key, const std::string& message) {
  throw ConfigError("operator." + key + ": " + message);
}

}  // namespace

torch::Tensor Operator::adjoint(const torch::Tensor& y) const {
  throw ConfigError("operator '" + name() +
                    "' is not linear, so it has no adjoint; use method 'dps' instead of 'dps_linear'");
}

// ---- masks ------------------------------------------------------------------------------

MaskOperator::MaskOperator(std::string name, torch::Tensor mask, int64_t channels)
    : name_(std::move(name)), mask_(std::move(mask)), channels_(channels) {}

torch::Tensor MaskOperator::forward(const torch::Tensor& x) const {
  check_shape(name_, "input", x, image_shape(channels_, mask_.size(2)));
  return x * mask_.to(x.options());
}

torch::Tensor MaskOperator::adjoint(const torch::Tensor& y) const {
  check_shape(name_, "measurement", y, measurement_shape());
  return y * mask_.to(y.options());
}

std::vector<int64_t> MaskOperator::measurement_shape() const {
  return image_shape(channels_, mask_.size(2));
}

torch::Tensor box_mask(int64_t image_size, int64_t box_size, int64_t top, int64_t left) {
  auto mask = torch::ones({1, 1, image_size, image_size}, torch::kFloat64);
  using torch::indexing::Slice;
  mask.index_put_({0, 0, Slice(top, top + box_size), Slice(left, left + box_size)}, 0.0);
  return mask;
}

torch::Tensor random_pixel_mask(int64_t image_size, double keep_fraction, uint64_t seed) {
  const int64_t pixels = image_size * image_size;
  const auto kept = static_cast<int64_t>(std::llround(keep_fraction * static_cast<double>(pixels)));
  // A seeded random order of the pixels; the first `kept` of it survive, so the kept count
  // is exact rather than binomial.
  SeededNoise noise(std::vector<uint64_t>{seed}, torch::kCPU);
  auto order = torch::argsort(noise.rand({pixels})[0]);
  auto mask = torch::zeros({pixels}, torch::kFloat64);
  mask.index_fill_(0, order.slice(0, 0, kept), 1.0);
  return mask.view({1, 1, image_size, image_size});
}

// ---- convolutions -----------------------------------------------------------------------

ConvolutionOperator::ConvolutionOperator(std::string name, torch::Tensor kernel, int64_t channels,
                                         int64_t image_size)
    : name_(std::move(name)), kernel_(std::move(kernel)), channels_(channels), image_size_(image_size) {
  const int64_t radius = kernel_.size(0) / 2;
  // Reflect padding without repeating the edge pixel: padded position p reads pixel |p - r|,
  // mirrored back at the far edge (needs r <= H - 1, checked in make_operator).
  std::vector<int64_t> index;
  for (int64_t p = 0; p < image_size + 2 * radius; ++p) {
    int64_t source = std::abs(p - radius);
    if (source >= image_size) source = 2 * (image_size - 1) - source;
    index.push_back(source);
  }
  pad_index_ = torch::tensor(index, torch::kInt64);
}

torch::Tensor ConvolutionOperator::forward(const torch::Tensor& x) const {
  check_shape(name_, "input", x, measurement_shape());
  const int64_t k = kernel_.size(0);
  auto weight = kernel_.to(x.options()).view({1, 1, k, k}).repeat({channels_, 1, 1, 1});
  auto index = pad_index_.to(x.device());
  auto padded = x.index_select(2, index).index_select(3, index);  // [B, C, H+k-1, W+k-1]
  return torch::conv2d(padded, weight, torch::Tensor(), kUnit2d, kZero2d, kUnit2d, channels_);   // [B, C, H, W]
}

torch::Tensor ConvolutionOperator::adjoint(const torch::Tensor& y) const {
  check_shape(name_, "measurement", y, measurement_shape());
  const int64_t k = kernel_.size(0);
  const int64_t padded_size = pad_index_.size(0);
  auto weight = kernel_.to(y.options()).view({1, 1, k, k}).repeat({channels_, 1, 1, 1});
  auto index = pad_index_.to(y.device());
  // Transposed convolution is the adjoint of the valid convolution; index_add is the adjoint
  // of the index_select gather that padded the image.
  auto padded = torch::conv_transpose2d(y, weight, torch::Tensor(), kUnit2d, kZero2d, kZero2d, channels_);  // [B, C, H+k-1, W+k-1]
  const int64_t batch = y.size(0);
  auto rows = torch::zeros({batch, channels_, image_size_, padded_size}, y.options())
                  .index_add(2, index, padded);
  return torch::zeros({batch, channels_, image_size_, image_size_}, y.options()).index_add(3, index, rows);
}

std::vector<int64_t> ConvolutionOperator::measurement_shape() const {
  return image_shape(channels_, image_size_);
}

torch::Tensor gaussian_kernel(int64_t kernel_size, double sigma) {
  const double radius = static_cast<double>(kernel_size / 2);
  auto offsets = torch::arange(kernel_size, torch::kFloat64) - radius;
  auto profile = (-(offsets * offsets) / (2.0 * sigma * sigma)).exp();
  auto kernel = torch::outer(profile, profile);
  return kernel / kernel.sum();
}

// Motion blur from a random camera trajectory (our own simplified take on the random
// trajectories of Boracchi & Foi 2012, "Modeling the performance of image restoration from
// motion blur"). The camera moves M = 8k unit steps; its heading starts at a uniform angle
// θ_0 and performs a Gaussian random walk, θ_j = θ_{j-1} + intensity · π · n_j / √M, so the
// heading's total drift has std intensity·π whatever M is: intensity 0 gives a straight
// streak, intensity 1 a strongly curved one. The path is centred on its bounding box, scaled
// so its longer half-extent is (k-1)/2 pixels (the streak spans the kernel), splatted onto
// the k × k grid with bilinear weights, and normalised to sum 1. All draws come from one
// generator seeded with `seed`, so the kernel is a pure function of (k, intensity, seed).
torch::Tensor motion_kernel(int64_t kernel_size, double intensity, uint64_t seed) {
  const int64_t steps = 8 * kernel_size;
  SeededNoise noise(std::vector<uint64_t>{seed}, torch::kCPU);
  const double start = noise.rand({1}, torch::kFloat64)[0][0].item<double>();
  auto turns = noise.randn({steps}, torch::kFloat64)[0];
  const auto* turn = turns.data_ptr<double>();

  std::vector<double> px(static_cast<size_t>(steps) + 1, 0.0), py(px.size(), 0.0);
  double heading = 2.0 * kPi * start;
  const double turn_scale = intensity * kPi / std::sqrt(static_cast<double>(steps));
  for (int64_t j = 1; j <= steps; ++j) {
    heading += turn_scale * turn[j - 1];
    px[static_cast<size_t>(j)] = px[static_cast<size_t>(j) - 1] + std::cos(heading);
    py[static_cast<size_t>(j)] = py[static_cast<size_t>(j) - 1] + std::sin(heading);
  }
  const auto [x_lo, x_hi] = std::minmax_element(px.begin(), px.end());
  const auto [y_lo, y_hi] = std::minmax_element(py.begin(), py.end());
  const double x_mid = 0.5 * (*x_lo + *x_hi), y_mid = 0.5 * (*y_lo + *y_hi);
  const double half_extent = 0.5 * std::max(*x_hi - *x_lo, *y_hi - *y_lo);
  const double radius = static_cast<double>(kernel_size / 2);
  const double scale = half_extent > 0.0 ? radius / half_extent : 0.0;

  auto kernel = torch::zeros({kernel_size, kernel_size}, torch::kFloat64);
  auto* k = kernel.data_ptr<double>();
  for (size_t j = 0; j < px.size(); ++j) {
    // Grid coordinates in [0, k-1]; bilinear splat onto the four neighbouring pixels.
    const double u = std::clamp(radius + scale * (px[j] - x_mid), 0.0, 2.0 * radius);
    const double v = std::clamp(radius + scale * (py[j] - y_mid), 0.0, 2.0 * radius);
    const auto col = std::min(static_cast<int64_t>(u), kernel_size - 1);
    const auto row = std::min(static_cast<int64_t>(v), kernel_size - 1);
    const double fu = u - static_cast<double>(col), fv = v - static_cast<double>(row);
    const int64_t col1 = std::min(col + 1, kernel_size - 1), row1 = std::min(row + 1, kernel_size - 1);
    k[row * kernel_size + col] += (1 - fu) * (1 - fv);
    k[row * kernel_size + col1] += fu * (1 - fv);
    k[row1 * kernel_size + col] += (1 - fu) * fv;
    k[row1 * kernel_size + col1] += fu * fv;
  }
  return kernel / kernel.sum();
}

// ---- super-resolution and identity ------------------------------------------------------

AveragePoolOperator::AveragePoolOperator(int64_t factor, int64_t channels, int64_t image_size)
    : factor_(factor), channels_(channels), image_size_(image_size) {}

torch::Tensor AveragePoolOperator::forward(const torch::Tensor& x) const {
  check_shape(name(), "input", x, image_shape(channels_, image_size_));
  return torch::avg_pool2d(x, {factor_, factor_});
}

torch::Tensor AveragePoolOperator::adjoint(const torch::Tensor& y) const {
  check_shape(name(), "measurement", y, measurement_shape());
  // Each low-resolution pixel averaged factor² pixels with weight 1/factor², so Aᵀ copies it
  // back to all of them with that weight (nearest upsampling / factor²).
  const int64_t batch = y.size(0), low = image_size_ / factor_;
  return y.view({batch, channels_, low, 1, low, 1})
             .expand({batch, channels_, low, factor_, low, factor_})
             .reshape({batch, channels_, image_size_, image_size_}) /
         static_cast<double>(factor_ * factor_);
}

std::vector<int64_t> AveragePoolOperator::measurement_shape() const {
  return image_shape(channels_, image_size_ / factor_);
}

IdentityOperator::IdentityOperator(int64_t channels, int64_t image_size)
    : channels_(channels), image_size_(image_size) {}

std::vector<int64_t> IdentityOperator::measurement_shape() const {
  return image_shape(channels_, image_size_);
}

// ---- name table -------------------------------------------------------------------------

namespace {

// The kernel against the image (its own range is the schema's).
void check_kernel(const OperatorOptions& o, int64_t image_size) {
  if (o.kernel_size / 2 > image_size - 1)
    bad_option("kernel_size", "reflect padding needs kernel_size <= 2 * image_size - 1 = " +
                                  std::to_string(2 * image_size - 1) + ", found " +
                                  std::to_string(o.kernel_size));
}

std::unique_ptr<Operator> make_inpaint_box(const OperatorOptions& o, int64_t channels, int64_t image_size) {
  if (o.box_size < 1 || o.box_size > image_size)
    bad_option("box_size", "must lie in [1, " + std::to_string(image_size) + "] for " +
                               std::to_string(image_size) + "-pixel images, found " +
                               std::to_string(o.box_size));
  const int64_t last = image_size - o.box_size;
  int64_t top = o.box_top < 0 ? last / 2 : o.box_top;
  int64_t left = o.box_left < 0 ? last / 2 : o.box_left;
  if (o.random_box) {
    SeededNoise noise(std::vector<uint64_t>{o.seed}, torch::kCPU);
    auto u = noise.rand({2}, torch::kFloat64)[0];
    top = std::min(static_cast<int64_t>(u[0].item<double>() * static_cast<double>(last + 1)), last);
    left = std::min(static_cast<int64_t>(u[1].item<double>() * static_cast<double>(last + 1)), last);
  }
  if (top > last)
    bad_option("box_top", "a " + std::to_string(o.box_size) + "-pixel box must start in [0, " +
                              std::to_string(last) + "] (or -1 to centre), found " + std::to_string(top));
  if (left > last)
    bad_option("box_left", "a " + std::to_string(o.box_size) + "-pixel box must start in [0, " +
                               std::to_string(last) + "] (or -1 to centre), found " + std::to_string(left));
  return std::make_unique<MaskOperator>("inpaint_box", box_mask(image_size, o.box_size, top, left),
                                        channels);
}

std::unique_ptr<Operator> make_inpaint_random(const OperatorOptions& o, int64_t channels, int64_t image_size) {
  return std::make_unique<MaskOperator>(
      "inpaint_random", random_pixel_mask(image_size, o.keep_fraction, o.seed), channels);
}

std::unique_ptr<Operator> make_gaussian_blur(const OperatorOptions& o, int64_t channels, int64_t image_size) {
  check_kernel(o, image_size);
  return std::make_unique<ConvolutionOperator>("gaussian_blur", gaussian_kernel(o.kernel_size, o.blur_sigma),
                                               channels, image_size);
}

std::unique_ptr<Operator> make_motion_blur(const OperatorOptions& o, int64_t channels, int64_t image_size) {
  check_kernel(o, image_size);
  return std::make_unique<ConvolutionOperator>(
      "motion_blur", motion_kernel(o.kernel_size, o.intensity, o.seed), channels, image_size);
}

std::unique_ptr<Operator> make_super_resolution(const OperatorOptions& o, int64_t channels, int64_t image_size) {
  if (image_size % o.factor != 0)
    bad_option("factor", "must divide the image size " + std::to_string(image_size) + ", found " +
                             std::to_string(o.factor));
  return std::make_unique<AveragePoolOperator>(o.factor, channels, image_size);
}

std::unique_ptr<Operator> make_denoise(const OperatorOptions&, int64_t channels, int64_t image_size) {
  return std::make_unique<IdentityOperator>(channels, image_size);
}

}  // namespace

const std::vector<OperatorEntry>& operator_table() {
  static const std::vector<OperatorEntry> table{
      {"inpaint_box", "zero a box (fixed, centred, or seeded random position)",
       {"box_size", "box_top", "box_left", "random_box", "seed"}, make_inpaint_box},
      {"inpaint_random", "keep a seeded random fraction of the pixels", {"keep_fraction", "seed"},
       make_inpaint_random},
      {"gaussian_blur", "Gaussian blur, reflect padding", {"kernel_size", "blur_sigma"}, make_gaussian_blur},
      {"motion_blur", "blur with a seeded random-trajectory kernel, reflect padding",
       {"kernel_size", "intensity", "seed"}, make_motion_blur},
      {"super_resolution", "average pooling by 2 or 4", {"factor"}, make_super_resolution},
      {"denoise", "identity (measurement noise only)", {}, make_denoise},
  };
  return table;
}

std::string operator_names() { return join(names_of(operator_table())); }

std::unique_ptr<Operator> make_operator(const OperatorOptions& options, int64_t channels,
                                        int64_t image_size) {
  if (channels < 1 || image_size < 1)
    throw ConfigError("make_operator: images must have >= 1 channel and >= 1 pixel, found " +
                      std::to_string(channels) + " × " + std::to_string(image_size) + "²");
  operator_options_schema().validate(options, "operator");
  return find_operator(options.name).make(options, channels, image_size);
}

const OperatorEntry& find_operator(const std::string& name) {
  if (const auto* entry = find_by_name(operator_table(), name)) return *entry;
  bad_option("name", "unknown operator '" + name + "'; valid operators: " + operator_names());
}

}  // namespace diffuse

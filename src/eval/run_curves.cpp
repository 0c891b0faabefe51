#include "diffuse/eval/run_curves.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "diffuse/core/error.h"
#include "diffuse/core/file_io.h"

namespace diffuse {

namespace {

// What the rows of a metrics file add up to, one series per curve.
struct RunCurves {
  CurveSeries loss{"loss", {}, {}};
  CurveSeries lr{"lr", {}, {}};
  CurveSeries fd{"FD", {}, {}};
  CurveSeries class_accuracy{"class accuracy", {}, {}};
  CurveSeries train_accuracy{"train accuracy", {}, {}};
  std::map<std::string, CurveSeries> test_accuracy;  // keyed by σ as the file writes it
};

std::string read_metrics_text(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error))
    throw DataError(path +
                    ": metrics file not found (expected the metrics.jsonl of a run folder that "
                    "'diffuse train' writes)");
  return read_file_bytes(path, "the metrics file");
}

std::string excerpt(const std::string& line) {
  constexpr size_t kMaxChars = 60;
  return line.size() <= kMaxChars ? line : line.substr(0, kMaxChars) + "...";
}

// A metric's value; null (how non-finite values are written) becomes NaN, which the plot skips.
double metric_value(const nlohmann::json& value, const std::string& key, const std::string& where) {
  if (value.is_null()) return std::numeric_limits<double>::quiet_NaN();
  if (!value.is_number())
    throw DataError(where + ": expected a number for \"" + key + "\", found " +
                    excerpt(value.dump()));
  return value.get<double>();
}

void add_point(CurveSeries& series, double step, double value) {
  series.x.push_back(step);
  series.y.push_back(value);
}

// Adds the metrics of one row; rows without any metric plotted here are left alone.
void read_row(const nlohmann::json& row, const std::string& where, RunCurves& curves) {
  const std::pair<const char*, CurveSeries*> scalars[] = {
      {"loss", &curves.loss},
      {"lr", &curves.lr},
      {"fd", &curves.fd},
      {"class_accuracy", &curves.class_accuracy},
      {"train_accuracy", &curves.train_accuracy},
  };
  const bool has_metric =
      row.contains("test_accuracy") ||
      std::any_of(std::begin(scalars), std::end(scalars),
                  [&](const auto& scalar) { return row.contains(scalar.first); });
  if (!has_metric) return;
  const auto step = row.find("step");
  if (step == row.end() || !step->is_number())
    throw DataError(where + ": expected a number for \"step\" in a row of metrics, found " +
                    (step == row.end() ? std::string("none") : excerpt(step->dump())));
  const double at = step->get<double>();
  for (const auto& [key, series] : scalars)
    if (const auto value = row.find(key); value != row.end())
      add_point(*series, at, metric_value(*value, key, where));

  const auto by_sigma = row.find("test_accuracy");
  if (by_sigma == row.end()) return;
  if (!by_sigma->is_object())
    throw DataError(
        where +
        ": expected \"test_accuracy\" to be an object of accuracies keyed by sigma, found " +
        excerpt(by_sigma->dump()));
  for (const auto& [sigma, accuracy] : by_sigma->items()) {
    CurveSeries& series = curves.test_accuracy[sigma];
    series.name = "\u03c3=" + sigma;
    add_point(series, at, metric_value(accuracy, "test_accuracy." + sigma, where));
  }
}

// The test-accuracy series in increasing σ (the file's keys sort as text: "10" before "2").
std::vector<CurveSeries> by_increasing_sigma(const std::map<std::string, CurveSeries>& by_key) {
  std::vector<std::pair<double, CurveSeries>> keyed;
  for (const auto& [key, series] : by_key) {
    char* end = nullptr;
    const double sigma = std::strtod(key.c_str(), &end);
    keyed.emplace_back(end != key.c_str() ? sigma : std::numeric_limits<double>::infinity(),
                       series);
  }
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<CurveSeries> sorted;
  for (auto& entry : keyed) sorted.push_back(std::move(entry.second));
  return sorted;
}

CurvePanel step_panel(const std::string& title, std::vector<CurveSeries> series,
                      bool log_y = false) {
  return {title, "step", std::move(series), log_y};
}

}  // namespace

std::vector<CurvePanel> run_curve_panels(const std::string& metrics_jsonl_path) {
  const std::string text = read_metrics_text(metrics_jsonl_path);
  RunCurves curves;
  size_t line_start = 0;
  for (int64_t line_number = 1; line_start < text.size(); ++line_number) {
    const size_t line_end = text.find('\n', line_start);
    const bool has_newline = line_end != std::string::npos;
    const std::string line =
        text.substr(line_start, has_newline ? line_end - line_start : std::string::npos);
    line_start = has_newline ? line_end + 1 : text.size();
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = metrics_jsonl_path + ":" + std::to_string(line_number);
    const nlohmann::json row = nlohmann::json::parse(line, nullptr, false);
    if (row.is_discarded()) {
      // Rows are appended whole, so only the last one can be caught half-written.
      if (!has_newline) {
        spdlog::warn(
            "{}: skipping the last line, which is unfinished (the run may be writing it now)",
            where);
        continue;
      }
      throw DataError(where + ": not valid JSON; expected one JSON object per line, found '" +
                      excerpt(line) + "'");
    }
    if (!row.is_object())
      throw DataError(where + ": expected one JSON object per line, found '" + excerpt(line) + "'");
    read_row(row, where, curves);
  }

  std::vector<CurvePanel> panels;
  panels.push_back(step_panel("loss", {curves.loss}, true));
  panels.push_back(step_panel("lr", {curves.lr}));
  if (!curves.fd.x.empty()) panels.push_back(step_panel("FD", {curves.fd}));
  if (!curves.class_accuracy.x.empty())
    panels.push_back(step_panel("class accuracy", {curves.class_accuracy}));
  if (!curves.train_accuracy.x.empty())
    panels.push_back(step_panel("train accuracy", {curves.train_accuracy}));
  if (!curves.test_accuracy.empty())
    panels.push_back(step_panel("test accuracy", by_increasing_sigma(curves.test_accuracy)));
  return panels;
}

void write_run_curves(const std::string& run_dir, const std::string& out_path) {
  std::error_code error;
  if (!std::filesystem::is_directory(run_dir, error))
    throw DataError(run_dir +
                    ": run folder not found (expected the RUN_DIR that 'diffuse train' writes "
                    "metrics.jsonl into)");
  write_curves(out_path,
               run_curve_panels((std::filesystem::path(run_dir) / "metrics.jsonl").string()));
}

}  // namespace diffuse

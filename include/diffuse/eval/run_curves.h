#pragma once
// The curves of a training run, read from the metrics.jsonl that `diffuse train` appends to:
// one JSON object per line. Rows with "loss" are training rows (also "lr", and
// "train_accuracy" from the classifier trainer); rows with "fd" (and "class_accuracy") are
// evaluations; rows with "test_accuracy" hold the classifier's accuracy by noise level, an
// object keyed by σ written as text.
#include <string>
#include <vector>

#include "diffuse/eval/curve_plot.h"

namespace diffuse {

// The panels of a run, all against "step": "loss" (log y) and "lr" always, then "FD",
// "class accuracy", "train accuracy" and "test accuracy" (one series per σ, "σ=0.1", in
// increasing σ) when the file has such rows. A last line without its newline is skipped with
// a warning (the run may be writing it right now). Throws DataError when the file is missing
// or unreadable, or naming the line when one is not a JSON object or holds a non-number where
// a number belongs.
std::vector<CurvePanel> run_curve_panels(const std::string& metrics_jsonl_path);

// write_curves(out_path, run_curve_panels(run_dir + "/metrics.jsonl")).
void write_run_curves(const std::string& run_dir, const std::string& out_path);

}  // namespace diffuse

// Evaluation metrics (gradscope::metrics): accuracy, top-k accuracy, the confusion matrix,
// per-class precision/recall/F1 (and their text, as scikit-learn prints it), MSE, MAE and R².
// They read values, record no graph, and need Eigen only.
#pragma once

#include "metrics/classification.hpp"
#include "metrics/regression.hpp"
#include "metrics/report_text.hpp"

// Gradient-flow diagnostics: the monitor, profiles and verdicts, mean-field theory and the
// depth experiment. Needs Eigen only (the JSON report needs nlohmann_json).
#pragma once

#include "diag/experiment.hpp"
#include "diag/monitor.hpp"
#include "diag/profile.hpp"
#include "diag/theory.hpp"

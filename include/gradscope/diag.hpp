// Gradient-flow diagnostics: the monitor, profiles and verdicts, mean-field theory, the depth
// experiment and its reports (table, CSV, SVG plot). Needs Eigen only; the JSON report,
// diag/json_report.hpp, needs nlohmann_json and is not included here: include it yourself.
#pragma once

#include "diag/critical_init.hpp"
#include "diag/curvature.hpp"
#include "diag/doctor.hpp"
#include "diag/edge_of_chaos.hpp"
#include "diag/experiment.hpp"
#include "diag/jacobian.hpp"
#include "diag/history.hpp"
#include "diag/doctor_html.hpp"
#include "diag/html_report.hpp"
#include "diag/monitor.hpp"
#include "diag/profile.hpp"
#include "diag/profile_table.hpp"
#include "diag/report.hpp"
#include "diag/sharpness.hpp"
#include "diag/svg.hpp"
#include "diag/svg_heatmap.hpp"
#include "diag/spectrum.hpp"
#include "diag/sweep_html.hpp"
#include "diag/theory.hpp"
#include "diag/training_html.hpp"

// Precompiled mode (GRADSCOPE_PRECOMPILED, which linking gradscope::precompiled defines): this
// part's float and double specialisations are compiled once, in that library, not here.
#ifdef GRADSCOPE_PRECOMPILED
#include "instantiations.hpp"
GRADSCOPE_DECLARE_PRECOMPILED(GRADSCOPE_INSTANTIATE_DIAG)
GRADSCOPE_DECLARE_PRECOMPILED(GRADSCOPE_INSTANTIATE_CURVATURE)
#endif

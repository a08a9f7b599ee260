// Optimisers and gradient clipping. Needs Eigen only.
#pragma once

#include "optim/all.hpp"

// Optimisers, gradient clipping and learning-rate schedulers. Needs Eigen only.
#pragma once

#include "optim/all.hpp"

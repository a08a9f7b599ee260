// The optimisers and gradient clipping: one include for include/gradscope/optim/.
#pragma once

#include "adam.hpp"
#include "checks.hpp"
#include "clip.hpp"
#include "optimizer.hpp"
#include "rmsprop.hpp"
#include "sgd.hpp"

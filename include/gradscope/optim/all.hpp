// The optimisers, gradient clipping and learning-rate schedulers: one include for include/gradscope/optim/.
#pragma once

#include "adam.hpp"
#include "checks.hpp"
#include "clip.hpp"
#include "clip_per_sample.hpp"
#include "optimizer.hpp"
#include "param_group.hpp"
#include "rmsprop.hpp"
#include "scheduler.hpp"
#include "scheduler_chain.hpp"
#include "scheduler_cosine.hpp"
#include "scheduler_plateau.hpp"
#include "scheduler_step.hpp"
#include "sgd.hpp"
#include "weight_decay_groups.hpp"

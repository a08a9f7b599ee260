// Data (gradscope::data): datasets over matrices, the DataLoader (batches, shuffling, samplers,
// prefetch), train/validation/test splits, CSV tables and feature scaling. Standard library and
// Eigen only, so gradscope.hpp includes it.
#pragma once

#include "data/csv.hpp"
#include "data/dataset.hpp"
#include "data/distributed_sampler.hpp"
#include "data/loader.hpp"
#include "data/sampler.hpp"
#include "data/scaler.hpp"
#include "data/split.hpp"
#include "data/tabular.hpp"
#include "data/weighted_sampler.hpp"

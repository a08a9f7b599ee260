// Data-parallel training over MPI: an MPI environment and communicator (dist/communicator.hpp),
// the check and copy that make every rank's network the same (dist/replicate.hpp),
// DataParallel, which averages gradients across ranks during backward (dist/data_parallel.hpp),
// and synchronised batch norm (dist/sync_batch_norm.hpp).
// dist/checkpoint.hpp, which also needs nlohmann_json, saves on rank 0 and loads on every rank;
// dist/early_stopping.hpp (nlohmann_json too) stops every rank at the same epoch.
// The shards each rank trains on come from data::DistributedSampler (data/distributed_sampler.hpp,
// in gradscope.hpp: it needs no MPI).
//
// This needs MPI (Debian: libopenmpi-dev): link gradscope::mpi (CMake), from this build or from
// find_package(gradscope COMPONENTS mpi). gradscope.hpp does not include it, so that programs
// without MPI never need it.
#pragma once

#include "dist/communicator.hpp"
#include "dist/data_parallel.hpp"
#include "dist/replicate.hpp"
#include "dist/sync_batch_norm.hpp"
#include "gradscope.hpp"

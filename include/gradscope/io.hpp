// Files: checkpoints in the safetensors format (io/safetensors.hpp) and the IDX reader for the
// MNIST family of datasets (io/idx.hpp). Unlike the rest of gradscope this needs more than
// Eigen: nlohmann_json (Debian: nlohmann-json3-dev) for the checkpoint header, and zlib
// (zlib1g-dev; link ZLIB::ZLIB or -lz) for gzip-compressed datasets. That is why gradscope.hpp
// does not include it; include it, or just the one header you need, yourself.
#pragma once

#include "io/early_stopping.hpp"
#include "io/errors.hpp"
#include "io/idx.hpp"
#include "io/safetensors.hpp"

// Layers, activations, initialisers, losses and the mlp() builder. Needs Eigen only.
#pragma once

#include "core.hpp"
#include "core/ops/dropout.hpp"
#include "core/ops/normalization.hpp"
#include "nn/activation.hpp"
#include "nn/batchnorm.hpp"
#include "nn/dropout.hpp"
#include "nn/init.hpp"
#include "nn/layernorm.hpp"
#include "nn/linear.hpp"
#include "nn/loss.hpp"
#include "nn/mlp.hpp"
#include "nn/module.hpp"
#include "nn/residual.hpp"
#include "nn/rnn.hpp"
#include "nn/sequential.hpp"

// Loss functions, each one fused and numerically stable node: the value and the gradient are
// computed from the same saved quantities, and nothing overflows for large logits. Every loss
// takes PyTorch's reduction (none, mean, sum) and PyTorch's options, with its definitions.
#pragma once

#include "loss_binary.hpp"
#include "loss_cross_entropy.hpp"
#include "loss_reduction.hpp"
#include "loss_regression.hpp"

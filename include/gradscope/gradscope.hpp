// gradscope: one include for the whole library (core, layers, optimisers, diagnostics).
#pragma once

#include "core.hpp"
#include "diag.hpp"
#include "nn.hpp"
#include "optim.hpp"

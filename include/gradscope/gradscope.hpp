// gradscope: one include for the whole library.
#pragma once

#include "core.hpp"

#pragma once
// Umbrella header of the fastsam C++ runtime.
#include "fastsam/automatic_mask_generator.hpp"
#include "fastsam/error.hpp"
#include "fastsam/geometry.hpp"
#include "fastsam/image_ops.hpp"
#include "fastsam/options.hpp"
#include "fastsam/predictor.hpp"
#include "fastsam/rle.hpp"

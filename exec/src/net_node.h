// One layer of Net as it executes: its descriptors, its output tensor and where its parameters
// sit in the flat arrays. Shared by net.cc (forward, backward) and net_memory.cc (which memory
// each output and gradient lives in).
#pragma once

#include <basin/exec.h>

namespace basin::exec {

struct Net::Node {
  model::LayerKind kind = model::LayerKind::conv;
  TensorDesc out;
  Tensor y;
  ConvDesc conv;
  BatchNormDesc bn;
  PoolDesc pool;
  FcDesc fc;
  long long weight = -1, bias = -1;    // offsets into params_/grads_
  long long mean = -1, variance = -1;  // offsets into buffers_
  int consumers = 0;                   // layers reading y
  bool fused = false;  // a ReLU done by the batchnorm before it (BatchNormDesc::fused_relu)
  // A sum: the ReLU layer over it (in place), whose forward the sum does (Backend::add_relu);
  // -1 for none. That ReLU's own backward still applies its mask.
  int relu_after = -1;
  bool forward_by_sum = false;  // a ReLU whose forward its sum did
};

}  // namespace basin::exec

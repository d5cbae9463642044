"""A livsearch architecture as a PyTorch module.

Architecture {{HASH}}
  {{SUMMARY}}
Exported by livsearch from the genome in config.json.

    from model import Model
    m = Model.from_pretrained("path/to/this/folder")  # config.json + model.safetensors
    m = Model(config)                                 # or fresh weights for a genome dict
    logits = m(idx)                # idx: LongTensor [batch, time] -> float32 [batch, time, vocab]
    loss = m.loss(idx, targets)    # what livsearch trains: cross-entropy (+ MoE load balancing)
    logits, state = m.step(token, state)  # decode one token per sequence; state=None to start

The model: token embedding -> slots -> final RMSNorm -> logits through the
tied embedding. A slot is a pre-norm residual block,
    x = x + op(rms_norm(x))                             (one operator), or
    x = x + mix(op_0(rms_norm(x)), op_1(rms_norm(x)))   (a fusion of two),
with one class below per operator class the genome uses. Training runs
every operator over the whole sequence at once (attention through
scaled_dot_product_attention, the scans in log2(time) parallel rounds, linear
attention in chunks); step() carries each operator's decode state (KV cache,
recurrent and convolution state). Parameter names equal the names in
model.safetensors. Only torch is imported; torch 1.13 and 2.x work.
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

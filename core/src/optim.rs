//! Optimizers (SGD, momentum, Nesterov, Adam, AdamW, AMSGrad) and gradient clipping on flat buffers.

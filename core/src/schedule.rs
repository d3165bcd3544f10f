//! Learning-rate schedules (constant, exponential decay, cosine decay, step decay, linear warm-up).

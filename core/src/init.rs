//! Keras initialisers from a seeded, portable PRNG.

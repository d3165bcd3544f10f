//! The `.tlm` model file: reader and writer without allocation.

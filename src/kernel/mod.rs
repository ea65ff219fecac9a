//! Facts about the running kernel.

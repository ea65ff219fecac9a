//! Kernel log extraction from crash dumps (placeholder; owned by the vmcore work).

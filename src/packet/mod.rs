//! Packet headers to flows.

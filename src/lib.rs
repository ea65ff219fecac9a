//! netwhy: which packet did the kernel drop, where, why, and what to change.
//!
//! The flow is one pipeline (see shared DESIGN): a kernel probe writes wire
//! structs (src/probe/include/event.h) to a ring buffer or an in-kernel
//! aggregate; `event` decodes them once into the Event model; `kernel` names
//! reasons, symbols and namespaces; `output` renders. Every subcommand in `cli`
//! is a path through that pipeline.
pub mod capture;
pub mod cli;
pub mod diagnose;
pub mod doctor;
pub mod event;
pub mod filter;
/// Fuzz target bodies, shared by fuzz/ and tests/fuzz_smoke.rs; not an API.
#[doc(hidden)]
pub mod fuzzing;
pub mod kernel;
pub mod lab;
pub mod output;
pub mod packet;
pub mod pipeline;
pub mod probe;
pub mod signals;
pub mod state;
pub mod sys;
pub mod trace;
pub mod undo;

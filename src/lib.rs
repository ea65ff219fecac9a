//! netwhy: which packet did the kernel drop, where, why, and what to change.
//!
//! One pipeline (docs/architecture.md): a kernel probe writes wire structs
//! (src/probe/include/event.h) to a ring buffer or an in-kernel aggregate;
//! a `pipeline` source decodes them once into the Event model (`event`,
//! named by `kernel`), optionally diagnoses them (`diagnose`), and yields
//! typed items that an `output` sink renders. Every subcommand in `cli` is
//! argument parsing plus the wiring of one source to one sink.
pub mod bisect;
pub mod capture;
pub mod cli;
pub mod container;
pub mod diagnose;
pub mod doctor;
pub mod event;
pub mod export;
pub mod filter;
/// Fuzz target bodies, shared by fuzz/ and tests/fuzz_smoke.rs; not an API.
#[doc(hidden)]
pub mod fuzzing;
pub mod json;
pub mod kernel;
pub mod lab;
pub mod log;
pub mod output;
pub mod packet;
pub mod pipeline;
pub mod probe;
pub mod signals;
pub mod state;
pub mod sys;
pub mod trace;
pub mod undo;

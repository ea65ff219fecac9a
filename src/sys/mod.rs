//! System interfaces netwhy reaches below the usual tools: kernel objects it
//! finds or mounts itself, behind small safe wrappers, so the subcommands
//! keep to what they do with them.
pub mod cgroup;

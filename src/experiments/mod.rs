//! Experiments built on the engine. `compare` is the controlled ANN-vs-CNN experiment: one recipe, both
//! nets, every claim its own function (`claims.rs`) computed from recorded runs (`protocol.rs`).

pub mod budget;
pub mod claims;
pub mod compare;
pub mod contradictions;
pub mod figures;
pub mod markdown;
pub mod parts;
pub mod plots;
pub mod probes;
pub mod protocol;
pub mod recipe;
pub mod runner;
pub mod scale;
pub mod stats;
pub mod transforms;

//! Plans: steps with dependencies, phases, and Jobernetes files (being written).

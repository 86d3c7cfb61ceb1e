//! rt-sim: the sim venue (being written).

//! rt-ring: shared-memory SPSC rings (being written).

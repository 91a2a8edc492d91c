//! Tests of the whole engine against times recorded from the reference Temporal server.

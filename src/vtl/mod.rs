//! Velocity mapping templates (AWS flavour). Work in progress.

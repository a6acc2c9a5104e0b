//! The `distill-guard` binary (the commands are wired by the integration).

fn main() {}

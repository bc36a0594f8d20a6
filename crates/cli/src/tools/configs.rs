//! `kafka-configs`: not built yet.

/// Runs `kafka-configs` with these arguments; returns the exit code.
pub fn main(_args: Vec<String>) -> i32 {
    eprintln!("kafka-configs: not implemented yet");
    1
}

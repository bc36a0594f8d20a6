//! `kafka-topics`: not built yet.

/// Runs `kafka-topics` with these arguments; returns the exit code.
pub fn main(_args: Vec<String>) -> i32 {
    eprintln!("kafka-topics: not implemented yet");
    1
}

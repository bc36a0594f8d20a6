//! `kafka-console-producer`: not built yet.

/// Runs `kafka-console-producer` with these arguments; returns the exit code.
pub fn main(_args: Vec<String>) -> i32 {
    eprintln!("kafka-console-producer: not implemented yet");
    1
}
